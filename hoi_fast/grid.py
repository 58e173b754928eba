"""``python -m hoi_fast.grid``: run the α × seed grid into one HDF5 file.

The unit of work is a cell, one (experiment, α, seed) chain through every
generation.  Cells are grouped into blocks (some seeds of one α row) and run
serially (``--jobs 1``) or in a process pool; the parent is the single writer
of the results file.  Each cell's random streams are keyed by its coordinates
(:mod:`hoi_fast.seeding`), so the file does not depend on ``--jobs`` or on the
order in which cells finish.  A killed run resumes: cells marked done are
skipped.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import shlex
import sys
import time
from contextlib import nullcontext
from dataclasses import replace

import numpy as np

from hoi_fast.config import (
    EXPERIMENTS,
    ConfigError,
    GMMConfig,
    GridConfig,
    NGramConfig,
    as_dict,
)
from hoi_fast.executors import EXECUTORS, open_executor
from hoi_fast.experiment import REGIMES, cell_metric_specs
from hoi_fast.runner import Block, make_experiment, run_block
from hoi_fast.store import (
    GroupLayout,
    ResultsFileError,
    ResultsWriter,
    check_resumable,
    done_masks,
    holds_config,
)

DEFAULT_OUT = "hoi_results.h5"
DEFAULT_ALPHAS = 50
DEFAULT_SEEDS = 100
BLOCK_SEEDS = 5

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error voice: one line, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see --help\n")


def available_cores():
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def build_parser():
    """The command-line interface."""
    p = _Parser(
        prog="python -m hoi_fast.grid",
        description="Run the model-collapse grid (experiments x alphas x seeds, "
        "each for G generations) into one crash-safe, resumable HDF5 file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--experiment", choices=EXPERIMENTS + ("both",), default=None,
                   help="which experiment(s) to run [default: both]")
    p.add_argument("--alphas", default=None,
                   help="N evenly spaced synthetic fractions in [0, 1] (ends included), "
                   f"or a comma-separated list such as 0,0.5,0.9 [default: {DEFAULT_ALPHAS}]")
    p.add_argument("--seeds", default=None, help=f"number of replicate seeds [default: {DEFAULT_SEEDS}]")
    p.add_argument("--generations", default=None,
                   help=f"generations G per cell, generation 0 trained on real data [default: {GridConfig.generations}]")
    p.add_argument("--regime", choices=REGIMES, default=None, help="how training sets are built [default: mix]")
    p.add_argument("--root-seed", default=None, help="root seed of every random stream [default: 0]")
    p.add_argument("--sweep", action="append", default=None, metavar="NAME=V1,V2,...",
                   help="add a grid axis sweeping an experiment parameter, e.g. gmm.samples=250,1000; "
                   "repeatable; replaces the [sweep] table of --config")
    p.add_argument("--jobs", default=None,
                   help=f"worker processes; 1 runs serially [default: all cores, here {available_cores()}]")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local process pool, or Dask distributed (pip install 'hoi_fast[dask]')")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of an existing Dask scheduler (tcp://HOST:PORT); without it "
                   "--executor dask starts a LocalCluster of --jobs workers")
    p.add_argument("--out", default=None, help=f"results file [default: {DEFAULT_OUT}]")
    p.add_argument("--config", default=None, metavar="FILE.toml",
                   help="TOML file with [grid], [gmm], [gmm.truth] and [ngram] tables; flags override it")
    p.add_argument("--dry-run", action="store_true",
                   help="print the grid size, what is already done and an estimated time; write nothing")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing results file that holds another configuration")
    p.add_argument("--flush-seconds", default=1.0, type=float,
                   help="at most this long between journal flushes of finished cells; a killed run "
                   "recomputes only cells finished since the last flush")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


# -- configuration -----------------------------------------------------------

_GRID_KEYS = {"experiment", "alphas", "seeds", "generations", "regime", "root_seed"}
_TRUTH_KEYS = {"weights": "truth_weights", "means": "truth_means", "covariances": "truth_covariances"}


def _read_toml(path):
    if not os.path.isfile(path):
        raise ConfigError(f"`--config` file {path} does not exist; give a readable TOML file")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"`--config` {path} is not valid TOML ({exc}); fix the file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"`--config` {path} cannot be read ({exc})") from None


def _check_keys(table, known, where):
    for key in table:
        if key not in known:
            raise ConfigError(
                f"`{where}{key}` is not a known setting; known: {', '.join(sorted(known))}"
            )


def _dataclass_from(cls, table, where):
    known = set(cls.__dataclass_fields__) - set(_TRUTH_KEYS.values())
    _check_keys(table, known, where)
    return cls(**table)


def config_from_toml(data):
    """Split a parsed TOML document into grid settings and experiment configs."""
    _check_keys(data, {"grid", "gmm", "ngram", "sweep"}, "")
    grid = dict(data.get("grid", {}))
    _check_keys(grid, _GRID_KEYS, "grid.")
    gmm = dict(data.get("gmm", {}))
    truth = gmm.pop("truth", None)
    gmm_config = _dataclass_from(GMMConfig, gmm, "gmm.")
    if truth is not None:
        _check_keys(truth, set(_TRUTH_KEYS), "gmm.truth.")
        missing = set(_TRUTH_KEYS) - set(truth)
        if missing:
            raise ConfigError(f"`gmm.truth` needs weights, means and covariances; missing {', '.join(sorted(missing))}")
        gmm_config = replace(gmm_config, **{_TRUTH_KEYS[k]: _as_tuple(v) for k, v in truth.items()})
    ngram_config = _dataclass_from(NGramConfig, dict(data.get("ngram", {})), "ngram.")
    sweep = data.get("sweep", {})
    if not isinstance(sweep, dict):
        raise ConfigError('`sweep` must be a table such as [sweep] "gmm.samples" = [250, 1000]')
    grid["sweeps"] = tuple(_flatten_sweep(sweep))
    return grid, gmm_config, ngram_config


def _flatten_sweep(table, prefix=""):
    # [sweep] "gmm.samples" = [...] and [sweep.gmm] samples = [...] both work.
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _flatten_sweep(value, f"{prefix}{key}.")
        else:
            if not isinstance(value, list):
                value = [value]
            yield (f"{prefix}{key}", value)


def _as_tuple(value):
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value


def _parse_int(name, text):
    try:
        return int(text)
    except (TypeError, ValueError):
        raise ConfigError(f"`{name}` must be an integer, got {text!r}") from None


def _parse_alphas(text):
    text = str(text).strip()
    if "," not in text:
        try:
            return int(text)
        except ValueError:
            pass
    try:
        return [float(a) for a in text.split(",") if a.strip() != ""]
    except ValueError:
        raise ConfigError(
            f"`--alphas` must be a count or a comma-separated list of numbers in [0, 1], got {text!r}"
        ) from None


def _parse_sweep(text):
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise ConfigError(f"`--sweep` must look like NAME=V1,V2 (e.g. gmm.samples=250,1000), got {text!r}")
    return (name.strip(), values)


def config_from_args(args):
    """Merge defaults, the TOML file and the flags (flags win) into a GridConfig."""
    grid, gmm, ngram = {}, GMMConfig(), NGramConfig()
    if args.config:
        grid, gmm, ngram = config_from_toml(_read_toml(args.config))
    grid.setdefault("alphas", DEFAULT_ALPHAS)
    grid.setdefault("seeds", DEFAULT_SEEDS)
    if args.experiment is not None:
        grid["experiment"] = args.experiment
    if args.alphas is not None:
        grid["alphas"] = _parse_alphas(args.alphas)
    if args.seeds is not None:
        grid["seeds"] = _parse_int("--seeds", args.seeds)
    if args.generations is not None:
        grid["generations"] = _parse_int("--generations", args.generations)
    if args.regime is not None:
        grid["regime"] = args.regime
    if args.root_seed is not None:
        grid["root_seed"] = _parse_int("--root-seed", args.root_seed)
    if args.sweep:
        grid["sweeps"] = tuple(_parse_sweep(text) for text in args.sweep)
    return GridConfig(gmm=gmm, ngram=ngram, **grid)


def run_identity(config):
    """What a results file must match to be resumed: everything that decides numbers."""
    identity = as_dict(config)
    if config.experiment != "both":
        identity.pop("ngram" if config.experiment == "gmm" else "gmm")
    return identity


def _check_out(path, overwrite):
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise ConfigError(f"`--out` folder {folder} does not exist; create it or choose another path")
    if os.path.isdir(path):
        raise ConfigError(f"`--out` {path} is a folder; give a file name such as {DEFAULT_OUT}")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"`--out` folder {folder} is not writable; choose another path")


# -- scheduling --------------------------------------------------------------

def _merged_coords(experiments):
    """Extra-dimension coordinates covering every swept configuration (the longest wins)."""
    coords = {}
    for experiment in experiments:
        for dim, values in experiment.coords().items():
            values = np.asarray(values)
            if dim not in coords or len(values) > len(coords[dim]):
                coords[dim] = values
    return coords


def sweep_points(config, name):
    """Every combination of the sweep values of experiment ``name``: (index tuple, {name: value})."""
    sweeps = config.sweeps_for(name)
    for index in np.ndindex(*(len(s.values) for s in sweeps)):
        yield tuple(int(i) for i in index), {s.name: s.values[i] for s, i in zip(sweeps, index)}


def layouts_for(config):
    """The results-file group layout of every experiment in ``config``."""
    layouts = []
    for name in config.experiments:
        experiments = [make_experiment(name, config.experiment_config(name, values))
                       for _, values in sweep_points(config, name)]
        sweep_dims = tuple((s.field, np.asarray(s.values)) for s in config.sweeps_for(name))
        specs = tuple(cell_metric_specs(experiments[0]))
        clash = {d for d, _ in sweep_dims} & ({sp.name for sp in specs} | {"done", "generation"})
        if clash:
            raise ConfigError(f"`--sweep {name}.{clash.pop()}` clashes with a stored name; it cannot be swept")
        layouts.append(GroupLayout(
            name=name,
            cell_dims=(("alpha", np.asarray(config.alphas, dtype=np.float64)),) + sweep_dims
            + (("seed", np.arange(config.seeds, dtype=np.int64)),),
            generations=config.generations,
            specs=specs,
            coords=_merged_coords(experiments),
            config=as_dict(config.experiment_config(name)),
        ))
    return layouts


def cell_count(config, name):
    """Number of cells of experiment ``name``."""
    n = len(config.alphas) * config.seeds
    for sweep in config.sweeps_for(name):
        n *= len(sweep.values)
    return n


def pending_blocks(config, done):
    """Blocks of cells not yet done, slowest experiment first.

    Parameters
    ----------
    config : GridConfig
    done : dict of str -> bool ndarray over the cell dimensions
    """
    blocks = []
    for name in sorted(config.experiments, key=lambda e: e != "ngram"):
        for a in range(len(config.alphas)):
            for sweep_index, _ in sweep_points(config, name):
                row = done[name][(a, *sweep_index)]
                todo = [s for s in range(config.seeds) if not row[s]]
                for start in range(0, len(todo), BLOCK_SEEDS):
                    blocks.append(Block(name, a, sweep_index, tuple(todo[start:start + BLOCK_SEEDS])))
    return blocks


class Progress:
    """tqdm on a terminal, plain log lines (every ~10% or 30 s) otherwise."""

    def __init__(self, total, initial, quiet=False):
        self.total, self.count, self.quiet = total, initial, quiet
        self.start, self._last_log = time.monotonic(), 0.0
        self._initial = initial
        self._bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, unit="cell", dynamic_ncols=True)

    def update(self, n):
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if self.quiet or (now - self._last_log < 30 and self.count < self.total
                          and (self.count - n) * 10 // self.total == self.count * 10 // self.total):
            return
        self._last_log = now
        elapsed = now - self.start
        rate = (self.count - self._initial) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 else float("nan")
        print(f"[hoi_fast.grid] {self.count}/{self.total} cells "
              f"({100 * self.count / self.total:.0f}%), elapsed {elapsed:.0f} s, ETA {eta:.0f} s",
              file=sys.stderr, flush=True)

    def close(self):
        if self._bar is not None:
            self._bar.close()


def execute(config, blocks, writer, progress, executor=None):
    """Run ``blocks`` and store every cell as it arrives.

    With ``executor=None`` blocks run in this process; otherwise they are
    submitted to the ``concurrent.futures`` executor.
    """
    def store(results, block):
        for index, metrics in results:
            writer.write_cell(block.experiment, index, metrics)
        progress.update(len(results))

    if executor is None:
        for block in blocks:
            store(run_block(config, block), block)
        return
    futures = {executor.submit(run_block, config, block): block for block in blocks}
    try:
        for future in cf.as_completed(futures):
            store(future.result(), futures[future])
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def estimate_seconds(config, blocks, jobs):
    """Time one warm cell per experiment and extrapolate to ``blocks``."""
    per_cell = {}
    for name in config.experiments:
        probe = Block(name, len(config.alphas) // 2, next(sweep_points(config, name))[0], (0,))
        run_block(config, probe)  # warm-up: JIT and corpus
        t0 = time.perf_counter()
        run_block(config, probe)
        per_cell[name] = time.perf_counter() - t0
    work = sum(per_cell[b.experiment] * len(b.seed_indices) for b in blocks)
    return work / max(1, min(jobs, len(blocks) or 1)), per_cell


def _no_done_masks(config):
    return {name: np.zeros((len(config.alphas),) + tuple(len(s.values) for s in config.sweeps_for(name))
                           + (config.seeds,), bool) for name in config.experiments}


def dry_run(config, out, jobs):
    """Print the grid size, what is done and an estimated time; write nothing."""
    resumable = os.path.exists(out) and holds_config(out, run_identity(config))
    done = done_masks(out, config.experiments) if resumable else _no_done_masks(config)
    blocks = pending_blocks(config, done)
    n_cells = sum(cell_count(config, name) for name in config.experiments)
    n_done = sum(int(m.sum()) for m in done.values())
    seconds, per_cell = estimate_seconds(config, blocks, jobs)
    sweeps = "".join(f" x {len(s.values)} {s.name}" for s in config.sweeps)
    print(f"grid: {', '.join(config.experiments)} x {len(config.alphas)} alphas{sweeps} x {config.seeds} seeds "
          f"x {config.generations} generations = {n_cells} cells, {n_cells * config.generations} grid points")
    if os.path.exists(out) and not resumable:
        print(f"{out} holds another configuration: running would need --overwrite")
    print(f"done: {n_done} of {n_cells} cells in {out}")
    print("time per cell: " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in per_cell.items()))
    print(f"estimated time for the remaining {n_cells - n_done} cells with {jobs} job(s): "
          f"{seconds:.0f} s (+ a few seconds of start-up per worker)")


def run(config, out, jobs=1, overwrite=False, command_line="", quiet=False, executor="local",
        scheduler=None, flush_seconds=1.0):
    """Run (or resume) the grid into ``out``.

    Parameters
    ----------
    config : GridConfig
    out : str
        Results file; resumed when it holds the same configuration.
    jobs : int
        Worker processes (local pool or local Dask cluster); 1 runs locally in this process.
    overwrite : bool
        Replace an existing file with another configuration.
    command_line : str
        Recorded as provenance.
    quiet : bool
        No progress output.
    executor : {"local", "dask"} or concurrent.futures.Executor
        Where blocks run; see :mod:`hoi_fast.executors`.
    scheduler : str, optional
        Address of an existing Dask scheduler (with ``executor="dask"``).
    flush_seconds : float
        Minimum time between flushes of finished cells.

    Returns
    -------
    int
        Number of cells run by this call.
    """
    layouts = layouts_for(config)
    identity = run_identity(config)
    if not overwrite:
        check_resumable(out, identity)
    # The executor is up before the file is touched: a failure to start it writes nothing.
    with (open_executor(executor, jobs, scheduler) if isinstance(executor, str)
          else nullcontext(executor)) as pool:
        writer = ResultsWriter(out, layouts, identity, command_line, overwrite=overwrite,
                               flush_seconds=flush_seconds)
        try:
            done = {name: writer.done_mask(name) for name in config.experiments}
            blocks = pending_blocks(config, done)
            total = sum(cell_count(config, name) for name in config.experiments)
            progress = Progress(total, total - sum(len(b.seed_indices) for b in blocks), quiet)
            try:
                execute(config, blocks, writer, progress, pool)
            finally:
                progress.close()
        except BaseException:
            writer.close(finished=False)
            raise
        writer.close(finished=True)
    return sum(len(b.seed_indices) for b in blocks)


def main(argv=None):
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        jobs = available_cores() if args.jobs is None else _parse_int("--jobs", args.jobs)
        if jobs < 1:
            raise ConfigError(f"`--jobs` must be at least 1, got {jobs}")
        out = args.out or DEFAULT_OUT
        _check_out(out, args.overwrite)
        if args.dry_run:
            layouts_for(config)  # validates the corpus etc.
            dry_run(config, out, jobs)
            return 0
        command_line = shlex.join([os.path.basename(sys.executable), "-m", "hoi_fast.grid"]
                                  + list(sys.argv[1:] if argv is None else argv))
        t0 = time.perf_counter()
        if not args.flush_seconds >= 0:
            raise ConfigError(f"`--flush-seconds` must be >= 0, got {args.flush_seconds}")
        if args.scheduler and args.executor != "dask":
            raise ConfigError("`--scheduler` needs `--executor dask`")
        n = run(config, out, jobs, args.overwrite, command_line, args.quiet,
                executor=args.executor, scheduler=args.scheduler, flush_seconds=args.flush_seconds)
        if not args.quiet:
            print(f"[hoi_fast.grid] {n} cells run in {time.perf_counter() - t0:.1f} s; results in {out}",
                  file=sys.stderr)
        return 0
    except (ConfigError, ResultsFileError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
