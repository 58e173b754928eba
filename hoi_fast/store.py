"""The results file: one HDF5 file, one group per experiment, xarray-readable.

Schema (``E`` is ``gmm`` or ``ngram``)::

    /                      attrs: format, hoi_fast_version, config (JSON),
                           root_seed, command_line, numpy/numba/h5py/python
                           versions, machine, cpu_model and cpu_flags (when
                           known), started, finished (empty until done)
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
arrays.

Files beside the results file ``PATH`` (if ``PATH`` is a symbolic link, beside
its target: links are written through, never replaced)::

    PATH.journal      finished cells not yet in PATH (see below)
    PATH.lock         the writer's lock; holds its pid; removed when it ends
    PATH.consolidating, PATH.partial
                      a copy being completed; replaces PATH atomically, or is
                      removed if the step fails
    PATH.journal.set-aside-YYYYmmddTHHMMSS
                      a journal that was not merged (another run's, or one
                      whose records do not fit PATH), kept for inspection

Journal format (``hoi_fast-journal-2``): a header, then records.  The header
is ``b"HOIJRNL2"``, ``<II`` (length, CRC-32) and a JSON body
``{"format": ..., "results": ID}`` where ``ID`` (:func:`file_identity`) is the
SHA-256 of the results file's stored configuration and ``started`` stamp, so
a journal is only ever merged into the file it was written for.  Each record
is ``b"CELL"``, ``<QI`` (payload length > 0, CRC-32 of magic, length and
payload) and an ``np.savez`` payload of the group, the cell index and the
metrics.  Zero bytes fail the magic word, so a zero-filled region never
passes as a record.

Guarantees, with the mechanism of each:

* **Only whole files.**  The HDF5 file is never modified in place: cells go
  to the journal first and reach the file through a completed copy that
  replaces it with ``os.replace``.  A kill at any moment (SIGKILL included)
  leaves a readable file in which every ``done`` cell is complete.
* **The journal is checked before it is used.**  A journal with another run's
  header, or a record that does not fit the file (unknown group, index
  outside the grid, other metric names or shapes), is never merged: it is set
  aside with a note and its cells are recomputed.  A torn or corrupt tail (a
  kill or a full disk mid-write) is cut at the last intact record before the
  journal is used, and the writer never appends after bytes it did not write.
* **One writer.**  :class:`ResultsLock` (``fcntl.flock`` on ``PATH.lock``) is
  held for the whole run; the OS releases it when the process dies, so a
  killed run never leaves a stale lock.  Readers (:func:`read_group`, xarray)
  take no lock and may read while a run writes.
* **Only real results files are written.**  :func:`check_output_path` refuses
  folders, devices, FIFOs (never opened), an empty path, an existing
  non-empty file that is not a hoi_fast results file (even with
  ``--overwrite``), unwritable files and folders, and helper paths that are
  not regular files.
* **One-line errors.**  Every failure is a :class:`ResultsFileError` naming
  the path and what to do; a full disk says
  ``"disk full: free space and rerun the same command"`` and leaves the file
  and journal as they were, ready to resume; no transient copy is left.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import math
import os
import platform
import re
import shutil
import stat
import struct
import threading
import time
import warnings
import zlib
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import h5py
import numpy as np

FORMAT = "hoi_fast-results-1"
DEFAULT_NAME = "hoi_results.h5"
_STRING = h5py.string_dtype()


class ResultsFileError(ValueError):
    """The results file cannot be used: missing, foreign, locked, unwritable, a full disk, ...

    The message is one line naming the path and what to do.
    """


class ResultsWarning(UserWarning):
    """A note about the results file that does not stop the run (e.g. a journal set aside)."""


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


# -- errors ------------------------------------------------------------------

DISK_FULL = "disk full: free space and rerun the same command"


def _errno_of(exc):
    """The errno of an OSError, also when h5py only names it in the message ("errno = 28")."""
    if getattr(exc, "errno", None):
        return exc.errno
    found = re.search(r"errno = (\d+)", str(exc))
    if found:
        return int(found.group(1))
    return errno.ENOSPC if "No space left on device" in str(exc) else None


def _io_error(exc, path, doing):
    """A one-line ResultsFileError for an OSError met while ``doing`` (e.g. "appending to") ``path``."""
    code = _errno_of(exc)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return ResultsFileError(f"{DISK_FULL} (while {doing} `{path}`; what is already stored is intact)")
    reason = " ".join(str(getattr(exc, "strerror", None) or exc).split())
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ResultsFileError(f"`{path}` cannot be written ({reason}) while {doing} it; "
                                "make it writable or choose another --out")
    if code == errno.EISDIR:
        return ResultsFileError(f"`{path}` is a folder; move it away and rerun the same command")
    return ResultsFileError(f"{doing} `{path}` failed ({reason}); fix that and rerun the same command")


@contextmanager
def _io_errors(path, doing, debris=()):
    """Turn an OSError into a one-line ResultsFileError; on any failure remove the transient files ``debris``."""
    try:
        yield
    except BaseException as exc:
        for leftover in debris:
            with suppress(OSError):
                os.remove(leftover)
        # h5py reports some failed writes as RuntimeError naming the errno in its message
        if isinstance(exc, OSError) or (isinstance(exc, RuntimeError) and _errno_of(exc) is not None):
            raise _io_error(exc, path, doing) from None
        raise


def _remove(path):
    with suppress(FileNotFoundError):
        os.remove(path)


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path):
    """Make a rename or a new file in the folder of ``path`` durable."""
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


# -- paths -------------------------------------------------------------------

JOURNAL_SUFFIX = ".journal"
LOCK_SUFFIX = ".lock"
_CONSOLIDATING = ".consolidating"
_PARTIAL = ".partial"
SIDE_SUFFIXES = (JOURNAL_SUFFIX, LOCK_SUFFIX, _CONSOLIDATING, _PARTIAL)


def _kind(mode):
    """What a file mode is, in words."""
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "folder"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO (named pipe)"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISLNK, "symbolic link")):
        if test(mode):
            return name
    return "special file"


def resolve(path):
    """The file a results path names, symbolic links followed (they are written through, never replaced).

    Raises
    ------
    ResultsFileError
        If ``path`` is empty or not a valid path.
    """
    text = "" if path is None else os.fspath(path)
    if not text:
        raise ResultsFileError(f"`--out` is empty; give a file name such as {DEFAULT_NAME}")
    if "\0" in text:
        raise ResultsFileError(f"`--out` {text!r} contains a NUL character; give a file name such as {DEFAULT_NAME}")
    return os.path.realpath(text)


def _stat(path, follow=True):
    """``os.stat`` (or ``os.lstat``) of ``path``, None if it does not exist; other errors as one line."""
    try:
        return os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ResultsFileError(f"`{path}` cannot be examined ({exc.strerror}); choose another --out") from None


def results_exist(path):
    """True if ``path`` (links followed) is a regular, non-empty file: a results file to resume or replace.

    An empty file counts as absent, so it may be the target of a new run.
    """
    st = _stat(resolve(path))
    return st is not None and stat.S_ISREG(st.st_mode) and st.st_size > 0


def is_results_file(path):
    """True if ``path`` is a regular file holding a hoi_fast results file (anything else is never opened)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == FORMAT
    except (OSError, ValueError):
        return False


def check_output_path(path):
    """Check that a run may write its results to ``path``, before any work; return the file it writes.

    Accepted: a missing file in an existing, writable folder; an empty file;
    an existing, writable hoi_fast results file.  A symbolic link is written
    through: the returned target is the file that is created or replaced, and
    the link itself is never touched.  Nothing is opened but hoi_fast results
    files (a FIFO would block).

    Parameters
    ----------
    path : str or os.PathLike
        The ``--out`` path as given.

    Returns
    -------
    str
        The resolved target (absolute, links followed).

    Raises
    ------
    ResultsFileError
        One line naming the path and what to do: an empty path; a missing or
        unwritable folder; a folder, device, FIFO, socket; an existing
        non-empty file that is not a hoi_fast results file (refused even with
        ``--overwrite``); an unwritable (read-only, immutable) file; a helper
        path (``PATH.journal``, ``PATH.lock``, ...) that is not a regular file.
    """
    given = os.fspath(path) if path is not None else ""
    target = resolve(given)
    shown = given if target == os.path.abspath(given) else f"{given} (-> {target})"
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise ResultsFileError(f"`--out` folder {folder} does not exist; create it or choose another path")
    st = _stat(target)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ResultsFileError(f"`--out` {shown} is a {_kind(st.st_mode)}, not a results file; "
                               f"give a file name such as {DEFAULT_NAME}")
    if st is not None and st.st_size > 0 and not is_results_file(target):
        raise ResultsFileError(f"`--out` {shown} exists and is not a hoi_fast results file; it is never replaced, "
                               "even with --overwrite: choose another --out or move that file away")
    for suffix in SIDE_SUFFIXES:
        side = _stat(target + suffix, follow=False)
        if side is not None and not stat.S_ISREG(side.st_mode):
            raise ResultsFileError(f"`{target + suffix}` is a {_kind(side.st_mode)}; hoi_fast keeps its own file "
                                   "there: move it away and rerun the same command")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ResultsFileError(f"`--out` folder {folder} is not writable; make it writable or choose another --out")
    if st is not None and not os.access(target, os.W_OK):
        raise ResultsFileError(f"`--out` {shown} is not writable (read-only or immutable); "
                               "make it writable or choose another --out")
    return target


# -- one writer per results file ---------------------------------------------

_HELD = {}  # lock file -> [fd, references] of the locks this process holds
_HELD_GUARD = threading.Lock()


def _forget_locks_after_fork():
    # A forked child must not keep the parent's lock alive after the parent dies.
    for fd, _ in _HELD.values():
        with suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_forget_locks_after_fork)


def _read_pid(fd):
    with suppress(OSError):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return text
    return "unknown"


def _same_file(fd, path):
    st = _stat(path, follow=False)
    own = os.fstat(fd)
    return st is not None and (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _take_lock(lock_path, name):
    """Open, flock and stamp ``lock_path``; return its descriptor."""
    for _ in range(20):
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise _io_error(exc, lock_path, "creating the lock") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise ResultsFileError(f"another run is writing {name} (pid {pid}); "
                                   "wait for it or choose another --out") from None
        except OSError as exc:
            os.close(fd)
            raise ResultsFileError(f"`{lock_path}` cannot be locked ({exc.strerror}); "
                                   "choose an --out on a local file system") from None
        if _same_file(fd, lock_path):  # not a lock file that its previous holder removed meanwhile
            with suppress(OSError):  # the pid only makes the message of a second run clearer
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)
    raise ResultsFileError(f"`{lock_path}` keeps changing under this run; rerun the same command")


class ResultsLock:
    """The exclusive lock of one results file: one writing process at a time.

    An OS advisory lock (``fcntl.flock``) on ``PATH.lock`` beside the
    resolved results file, taken without waiting.  The OS releases it when
    the process ends, however it ends, so a killed run never leaves a stale
    lock (the file may stay, with its dead pid, and is simply locked again).
    The lock file is removed on release.  Readers take no lock.

    Re-entrant within a process: the grid holds it for the whole run
    (``with lock_results(out):``) and the :class:`ResultsWriter` created
    inside takes another reference; the OS lock is released with the last
    reference.  So it keeps out other processes, not a second writer in the
    same process.  The descriptor is not inherited by spawned workers, and
    a forked child closes its copy.

    Parameters
    ----------
    path : str or os.PathLike
        The results file (as given; links are followed for the lock).

    Raises
    ------
    ResultsFileError
        On :meth:`acquire`, if another process holds the lock:
        ``"another run is writing OUT (pid N); wait for it or choose another --out"``.
    """

    def __init__(self, path):
        self.name = os.fspath(path)
        self.path = resolve(path) + LOCK_SUFFIX
        self._held = False

    @property
    def held(self):
        """True while this object holds a reference to the lock."""
        return self._held

    def acquire(self):
        """Take the lock (or a reference to it, if this process holds it); return self."""
        with _HELD_GUARD:
            if not self._held:
                entry = _HELD.get(self.path)
                if entry is None:
                    entry = _HELD[self.path] = [_take_lock(self.path, self.name), 0]
                entry[1] += 1
                self._held = True
        return self

    def release(self):
        """Drop this reference; the last one removes the lock file and releases the OS lock."""
        with _HELD_GUARD:
            if not self._held:
                return
            self._held = False
            entry = _HELD.get(self.path)
            if entry is None:  # a forked child: the parent holds the lock
                return
            entry[1] -= 1
            if entry[1] == 0:
                del _HELD[self.path]
                # Remove while still holding it: a run that opened this file meanwhile
                # sees that it is gone (see _take_lock) and takes a new one.
                with suppress(OSError):
                    os.remove(self.path)
                os.close(entry[0])

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def lock_results(path):
    """The exclusive lock of the results file ``path``, as a context manager.

    ``with lock_results(out): ...`` holds it for the block (see :class:`ResultsLock`).
    """
    return ResultsLock(path)


def lock_held(path):
    """True if this process holds the lock of the results file ``path``."""
    return resolve(path) + LOCK_SUFFIX in _HELD


def stored_config(path):
    """The JSON configuration stored in a results file, or raise ResultsFileError."""
    st = _stat(path)
    if st is not None and not stat.S_ISREG(st.st_mode):  # never open a FIFO or a device
        raise ResultsFileError(f"`{path}` is a {_kind(st.st_mode)}, not a results file")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ResultsFileError(f"`{path}` is not a hoi_fast results file")
            return json.loads(f.attrs["config"])
    except OSError as exc:
        raise ResultsFileError(f"`{path}` cannot be read as HDF5 ({exc})") from None


# -- the journal -------------------------------------------------------------

JOURNAL_FORMAT = "hoi_fast-journal-2"
# Mid-run consolidations: at least CONSOLIDATE_SECONDS apart, and at least
# 1 / CONSOLIDATE_SHARE times as long as the last one took, so moving the
# journal into the file (recompressing the chunks it touches, while the workers
# wait for the parent) stays about CONSOLIDATE_SHARE of the run however large
# the file grows; and at once when the journal reaches CONSOLIDATE_BYTES, which
# bounds the memory a consolidation reads the journal into.
CONSOLIDATE_SECONDS = 30.0
CONSOLIDATE_SHARE = 0.1
CONSOLIDATE_BYTES = 512 << 20
_HEADER = struct.Struct("<8sII")  # magic, length and CRC-32 of the JSON body
_JOURNAL_MAGIC = b"HOIJRNL2"
_RECORD_PREFIX = struct.Struct("<4sQ")  # magic, payload length
_RECORD_CRC = struct.Struct("<I")  # CRC-32 of prefix + payload, after the prefix
_RECORD_MAGIC = b"CELL"
_RAW_MAGIC = b"RAW1"  # payload: this magic, the head's length, a JSON head, float64 values
_RAW_HEAD = struct.Struct("<4sI")


def journal_path(path):
    """The append-only journal beside a results file (beside its target, for a symbolic link)."""
    return resolve(path) + JOURNAL_SUFFIX


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _identity_of(f):
    config, started = _text(f.attrs.get("config", "")), _text(f.attrs.get("started", ""))
    return hashlib.sha256(f"{config}\n{started}".encode()).hexdigest()


def file_identity(path):
    """The identity a journal must carry to be merged into the results file ``path``.

    The SHA-256 (hex) of the stored configuration JSON and ``started`` stamp:
    another configuration (another root seed, a larger grid) or another file
    with the same configuration gives another identity.
    """
    with h5py.File(path, "r") as f:
        return _identity_of(f)


def _journal_header(identity):
    body = json.dumps({"format": JOURNAL_FORMAT, "results": identity}, sort_keys=True).encode()
    return _HEADER.pack(_JOURNAL_MAGIC, len(body), zlib.crc32(body)) + body


def _header_identity(data):
    """The identity named by an intact journal header at the start of ``data``, else None."""
    if len(data) < _HEADER.size:
        return None
    magic, length, crc = _HEADER.unpack_from(data)
    body = data[_HEADER.size:_HEADER.size + length]
    if magic != _JOURNAL_MAGIC or len(body) != length or zlib.crc32(body) != crc:
        return None
    try:
        info = json.loads(body)
        return str(info["results"]) if info.get("format") == JOURNAL_FORMAT else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _encode_cell(group, index, metrics):
    """One journal record: a JSON head (group, index, metric names and shapes), then raw float64 values.

    (``np.savez`` payloads, which older runs wrote, cost ~5 ms a cell to write
    and read back; they are still read.)
    """
    arrays = [(name, np.ascontiguousarray(values, dtype="<f8")) for name, values in metrics.items()]
    head = json.dumps({"group": group, "index": [int(i) for i in index],
                       "metrics": [[name, list(a.shape)] for name, a in arrays]}, separators=(",", ":")).encode()
    payload = b"".join([_RAW_HEAD.pack(_RAW_MAGIC, len(head)), head] + [a.tobytes() for _, a in arrays])
    prefix = _RECORD_PREFIX.pack(_RECORD_MAGIC, len(payload))
    return prefix + _RECORD_CRC.pack(zlib.crc32(payload, zlib.crc32(prefix))) + payload


def _next_record(data, pos):
    """``(payload, end)`` of the intact record at ``pos``, or None (torn, corrupt, zeros, or the end)."""
    start = pos + _RECORD_PREFIX.size + _RECORD_CRC.size
    if start > len(data):
        return None
    magic, length = _RECORD_PREFIX.unpack_from(data, pos)
    (crc,) = _RECORD_CRC.unpack_from(data, pos + _RECORD_PREFIX.size)
    if magic != _RECORD_MAGIC or length == 0 or start + length > len(data):
        return None
    payload = data[start:start + length]
    if zlib.crc32(payload, zlib.crc32(data[pos:pos + _RECORD_PREFIX.size])) != crc:
        return None
    return payload, start + length


def _decode_cell(payload):
    if bytes(payload[:len(_RAW_MAGIC)]) != _RAW_MAGIC:
        return _decode_npz_cell(payload)
    _, head_length = _RAW_HEAD.unpack_from(payload)
    offset = _RAW_HEAD.size + head_length
    head = json.loads(bytes(payload[_RAW_HEAD.size:offset]))
    metrics = {}
    for name, shape in head["metrics"]:
        if any(int(n) < 0 for n in shape):
            raise ValueError("a negative extent")
        count = math.prod(int(n) for n in shape)
        metrics[str(name)] = np.frombuffer(payload, "<f8", count, offset).astype(np.float64, copy=False) \
            .reshape(shape)
        offset += 8 * count
    if offset != len(payload):
        raise ValueError("the values do not fill the record")
    return str(head["group"]), tuple(int(i) for i in head["index"]), metrics


def _decode_npz_cell(payload):
    with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
        metrics = {key[2:]: npz[key] for key in npz.files if key.startswith("m_")}
        return str(npz["__group__"]), tuple(int(i) for i in npz["__index__"]), metrics


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


@dataclass(frozen=True)
class JournalScan:
    """What a journal holds, checked against its results file.

    Attributes
    ----------
    cells : list of (str, tuple of int, dict of str -> ndarray)
        ``(group, index, metrics)`` of each intact, fitting record, in order.
    intact_bytes : int
        End of the last intact record (0 if not even the header is intact).
    size : int
        Bytes in the journal; beyond ``intact_bytes`` is a torn or corrupt tail.
    problem : str or None
        Why the journal must not be merged at all (another run's header, a
        record that does not fit the file), or None.
    """

    cells: list
    intact_bytes: int
    size: int
    problem: str | None


def _parse_journal(data, identity, schema):
    expected = _journal_header(identity)
    if not data.startswith(expected):
        if expected.startswith(data):  # empty, or torn while its header was written
            return JournalScan([], 0, len(data), None)
        other = _header_identity(data)
        problem = ("belongs to another run (another configuration or another results file)" if other is not None
                   else "has no intact hoi_fast journal header (damaged, or written by another version)")
        return JournalScan([], 0, len(data), problem)
    cells, pos = [], len(expected)
    data = memoryview(data)  # records are checked and decoded without copying them
    while (found := _next_record(data, pos)) is not None:
        payload, end = found
        try:
            cell = _decode_cell(payload)
        except Exception:  # noqa: BLE001 - a checksummed payload that is not ours
            return JournalScan([], 0, len(data), f"record {len(cells) + 1} cannot be decoded")
        why = _misfit(schema, *cell)
        if why is not None:
            return JournalScan([], 0, len(data), f"record {len(cells) + 1} does not fit the results file: {why}")
        cells.append(cell)
        pos = end
    return JournalScan(cells, pos, len(data), None)


def scan_journal(path):
    """Read and check the journal of the results file ``path`` (which must exist); change nothing.

    Returns
    -------
    JournalScan or None
        None if there is no journal.
    """
    target = resolve(path)
    jpath = target + JOURNAL_SUFFIX
    try:
        with open(jpath, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _io_error(exc, jpath, "reading") from None
    with h5py.File(target, "r") as f:
        return _parse_journal(data, _identity_of(f), _file_schema(f))


def read_journal(path):
    """The cells recorded in the journal of ``path`` that may be merged into it.

    Returns
    -------
    list of (str, tuple, dict)
        ``(group, index, metrics)`` per cell, in the order written: the intact
        records before any torn or corrupt tail (cells that were never
        reported done and are simply recomputed).  Empty if there is no
        journal, or if it belongs to another run or holds a record that does
        not fit the file (such a journal is set aside by :func:`consolidate`).
    """
    scan = scan_journal(path)
    return scan.cells if scan is not None and scan.problem is None else []


def _note(warn, message):
    if warn is None:
        warnings.warn(message, ResultsWarning, stacklevel=3)
    else:
        warn(message)


def _set_aside(jpath, reason, warn):
    """Rename a journal that must not be merged to ``JOURNAL.set-aside-STAMP``, with a note."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target, n = f"{jpath}.set-aside-{stamp}", 1
    while os.path.lexists(target):
        n += 1
        target = f"{jpath}.set-aside-{stamp}-{n}"
    with _io_errors(jpath, "setting aside"):
        os.rename(jpath, target)
    _note(warn, f"journal `{jpath}` {reason}; set aside as `{os.path.basename(target)}` and not merged: "
                "its cells are recomputed")


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
