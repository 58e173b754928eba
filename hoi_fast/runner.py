"""The worker side of the grid: build experiments once per process, run blocks of cells.

Everything here is picklable and importable by name, so the same functions run
in-process (``--jobs 1``), in a process pool, or on Dask workers.  A plug-in
experiment travels as its import string inside the configuration and is
imported by the worker.

A block is some seeds of one (experiment, swept values) point, each with the
α values still to run.  Generation 0 does not depend on α, so it is computed
once per seed of the block and shared by all its α
(:func:`hoi_fast.experiment.first_generation`).
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass

from hoi_fast._validate import ConfigError
from hoi_fast.experiment import ExperimentError, first_generation, run_cell
from hoi_fast.seeding import CellStreams

_EXPERIMENTS = {}

#: Most cells in one block: large enough to share generation 0 across an α row,
#: small enough that progress and the journal hear from a block every few seconds.
BLOCK_CELLS = 64


def make_experiment(entry, config):
    """The experiment object for one configuration, built once per process.

    Parameters
    ----------
    entry : hoi_fast.experiments.Entry
    config : dataclass
        An instance of ``entry.config_class``.
    """
    key = (entry.spec, config)
    if key not in _EXPERIMENTS:
        _EXPERIMENTS[key] = entry.experiment_class(config)
    return _EXPERIMENTS[key]


@dataclass(frozen=True)
class Block:
    """A task: some cells of one (experiment, swept values) point.

    Attributes
    ----------
    experiment : str
        The experiment's name.
    sweep_index : tuple of int
        Position along each of the experiment's sweep axes (empty without sweeps).
    cells : tuple of (int, tuple of int)
        ``(seed_index, alpha_indices)``: the α still to run for each seed.
    """

    experiment: str
    sweep_index: tuple
    cells: tuple

    def __len__(self):
        return sum(len(alphas) for _, alphas in self.cells)

    def cell_index(self, alpha_index, seed_index):
        """Position of a cell along the group's cell dimensions."""
        return (alpha_index, *self.sweep_index, seed_index)


def run_block(config, block, between_cells=None):
    """Run every cell of ``block``.

    Parameters
    ----------
    config : hoi_fast.config.GridConfig
    block : Block
    between_cells : callable, optional
        Called before every cell (the grid raises a deferred Ctrl-C there).

    Returns
    -------
    list of (tuple, dict)
        ``(cell_index, metrics)`` for each cell, in block order; metrics map
        names to float64 arrays ``(generations, *extra)``.
    """
    sweeps = config.sweeps_for(block.experiment)
    values = tuple(s.values[i] for s, i in zip(sweeps, block.sweep_index))
    entry = config.entry(block.experiment)
    experiment = make_experiment(
        entry, config.experiment_config(block.experiment, {s.name: v for s, v in zip(sweeps, values)}))
    out = []
    try:
        for seed_index, alpha_indices in block.cells:
            first = None
            for a in alpha_indices:
                if between_cells is not None:
                    between_cells()
                alpha = config.alphas[a]
                streams = CellStreams(config.root_seed, entry.stream_key, seed_index, alpha, values)
                if first is None:
                    try:
                        first = first_generation(experiment, streams)
                    except ExperimentError as exc:
                        raise ExperimentError(f"cell (seed {seed_index}, generation 0): {exc}") from None
                metrics = run_cell(experiment, alpha, config.generations, config.regime, streams, first)
                out.append((block.cell_index(a, seed_index), metrics))
    except ExperimentError as exc:
        raise ExperimentError(f"{point_label(block.experiment, [s.name for s in sweeps], values)} {exc}") from None
    return out


def point_label(experiment, names, values):
    """How messages name an experiment at swept values: ``gmm (components = 3)``, or ``gmm`` without sweeps.

    ``names`` are the swept parameters' ``"experiment.field"`` names, ``values`` their values.
    """
    where = ", ".join(f"{name.rpartition('.')[2]} = {value}" for name, value in zip(names, values))
    return f"{experiment} ({where})" if where else experiment


def probe_cell(config, name, values):
    """Run two generations of one cell of experiment ``name`` at the swept ``values``; why the run cannot go on.

    The cell is at the largest α and seed 0.  This is where a worker first
    builds the experiment and compiles its kernels, so the grid runs the
    probes of all experiments in its workers at once (see
    :func:`hoi_fast.grid.probe`).

    Parameters
    ----------
    config : hoi_fast.config.GridConfig
    name : str
        The experiment.
    values : dict of str -> float
        The swept parameters' values (empty without sweeps).

    Returns
    -------
    str or None
        One line naming the experiment and what went wrong, if the cell
        failed in a way that would stop every cell (the experiment's settings,
        or a plug-in that raises or breaks its contract); None if it ran.
        An unexpected exception of a built-in experiment is a bug and is
        raised with its traceback.
    """
    entry = config.entry(name)
    alpha = max(config.alphas)
    streams = CellStreams(config.root_seed, entry.stream_key, 0, alpha, tuple(values.values()))
    label = point_label(name, values.keys(), values.values())
    try:
        experiment = make_experiment(entry, config.experiment_config(name, values))
        run_cell(experiment, alpha, min(2, config.generations), config.regime, streams)
    except ConfigError as exc:
        return f"{label}: a probe cell failed: {exc}"
    except Exception as exc:
        if entry.builtin:
            raise
        return (f"{label}: a probe cell (alpha = {alpha:g}, seed 0) raised "
                f"{type(exc).__name__}: {exc} {_where(exc)}; fix the experiment")
    return None


def _where(exc):
    """``(at FILE:LINE in FUNCTION)`` of the innermost frame of an exception."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    f = frames[-1]
    return f"(at {os.path.basename(f.filename)}:{f.lineno} in {f.name})"
