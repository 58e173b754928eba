"""Character n-gram collapse on the built-in corpus: metrics by generation for a few alphas.

Run:  python examples/ngram_collapse.py     (a few seconds)

Each alpha is one cell (seed 0) of the shared recursive loop: generation 0
trains the default n-gram model (order 4, Kneser-Ney) on a real pool R of 30 000 characters;
generation g >= 1 trains on (1 - alpha) real characters from R plus alpha
synthetic characters sampled from generation g - 1.
"""

import numpy as np

from hoi_fast.experiments.ngram import NGramConfig
from hoi_fast.experiment import run_cell
from hoi_fast.experiments.ngram import NGramExperiment
from hoi_fast.experiments import streams


def main(alphas=(0.0, 0.5, 0.9, 1.0), generations=10, seeds=5):
    config = NGramConfig()  # the defaults: order 4, kneser-ney, 30k train / 10k held-out / 2k self
    experiment = NGramExperiment(config)
    print(f"corpus: builtin, V = {experiment.corpus.vocab_size} symbols, {experiment.corpus.codes.size} characters")
    print(f"order {config.order}, {config.smoothing}, n = {config.train_chars}; mean over {seeds} seeds")
    for alpha in alphas:
        runs = [run_cell(experiment, alpha, generations, "mix", streams("ngram", 0, s, alpha))
                for s in range(seeds)]
        mean = {k: np.mean([r[k] for r in runs], axis=0) for k in runs[0]}
        print(f"\nalpha = {alpha}")
        print(" gen  real_bpc  tail_bpc  self_bpc  support  unseen_rate")
        for g in range(generations):
            print(f" {g:3d}  {mean['real_bpc'][g]:8.3f}  {mean['tail_bpc'][g]:8.3f}  {mean['self_bpc'][g]:8.3f}"
                  f"  {mean['support'][g]:7.0f}  {mean['unseen_rate'][g]:11.3f}")


if __name__ == "__main__":
    main()
