"""Speed of the ``regression`` experiment (d = 10, T = 1000): one generation step against a NumPy/SciPy peer.

Run with::

    python -m pytest bench/bench_regression.py --benchmark-enable -p no:cacheprovider -s

* ``test_generation_step[...]``: the experiment's share of one generation, as
  :func:`hoi_fast.experiment.run_cell` calls it: build the training set (real
  rows of R, synthetic labels on the design), least squares, every metric.
  Goal: <= 100 us.
* ``test_peer_step``: the same generation written straight in NumPy/SciPy
  (labels ``X w + noise`` on the design rows, ``np.linalg.lstsq`` on the
  stacked rows, ``scipy.stats.norm.logpdf`` on the held-out rows, on
  ``self_samples`` drawn rows and on the training rows).  Its time and the
  ratio peer / ours go to ``extra_info``.
* ``test_run_cell_generation[...]``: per generation of a 21-generation cell
  through ``run_cell`` (loop bookkeeping included).

Everything runs on one BLAS thread (threadpoolctl).
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import math  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from hoi_fast.experiment import first_generation, next_training_parts, real_count, run_cell  # noqa: E402
from hoi_fast.experiments.regression import RegressionConfig, RegressionExperiment  # noqa: E402
from hoi_fast.seeding import CellStreams  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

KEY = 5
GOAL_SECONDS = 100e-6
CASES = {  # name -> (regime, alpha)
    "mix-0.9": ("mix", 0.9),
    "mix-1.0": ("mix", 1.0),
    "fresh-0.9": ("fresh", 0.9),
    "accumulate-1.0": ("accumulate", 1.0),
}
_OURS = {}


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture(autouse=True)
def _enabled(request):
    """These files only measure: without --benchmark-enable there is nothing to time."""
    options = request.config.getoption
    if options("benchmark_disable", False) and not options("benchmark_enable", False):
        pytest.skip("run with --benchmark-enable")


def one_thread():
    return threadpool_limits(1) if threadpool_limits else _Null()


def cpu_seconds(step, repeats=5, number=400):
    """Best of ``repeats`` process-CPU times per call: on a shared machine the wall clock also
    counts the time neighbours hold the core, the process clock does not."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(number):
            step()
        best = min(best, (time.process_time() - t0) / number)
    return best


def setting():
    experiment = RegressionExperiment(RegressionConfig())  # d = 10, T = 1000, held-out 5000, self 2000
    streams = CellStreams(0, KEY, 0, 0.9)
    return experiment, streams, first_generation(experiment, streams)


@pytest.mark.parametrize("case", list(CASES))
def test_generation_step(benchmark, case):
    regime, alpha = CASES[case]
    experiment, streams, first = setting()
    rng = np.random.default_rng(1)
    history = [first.pool]

    def step():
        if regime == "accumulate":
            del history[2:]  # a constant amount of work: R plus one synthetic set, then this one
        parts, _ = next_training_parts(experiment, regime, alpha, 1, first.model, history, first.pool, streams,
                                       rng, first.model)
        model = experiment.fit(parts, rng)
        return experiment.metrics(model, parts, first.heldout, rng)

    step()
    with one_thread():
        benchmark.pedantic(step, rounds=200, iterations=5, warmup_rounds=5)
        cpu = cpu_seconds(step)
    seconds = benchmark.stats.stats.median
    _OURS[case] = seconds
    benchmark.extra_info.update(features=10, samples=1000, regime=regime, alpha=alpha,
                                us_per_generation=seconds * 1e6, min_us=benchmark.stats.stats.min * 1e6,
                                cpu_us_per_generation=cpu * 1e6, goal_us=GOAL_SECONDS * 1e6,
                                within_goal=bool(cpu <= GOAL_SECONDS))
    print(f"\nregression generation step ({case}): median {seconds * 1e6:.1f} us wall, min "
          f"{benchmark.stats.stats.min * 1e6:.1f} us, {cpu * 1e6:.1f} us CPU (goal {GOAL_SECONDS * 1e6:.0f} us)")


def peer_step(X, y, w_star, w_prev, heldout_X, heldout_y, rng, alpha, noise, self_samples):
    """One generation in straight NumPy/SciPy: the obvious code."""
    T = X.shape[0]
    sd = math.sqrt(noise)
    m = real_count(alpha, T)
    real = rng.choice(T, m, replace=False)
    rows = rng.choice(T, T - m, replace=False)
    X_train = np.concatenate([X[real], X[rows]])
    y_train = np.concatenate([y[real], X[rows] @ w_prev + sd * rng.standard_normal(T - m)])
    w = np.linalg.lstsq(X_train, y_train, rcond=None)[0]
    own_rows = rng.choice(T, self_samples)
    own_y = X[own_rows] @ w + sd * rng.standard_normal(self_samples)
    return {
        "test_mse": np.sum((w - w_star) ** 2),
        "real_nll": -stats.norm.logpdf(heldout_y, heldout_X @ w, sd).mean(),
        "self_nll": -stats.norm.logpdf(own_y, X[own_rows] @ w, sd).mean(),
        "train_nll": -stats.norm.logpdf(y_train, X_train @ w, sd).mean(),
        "weights": w,
    }


def test_peer_step(benchmark):
    experiment, streams, first = setting()
    c = experiment.config
    rng = np.random.default_rng(2)
    design = first.pool.design
    y = design.X @ design.w_star + first.pool.resid
    heldout_y = first.heldout.X @ design.w_star + first.heldout.noise
    w_prev = design.w_star + first.model.delta
    args = (design.X, y, design.w_star, w_prev, first.heldout.X, heldout_y, rng, 0.9, c.noise, c.self_samples)
    peer = peer_step(*args)
    assert peer["test_mse"] < 10 * first.row["test_mse"] + 0.1  # the same problem
    with one_thread():
        benchmark.pedantic(lambda: peer_step(*args), rounds=50, iterations=1, warmup_rounds=2)
    seconds = benchmark.stats.stats.median
    mine = _OURS.get("mix-0.9")
    if mine is None:  # run alone: time ours here
        parts, _ = next_training_parts(experiment, "mix", 0.9, 1, first.model, [first.pool], first.pool, streams,
                                       rng, first.model)
        t0 = time.perf_counter()
        for _ in range(200):
            experiment.metrics(experiment.fit(parts, rng), parts, first.heldout, rng)
        mine = (time.perf_counter() - t0) / 200
    benchmark.extra_info.update(features=10, samples=1000, alpha=0.9, peer_us=seconds * 1e6, ours_us=mine * 1e6,
                                speedup_vs_peer=seconds / mine)
    print(f"\nNumPy/SciPy peer step: {seconds * 1e6:.0f} us; ours {mine * 1e6:.1f} us ({seconds / mine:.0f}x)")


@pytest.mark.parametrize("case", ["mix-0.9", "mix-1.0"])
def test_run_cell_generation(benchmark, case):
    """A cell of 21 generations through run_cell; per generation = (that - a 1-generation cell) / 20."""
    regime, alpha = CASES[case]
    experiment, streams, first = setting()
    cell = CellStreams(0, KEY, 0, alpha)
    run_cell(experiment, alpha, 21, regime, cell, first)
    with one_thread():
        benchmark.pedantic(lambda: run_cell(experiment, alpha, 21, regime, cell, first), rounds=20, iterations=1,
                           warmup_rounds=1)
        single = []
        for _ in range(20):
            t0 = time.perf_counter()
            run_cell(experiment, alpha, 1, regime, cell, first)
            single.append(time.perf_counter() - t0)
    seconds = (benchmark.stats.stats.median - float(np.median(single))) / 20
    benchmark.extra_info.update(us_per_generation_in_run_cell=seconds * 1e6)
    print(f"\nrun_cell per generation ({case}), loop bookkeeping included: {seconds * 1e6:.0f} us")
