"""End-to-end throughput: a small grid, serially and on two workers.

    python -m pytest bench/bench_grid.py --benchmark-enable -p no:cacheprovider

Work is fixed (5 alphas x 8 seeds x 5 generations per experiment); the figures
are cells per second and grid points (cell x generation) per second.  The
parallel run reuses one warm process pool, so it measures scaling, not the
~1 s start-up of a spawned worker (reported separately).  Parallel efficiency
is t(jobs=1) / (2 t(jobs=2)) from the medians of interleaved repetitions,
because neighbours on a shared VM make single timings noisy.
"""

import concurrent.futures as cf
import multiprocessing
import statistics
import time

import pytest

from hoi_fast import grid, machine
from hoi_fast.config import GridConfig
from hoi_fast.runner import Block, run_block

SMALL = dict(alphas=5, seeds=8, generations=5)


@pytest.fixture(autouse=True)
def _record_machine(request):
    """Every benchmark of this file records the CPU it ran on (model, flags; bench/regress.py reads it)."""
    yield
    bench = request.node.funcargs.get("benchmark")
    if bench is not None:
        bench.extra_info.update(machine.describe(measure=False))


@pytest.fixture(scope="module")
def pool():
    with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def _warm(pool, config):
    for name in config.experiments:
        block = Block(name, 0, (), (0,))
        run_block(config, block)
        list(pool.map(run_block, [config] * 2, [block] * 2))


def _run(config, tmp_path, executor, jobs=1):
    out = tmp_path / f"bench-{time.perf_counter_ns()}.h5"
    grid.run(config, str(out), jobs=jobs, quiet=True, executor=executor)
    out.unlink()


@pytest.mark.parametrize("experiment", ["gmm", "ngram"])
@pytest.mark.parametrize("jobs", [1, 2])
def test_small_grid(benchmark, tmp_path, pool, experiment, jobs):
    config = GridConfig(experiment=experiment, **SMALL)
    _warm(pool, config)
    executor = None if jobs == 1 else pool  # None: in-process
    benchmark.pedantic(_run, args=(config, tmp_path, executor), rounds=3, iterations=1)
    cells = len(config.alphas) * config.seeds
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(cells=cells, grid_points=cells * config.generations, jobs=jobs,
                                cells_per_s=cells / median,
                                grid_points_per_s=cells * config.generations / median)


@pytest.mark.parametrize("experiment", ["gmm", "ngram"])
def test_parallel_efficiency(benchmark, tmp_path, pool, experiment):
    config = GridConfig(experiment=experiment, **SMALL)
    _warm(pool, config)
    serial, parallel = [], []
    for _ in range(5):  # interleaved repetitions
        for executor, times in ((None, serial), (pool, parallel)):
            t0 = time.perf_counter()
            _run(config, tmp_path, executor)
            times.append(time.perf_counter() - t0)
    benchmark.pedantic(_run, args=(config, tmp_path, pool), rounds=1, iterations=1)
    efficiency = statistics.median(serial) / (2 * statistics.median(parallel))
    benchmark.extra_info.update(serial_s=statistics.median(serial), parallel_s=statistics.median(parallel),
                                parallel_efficiency=efficiency)
    print(f"\n{experiment}: jobs=1 {statistics.median(serial):.3f} s, jobs=2 {statistics.median(parallel):.3f} s, "
          f"parallel efficiency {efficiency:.2f}")


def test_worker_start_up(benchmark, tmp_path):
    """Cost of a fresh spawned worker (numba's on-disk cache, corpus) on a one-cell grid."""
    config = GridConfig(experiment="both", alphas=1, seeds=1, generations=2)
    benchmark.pedantic(_run, args=(config, tmp_path, "local", 2), rounds=3, iterations=1)
