"""The declarative spec types of a reproduction: :class:`Run`, :class:`Theory`, :class:`Quantity`, :class:`Reproduction`.

A :class:`Reproduction` is one published result: its grids (:class:`Run`)
and the quantities compared (:class:`Quantity`), each with its theories
(:class:`Theory`).  How a theory is judged (``JUDGES``) and how a quantity's
interval is computed (``STATISTICS``) is described in :mod:`hoi_fast.reproduce`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from hoi_fast._validate import require
from hoi_fast.config import GridConfig

JUDGES = ("equal", "upper", "lower", "greater", "less")
STATISTICS = ("mean", "proportion")


# -- the declarative specs -----------------------------------------------------

@dataclass(frozen=True)
class Run:
    """One grid of a reproduction: one results file.

    Attributes
    ----------
    label : str
        ``""`` for the only grid of a reproduction (file ``NAME.h5``), else a
        short word naming it (file ``NAME-LABEL.h5``, and in case labels).
    experiment : str
        The experiment selection of :class:`hoi_fast.config.GridConfig`.
    alphas : tuple of float
    seeds, generations : int
    regime : str
    configs : dict
        Experiment name -> its TOML-like table of settings.
    sweeps : dict
        ``"experiment.field"`` -> tuple of values (grid axes).
    quick : dict
        Overrides for ``--quick``: any of the fields above (``configs`` is
        merged table by table, ``sweeps`` key by key).
    """

    label: str
    experiment: str
    alphas: tuple
    seeds: int
    generations: int
    regime: str = "mix"
    configs: dict = field(default_factory=dict)
    sweeps: dict = field(default_factory=dict)
    quick: dict = field(default_factory=dict)

    def settings(self, quick=False, seeds=None):
        """The :class:`GridConfig` keyword arguments of the full or quick grid."""
        out = {"experiment": self.experiment, "alphas": tuple(self.alphas), "seeds": self.seeds,
               "generations": self.generations, "regime": self.regime,
               "configs": {k: dict(v) for k, v in self.configs.items()}, "sweeps": dict(self.sweeps)}
        if quick:
            for key, value in self.quick.items():
                if key == "configs":
                    for name, table in value.items():
                        out["configs"].setdefault(name, {}).update(table)
                elif key == "sweeps":
                    out["sweeps"].update(value)
                else:
                    out[key] = value
        if seeds is not None:
            out["seeds"] = seeds
        out["sweeps"] = tuple((k, tuple(v)) for k, v in out["sweeps"].items())
        return out

    def grid_config(self, quick=False, seeds=None):
        """The validated :class:`GridConfig` (raises :class:`ConfigError`)."""
        return GridConfig(**self.settings(quick, seeds))


@dataclass(frozen=True)
class Theory:
    """A theoretical value drawn over a quantity and judged against it.

    Attributes
    ----------
    label : str
        E.g. ``"E σ²_g = r^(g+1)"``; shown in the legend and the table.
    value : callable
        ``value(case, g)`` with ``g`` an int64 array of generations: an
        array of shape ``g.shape`` (or, with ``per_seed``, ``(seeds,) +
        g.shape``).  For a summary quantity (one value per seed) ``g`` is None.
    judge : {"equal", "upper", "lower", "greater", "less"}
        See the module docstring.
    per_seed : bool
        The value is a conditional expectation given each seed's data
        (compared through paired differences).
    """

    label: str
    value: Callable
    judge: str = "equal"
    per_seed: bool = False

    def __post_init__(self):
        require(self.judge in JUDGES, f"`judge` must be one of {JUDGES}, got {self.judge!r}")


@dataclass(frozen=True)
class Quantity:
    """A quantity measured per seed and generation, compared with its theories.

    Attributes
    ----------
    label : str
        Axis and table label, e.g. ``"σ²_g / σ0²"``.
    measure : callable
        ``measure(case)`` -> float64 array ``(seeds, generations)``, or
        ``(seeds,)`` for a summary (e.g. a slope over generations).
    theories : tuple of Theory
    statistic : {"mean", "proportion"}
        ``"proportion"``: ``measure`` gives 0/1 per seed (an event) and the
        interval is Clopper-Pearson.
    generations : tuple of int or callable
        Table rows: generation indices (negative from the end) or
        ``callable(case)`` -> such a tuple.
    cases : callable, optional
        ``cases(case)`` -> bool: which cases this quantity covers.
    log_y, log_x : bool
    x : str
        ``"generation"`` or a case key (``"alpha"``, a swept field): the
        figure then plots the quantity at generation ``at`` against it.
    at : int
        The generation of an ``x`` panel (default: the last).
    plot : bool
    summary : str
        Row label of a summary quantity (``measure`` gives one value per seed).
    title : str
        Panel title (default: the label).
    marks : tuple of (float, str)
        Vertical reference lines ``(x, label)`` drawn on the panel.
    """

    label: str
    measure: Callable
    theories: tuple = ()
    statistic: str = "mean"
    generations: object = ()
    cases: Callable | None = None
    log_y: bool = False
    log_x: bool = False
    x: str = "generation"
    at: int = -1
    plot: bool = True
    summary: str = ""
    title: str = ""
    marks: tuple = ()

    def __post_init__(self):
        require(self.statistic in STATISTICS, f"`statistic` must be one of {STATISTICS}, got {self.statistic!r}")

    def table_generations(self, case):
        """The valid, distinct generation indices of the table rows for ``case``."""
        gens = self.generations(case) if callable(self.generations) else self.generations
        out = []
        for g in gens:
            g = int(g) % case.generations if -case.generations <= int(g) < case.generations else None
            if g is not None and g not in out:
                out.append(g)
        return sorted(out)


@dataclass(frozen=True)
class Reproduction:
    """One published result: its grids, the quantities compared and their theories.

    Attributes
    ----------
    name : str
        The command-line name.
    paper : str
        Short citation.
    setting : str
        One line: the setting as run.
    compared : str
        One line: what is compared with what.
    runs : tuple of Run
    quantities : tuple of Quantity
    notes : tuple of str
        Paragraphs for the page: index conventions, derivations, where the
        paper's code and text disagree.
    claims : callable, optional
        ``claims(cases)`` -> list of Markdown lines with extra findings (e.g.
        α* with its interval).
    columns : int
        Panels per row of the figure.
    """

    name: str
    paper: str
    setting: str
    compared: str
    runs: tuple
    quantities: tuple
    notes: tuple = ()
    claims: Callable | None = None
    columns: int = 2

    def result_paths(self, folder, quick=False):
        """Run label -> its results file in ``folder``."""
        suffix = "-quick" if quick else ""
        return {run.label: os.path.join(folder, f"{self.name}{'-' + run.label if run.label else ''}{suffix}.h5")
                for run in self.runs}

    def page_paths(self, folder, quick=False):
        """``(table .md, figure .png)`` in ``folder``."""
        stem = os.path.join(folder, self.name + ("-quick" if quick else ""))
        return stem + ".md", stem + ".png"

