"""Time and peak memory of ``python -m hoi_fast.report`` on default-sized and 100 000-cell grids.

    python bench/bench_report.py --seeds 100 1000          # writes the files once, then times the report
    python -m pytest bench/bench_report.py --benchmark-enable -p no:cacheprovider

The results files are written without running the simulator: the grid's own
layouts (``hoi_fast.grid.layouts_for`` on the default configuration with
``--seeds N``, so every metric, extra dimension and attribute is the real
one) are created by ``hoi_fast.store.ResultsWriter`` and then filled in bulk
with synthetic numbers shaped like the default grid's: a real-data loss that
degrades from α ≈ 0.6 and faster at large α, paired per seed (generation 0
shared by every α), with self and tail metrics beside it.  Each report runs in
a fresh interpreter, as a user runs it, so the figures include start-up; the
peak resident memory is that child's.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

GOALS = {100: (10.0, None), 1000: (60.0, 2048.0)}  # seeds -> (seconds, MiB) of issue 17


def cpu_model():
    """The CPU model from /proc/cpuinfo (or the platform's processor string)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _planted(alphas, seeds, gens, base, rng):
    """(alpha, seed, generation) real, self and tail metrics: paired, degrading above α ≈ 0.6."""
    g = np.arange(gens)
    level = base + 0.05 * rng.standard_normal((1, seeds, 1))
    a = alphas[:, None, None]
    rate = 0.004 * base * np.clip(a - 0.55, 0, None) / 0.45 + 0.05 * base * (a >= 0.99)
    trend = rate * g[None, None, :] * (1 + 0.3 * rng.standard_normal((len(alphas), seeds, 1)))
    noise = 0.01 * base * rng.standard_normal((len(alphas), seeds, gens))
    noise[..., 0] = 0.0
    real = level + trend + noise
    real[..., 0] = level[..., 0]
    return {"real": real, "self": real - 0.3 * trend - 0.01 * base, "tail": 1.5 * real + 2 * trend}


def write_synthetic(path, seeds, alphas=50, generations=20, seed=0):
    """Write a finished results file of the default layouts with ``seeds`` seeds; return ``path``."""
    from hoi_fast.config import GridConfig
    from hoi_fast.grid import layouts_for
    from hoi_fast.store import ResultsWriter

    config = GridConfig(experiment="both", alphas=alphas, seeds=seeds, generations=generations)
    layouts = layouts_for(config)
    ResultsWriter(path, layouts, config.identity(), command_line="synthetic: bench/bench_report.py",
                  flush_seconds=0).close(finished=True)
    rng = np.random.default_rng(seed)
    grid_alphas = np.asarray(config.alphas, dtype=np.float64)
    with h5py.File(path, "r+") as f:
        for layout in layouts:
            g = f[layout.name]
            real = next(s.name for s in layout.specs if s.role == "real")
            base = 3.7 if real.endswith("nll") else 2.3
            roles = _planted(grid_alphas, seeds, generations, base, rng)
            for spec in layout.specs:
                ds = g[spec.name]
                for i in range(ds.shape[0]):  # one α row (one chunk) at a time
                    if spec.role in roles:
                        ds[i] = roles[spec.role][i]
                    else:  # counts and parameters: integer-valued, so they compress as real ones do
                        ds[i] = rng.integers(0, 50, ds.shape[1:]).astype(np.float64)
            g["done"][...] = 1
    return path


def time_report(path, out_dir, extra=()):
    """Run the report in a fresh interpreter: (wall seconds, peak RSS MiB of the child)."""
    env = dict(os.environ, MPLBACKEND="Agg")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hoi_fast.report", path, "--out", out_dir, *extra],
                   check=True, env=env, capture_output=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # max over children so far
    return seconds, peak


def _file_for(seeds, folder):
    path = os.path.join(folder, f"synthetic_{seeds}_seeds.h5")
    if not os.path.exists(path):
        t0 = time.perf_counter()
        write_synthetic(path, seeds)
        print(f"wrote {path} ({os.path.getsize(path) / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s",
              flush=True)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 1000],
                        help="seeds per α of each synthetic grid (50 α x 20 generations)")
    parser.add_argument("--folder", default=os.path.join(tempfile.gettempdir(), "hoi_fast_bench_report"),
                        help="where the synthetic files are kept between runs")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per size (interleaved)")
    args = parser.parse_args(argv)
    os.makedirs(args.folder, exist_ok=True)
    files = {s: _file_for(s, args.folder) for s in args.seeds}
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores")
    times = {s: [] for s in args.seeds}
    peaks = {}
    for _ in range(args.repeat):
        for s, path in files.items():  # interleaved: neighbours slow every size alike
            seconds, _ = time_report(path, os.path.join(args.folder, f"report_{s}"))
            times[s].append(seconds)
    for s, path in files.items():  # peak memory: one run per size in its own parent
        peaks[s] = float(subprocess.run(
            [sys.executable, __file__, "--peak-of", path, os.path.join(args.folder, f"report_{s}")],
            check=True, capture_output=True, text=True).stdout)
    for s in args.seeds:
        goal_s, goal_mb = GOALS.get(s, (None, None))
        cells = 2 * 50 * s
        print(f"{cells:>7} cells ({s} seeds): report median {np.median(times[s]):.1f} s "
              f"(runs {', '.join(f'{t:.1f}' for t in times[s])}), peak RSS {peaks[s]:.0f} MiB"
              + (f"; goal <= {goal_s:g} s" if goal_s else "") + (f", <= {goal_mb:g} MiB" if goal_mb else ""))


def _peak_of(path, out_dir):
    print(time_report(path, out_dir)[1])


def test_report_default_size(benchmark, tmp_path_factory):
    """The report of a default-sized grid (2 x 50 α x 100 seeds x 20 generations)."""
    folder = tmp_path_factory.mktemp("bench_report")
    path = write_synthetic(str(folder / "default.h5"), 100)
    benchmark.pedantic(time_report, args=(path, str(folder / "report")), rounds=3, iterations=1)
    benchmark.extra_info.update(cells=10_000, cpu=cpu_model())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--peak-of":
        _peak_of(sys.argv[2], sys.argv[3])
    else:
        main()
