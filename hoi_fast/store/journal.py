"""The journal beside a results file: its format, identity, records, and checking it against the file.

:func:`journal_path`, :func:`file_identity`, the encoding and decoding of
records, :func:`scan_journal` / :func:`read_journal` (the intact, fitting
cells; change nothing) and the setting aside of a journal that must not be
merged.  Writing the journal and merging it into the file is
:mod:`hoi_fast.store.writer`.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import struct
import time
import warnings
import zlib
from dataclasses import dataclass

import h5py
import numpy as np

from hoi_fast.store.errors import ResultsWarning, _io_error, _io_errors
from hoi_fast.store.paths import JOURNAL_SUFFIX, resolve
from hoi_fast.store.schema import _file_schema, _misfit


JOURNAL_FORMAT = "hoi_fast-journal-2"
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
        not fit the file (such a journal is set aside by :func:`~hoi_fast.store.writer.consolidate`).
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
