"""Model collapse of a 2-D Gaussian mixture: NLLs by generation for a few alphas.

Each generation refits the mixture by EM on (1 - alpha) real points and alpha
points sampled from the previous generation's model (regime ``mix``).  The
numbers are means over a few seeds; held-out sets are shared across alphas,
so columns are paired.  Runs in a few seconds::

    python examples/gmm_collapse.py
"""

import numpy as np

from hoi_fast.experiments.gmm import GMMConfig
from hoi_fast.experiment import run_cell
from hoi_fast.experiments.gmm import GMMExperiment
from hoi_fast.experiments import streams

ALPHAS = (0.0, 0.5, 0.9, 1.0)
GENERATIONS = 10
SEEDS = 8


def main():
    experiment = GMMExperiment(GMMConfig())
    results = {}
    for alpha in ALPHAS:
        cells = [run_cell(experiment, alpha, GENERATIONS, "mix", streams("gmm", 0, s, alpha))
                 for s in range(SEEDS)]
        results[alpha] = {name: np.mean([c[name] for c in cells], axis=0)
                          for name in ("real_nll", "tail_nll", "self_nll")}
    for name in ("real_nll", "tail_nll", "self_nll"):
        print(f"\n{name} (nats, mean over {SEEDS} seeds)")
        print("gen " + "".join(f"  alpha={a:<4}" for a in ALPHAS))
        for g in range(GENERATIONS):
            print(f"{g:>3} " + "".join(f"{results[a][name][g]:>12.3f}" for a in ALPHAS))


if __name__ == "__main__":
    main()
