"""The results file: one HDF5 file, one group per experiment, xarray-readable.

Schema (``E`` is ``gmm`` or ``ngram``)::

    /                      attrs: format, hoi_fast_version, config (JSON),
                           root_seed, command_line, numpy/numba/h5py/python
                           versions, started, finished (empty until done)
    /E/alpha   (alpha,)    float64 dimension scale
    /E/<sweep> (<sweep>,)  float64 dimension scale for each swept parameter
    /E/seed    (seed,)     int64 dimension scale (replicate index)
    /E/generation (generation,) int64 dimension scale
    /E/component, /E/axis, /E/axis2, /E/symbol ...  extra scales of the metrics
    /E/done    (alpha, [sweeps...], seed) int8: 1 once a cell is stored
    /E/<metric> (alpha, [sweeps...], seed, generation, *extra) float64, NaN
               until computed; attrs units, long_name, role (real, self,
               tail or empty: what the report does with it); chunked per alpha row,
               gzip-compressed

Every dimension is an HDF5 dimension scale, so
``xarray.open_dataset(path, group="gmm", engine="h5netcdf")`` gives labelled
arrays.  Only the parent process writes, through :class:`ResultsWriter`: cells
go to an append-only journal first and reach the HDF5 file only through an
atomic swap of a completed copy, so a killed run leaves a readable file in
which every ``done`` cell is complete, and a journal whose intact cells the
resumed run keeps.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import struct
import time
import zlib
from dataclasses import dataclass

import h5py
import numpy as np

FORMAT = "hoi_fast-results-1"
_STRING = h5py.string_dtype()


class ResultsFileError(ValueError):
    """The results file is missing, foreign or holds another configuration."""


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def versions():
    """Versions of the packages that decide the numbers, as a dict of str."""
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
            chunks=(1,) + shape[1:], compression="gzip", compression_opts=4, shuffle=True,
        )
        ds.attrs["units"] = spec.units
        ds.attrs["long_name"] = spec.long_name
        ds.attrs["role"] = spec.role or ""
        _attach(ds, g, cell_names + ["generation"] + list(spec.extra_dims))


def stored_config(path):
    """The JSON configuration stored in a results file, or raise ResultsFileError."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ResultsFileError(f"`{path}` is not a hoi_fast results file")
            return json.loads(f.attrs["config"])
    except OSError as exc:
        raise ResultsFileError(f"`{path}` cannot be read as HDF5 ({exc})") from None


JOURNAL_SUFFIX = ".journal"
CONSOLIDATE_SECONDS = 30.0
_FRAME = struct.Struct("<QI")  # payload length, CRC-32 of the payload


def journal_path(path):
    """The append-only journal beside a results file."""
    return os.fspath(path) + JOURNAL_SUFFIX


def _encode_cell(group, index, metrics):
    buffer = io.BytesIO()
    np.savez(buffer, __group__=np.array(group), __index__=np.asarray(index, dtype=np.int64),
             **{f"m_{name}": np.asarray(values, dtype=np.float64) for name, values in metrics.items()})
    payload = buffer.getvalue()
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def read_journal(path):
    """The cells recorded in the journal of ``path``.

    Returns
    -------
    list of (str, tuple, dict)
        ``(group, index, metrics)`` per cell, in the order written.  A torn or
        corrupt tail (a run killed while appending) ends the list: those cells
        were never reported done and are simply recomputed.
    """
    try:
        with open(journal_path(path), "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return []
    cells, pos = [], 0
    while pos + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, pos)
        payload = data[pos + _FRAME.size: pos + _FRAME.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            metrics = {key[2:]: npz[key] for key in npz.files if key.startswith("m_")}
            cells.append((str(npz["__group__"]), tuple(int(i) for i in npz["__index__"]), metrics))
        pos += _FRAME.size + length
    return cells


def _write_cells(f, cells):
    """Write cells into an open file, one call per dataset and run of consecutive seeds.

    Returns the ``(group, selection)`` of every run written.
    """
    rows, written = {}, []
    for group, index, metrics in cells:
        rows.setdefault((group, index[:-1]), {})[index[-1]] = metrics  # a later copy wins
    for (group, prefix), by_seed in rows.items():
        seeds = sorted(by_seed)
        start = 0
        for end in range(1, len(seeds) + 1):
            if end == len(seeds) or seeds[end] != seeds[end - 1] + 1:
                run = slice(seeds[start], seeds[end - 1] + 1)
                _write_run(f[group], prefix, run, [by_seed[s] for s in seeds[start:end]])
                written.append((group, prefix + (run,)))
                start = end
    return written


def _write_run(g, prefix, seeds, cells):
    for name in cells[0]:
        values = np.stack([np.asarray(m[name], dtype=np.float64) for m in cells])
        # A swept parameter may shorten an extra dimension (e.g. fewer
        # components); the rest of that axis stays NaN.
        g[name][prefix + (seeds,) + tuple(slice(0, s) for s in values.shape[1:])] = values


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def consolidate(path, finished=False):
    """Move the journal's cells into the results file, atomically.

    The cells are written into a copy of the file, which then replaces the
    original with ``os.replace``; only after that is the journal removed
    (replaying it again would write the same values).  A kill at any moment
    leaves either the old or the new file, both complete.
    """
    cells = read_journal(path)
    if not cells and not finished:
        return 0
    tmp = os.fspath(path) + ".consolidating"
    shutil.copyfile(path, tmp)
    with h5py.File(tmp, "r+") as f:
        for group, selection in _write_cells(f, cells):
            f[group]["done"][selection] = 1
        if finished:
            f.attrs["finished"] = _now()
    _fsync(tmp)
    os.replace(tmp, path)
    try:
        os.remove(journal_path(path))
    except FileNotFoundError:
        pass
    return len(cells)


def done_masks(path, groups):
    """Cells already stored in ``path`` (file and journal) for each group."""
    with h5py.File(path, "r") as f:
        masks = {name: f[name]["done"][...].astype(bool) for name in groups}
    for group, index, _ in read_journal(path):
        if group in masks:
            masks[group][index] = True
    return masks


def holds_config(path, config, same_run=None):
    """True if the results file ``path`` was written for ``config`` (a JSON-ready dict).

    ``same_run(stored)``, if given, decides instead of JSON equality (e.g. to
    accept a file whose identity an older version wrote in another form).
    """
    stored = stored_config(path)
    if same_run is not None:
        return bool(same_run(stored))
    return stored == json.loads(json.dumps(config, sort_keys=True))


def check_resumable(path, config, same_run=None):
    """Raise ResultsFileError unless ``path`` is absent or holds ``config`` (see :func:`holds_config`)."""
    if os.path.exists(path) and not holds_config(path, config, same_run):
        raise ResultsFileError(
            f"`--out` {path} holds results of a different configuration; "
            "pass --overwrite to replace it or choose another --out"
        )


class ResultsWriter:
    """Single writer of a results file that a kill at any moment cannot damage.

    The HDF5 file is never modified in place while cells arrive.  Finished
    cells are appended to a journal beside it (``PATH.journal``: framed,
    checksummed records, flushed and fsync'ed at most ``flush_seconds`` apart)
    and moved into the file every ``CONSOLIDATE_SECONDS`` and at the end by
    :func:`consolidate`, which rewrites a copy and swaps it in atomically.  So
    the results file is always complete and readable (by xarray too, up to the
    last consolidation), and on resume the journal's intact records count as
    done.  (Rewriting gzip-compressed chunks in place was not safe: a SIGKILL
    in the middle left a dataset whose chunks failed to decompress.)

    Parameters
    ----------
    path : str or os.PathLike
    layouts : list of GroupLayout
    config : dict
        The whole run configuration (compared on resume).
    command_line : str
    overwrite : bool
        Replace an existing file whose configuration differs.
    flush_seconds : float
        Minimum time between journal flushes; 0 flushes after every cell.
    same_run : callable, optional
        ``same_run(stored_config_dict) -> bool`` decides whether an existing
        file belongs to this run (default: JSON equality with ``config``).
    """

    def __init__(self, path, layouts, config, command_line="", overwrite=False, flush_seconds=1.0,
                 same_run=None):
        self.path = os.fspath(path)
        self.flush_seconds = flush_seconds
        config_json = json.dumps(config, sort_keys=True)
        if os.path.exists(self.path) and not overwrite:
            check_resumable(self.path, config, same_run)
            consolidate(self.path)  # a killed run's journal: keep its intact cells
        else:
            self._create(layouts, config_json, command_line)
        self._pending = []
        self._last_flush = self._last_consolidation = time.monotonic()

    def _create(self, layouts, config_json, command_line):
        # Build the new file beside the target and move it in place only once
        # it is complete, so an interrupted creation never leaves half a file.
        tmp = self.path + ".partial"
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["config"] = config_json
            f.attrs["root_seed"] = int(json.loads(config_json).get("root_seed", 0))
            f.attrs["command_line"] = command_line
            f.attrs["started"] = _now()
            f.attrs["finished"] = ""
            f.attrs.update(versions())
            for layout in layouts:
                _create_group(f, layout)
        if os.path.exists(journal_path(self.path)):  # belongs to the file being replaced
            os.remove(journal_path(self.path))
        os.replace(tmp, self.path)

    def done_mask(self, group):
        """Boolean array of the cells already stored in ``group``."""
        return done_masks(self.path, [group])[group]

    def write_cell(self, group, index, metrics):
        """Queue one finished cell; flush the queue if ``flush_seconds`` have passed.

        Parameters
        ----------
        group : str
        index : tuple of int
            Position of the cell along the group's cell dimensions.
        metrics : dict
            Metric name -> float64 array ``(generations, *extra)``.

        Returns
        -------
        bool
            True if this call flushed (all queued cells are now durable).
        """
        self._pending.append((group, tuple(int(i) for i in index), metrics))
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()
            return True
        return False

    def flush(self):
        """Append queued cells to the journal and make it durable; consolidate now and then."""
        if self._pending:
            with open(journal_path(self.path), "ab") as fh:
                for cell in self._pending:
                    fh.write(_encode_cell(*cell))
                fh.flush()
                os.fsync(fh.fileno())
            self._pending.clear()
        self._last_flush = now = time.monotonic()
        if now - self._last_consolidation >= CONSOLIDATE_SECONDS:
            consolidate(self.path)
            self._last_consolidation = time.monotonic()

    def close(self, finished=False):
        """Flush queued cells, move the journal into the file, stamp the finish time if complete."""
        if self.path is not None:
            self.flush()
            consolidate(self.path, finished=finished)
            self.path = None


@dataclass(frozen=True)
class ResultsGroup:
    """One experiment's results, read into memory.

    Attributes
    ----------
    name : str
    coords : dict of str -> ndarray
        Every dimension scale of the group.
    dims : dict of str -> tuple of str
        The dimension names of each metric.
    data : dict of str -> ndarray
        Every metric, float64 with NaN where not computed.
    attrs : dict of str -> dict
        ``units``, ``long_name`` and ``role`` (``""`` for none) of each metric.
    done : ndarray of bool
        Shape of the cell dimensions.
    cell_dims : tuple of str
        The cell dimensions: ``("alpha", *swept parameters, "seed")``.
    config : dict
        The experiment's configuration.
    provenance : dict
        The file's root attributes (versions, command line, times, config).
    """

    name: str
    coords: dict
    dims: dict
    data: dict
    attrs: dict
    done: np.ndarray
    cell_dims: tuple
    config: dict
    provenance: dict

    @property
    def sweep_dims(self):
        """Names of the swept-parameter dimensions (between alpha and seed)."""
        return self.cell_dims[1:-1]


def _dims_of(ds):
    return tuple(ds.dims[i][0].name.rsplit("/", 1)[-1] for i in range(ds.ndim))


def _legacy_role(metric):
    """The role of a metric of a file written before roles were stored (gmm and ngram only)."""
    return {"real_nll": "real", "real_bpc": "real", "self_nll": "self", "self_bpc": "self",
            "tail_nll": "tail", "tail_bpc": "tail"}.get(metric, "")


def read_group(path, name):
    """Read one experiment group of a results file.

    Raises
    ------
    ResultsFileError
        If the file is missing, not a hoi_fast results file, or lacks the group.
    """
    if not os.path.exists(path):
        raise ResultsFileError(f"`{path}` does not exist; give a results file written by hoi_fast.grid")
    stored_config(path)
    with h5py.File(path, "r") as f:
        if name not in f:
            raise ResultsFileError(f"`{path}` has no `{name}` results; it holds {', '.join(f.keys())}")
        g = f[name]
        coords, data, dims, attrs = {}, {}, {}, {}
        for key, ds in g.items():
            if ds.is_scale:
                if h5py.check_string_dtype(ds.dtype):  # UTF-8 strings, e.g. symbols
                    coords[key] = ds.asstr()[...].astype(str)
                else:
                    coords[key] = ds[...]
            elif key != "done":
                data[key] = ds[...]
                dims[key] = _dims_of(ds)
                attrs[key] = {k: str(v) for k, v in ds.attrs.items() if k in ("units", "long_name", "role")}
                if "role" not in ds.attrs:  # a file written before metrics had roles
                    attrs[key]["role"] = _legacy_role(key)
        provenance = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        return ResultsGroup(
            name=name, coords=coords, dims=dims, data=data, attrs=attrs,
            done=g["done"][...].astype(bool), cell_dims=_dims_of(g["done"]),
            config=json.loads(g.attrs["config"]),
            provenance=provenance,
        )


def experiments_in(path):
    """Names of the experiment groups in a results file."""
    stored_config(path)
    with h5py.File(path, "r") as f:
        return [k for k in f.keys() if isinstance(f[k], h5py.Group)]
