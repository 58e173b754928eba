"""Where blocks of cells run: this process, a local process pool, or Dask.

Every executor is a :class:`concurrent.futures.Executor` (or ``None`` for
in-process), so the grid's scheduling and writing code is the same for all.
The parent stays the single writer of the results file.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import signal
from contextlib import contextmanager

from hoi_fast._validate import ConfigError

EXECUTORS = ("local", "dask")

# Dask reruns a task whose worker died up to this many times before giving up.
DASK_ALLOWED_FAILURES = 3


def _ignore_sigint():
    """Workers leave Ctrl-C to the parent, which stops the pool (see ``hoi_fast.grid.Interrupts``).

    A terminal sends SIGINT to the whole process group; a KeyboardInterrupt
    raised inside a compiled numba call can crash the worker.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def local_pool(jobs):
    """A process pool of ``jobs`` workers, or ``None`` (in-process) for one job.

    Uses ``spawn``: a forked child of a process that used OpenMP aborts, and
    spawned workers load numba's on-disk cache in about a second.
    """
    if jobs == 1:
        yield None
        return
    pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_ignore_sigint)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            "`--executor dask` needs Dask distributed; install it with: pip install 'hoi_fast[dask]'"
        ) from None
    return distributed


@contextmanager
def dask_executor(jobs, scheduler=None):
    """A ``concurrent.futures`` view of a Dask cluster.

    Parameters
    ----------
    jobs : int
        Workers of the ``LocalCluster`` started when no ``scheduler`` is given.
    scheduler : str, optional
        Address of an existing scheduler, e.g. ``tcp://10.0.0.5:8786``.

    Notes
    -----
    A worker that dies mid-task has its tasks rescheduled on other workers by
    Dask itself (``distributed.scheduler.allowed-failures``); a task that
    raises is retried twice.  Results return to the parent, which writes them.
    """
    distributed = _import_distributed()
    import dask

    cluster = None
    with dask.config.set({"distributed.scheduler.allowed-failures": DASK_ALLOWED_FAILURES}):
        try:
            if scheduler:
                client = distributed.Client(scheduler, timeout="5s")
            else:
                cluster = distributed.LocalCluster(
                    n_workers=jobs, threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.ERROR,
                )
                client = distributed.Client(cluster)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(
                f"`--scheduler` {scheduler} cannot be reached ({exc}); check the address "
                "or omit it to start a local cluster"
            ) from None
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"`--scheduler` {scheduler!r} is not a Dask scheduler address ({exc}); give tcp://HOST:PORT"
            ) from None
        try:
            yield client.get_executor(retries=2)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


@contextmanager
def open_executor(kind, jobs, scheduler=None):
    """The executor named ``kind`` ("local" or "dask"); ``None`` means in-process."""
    if kind == "local":
        if scheduler:
            raise ConfigError("`--scheduler` needs `--executor dask`")
        with local_pool(jobs) as executor:
            yield executor
    elif kind == "dask":
        with dask_executor(jobs, scheduler) as executor:
            yield executor
    else:
        raise ConfigError(f"`--executor` must be one of {', '.join(EXECUTORS)}, got {kind!r}")
