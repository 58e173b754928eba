"""Character n-gram speed against NLTK ``nltk.lm`` in the same run, and one generation step.

Run with::

    python -m pytest bench/bench_ngram.py --benchmark-enable -p no:cacheprovider -s

Same text (the built-in corpus), same order, same smoothing family: ``mle``
vs ``nltk.lm.MLE``, ``add-k`` (k = 1) vs ``Laplace``, ``kneser-ney`` vs
``KneserNeyInterpolated`` (same discount; the formulas differ slightly, see
tests/test_ngram_api.py).  NLTK is slow, so it trains on the first
``NLTK_TRAIN`` characters for the training and scoring rows, scores and generates
fewer characters, and every figure is normalised per character; for generation,
whose cost per character grows with the model, it trains on our 100 000
characters (same text, same model).  NLTK is timed with
``time.perf_counter`` after a warm-up on a tiny input, as the minimum of
``NLTK_REPEATS`` runs (the same statistic as ours: a single run of NLTK varied
by up to 3x on this shared VM); ours is timed by pytest-benchmark after JIT
warm-up.  NLTK scores on its training text (so MLE stays finite), ours on
held-out text (the harder case for us: more back-off look-ups).
``extra_info`` holds characters of work, ns/char for both and the ratio, and
every benchmark the CPU it ran on (:func:`hoi_fast.machine.describe`).

The generation-step benchmarks time whole cells: ``test_generation_step``
10 generations including generation 0 (its tail mask and model of R),
``test_generation_step_shared_first`` generations 1-19 of a default cell
whose generation 0 is computed once and shared, as the grid runs it.  On a
machine shared with other jobs, add ``--benchmark-timer time.process_time``
(CPU time: waiting for a core drops out).
"""

import math
import time

import numpy as np
import pytest

from hoi_fast import machine, ngram
from hoi_fast.experiments.ngram import NGramConfig
from hoi_fast.corpus import load_corpus
from hoi_fast.experiment import first_generation, run_cell
from hoi_fast.experiments.ngram import NGramExperiment
from hoi_fast.experiments import streams

nltk_lm = pytest.importorskip("nltk.lm")
from nltk.util import everygrams  # noqa: E402

OURS = {"train": 100_000, "score": 20_000, "generate": 20_000}
NLTK_TRAIN = 30_000
NLTK_SCORE = {"mle": 3000, "add-k": 3000, "kneser-ney": 300}
NLTK_GENERATE = {"mle": 300, "add-k": 300, "kneser-ney": 20}
NLTK_REPEATS = 3
PEERS = {"mle": "MLE", "add-k": "Laplace", "kneser-ney": "KneserNeyInterpolated"}
CASES = [(o, s, op) for o in (3, 5) for s in ("mle", "add-k", "kneser-ney") for op in ("train", "score", "generate")]


@pytest.fixture(autouse=True)
def _record_machine(request):
    """Every benchmark of this file records the CPU it ran on (model, flags; bench/regress.py reads it)."""
    yield
    bench = request.node.funcargs.get("benchmark")
    if bench is not None:
        bench.extra_info.update(machine.describe(measure=False))


def texts():
    c = load_corpus()
    return c.train[:OURS["train"]].copy(), c.heldout[:OURS["score"]].copy(), c


def nltk_fit(smoothing, order, chars):
    cls = getattr(nltk_lm, PEERS[smoothing])
    kwargs = {"discount": 0.75} if smoothing == "kneser-ney" else {}
    lm = cls(order=order, vocabulary=nltk_lm.Vocabulary(chars, unk_cutoff=1), **kwargs)
    lm.fit([list(everygrams(chars, max_len=order))])
    return lm


def nltk_seconds_per_char(smoothing, order, op, corpus, train):
    """Fastest of NLTK_REPEATS timings, per character, and the characters of work.

    The model is fitted once (only ``train`` times the fit itself).
    """
    # generation's cost per character grows with the model (NLTK scores every
    # continuation of the context), so it trains on exactly our training text
    n_train = train.size if op == "generate" else NLTK_TRAIN
    chars = [corpus.symbols[c] for c in train[:n_train].tolist()]
    if op == "train":
        nltk_fit(smoothing, order, chars[:500])  # warm-up
        timed, n = (lambda: nltk_fit(smoothing, order, chars)), len(chars)
    elif op == "score":
        lm, n = nltk_fit(smoothing, order, chars), NLTK_SCORE[smoothing]
        timed = lambda: _nltk_score(lm, chars, order, n)  # noqa: E731
    else:
        lm, n = nltk_fit(smoothing, order, chars), NLTK_GENERATE[smoothing]
        timed = lambda: lm.generate(n, text_seed=chars[:order - 1], random_seed=0)  # noqa: E731
    return min(_seconds(timed) for _ in range(NLTK_REPEATS)) / n, n


def _seconds(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _nltk_score(lm, chars, order, n):
    """Log-probability of ``n`` positions of the training text (so MLE stays finite), as perplexity does."""
    total = sum(math.log(lm.score(chars[j], chars[j - order + 1:j])) for j in range(order - 1, n + order - 1))
    assert math.isfinite(total)


@pytest.mark.parametrize("order, smoothing, op", CASES)
def test_vs_nltk(benchmark, order, smoothing, op):
    train, heldout, corpus = texts()
    v, k = corpus.vocab_size, 1.0
    model = ngram.train(train, order, smoothing, vocab_size=v, k=k)
    if op == "train":
        fn, n = (lambda: ngram.train(train, order, smoothing, vocab_size=v, k=k)), train.size
    elif op == "score":
        fn, n = (lambda: model.bits_per_char(heldout)), heldout.size - order + 1
    else:
        rng = np.random.default_rng(0)
        fn, n = (lambda: model.sample(OURS["generate"], rng)), OURS["generate"]
    fn()  # JIT warm-up
    benchmark.pedantic(fn, rounds=15, iterations=1, warmup_rounds=2)
    ours = benchmark.stats.stats.min / n
    peer, peer_n = nltk_seconds_per_char(smoothing, order, op, corpus, train)
    ratio = peer / ours
    benchmark.extra_info.update({
        "chars": n, "ours_ns_per_char": ours * 1e9, "nltk_chars": peer_n,
        "nltk_ns_per_char": peer * 1e9, "speedup_vs_nltk": ratio,
    })
    print(f"\n{op:8s} order {order} {smoothing:10s}: ours {ours * 1e9:9.1f} ns/char, "
          f"nltk {peer * 1e9:12.0f} ns/char, {ratio:9.0f}x")


@pytest.mark.parametrize("order, train_chars, heldout_chars, self_chars", [
    (4, 30_000, 10_000, 2000),  # the experiment's defaults (NGramConfig())
    (3, 20_000, 20_000, 5000), (5, 20_000, 20_000, 5000), (5, 100_000, 20_000, 5000)])
def test_generation_step(benchmark, order, train_chars, heldout_chars, self_chars):
    """One cell of 10 generations at alpha = 0.5: per generation, train on n characters,
    sample the synthetic part, score the held-out text and sample + score self_chars."""
    config = NGramConfig(order=order, train_chars=train_chars, heldout_chars=heldout_chars,
                         self_chars=self_chars)
    exp = NGramExperiment(config)
    generations = 10

    def one_cell():
        run_cell(exp, 0.5, generations, "mix", streams("ngram", 0, 0, 0.5))

    one_cell()
    benchmark.pedantic(one_cell, rounds=7, iterations=1, warmup_rounds=1)
    per_gen = benchmark.stats.stats.min / generations
    benchmark.extra_info.update({"generations": generations, "ms_per_generation": per_gen * 1e3,
                                 "train_chars": train_chars, "order": order,
                                 "heldout_chars": heldout_chars, "self_chars": self_chars})
    print(f"\ngeneration step order {order}, n = {train_chars}, heldout {heldout_chars}, "
          f"self {self_chars}: {per_gen * 1e3:.2f} ms")


def test_generation_step_shared_first(benchmark):
    """The grid's steady state at the defaults: generations 1..19 of a cell whose
    generation 0 (R, held-out text and tail mask, the model of R) is computed once
    per seed and shared across the alpha row, at alpha = 0.5 (the row's mean
    synthetic share)."""
    exp = NGramExperiment(NGramConfig())
    cell = streams("ngram", 0, 0, 0.5)
    first = first_generation(exp, cell)
    generations = 20

    def rest_of_cell():
        run_cell(exp, 0.5, generations, "mix", cell, first)

    rest_of_cell()
    benchmark.pedantic(rest_of_cell, rounds=7, iterations=1, warmup_rounds=1)
    per_gen = benchmark.stats.stats.min / (generations - 1)
    benchmark.extra_info.update({"generations": generations - 1, "ms_per_generation": per_gen * 1e3})
    print(f"\ngeneration step (defaults, generation 0 shared): {per_gen * 1e3:.2f} ms ({machine.cpu_model()})")


@pytest.mark.parametrize("how", ["every position", "distinct grams"])
def test_heldout_scoring(benchmark, how):
    """Scoring a cell's held-out text (the defaults: 10 000 characters, order 4) under a
    generation's model, as every generation does: position by position, or each distinct
    gram once and the results spread over its positions (the experiment's way; the same
    bits, tests/test_ngram_kernels.py)."""
    exp = NGramExperiment(NGramConfig())
    first = first_generation(exp, streams("ngram", 0, 0, 0.5))
    model, codes, grams = first.model, first.heldout.codes, first.heldout.grams
    bounds = np.zeros(1, np.int64), np.full(1, codes.shape[0], np.int64)
    score = {"every position": lambda: model._score(codes, *bounds),
             "distinct grams": lambda: model._score_distinct(grams)[0][grams.inverse]}[how]
    score()
    benchmark.pedantic(score, rounds=200, iterations=1, warmup_rounds=5)
    benchmark.extra_info.update({"positions": int(grams.inverse.shape[0]),
                                 "distinct_grams": int(grams.windows[1].shape[0])})
    print(f"\nheld-out scoring, {how}: {benchmark.stats.stats.min * 1e6:.0f} us "
          f"({grams.windows[1].shape[0]} distinct grams in {grams.inverse.shape[0]} positions)")
