"""Errors of the results file, and the small file operations that must not lose data.

:class:`ResultsFileError` (every refusal and I/O failure, as one line naming
the path and what to do), :class:`ResultsWarning` (a note that does not stop
the run), the mapping of an ``OSError`` to such a line (:data:`DISK_FULL` for
a full disk) with the removal of transient files, and ``fsync`` of a file and
of its folder.  A leaf: it imports nothing else of :mod:`hoi_fast.store`.
"""

from __future__ import annotations

import errno
import os
import re
from contextlib import contextmanager, suppress


class ResultsFileError(ValueError):
    """The results file cannot be used: missing, foreign, locked, unwritable, a full disk, ...

    The message is one line naming the path and what to do.
    """


class ResultsWarning(UserWarning):
    """A note about the results file that does not stop the run (e.g. a journal set aside)."""


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
