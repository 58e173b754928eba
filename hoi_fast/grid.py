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
import signal
import shutil
import statistics
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import replace

import numpy as np

from hoi_fast.config import (
    DEFAULT_ALPHAS,
    DEFAULT_EXPERIMENT,
    DEFAULT_GENERATIONS,
    DEFAULT_SEEDS,
    GridConfig,
    as_dict,
    load_toml,
)
from hoi_fast._validate import ConfigError
from hoi_fast.executors import EXECUTORS, local_pool, open_executor
from hoi_fast.experiment import REGIMES, ExperimentError, cell_metric_specs, first_generation, run_cell
from hoi_fast.machine import cpu_id, cpu_model, simd_flags
from hoi_fast.runner import BLOCK_CELLS, Block, make_experiment, point_label, probe_cell, run_block
from hoi_fast.seeding import CellStreams
from hoi_fast.stages import cell_stages
from hoi_fast.stages import table as stage_table
from hoi_fast.store import (
    GroupLayout,
    ResultsFileError,
    ResultsWriter,
    check_output_path,
    check_resumable,
    done_masks,
    holds_config,
    journal_path,
    lock_results,
    resolve,
    results_exist,
    storing_seconds,
)

DEFAULT_OUT = "hoi_results.h5"


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
    )
    p.add_argument("--experiment", default=None, metavar="NAMES",
                   help="experiments to run: all (every built-in), both (gmm and ngram), built-in names or "
                   "plug-ins package.module:Class, separated by commas "
                   f"[default: {DEFAULT_EXPERIMENT}]")
    p.add_argument("--alphas", default=None,
                   help="a count N >= 2 of evenly spaced synthetic fractions in [0, 1] (ends included), "
                   f"or a comma-separated list such as 0,0.5,0.9 (one value: 0.9 or 1.0) [default: {DEFAULT_ALPHAS}]")
    p.add_argument("--seeds", default=None, help=f"number of replicate seeds [default: {DEFAULT_SEEDS}]")
    p.add_argument("--generations", default=None,
                   help=f"generations G per cell, generation 0 trained on real data [default: {DEFAULT_GENERATIONS}]")
    p.add_argument("--regime", choices=REGIMES, default=None, help="how training sets are built [default: mix]")
    p.add_argument("--root-seed", default=None, help="root seed of every random stream [default: 0]")
    p.add_argument("--sweep", action="append", default=None, metavar="NAME.PARAM=V1,V2,...",
                   help="add a grid axis sweeping an experiment parameter, e.g. gmm.samples=250,1000; "
                   "repeatable; replaces the [sweep] table of --config")
    p.add_argument("--jobs", default=None,
                   help=f"worker processes; 1 runs serially [default: all cores, here {available_cores()}]")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local process pool, or Dask distributed (pip install 'hoi_fast[dask]') [default: local]")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of an existing Dask scheduler (tcp://HOST:PORT); without it "
                   "--executor dask starts a LocalCluster of --jobs workers")
    p.add_argument("--out", default=None, help=f"results file [default: {DEFAULT_OUT}]")
    p.add_argument("--config", default=None, metavar="FILE.toml",
                   help="TOML file with a [grid] table, one table per experiment ([gmm], [gmm.truth], "
                   "[ngram], ...) and a [sweep] table; flags override it")
    p.add_argument("--dry-run", action="store_true",
                   help="print the grid size, what is already done and an estimated time; write nothing")
    p.add_argument("--profile", action="store_true",
                   help="with --dry-run: also print where a cell's time goes, stage by stage (ms per "
                   "generation), for each experiment and swept value of this run")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing results file that holds another configuration")
    p.add_argument("--flush-seconds", default="1",
                   help="at most this long between journal flushes of finished cells; a killed run "
                   "recomputes only cells finished since the last flush [default: 1]")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


# -- configuration -----------------------------------------------------------

def _parse_int(name, text):
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        raise ConfigError(f"`{name}` must be an integer, got {text!r}") from None


def _parse_seconds(name, text):
    try:
        value = float(str(text).strip())
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 86400:
        raise ConfigError(f"`{name}` must be a number of seconds in [0, 86400], got {text!r}")
    return value


def _parse_alphas(text):
    """A count (an integer without a point) or a comma-separated list of numbers."""
    text = str(text).strip()
    if "," not in text and "." not in text:
        try:
            count = int(text)
        except ValueError:
            count = None
        if count is not None:
            if count < 2:
                raise ConfigError(f"`--alphas {text}` is a count of α values (N >= 2 evenly spaced in [0, 1]); "
                                  "for a single α give it as a number with a point, e.g. --alphas 1.0 or 0.0")
            return count
    items = text.split(",")
    if any(not item.strip() for item in items):
        raise ConfigError(f"`--alphas` has an empty item in {text!r}; give numbers separated by single commas")
    try:
        return [float(a) for a in items]
    except ValueError:
        raise ConfigError(
            f"`--alphas` must be a count or a comma-separated list of numbers in [0, 1], got {text!r}"
        ) from None


def _parse_sweep(text):
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise ConfigError(f"`--sweep` must look like NAME.PARAM=V1,V2 (e.g. gmm.samples=250,1000), got {text!r}")
    return (name.strip(), values)


def config_from_args(args):
    """Merge defaults, the TOML file and the flags (flags win) into a GridConfig."""
    settings = load_toml(args.config) if args.config is not None else {}
    if args.experiment is not None:
        settings["experiment"] = args.experiment
    if args.alphas is not None:
        settings["alphas"] = _parse_alphas(args.alphas)
    if args.seeds is not None:
        settings["seeds"] = _parse_int("--seeds", args.seeds)
    if args.generations is not None:
        settings["generations"] = _parse_int("--generations", args.generations)
    if args.regime is not None:
        settings["regime"] = args.regime
    if args.root_seed is not None:
        settings["root_seed"] = _parse_int("--root-seed", args.root_seed)
    if args.sweep:
        settings["sweeps"] = tuple(_parse_sweep(text) for text in args.sweep)
    return GridConfig(**settings)


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


def _merged_specs(name, experiments):
    """The metric specs shared by every swept configuration (NaN allowed where any allows it)."""
    specs = [cell_metric_specs(e) for e in experiments]
    names = [[s.name for s in spec] for spec in specs]
    if any(n != names[0] for n in names):
        raise ConfigError(f"`--sweep` over {name} changes the metrics the experiment records; "
                          "sweep that parameter in separate runs")
    return tuple(replace(first, nan_ok=any(s[i].nan_ok for s in specs)) for i, first in enumerate(specs[0]))


def layouts_for(config):
    """The results-file group layout of every experiment in ``config``."""
    layouts = []
    for name in config.experiments:
        entry = config.entry(name)
        experiments = [make_experiment(entry, config.experiment_config(name, values))
                       for _, values in config.sweep_points(name)]
        sweep_dims = tuple((s.field, np.asarray(s.values)) for s in config.sweeps_for(name))
        specs = _merged_specs(name, experiments)
        clash = {d for d, _ in sweep_dims} & ({sp.name for sp in specs} | {"done", "generation", "alpha", "seed"})
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


#: Most cells a grid may have (its bookkeeping is a few hundred bytes per cell in the parent).
MAX_CELLS = 10_000_000
#: Most bytes one cell's metrics may take (a block holds several cells in memory).
MAX_CELL_BYTES = 256 << 20


def cell_bytes(layout):
    """Bytes of one cell's metrics (float64), summed over the specs."""
    per_generation = sum(int(np.prod([len(layout.coords[d]) for d in spec.extra_dims])) for spec in layout.specs)
    return 8 * layout.generations * per_generation


def results_bytes(layouts):
    """Upper bound of the results' size: every metric of every cell, uncompressed."""
    return sum(cell_bytes(layout) * int(np.prod(layout.cell_shape)) for layout in layouts)


def _available_memory():
    """Bytes of memory available to new work (``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_capacity(config, layouts, out):
    """Refuse a grid that cannot fit: too many cells, cells too large, more results than the disk holds.

    Raises
    ------
    ConfigError
        One line naming what is too large and what to do, before anything is created.
    """
    cells = sum(config.cell_count(name) for name in config.experiments)
    if cells > MAX_CELLS:
        raise ConfigError(f"the grid has {cells:,} cells, more than {MAX_CELLS:,}; use fewer --alphas, --seeds or "
                          "swept values (or split it into several runs)")
    for layout in layouts:
        size = cell_bytes(layout)
        if size > MAX_CELL_BYTES:
            raise ConfigError(f"one {layout.name} cell would hold {size / 2**20:,.0f} MiB of metrics "
                              f"({config.generations:,} generations), more than {MAX_CELL_BYTES >> 20} MiB; "
                              "run fewer --generations")
    memory = _available_memory()
    if memory is not None and cells * 400 > memory:
        raise ConfigError(f"keeping track of {cells:,} cells needs about {cells * 400 / 2**30:.1f} GiB of memory, "
                          f"more than the {memory / 2**30:.1f} GiB available; make the grid smaller")
    need = results_bytes(layouts)
    folder = os.path.dirname(os.path.abspath(out)) or "."
    free = shutil.disk_usage(folder).free + (os.path.getsize(out) if os.path.isfile(out) else 0)
    if need > free:
        raise ConfigError(f"the results may take up to {need / 2**30:.2f} GiB (uncompressed) but {folder} has "
                          f"{free / 2**30:.2f} GiB free; free space, choose another --out or make the grid smaller")


def notes(config):
    """One-line remarks of the experiments (e.g. a truth without a tail), each once."""
    out = []
    for name in config.experiments:
        for _, values in config.sweep_points(name):
            experiment = make_experiment(config.entry(name), config.experiment_config(name, values))
            for note in getattr(experiment, "notes", lambda: [])():
                if note not in out:
                    out.append(note)
    return out


def pending_blocks(config, done, jobs=1, layouts=None):
    """Blocks of cells not yet done.

    A block holds the pending α of some seeds of one (experiment, swept
    values) point, so that generation 0 of a seed is computed once for its
    α row; it holds at most :data:`~hoi_fast.runner.BLOCK_CELLS` cells, and
    fewer when the grid is small, so that every worker gets about four blocks.

    Parameters
    ----------
    config : GridConfig
    done : dict of str -> bool ndarray over the cell dimensions
    jobs : int
        Workers the blocks are shared among.
    layouts : list of GroupLayout, optional
        The groups' layouts, to bound a block's memory by the size of its cells.
    """
    todo = {name: ~done[name] for name in config.experiments}
    pending = sum(int(t.sum()) for t in todo.values())
    blocks = []
    for name, layout in zip(config.experiments, layouts or [None] * len(config.experiments)):
        # about four blocks per worker, and a block's results within MAX_CELL_BYTES
        size = max(1, min(BLOCK_CELLS, -(-pending // (4 * jobs)),
                          MAX_CELL_BYTES // cell_bytes(layout) if layout is not None else BLOCK_CELLS))
        for sweep_index, _ in config.sweep_points(name):
            cells, used = [], 0
            for seed in range(config.seeds):
                row = np.flatnonzero(todo[name][(slice(None), *sweep_index, seed)]).tolist()
                for start in range(0, len(row), size):
                    chunk = tuple(row[start:start + size])
                    if used + len(chunk) > size and cells:
                        blocks.append(Block(name, sweep_index, tuple(cells)))
                        cells, used = [], 0
                    cells.append((seed, chunk))
                    used += len(chunk)
            if cells:
                blocks.append(Block(name, sweep_index, tuple(cells)))
    return blocks


class Interrupts:
    """Ctrl-C without crashes: a KeyboardInterrupt at once, except while cells run in this process.

    A KeyboardInterrupt raised inside a compiled numba call (or while its
    arguments are unboxed) can crash the interpreter (a segmentation fault was
    seen in 2 of 8 trials).  So while cells run here (``--jobs 1``, the probe,
    the dry run's timing) the signal only sets a flag, and :meth:`check`,
    called between cells, raises it.  :func:`main` installs :meth:`handler`
    for SIGINT; pool workers ignore SIGINT and are stopped by the parent.
    """

    def __init__(self):
        self.pending = False
        self.deferring = 0

    def handler(self, signum, frame):
        if self.deferring:
            self.pending = True
        else:
            raise KeyboardInterrupt

    def check(self):
        """Raise the deferred KeyboardInterrupt, if any."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    @contextmanager
    def deferred(self):
        """Run cells here: Ctrl-C waits for :meth:`check` (or the end of the block)."""
        self.deferring += 1
        try:
            yield
        finally:
            self.deferring -= 1
        self.check()


INTERRUPTS = Interrupts()


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
            with INTERRUPTS.deferred():
                results = run_block(config, block, INTERRUPTS.check)
            store(results, block)
        return
    futures = {executor.submit(run_block, config, block): block for block in blocks}
    try:
        for future in cf.as_completed(futures):
            store(future.result(), futures[future])
    except BaseException:
        for future in futures:
            future.cancel()
        raise


#: Generations a dry run times per cell; longer cells are extrapolated linearly.
PROBE_GENERATIONS = 20
#: Warm timings of that cell per experiment; the median counts (one cell caught in a
#: neighbour's burst made single-timing estimates 30-50% high on a shared machine).
PROBE_ROUNDS = 3


def _timed_point(config, entry, values):
    """The cell a dry run times at the swept ``values``: ``(experiment, alpha, generations, streams_of)``.

    The middle α of the grid, at most :data:`PROBE_GENERATIONS` generations,
    and ``streams_of(seed)`` the :class:`~hoi_fast.seeding.CellStreams` of the
    cell of replicate ``seed``; shared by the estimate and ``--profile``.
    """
    experiment = make_experiment(entry, config.experiment_config(entry.name, values))
    alpha = config.alphas[len(config.alphas) // 2]
    sweep = tuple(values.values())

    def streams_of(seed):
        return CellStreams(config.root_seed, entry.stream_key, seed, alpha, sweep)

    return experiment, alpha, min(config.generations, PROBE_GENERATIONS), streams_of


def _cell_costs(config, name, layout):
    """Seconds of generation 0 of a seed and of the rest of one cell, measured warm (median of
    :data:`PROBE_ROUNDS` timings).

    At most :data:`PROBE_GENERATIONS` generations are timed; the rest are
    extrapolated at the measured cost per generation.  The rest includes what
    the parent spends to store the cell (journal record, compression into the
    file: :func:`hoi_fast.store.storing_seconds`), since it shares the cores.
    """
    _, values = next(config.sweep_points(name))
    experiment, alpha, timed, streams_of = _timed_point(config, config.entry(name), values)
    streams = streams_of(0)
    firsts, rests = [], []
    for _ in range(1 + PROBE_ROUNDS):  # the first round compiles (JIT) and loads data
        t0 = time.perf_counter()
        first = first_generation(experiment, streams)
        t1 = time.perf_counter()
        result = run_cell(experiment, alpha, timed, config.regime, streams, first)
        t2 = time.perf_counter()
        firsts.append(t1 - t0)
        rests.append(t2 - t1)
    first_seconds, cell_seconds = statistics.median(firsts[1:]), statistics.median(rests[1:])
    rest = cell_seconds * (config.generations - 1) / (timed - 1) if timed > 1 else 0.0
    scale = config.generations / timed  # stored arrays grow with the generations
    return first_seconds, rest + scale * storing_seconds(replace(layout, generations=timed), result)


def _costs_side_by_side(config, calls, workers):
    """:func:`_cell_costs` of each call, timed in ``workers`` worker processes at once (median of them).

    Workers of a run share the machine's caches and memory bandwidth (and, on
    a virtual machine, often a physical core): each of two measured 1.1-1.4x
    the time of one alone.  So the timed cells run side by side, as the run's
    would, and the estimate carries that cost.  The probe (:func:`probe`)
    runs in the same workers first, so on an empty numba cache they compile
    each experiment's kernels once, side by side, not all of them at once.
    """
    with local_pool(workers) as pool:
        probe(config, pool)
        futures = [[pool.submit(_cell_costs, *call) for _ in range(workers)] for call in calls]
        costs = {}
        for call, copies in zip(calls, futures):
            measured = [f.result() for f in copies]
            costs[call[1]] = tuple(statistics.median(m[i] for m in measured) for i in (0, 1))
    return costs


def estimate_seconds(config, blocks, jobs):
    """Time one warm cell per experiment (and storing it) and extrapolate to ``blocks``.

    The probe cells run first (:func:`probe`: a broken experiment is refused
    in one line, as by a run).  With two or more jobs the cells are timed in
    that many workers at once (:func:`_costs_side_by_side`).

    Returns
    -------
    seconds : float
        Estimated wall time on ``jobs`` workers.
    per_cell : dict of str -> float
        Estimated seconds of one cell of each experiment, generation 0 shared
        across its α row as the blocks share it.
    """
    calls = [(config, name, layout) for name, layout in zip(config.experiments, layouts_for(config))]
    workers = min(jobs, len(blocks))
    with INTERRUPTS.deferred():
        if workers > 1:
            costs = _costs_side_by_side(config, calls, workers)
        else:
            probe(config)
            costs = {call[1]: _cell_costs(*call) for call in calls}
    work, cells = {}, {}
    for block in blocks:
        first, rest = costs[block.experiment]
        work[block.experiment] = work.get(block.experiment, 0.0) + first * len(block.cells) + rest * len(block)
        cells[block.experiment] = cells.get(block.experiment, 0) + len(block)
    per_cell = {name: work[name] / cells[name] if cells.get(name) else sum(costs[name])
                for name in config.experiments}
    return sum(work.values()) / max(1, min(jobs, len(blocks) or 1)), per_cell


def _no_done_masks(config):
    return {name: np.zeros((len(config.alphas),) + tuple(len(s.values) for s in config.sweeps_for(name))
                           + (config.seeds,), bool) for name in config.experiments}


def dry_run(config, out, jobs, profile=False):
    """Print the grid size, what is done and an estimated time (and with ``profile`` the stages); write nothing."""
    resumable = results_exist(out) and holds_config(out, config.identity(), same_run(config))
    done = done_masks(out, config.experiments) if resumable else _no_done_masks(config)
    blocks = pending_blocks(config, done, jobs)
    n_cells = sum(config.cell_count(name) for name in config.experiments)
    n_done = sum(int(m.sum()) for m in done.values())
    seconds, per_cell = estimate_seconds(config, blocks, jobs)
    sweeps = "".join(f" x {len(s.values)} {s.name}" for s in config.sweeps)
    print(f"grid: {', '.join(config.experiments)} x {len(config.alphas)} alphas{sweeps} x {config.seeds} seeds "
          f"x {config.generations} generations = {n_cells} cells, {n_cells * config.generations} grid points")
    if results_exist(out) and not resumable:
        print(f"{out} holds another configuration: running would need --overwrite")
    print(f"done: {n_done} of {n_cells} cells in {out}")
    print("time per cell: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in per_cell.items()))
    print(f"estimated time for the remaining {n_cells - n_done} cells with {jobs} job(s): "
          f"{seconds:.0f} s (+ a few seconds of start-up per worker)")
    if profile:
        print_stages(config)


#: Cells per experiment and swept value that ``--profile`` times (after one that warms up).
PROFILE_CELLS = 3


def print_stages(config):
    """Print where a cell's time goes for each experiment and swept value of ``config``.

    :func:`hoi_fast.stages.cell_stages` in this process, CPU time, on
    :data:`PROFILE_CELLS` cells of the cell the estimate times
    (:func:`_timed_point`) with the run's regime; the ``store`` stage holds
    what the parent spends to store a cell in the run's layout
    (:func:`hoi_fast.store.storing_seconds`).
    """
    if config.generations < 2:
        print("stages: nothing to profile: every cell is generation 0 alone (--generations 1)")
        return
    rows = {}
    layouts = dict(zip(config.experiments, layouts_for(config)))
    with INTERRUPTS.deferred():
        for entry in config.entries:
            names = [s.name for s in config.sweeps_for(entry.name)]
            for _, values in config.sweep_points(entry.name):
                experiment, alpha, generations, streams_of = _timed_point(config, entry, values)
                layout = replace(layouts[entry.name], generations=generations)
                rows[point_label(entry.name, names, values.values())] = cell_stages(
                    experiment, entry.name, alpha, config.regime, generations, streams_of, PROFILE_CELLS,
                    storing=lambda result, layout=layout: storing_seconds(layout, result))
    print(f"stages: ms per generation (share of CPU time) of generations 1-{generations - 1}, mean of "
          f"{PROFILE_CELLS} cells at alpha = {alpha:g}, {config.regime}, generation 0 shared; "
          f"{cpu_model()} ({cpu_id()}; {simd_flags()})")
    print(stage_table(rows))


def same_run(config):
    """A predicate: does a results file's stored configuration describe ``config``?

    The stored configuration is rebuilt first, so a file written by an older
    version (``experiment = "both"``, fewer settings) still resumes when it
    describes the same run.
    """
    identity = config.identity()

    def check(stored):
        try:
            return GridConfig.from_identity(stored).identity() == identity
        except (ConfigError, TypeError, ValueError):
            return False
    return check


def probe(config, executor=None):
    """Run two generations of one cell of every experiment and swept value (:func:`~hoi_fast.runner.probe_cell`).

    Anything that would stop the run for every cell (a filter that accepts
    nothing, a plug-in that raises, returns a metric outside its specs, a
    wrong shape or a non-finite value) is refused with one line
    (:class:`ExperimentError`) before a file exists; the first failure in
    experiment order is the one reported.  With an ``executor`` the probes
    run in its workers, all submitted at once: on an empty numba cache each
    worker compiles the kernels of the experiments it probes and later loads
    the others' from the cache, instead of one process compiling them all
    while the other cores wait.
    """
    points = [(config, entry.name, values)
              for entry in config.entries for _, values in config.sweep_points(entry.name)]
    if executor is None:
        with INTERRUPTS.deferred():
            failures = [probe_cell(*point) for point in points]
    else:
        futures = [executor.submit(probe_cell, *point) for point in points]
        failures = [future.result() for future in futures]
    for failure in failures:
        if failure is not None:
            raise ExperimentError(failure)


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
    check_capacity(config, layouts, out)
    identity = config.identity()
    with lock_results(out):  # one writer per results file, --overwrite included, from here to the end
        if not overwrite:
            check_resumable(out, identity, same_run(config))
        created = not results_exist(out)
        # The executor is up before the file is touched: a failure to start it writes nothing.
        with (open_executor(executor, jobs, scheduler) if isinstance(executor, str)
              else nullcontext(executor)) as pool:
            probe(config, pool)
            for note in notes(config):
                _say(note, quiet)
            writer = ResultsWriter(out, layouts, identity, command_line, overwrite=overwrite,
                                   flush_seconds=flush_seconds, same_run=same_run(config),
                                   warn=lambda message: _say(message, False))
            try:
                done = {name: writer.done_mask(name) for name in config.experiments}
                blocks = pending_blocks(config, done, jobs, layouts)
                total = sum(config.cell_count(name) for name in config.experiments)
                progress = Progress(total, total - sum(len(b) for b in blocks), quiet)
                try:
                    execute(config, blocks, writer, progress, pool)
                finally:
                    progress.close()
            except BaseException as exc:
                writer.close(finished=False)
                if created and isinstance(exc, ConfigError):
                    _remove_if_empty(out, config.experiments)
                raise
            writer.close(finished=True)
    return sum(len(b) for b in blocks)


def _say(note, quiet):
    """A one-line note on standard error (notes about the files are shown even with --quiet)."""
    if not quiet:
        print(f"[hoi_fast.grid] note: {note}", file=sys.stderr)


def _remove_if_empty(out, experiments):
    """Remove a results file this run created when a setting stopped it before any cell was stored."""
    try:
        if not any(mask.any() for mask in done_masks(out, experiments).values()):
            target = resolve(out)
            for path in (target, journal_path(target)):
                if os.path.exists(path):
                    os.remove(path)
    except (OSError, ResultsFileError):
        pass  # nothing more to tidy: the error itself is what the user needs to see


def main(argv=None):
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        return _main(parser, args, argv)
    previous = signal.signal(signal.SIGINT, INTERRUPTS.handler)
    try:
        return _main(parser, args, argv)
    finally:
        signal.signal(signal.SIGINT, previous)


def _main(parser, args, argv):
    try:
        config = config_from_args(args)
        jobs = available_cores() if args.jobs is None else _parse_int("--jobs", args.jobs)
        if jobs < 1:
            raise ConfigError(f"`--jobs` must be at least 1, got {jobs}")
        out = DEFAULT_OUT if args.out is None else args.out
        check_output_path(out)
        if args.profile and not args.dry_run:
            raise ConfigError("`--profile` times the stages of a dry run; add `--dry-run`")
        if args.dry_run:
            check_capacity(config, layouts_for(config), out)  # validates the corpus, the sizes etc.
            dry_run(config, out, jobs, args.profile)
            return 0
        command_line = shlex.join([os.path.basename(sys.executable), "-m", "hoi_fast.grid"]
                                  + list(sys.argv[1:] if argv is None else argv))
        t0 = time.perf_counter()
        flush_seconds = _parse_seconds("--flush-seconds", args.flush_seconds)
        if args.scheduler and args.executor != "dask":
            raise ConfigError("`--scheduler` needs `--executor dask`")
        n = run(config, out, jobs, args.overwrite, command_line, args.quiet,
                executor=args.executor, scheduler=args.scheduler, flush_seconds=flush_seconds)
        if not args.quiet:
            print(f"[hoi_fast.grid] {n} cells run in {time.perf_counter() - t0:.1f} s; results in {out}",
                  file=sys.stderr)
        return 0
    except (ConfigError, ResultsFileError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except BaseException as exc:
        if _interrupted(exc):
            print(f"{parser.prog}: interrupted; re-run the same command to resume", file=sys.stderr)
            return 130
        if isinstance(exc, cf.process.BrokenProcessPool):
            print(f"{parser.prog}: error: a worker process died ({exc}); re-run the same command to resume",
                  file=sys.stderr)
            return 1
        raise


def _interrupted(exc):
    """True for Ctrl-C, also when it surfaced inside a compiled call as a SystemError."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


if __name__ == "__main__":
    sys.exit(main())
