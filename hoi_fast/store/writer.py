"""Writing a results file: :class:`ResultsWriter`, :func:`consolidate` and the checks before a resume.

Cells are appended to the journal and moved into the file by
:func:`consolidate` (a completed copy swapped in atomically); the
``CONSOLIDATE_*`` settings pace the mid-run consolidations and are read here.
Also :func:`storing_seconds` (what storing a cell costs), :func:`done_masks`,
:func:`holds_config` and :func:`check_resumable`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from contextlib import suppress

import h5py
import numpy as np

from hoi_fast.store.errors import ResultsFileError, _fsync, _fsync_dir, _io_error, _io_errors, _remove
from hoi_fast.store.journal import (
    _HEADER,
    _encode_cell,
    _header_identity,
    _identity_of,
    _journal_header,
    _note,
    _parse_journal,
    _set_aside,
    file_identity,
    read_journal,
    scan_journal,
)
from hoi_fast.store.lock import ResultsLock, lock_results
from hoi_fast.store.paths import (
    JOURNAL_SUFFIX,
    _CONSOLIDATING,
    _PARTIAL,
    check_output_path,
    resolve,
    results_exist,
    stored_config,
)
from hoi_fast.store.schema import (
    CHUNK_CACHE_BYTES,
    FORMAT,
    _create_group,
    _file_schema,
    _misfit,
    _now,
    versions,
)


# Mid-run consolidations: at least CONSOLIDATE_SECONDS apart, and at least
# 1 / CONSOLIDATE_SHARE times as long as the last one took, so moving the
# journal into the file (recompressing the chunks it touches, while the workers
# wait for the parent) stays about CONSOLIDATE_SHARE of the run however large
# the file grows; and at once when the journal reaches CONSOLIDATE_BYTES, which
# bounds the memory a consolidation reads the journal into.
CONSOLIDATE_SECONDS = 30.0
CONSOLIDATE_SHARE = 0.1
CONSOLIDATE_BYTES = 512 << 20


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


def storing_seconds(layout, metrics, cells=100):
    """Seconds the writer spends on one cell like ``metrics`` (what ``--dry-run`` adds to a cell's cost).

    Encodes ``cells`` journal records of one α row (at most the grid's seeds:
    whole chunks, as a consolidation compresses them), reads them back and
    writes them into an in-memory file of ``layout`` (same chunks and
    compression, compressed by a flush), and returns the time per cell.
    """
    seeds = max(1, min(cells, layout.cell_shape[-1]))
    prefix = (0,) * (len(layout.cell_shape) - 1)
    with h5py.File(io.BytesIO(), "w", rdcc_nbytes=CHUNK_CACHE_BYTES, rdcc_nslots=10007) as f:
        _create_group(f, layout)
        start = time.perf_counter()
        journal = _journal_header("probe") + b"".join(_encode_cell(layout.name, prefix + (s,), metrics)
                                                      for s in range(seeds))
        _write_cells(f, _parse_journal(journal, "probe", _file_schema(f)).cells)  # as a consolidation does
        f.flush()
        return (time.perf_counter() - start) / seeds


def consolidate(path, finished=False, warn=None):
    """Move the journal's cells into the results file, atomically.

    The journal is checked first (:func:`scan_journal`): one that belongs to
    another run or holds a record that does not fit is set aside (renamed
    ``PATH.journal.set-aside-STAMP``, with a note) and nothing of it is
    merged; a torn or corrupt tail is cut at the last intact record (with a
    note).  The intact cells are written into a copy of the file, which then
    replaces the original with ``os.replace``; only after that is the journal
    removed (replaying it again would write the same values).  A kill at any
    moment leaves either the old or the new file, both complete.

    Parameters
    ----------
    path : str or os.PathLike
        An existing results file (a symbolic link is written through).
    finished : bool
        Also stamp the ``finished`` attribute.
    warn : callable, optional
        ``warn(message)`` receives each one-line note; default
        ``warnings.warn(message, ResultsWarning)``.

    Returns
    -------
    int
        Number of cells moved into the file.

    Raises
    ------
    ResultsFileError
        If another process holds the lock of ``path`` (see
        :class:`ResultsLock`), or on any I/O failure (a full disk, an
        unwritable file, ...): the file and the journal are left as they were
        and no copy is left behind.
    """
    with lock_results(path):  # a reference to the writer's lock, or the lock itself if called alone
        return _consolidate(resolve(path), finished, warn)


def _consolidate(target, finished, warn):
    jpath = target + JOURNAL_SUFFIX
    scan = scan_journal(target)
    cells = []
    if scan is not None and scan.problem is not None:
        _set_aside(jpath, scan.problem, warn)
    elif scan is not None:
        cells = scan.cells
        if scan.intact_bytes < scan.size:
            with _io_errors(jpath, "cutting the torn tail of"):
                os.truncate(jpath, scan.intact_bytes)
            _note(warn, f"journal `{jpath}`: {scan.size - scan.intact_bytes} bytes after its last intact record "
                        "were cut (a run stopped while writing); the cells in them are recomputed")
    if cells or finished:
        tmp = target + _CONSOLIDATING
        with _io_errors(target, "consolidating the journal into", debris=[tmp]):
            shutil.copyfile(target, tmp)
            with h5py.File(tmp, "r+", rdcc_nbytes=CHUNK_CACHE_BYTES, rdcc_nslots=10007) as f:
                for group, selection in _write_cells(f, cells):
                    f[group]["done"][selection] = 1
                if finished:
                    f.attrs["finished"] = _now()
            _fsync(tmp)
            os.replace(tmp, target)
            _fsync_dir(target)
    if scan is not None and scan.problem is None:
        with _io_errors(jpath, "removing"):
            _remove(jpath)
    return len(cells)


def done_masks(path, groups):
    """Cells already stored in ``path`` (file and journal) for each group; a reader, changes nothing."""
    target = resolve(path)
    with h5py.File(target, "r") as f:
        masks = {name: f[name]["done"][...].astype(bool) for name in groups}
    for group, index, _ in read_journal(target):
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
    """Raise ResultsFileError unless ``path`` is absent, empty or holds ``config`` (see :func:`holds_config`)."""
    if results_exist(path) and not holds_config(path, config, same_run):
        raise ResultsFileError(
            f"`--out` {path} holds results of a different configuration; "
            "pass --overwrite to replace it or choose another --out"
        )


def _retire_journal(target, replaced, warn):
    """Before a new file replaces ``target``: drop the journal of the file it replaces, set aside any other."""
    jpath = target + JOURNAL_SUFFIX
    if not os.path.lexists(jpath):
        return
    try:
        with open(jpath, "rb") as fh:
            header = fh.read(_HEADER.size + 4096)
    except OSError as exc:
        raise _io_error(exc, jpath, "reading") from None
    if replaced is not None and _header_identity(header) == replaced:
        with _io_errors(jpath, "removing"):
            os.remove(jpath)  # part of the results being overwritten
    else:
        _set_aside(jpath, "belongs to no results file here", warn)


class ResultsWriter:
    """Single writer of a results file that a kill at any moment cannot damage.

    The HDF5 file is never modified in place while cells arrive.  Finished
    cells are appended to a journal beside it (``PATH.journal``: a header
    naming the file, then magic-tagged, checksummed records, flushed and
    fsync'ed at most ``flush_seconds`` apart) and moved into the file every
    few tens of seconds (see ``CONSOLIDATE_SECONDS``) and at the end by :func:`consolidate`, which
    rewrites a copy and swaps it in atomically.  So the results file is
    always complete and readable (by xarray too, up to the last
    consolidation), and on resume the journal's intact records count as done.
    (Rewriting gzip-compressed chunks in place was not safe: a SIGKILL in the
    middle left a dataset whose chunks failed to decompress.)

    The writer holds the lock of the file (:class:`ResultsLock`) from
    construction to :meth:`close`: it takes a reference to the lock this
    process already holds (``with lock_results(path):`` around the run), or
    takes it itself.  The path is checked with :func:`check_output_path`.

    Parameters
    ----------
    path : str or os.PathLike
        The results file; a symbolic link is written through to its target.
    layouts : list of GroupLayout
    config : dict
        The whole run configuration (compared on resume).
    command_line : str
    overwrite : bool
        Replace an existing results file whose configuration differs (a file
        that is not a results file is never replaced).
    flush_seconds : float
        Minimum time between journal flushes; 0 flushes after every cell.
    same_run : callable, optional
        ``same_run(stored_config_dict) -> bool`` decides whether an existing
        file belongs to this run (default: JSON equality with ``config``).
    warn : callable, optional
        ``warn(message)`` receives each one-line note about the files (a
        journal set aside, a torn tail cut); default
        ``warnings.warn(message, ResultsWarning)``.

    Raises
    ------
    ResultsFileError
        One line, for every refusal and I/O failure; after a failed write the
        writer stops (further calls raise), the file and journal stay as they
        were for the resume, and :meth:`close` only releases the lock.
    """

    def __init__(self, path, layouts, config, command_line="", overwrite=False, flush_seconds=1.0,
                 same_run=None, warn=None):
        self.path = check_output_path(path)
        self.flush_seconds = flush_seconds
        self._warn = warn
        self._lock = ResultsLock(path).acquire()
        try:
            if results_exist(self.path) and not overwrite:
                check_resumable(self.path, config, same_run)
                consolidate(self.path, warn=warn)  # a killed run's journal: keep its intact cells
            else:
                self._create(layouts, json.dumps(config, sort_keys=True), command_line)
            with h5py.File(self.path, "r") as f:
                self._identity, self._schema = _identity_of(f), _file_schema(f)
        except BaseException:
            self._lock.release()
            raise
        self._journal_bytes = None  # size of the journal this writer has written, None: none yet
        self._pending = []
        self._failed = self._closed = False
        self._last_flush = time.monotonic()
        self._next_consolidation = self._last_flush + CONSOLIDATE_SECONDS

    def _create(self, layouts, config_json, command_line):
        # Build the new file beside the target and move it in place only once
        # it is complete, so an interrupted creation never leaves half a file.
        tmp = self.path + _PARTIAL
        replaced = None
        if results_exist(self.path):
            with suppress(OSError):
                replaced = file_identity(self.path)
        with _io_errors(self.path, "creating", debris=[tmp]):
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
            _fsync(tmp)
            _retire_journal(self.path, replaced, self._warn)
            os.replace(tmp, self.path)
            _fsync_dir(self.path)

    def _check_usable(self):
        if self._closed or self._failed:
            raise ResultsFileError(f"the writer of `{self.path}` is {'closed' if self._closed else 'stopped'} "
                                   "after an error; rerun the same command to resume")

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
            Metric name -> float64 array ``(generations, *extra)``, every
            metric of the group.

        Returns
        -------
        bool
            True if this call flushed (all queued cells are now durable).

        Raises
        ------
        ResultsFileError
            If the cell does not fit the file (unknown group, index outside
            the grid, other metrics or shapes), or a flush fails.
        """
        self._check_usable()
        index = tuple(int(i) for i in index)
        metrics = {name: np.asarray(values, dtype=np.float64) for name, values in metrics.items()}
        why = _misfit(self._schema, group, index, metrics)
        if why is not None:
            raise ResultsFileError(f"cell {group} {index} does not fit `{self.path}`: {why}")
        self._pending.append((group, index, metrics))
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()
            return True
        return False

    def _stop_on_failure(self, step, *args):
        try:
            return step(*args)
        except ResultsFileError:
            self._failed = True
            raise

    def flush(self):
        """Append queued cells to the journal and make it durable; consolidate now and then."""
        self._check_usable()
        if self._pending:
            self._stop_on_failure(self._append, b"".join(_encode_cell(*cell) for cell in self._pending))
            self._pending.clear()
        self._last_flush = now = time.monotonic()
        if now >= self._next_consolidation or (self._journal_bytes or 0) >= CONSOLIDATE_BYTES:
            self._stop_on_failure(self._consolidate, False)
            done = time.monotonic()
            self._next_consolidation = done + max(CONSOLIDATE_SECONDS, (done - now) / CONSOLIDATE_SHARE)

    def _append(self, records):
        jpath = self.path + JOURNAL_SUFFIX
        start = self._journal_bytes or 0
        data = records if start else _journal_header(self._identity) + records
        with _io_errors(jpath, "appending to"):
            fd = os.open(jpath, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                os.ftruncate(fd, start)  # never append after bytes this writer did not complete
                view, offset = memoryview(data), start
                while view:
                    written = os.pwrite(fd, view, offset)
                    view, offset = view[written:], offset + written
                os.fsync(fd)
            finally:
                os.close(fd)
            if not start:
                _fsync_dir(jpath)
        self._journal_bytes = start + len(data)

    def _consolidate(self, finished):
        consolidate(self.path, finished=finished, warn=self._warn)
        self._journal_bytes = None

    def close(self, finished=False):
        """Flush queued cells, move the journal into the file, stamp the finish time if complete.

        Releases the lock in every case.  After a failed write it writes
        nothing more (the journal holds every cell reported durable).
        """
        if self._closed:
            return
        try:
            if not self._failed:
                self.flush()
                self._stop_on_failure(self._consolidate, finished)
        finally:
            self._closed = True
            self._lock.release()
