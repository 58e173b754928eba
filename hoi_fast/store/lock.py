"""One writer per results file: :class:`ResultsLock` (``fcntl.flock`` on ``PATH.lock``).

The locks this process holds are kept in one registry here (re-entrant within
a process; a forked child forgets them), read by :func:`lock_held`.
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import suppress

from hoi_fast.store.errors import ResultsFileError, _io_error
from hoi_fast.store.paths import LOCK_SUFFIX, _stat, resolve


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
