"""The categorical experiment's generation step against straight-line NumPy, in the same run.

Run with::

    python -m pytest bench/bench_categorical.py --benchmark-enable -p no:cacheprovider -s

One *generation step* at α = 0.9 under ``mix`` (the default configuration:
Zipf truth, add-k with k = 0.05, n = 1000, held-out 10 000, 1000 own draws):
draw the m real items of R without replacement, draw the n - m synthetic
items from the previous model, fit, and compute every metric.

* ``test_generation_step[ours-V]``: our experiment's methods, chained over
  ``GENERATIONS`` generations with one generator (what the experiment costs).
* ``test_generation_step[numpy-V]``: the same work in straight-line NumPy —
  ``Generator.choice`` for the real subset, ``Generator.multinomial`` for the
  synthetic counts and the own sample, ``np.log`` and one array expression per
  metric (the peer needs no item arrays, so it skips work we do).
* ``test_loop_step``: :func:`hoi_fast.experiment.run_cell` per generation,
  i.e. the step plus the shared loop's own work (a fresh ``SeedSequence``
  generator per generation, ``real_count``, the row check of every metric).

``extra_info`` holds seconds per generation and, for ours, the speed-up over
the peer twice: from the two benchmarks' medians, and as the median of
``PAIRED_ROUNDS`` paired ratios timed back to back (ours, peer, ours, ...),
which a noisy neighbour slows alike.
"""

import time

import numpy as np
import pytest

from hoi_fast.experiment import first_generation, real_count, run_cell
from hoi_fast.experiments.categorical import CategoricalConfig, CategoricalExperiment
from hoi_fast.seeding import CellStreams

ALPHA = 0.9
GENERATIONS = 20
PAIRED_ROUNDS = 15
VOCABS = (1000, 10**6)
_PEER_SECONDS = {}


def setting(V):
    """Experiment, generation 0 and the real/synthetic split of one seed."""
    exp = CategoricalExperiment(CategoricalConfig(vocab_size=V))
    first = first_generation(exp, CellStreams(0, 4, 0, ALPHA))
    n = exp.config.samples
    return exp, first, real_count(ALPHA, n), n - real_count(ALPHA, n)


def ours(exp, first, m, k_syn, rng, generations):
    """``generations - 1`` steps through the experiment's own methods."""
    model = first.model
    for _ in range(1, generations):
        parts = [exp.real_subset(first.pool, m, rng)]
        parts.append(exp.synthesize(model, k_syn, rng, first.model)[0])
        model = exp.fit(parts, rng)
        row = exp.metrics(model, parts, first.heldout, rng)
    return row


def numpy_peer(exp, first, m, k_syn, rng, generations):
    """The same steps in straight-line NumPy (same definitions, counts only)."""
    V, c = exp.config.vocab_size, exp.config
    k = exp.k
    q, logq, tail, h, p0, R = exp.truth, exp.log_truth, exp.tail, first.heldout.counts, first.heldout.p0, first.pool
    p = first.model.probs
    for _ in range(1, generations):
        counts = np.bincount(R[rng.choice(R.shape[0], m, replace=False)], minlength=V)
        counts += rng.multinomial(k_syn, p)
        N = counts.sum()
        p = (counts + k) / (N + k * V)
        pos = p > 0
        logp = np.log(p, where=pos, out=np.full(V, -np.inf))
        lp = np.where(pos, logp, 0.0)
        own = rng.multinomial(c.self_samples, p)
        covered = q[pos].sum()
        scored = h[pos].sum()
        tail_scored = h[pos & tail].sum()
        row = {
            "real_nll": -(h * lp).sum() / scored if scored else 0.0,
            "self_nll": -(own * lp).sum() / c.self_samples,
            "tail_nll": -(h * lp)[tail].sum() / tail_scored if tail_scored else np.nan,
            "unseen_events": h[~pos].sum(),
            "kl_support": (q * (logq - lp))[pos].sum() / covered - np.log(covered),
            "missing_mass": q[~pos].sum(),
            "tv": 0.5 * np.abs(p - q).sum(),
            "support": pos.sum(),
            "seen": np.count_nonzero(counts),
            "entropy": -(p * lp).sum(),
            "collision": (p * p).sum(),
            "tail_mass": p[tail].sum(),
            "pool_l2": ((p - p0) ** 2).sum(),
            "pool_tv": 0.5 * np.abs(p - p0).sum(),
            "counts": counts,
        }
    return row


def _seconds(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def _run(benchmark, fn, V, rounds):
    exp, first, m, k_syn = setting(V)
    rng = np.random.default_rng(1)
    fn(exp, first, m, k_syn, rng, 3)  # warm-up (JIT)
    generations = GENERATIONS if V <= 10**4 else 4
    row = benchmark.pedantic(fn, args=(exp, first, m, k_syn, rng, generations), rounds=rounds, iterations=1,
                             warmup_rounds=1)
    per_step = benchmark.stats.stats.median / (generations - 1)
    benchmark.extra_info.update(vocab_size=V, samples=exp.config.samples, alpha=ALPHA,
                                generations=generations, seconds_per_generation=per_step)
    return exp, first, m, k_syn, rng, generations, per_step, row


@pytest.mark.parametrize("V", VOCABS)
def test_generation_step_numpy(benchmark, V):
    *_, per_step, row = _run(benchmark, numpy_peer, V, rounds=20 if V <= 10**4 else 3)
    _PEER_SECONDS[V] = per_step
    assert np.isfinite(row["real_nll"])
    print(f"\nNumPy peer, V={V}: {per_step * 1e6:.1f} us per generation")


@pytest.mark.parametrize("V", VOCABS)
def test_generation_step_ours(benchmark, V):
    exp, first, m, k_syn, rng, generations, per_step, row = _run(benchmark, ours, V,
                                                                 rounds=100 if V <= 10**4 else 5)
    assert np.isfinite(row["real_nll"])
    peer = _PEER_SECONDS.get(V)
    if peer is None:  # run alone: time the peer here, once
        peer = _seconds(numpy_peer, exp, first, m, k_syn, rng, generations) / (generations - 1)
    paired = []
    for _ in range(PAIRED_ROUNDS if V <= 10**4 else 3):
        a = _seconds(ours, exp, first, m, k_syn, rng, generations)
        b = _seconds(numpy_peer, exp, first, m, k_syn, rng, generations)
        paired.append(b / a)
    benchmark.extra_info.update(peer_seconds_per_generation=peer, speedup_vs_numpy=peer / per_step,
                                paired_speedup_vs_numpy=float(np.median(paired)))
    print(f"\nours, V={V}: {per_step * 1e6:.1f} us per generation; NumPy peer {peer * 1e6:.1f} us "
          f"({peer / per_step:.1f}x; paired median {np.median(paired):.1f}x)")


def test_loop_step(benchmark):
    """run_cell per generation (defaults, α = 0.9, mix): the experiment plus the shared loop's bookkeeping."""
    exp = CategoricalExperiment(CategoricalConfig())
    streams = CellStreams(0, 4, 0, ALPHA)
    first = first_generation(exp, streams)
    run_cell(exp, ALPHA, 3, "mix", streams, first)
    benchmark.pedantic(run_cell, args=(exp, ALPHA, GENERATIONS, "mix", streams, first), rounds=30, iterations=1,
                       warmup_rounds=1)
    per_step = benchmark.stats.stats.median / (GENERATIONS - 1)
    benchmark.extra_info.update(generations=GENERATIONS, seconds_per_generation=per_step)
    print(f"\nrun_cell, V=1000: {per_step * 1e6:.1f} us per generation")


@pytest.mark.parametrize("library", ["ours", "numpy-choice", "numpy-multinomial"])
def test_sampling(benchmark, library):
    """10^6 draws from a fitted V = 1000 model: our guide table, ``Generator.choice(p=)``,
    and (counts only) ``Generator.multinomial``."""
    exp, first, *_ = setting(1000)
    model, rng, n = first.model, np.random.default_rng(2), 10**6
    run = {"ours": lambda: model.table.draw(n, rng),
           "numpy-choice": lambda: rng.choice(1000, n, p=model.probs),
           "numpy-multinomial": lambda: rng.multinomial(n, model.probs)}[library]
    run()
    benchmark.pedantic(run, rounds=20, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(draws=n, ns_per_draw=benchmark.stats.stats.median / n * 1e9)
