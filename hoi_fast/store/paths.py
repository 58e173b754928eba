"""What a results path names: the file it resolves to, the helper files beside it, whether it may be written.

:func:`resolve` (symbolic links followed), the suffixes of the helper files
(``PATH.journal``, ``PATH.lock``, ...), :func:`check_output_path`,
:func:`results_exist`, :func:`is_results_file` and :func:`stored_config`
(the configuration a results file holds).
"""

from __future__ import annotations

import json
import os
import stat

import h5py

from hoi_fast.store.errors import ResultsFileError
from hoi_fast.store.schema import FORMAT


DEFAULT_NAME = "hoi_results.h5"
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
