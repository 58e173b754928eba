"""What the benchmarks of the small experiments (``gaussian``, ``regression``) share.

Each of them times, on one BLAS thread: the experiment's share of one
generation as :func:`hoi_fast.experiment.run_cell` calls it (build the
training set, fit, every metric) in the regimes of :data:`CASES`; the same
generation written straight in NumPy/SciPy (its own ``peer_step``); and a
generation inside ``run_cell``, loop bookkeeping included.  A bench module
imports :func:`_enabled` (so that it skips without ``--benchmark-enable``)
and calls the ``time_*`` functions from its tests.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import contextlib  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hoi_fast.experiment import first_generation, next_training_parts, run_cell  # noqa: E402
from hoi_fast.seeding import CellStreams  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

GOAL_SECONDS = 100e-6
CASES = {  # name -> (regime, alpha)
    "mix-0.9": ("mix", 0.9),
    "mix-1.0": ("mix", 1.0),
    "fresh-0.9": ("fresh", 0.9),
    "accumulate-1.0": ("accumulate", 1.0),
}
#: The peer is compared with this case (timed first when the file runs whole).
PEER_CASE = "mix-0.9"


@pytest.fixture(autouse=True)
def _enabled(request):
    """These files only measure: without --benchmark-enable there is nothing to time."""
    options = request.config.getoption
    if options("benchmark_disable", False) and not options("benchmark_enable", False):
        pytest.skip("run with --benchmark-enable")


def one_thread():
    return threadpool_limits(1) if threadpool_limits else contextlib.nullcontext()


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


def setting(experiment, key):
    """``(experiment, streams, generation 0)`` of seed 0 at α = 0.9."""
    streams = CellStreams(0, key, 0, 0.9)
    return experiment, streams, first_generation(experiment, streams)


def time_generation_step(benchmark, label, experiment, key, case, ours, **info):
    """Time one generation step of ``experiment`` in ``case``; store it in ``ours[case]``."""
    regime, alpha = CASES[case]
    experiment, streams, first = setting(experiment, key)
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
    ours[case] = seconds
    benchmark.extra_info.update(**info, regime=regime, alpha=alpha,
                                us_per_generation=seconds * 1e6, min_us=benchmark.stats.stats.min * 1e6,
                                cpu_us_per_generation=cpu * 1e6, goal_us=GOAL_SECONDS * 1e6,
                                within_goal=bool(cpu <= GOAL_SECONDS))
    print(f"\n{label} generation step ({case}): median {seconds * 1e6:.1f} us wall, min "
          f"{benchmark.stats.stats.min * 1e6:.1f} us, {cpu * 1e6:.1f} us CPU (goal {GOAL_SECONDS * 1e6:.0f} us)")


def time_peer(benchmark, peer, experiment, streams, first, rng, ours, rounds, **info):
    """Time ``peer()`` (one generation in straight NumPy/SciPy) against our step of :data:`PEER_CASE`."""
    with one_thread():
        benchmark.pedantic(peer, rounds=rounds, iterations=1, warmup_rounds=2)
    seconds = benchmark.stats.stats.median
    mine = ours.get(PEER_CASE)
    if mine is None:  # run alone: time ours here
        regime, alpha = CASES[PEER_CASE]
        parts, _ = next_training_parts(experiment, regime, alpha, 1, first.model, [first.pool], first.pool,
                                       streams, rng, first.model)
        t0 = time.perf_counter()
        for _ in range(200):
            experiment.metrics(experiment.fit(parts, rng), parts, first.heldout, rng)
        mine = (time.perf_counter() - t0) / 200
    benchmark.extra_info.update(**info, alpha=CASES[PEER_CASE][1], peer_us=seconds * 1e6, ours_us=mine * 1e6,
                                speedup_vs_peer=seconds / mine)
    print(f"\nNumPy/SciPy peer step: {seconds * 1e6:.0f} us; ours {mine * 1e6:.1f} us ({seconds / mine:.0f}x)")


def time_run_cell_generation(benchmark, experiment, key, case):
    """A cell of 21 generations through run_cell; per generation = (that - a 1-generation cell) / 20."""
    regime, alpha = CASES[case]
    experiment, _, first = setting(experiment, key)
    cell = CellStreams(0, key, 0, alpha)
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
