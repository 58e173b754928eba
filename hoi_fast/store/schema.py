"""The layout of a results file: format tag, provenance, experiment groups and their datasets.

:data:`FORMAT` (the root ``format`` attribute), :func:`versions` (the
provenance stored beside it), :class:`GroupLayout` and the creation of a
group (dimension scales, the ``done`` mask, the gzip-compressed metrics and
their chunks), and the schema of an open file against which cells are
checked.  A leaf: it imports nothing else of :mod:`hoi_fast.store`.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass

import h5py
import numpy as np


FORMAT = "hoi_fast-results-1"
_STRING = h5py.string_dtype()


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _cpu_provenance():
    """``cpu_model`` and ``cpu_flags`` from :mod:`hoi_fast.machine`, or nothing if it is unavailable."""
    try:
        from hoi_fast import machine
    except ImportError:
        return {}
    try:  # provenance must never stop a run
        flags = machine.cpu_flags()
        return {"cpu_model": str(machine.cpu_model()),
                "cpu_flags": flags if isinstance(flags, str) else " ".join(map(str, flags))}
    except Exception:  # noqa: BLE001
        return {}


def versions():
    """Versions of the packages (and the CPU) that decide the numbers, as a dict of str."""
    import numba
    import scipy

    from hoi_fast import __version__

    return {
        "hoi_fast_version": __version__,
        "numpy_version": np.__version__,
        "numba_version": numba.__version__,
        "scipy_version": scipy.__version__,
        "h5py_version": h5py.__version__,
        "hdf5_version": h5py.version.hdf5_version,
        "python_version": platform.python_version(),
        "machine": platform.machine(),
        **_cpu_provenance(),
    }


@dataclass(frozen=True)
class GroupLayout:
    """Shape of one experiment's group.

    Attributes
    ----------
    name : str
        Group name (``"gmm"`` or ``"ngram"``).
    cell_dims : tuple of (str, ndarray)
        The cell axes in order, e.g. ``(("alpha", alphas), ("seed", seeds))``.
    generations : int
    specs : list of hoi_fast.experiment.MetricSpec
    coords : dict
        Coordinates of the metrics' extra dimensions.
    config : dict
        The experiment's configuration (stored as JSON on the group).
    """

    name: str
    cell_dims: tuple
    generations: int
    specs: tuple
    coords: dict
    config: dict

    @property
    def cell_shape(self):
        return tuple(len(c) for _, c in self.cell_dims)


def _scale(group, name, values):
    values = np.asarray(values)
    if values.dtype.kind in "USO":
        ds = group.create_dataset(name, data=values.astype(object), dtype=_STRING)
    else:
        ds = group.create_dataset(name, data=values)
    ds.make_scale(name)
    return ds


def _attach(ds, group, dims):
    for i, dim in enumerate(dims):
        ds.dims[i].attach_scale(group[dim])


# A chunk holds whole cells of one α row (or sweep point), as many seeds as fit
# in about 1 MiB: the journal's runs of seeds then rewrite few, small chunks
# (a whole α row of per-symbol counts is 16 MB, and recompressing it for each
# run of seeds made consolidation the slowest part of a categorical grid).
CHUNK_BYTES = 1 << 20
# Chunk cache of a file being consolidated: a chunk written by several runs is
# compressed once, when the file closes.
CHUNK_CACHE_BYTES = 64 << 20
# zlib level 1 with the shuffle filter: on the default grids' metrics 5% larger
# files than level 4 and consolidation about a third faster (compression is most
# of it); every dataset holds the same values at any level.
GZIP_LEVEL = 1


def _chunks(shape, seed_axis):
    """Chunk shape of a metric dataset ``(alpha, [sweeps], seed, generation, extra...)``."""
    cell_bytes = 8 * int(np.prod(shape[seed_axis + 1:], dtype=np.int64))
    seeds = int(max(1, min(shape[seed_axis], CHUNK_BYTES // max(cell_bytes, 1))))
    return (1,) * seed_axis + (seeds,) + tuple(shape[seed_axis + 1:])


def _create_group(f, layout):
    g = f.create_group(layout.name)
    g.attrs["config"] = json.dumps(layout.config, sort_keys=True)
    for dim, values in layout.cell_dims:
        _scale(g, dim, values)
    _scale(g, "generation", np.arange(layout.generations, dtype=np.int64))
    for dim, values in layout.coords.items():
        _scale(g, dim, values)
    cell_names = [d for d, _ in layout.cell_dims]
    done = g.create_dataset("done", shape=layout.cell_shape, dtype="i1", fillvalue=0)
    done.attrs["long_name"] = "1 once the cell's generations are all stored"
    _attach(done, g, cell_names)
    for spec in layout.specs:
        extra = tuple(len(layout.coords[d]) for d in spec.extra_dims)
        shape = layout.cell_shape + (layout.generations,) + extra
        ds = g.create_dataset(
            spec.name, shape=shape, dtype="f8", fillvalue=np.nan,
            chunks=_chunks(shape, len(layout.cell_shape) - 1), compression="gzip", compression_opts=GZIP_LEVEL,
            shuffle=True,
        )
        ds.attrs["units"] = spec.units
        ds.attrs["long_name"] = spec.long_name
        ds.attrs["role"] = spec.role or ""
        _attach(ds, g, cell_names + ["generation"] + list(spec.extra_dims))


def _file_schema(f):
    """``{group: (cell shape, {metric: (generations, *extra)})}`` of an open results file."""
    schema = {}
    for name, g in f.items():
        if isinstance(g, h5py.Group) and "done" in g:
            cells = g["done"].shape
            schema[name] = (cells, {key: ds.shape[len(cells):] for key, ds in g.items()
                                    if isinstance(ds, h5py.Dataset) and key != "done" and not ds.is_scale})
    return schema


def _misfit(schema, group, index, metrics):
    """Why a cell does not fit the file described by ``schema``, or None if it fits."""
    if group not in schema:
        return f"no group `{group}`"
    cells, shapes = schema[group]
    if len(index) != len(cells) or not all(0 <= i < n for i, n in zip(index, cells)):
        return f"cell {tuple(index)} is outside the {group} grid {cells}"
    if set(metrics) != set(shapes):
        return f"metrics {sorted(metrics)} are not the file's {sorted(shapes)}"
    for name, values in metrics.items():
        want = shapes[name]
        if (values.dtype != np.float64 or values.ndim != len(want) or values.shape[:1] != want[:1]
                or any(a > b for a, b in zip(values.shape[1:], want[1:]))):
            return f"`{name}` is {values.dtype} {values.shape}, the file holds {want}"
    return None
