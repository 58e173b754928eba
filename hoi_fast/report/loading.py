"""Reading a results file for the report: the layout of an experiment's group and only the metrics drawn.

:func:`load` finds the metrics by their stored role (``real``, ``self``,
``tail``), masks the cells that are not done and cuts the cubes into one
:class:`Facet` per combination of the sweep dimensions between ``alpha`` and
``seed``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from hoi_fast.report._common import ReportError, _fmt
from hoi_fast.store import read_group


CELL_TAIL = ("seed", "generation")


@dataclass(frozen=True)
class Group:
    """What the report needs of one experiment's group, without reading every metric.

    Attributes
    ----------
    name : str
    path : str
    coords : dict of str -> ndarray
        Every dimension scale.
    dims : dict of str -> tuple of str
        The dimension names of each metric.
    attrs : dict of str -> dict
        ``units``, ``long_name`` and ``role`` of each metric.
    done : ndarray of bool
        Shape of the cell dimensions.
    config : dict
    provenance : dict
        The file's root attributes.
    """

    name: str
    path: str
    coords: dict
    dims: dict
    attrs: dict
    done: np.ndarray
    config: dict
    provenance: dict

    def read(self, metric):
        """The metric with every cell that is not done set to NaN (float64)."""
        import h5py

        with h5py.File(self.path, "r") as f:
            data = f[self.name][metric][...]
        done = self.done.reshape(self.done.shape + (1,) * (data.ndim - self.done.ndim))
        return np.where(done, data, np.nan)


def read_layout(path, name):
    """Coordinates, dimensions, attributes and done mask of experiment ``name`` of ``path``.

    Metric values are read later, one at a time (:meth:`Group.read`): a
    100 000-cell file holds gigabytes of per-component and per-symbol
    metrics the report never draws.

    Raises
    ------
    ResultsFileError
        If the file is missing, foreign or lacks the experiment.
    """
    layout = read_group(path, name, values=False)
    return Group(name=name, path=path, coords=layout.coords, dims=layout.dims, attrs=layout.attrs,
                 done=layout.done, config=layout.config, provenance=layout.provenance)


@dataclass
class Facet:
    """One experiment at one combination of sweep values: cubes ``(alpha, seed, generation)``."""

    label: str
    alphas: np.ndarray
    real: np.ndarray
    self_: np.ndarray | None
    tail: np.ndarray | None
    done: np.ndarray  # (alpha, seed) bool


@dataclass
class Loaded:
    """An experiment's group, masked to done cells and cut into facets."""

    name: str
    metric: str
    self_metric: str | None
    tail_metric: str | None
    attrs: dict
    facets: list
    done_cells: int
    total_cells: int
    generations: int
    provenance: dict
    config: dict


def _with_role(group, role):
    """The per-generation scalar metrics of ``group`` whose stored role is ``role``, sorted by name."""
    return sorted(k for k, a in group.attrs.items()
                  if a.get("role") == role and group.dims[k][-2:] == CELL_TAIL)


def _check_metric(group, metric):
    if metric not in group.dims:
        scalar = sorted(k for k, d in group.dims.items() if d[-2:] == CELL_TAIL)
        raise ReportError(f"`--metric` {metric} is not in the {group.name} results; "
                          f"choose one of {', '.join(scalar)}")
    dims = group.dims[metric]
    if dims[0] != "alpha" or dims[-2:] != CELL_TAIL:
        raise ReportError(f"`--metric` {metric} of {group.name} has dimensions {dims}; "
                          "choose a per-generation scalar metric (alpha, ..., seed, generation)")


def load(path, name, metric=None):
    """Read experiment ``name`` of ``path`` for the report (only the metrics it draws).

    Raises
    ------
    ResultsFileError
        If the file is missing, foreign or lacks the experiment.
    ReportError
        If ``metric`` is not a per-generation scalar metric of the experiment.
    """
    group = read_layout(path, name)
    real = _with_role(group, "real")
    metric = metric or (real[0] if real else None)
    if metric is None:
        raise ReportError(f"{name} has no metric with the role `real` (a loss on held-out real data); "
                          "pass --metric")
    _check_metric(group, metric)
    # the gap and tail figures pair the real-role metric with the self- and tail-role ones
    paired = metric in real
    self_metric = next(iter(_with_role(group, "self")), None) if paired else None
    tail_metric = next(iter(_with_role(group, "tail")), None) if paired else None
    cubes = {k: group.read(k) for k in (metric, self_metric, tail_metric) if k}
    if tail_metric is not None and not np.any(np.isfinite(cubes[tail_metric])):
        tail_metric = None  # e.g. a truth without a tail: nothing to draw
    sweeps = group.dims[metric][1:-2]
    facets = []
    for index in itertools.product(*(range(len(group.coords[d])) for d in sweeps)):
        sel = (slice(None),) + index
        label = ", ".join(f"{d} = {_fmt(group.coords[d][i])}" for d, i in zip(sweeps, index))
        facets.append(Facet(
            label=label, alphas=np.asarray(group.coords["alpha"], dtype=np.float64),
            real=cubes[metric][sel],
            self_=cubes[self_metric][sel] if self_metric else None,
            tail=cubes[tail_metric][sel] if tail_metric else None,
            done=group.done[sel],
        ))
    return Loaded(
        name=name, metric=metric, self_metric=self_metric, tail_metric=tail_metric,
        attrs=group.attrs, facets=facets, done_cells=int(group.done.sum()),
        total_cells=int(group.done.size), generations=len(group.coords["generation"]),
        provenance=group.provenance, config=group.config,
    )
