"""The worker side of the grid: build experiments once per process, run blocks of cells.

Everything here is picklable and importable by name, so the same functions run
in-process (``--jobs 1``), in a process pool, or on Dask workers.
"""

from __future__ import annotations

from dataclasses import dataclass

from hoi_fast.experiment import run_cell
from hoi_fast.seeding import CellStreams

_EXPERIMENTS = {}


def make_experiment(name, config):
    """The experiment object for one experiment configuration, built once per process.

    Parameters
    ----------
    name : {"gmm", "ngram"}
    config : hoi_fast.config.GMMConfig or hoi_fast.config.NGramConfig
    """
    key = (name, config)
    if key not in _EXPERIMENTS:
        if name == "gmm":
            from hoi_fast.experiments.gmm import GMMExperiment

            _EXPERIMENTS[key] = GMMExperiment(config)
        else:
            from hoi_fast.experiments.ngram import NGramExperiment

            _EXPERIMENTS[key] = NGramExperiment(config)
    return _EXPERIMENTS[key]


@dataclass(frozen=True)
class Block:
    """A task: some seeds of one (experiment, alpha, swept values) row.

    Attributes
    ----------
    experiment : str
    alpha_index : int
    sweep_index : tuple of int
        Position along each of the experiment's sweep axes (empty without sweeps).
    seed_indices : tuple of int
    """

    experiment: str
    alpha_index: int
    sweep_index: tuple
    seed_indices: tuple

    def cell_index(self, seed_index):
        """Position of a cell along the group's cell dimensions."""
        return (self.alpha_index, *self.sweep_index, seed_index)


def run_block(config, block):
    """Run every cell of ``block``.

    Parameters
    ----------
    config : hoi_fast.config.GridConfig
    block : Block

    Returns
    -------
    list of (tuple, dict)
        ``(cell_index, metrics)`` for each cell, in block order; metrics map
        names to float64 arrays ``(generations, *extra)``.
    """
    sweeps = config.sweeps_for(block.experiment)
    values = tuple(s.values[i] for s, i in zip(sweeps, block.sweep_index))
    experiment = make_experiment(
        block.experiment,
        config.experiment_config(block.experiment, {s.name: v for s, v in zip(sweeps, values)}),
    )
    alpha = config.alphas[block.alpha_index]
    out = []
    for seed_index in block.seed_indices:
        streams = CellStreams(config.root_seed, block.experiment, seed_index, alpha, values)
        metrics = run_cell(experiment, alpha, config.generations, config.regime, streams)
        out.append((block.cell_index(seed_index), metrics))
    return out

