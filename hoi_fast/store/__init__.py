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

The package, one module per concern; each imports only the modules above it
in this list (``errors`` and ``schema`` import none)::

    errors    ResultsFileError, ResultsWarning, DISK_FULL; an OSError as one
              line; removing and fsync'ing files
    schema    FORMAT, provenance (versions), GroupLayout and the datasets of
              a group (scales, done, chunked metrics); a file's schema and
              whether a cell fits it
    paths     resolve, the helper files' suffixes, check_output_path,
              results_exist, is_results_file, stored_config
    lock      ResultsLock, lock_results, lock_held (one writer per file)
    journal   the journal format: journal_path, file_identity, records,
              scan_journal, read_journal, setting a journal aside
    writer    consolidate, ResultsWriter, storing_seconds, done_masks,
              holds_config, check_resumable; the CONSOLIDATE_* settings
    reader    ResultsGroup, read_group, experiments_in

Every public name is importable from ``hoi_fast.store`` itself.  A module's
settings and state live in that module alone and are read there: to change
``CONSOLIDATE_BYTES`` (or replace ``consolidate``) for the writer, set it on
:mod:`hoi_fast.store.writer`, not on this package.
"""

from __future__ import annotations

from hoi_fast.store.errors import DISK_FULL, ResultsFileError, ResultsWarning
from hoi_fast.store.journal import (
    JOURNAL_FORMAT,
    JournalScan,
    file_identity,
    journal_path,
    read_journal,
    scan_journal,
)
from hoi_fast.store.lock import ResultsLock, lock_held, lock_results
from hoi_fast.store.paths import (
    DEFAULT_NAME,
    JOURNAL_SUFFIX,
    LOCK_SUFFIX,
    SIDE_SUFFIXES,
    check_output_path,
    is_results_file,
    resolve,
    results_exist,
    stored_config,
)
from hoi_fast.store.reader import ResultsGroup, experiments_in, read_group
from hoi_fast.store.schema import CHUNK_BYTES, CHUNK_CACHE_BYTES, FORMAT, GZIP_LEVEL, GroupLayout, versions
from hoi_fast.store.writer import (
    CONSOLIDATE_BYTES,
    CONSOLIDATE_SECONDS,
    CONSOLIDATE_SHARE,
    ResultsWriter,
    check_resumable,
    consolidate,
    done_masks,
    holds_config,
    storing_seconds,
)

__all__ = [
    "CHUNK_BYTES",
    "CHUNK_CACHE_BYTES",
    "CONSOLIDATE_BYTES",
    "CONSOLIDATE_SECONDS",
    "CONSOLIDATE_SHARE",
    "DEFAULT_NAME",
    "DISK_FULL",
    "FORMAT",
    "GZIP_LEVEL",
    "GroupLayout",
    "JOURNAL_FORMAT",
    "JOURNAL_SUFFIX",
    "JournalScan",
    "LOCK_SUFFIX",
    "ResultsFileError",
    "ResultsGroup",
    "ResultsLock",
    "ResultsWarning",
    "ResultsWriter",
    "SIDE_SUFFIXES",
    "check_output_path",
    "check_resumable",
    "consolidate",
    "done_masks",
    "experiments_in",
    "file_identity",
    "holds_config",
    "is_results_file",
    "journal_path",
    "lock_held",
    "lock_results",
    "read_group",
    "read_journal",
    "resolve",
    "results_exist",
    "scan_journal",
    "stored_config",
    "storing_seconds",
    "versions",
]
