"""The journal: every way it can be damaged or foreign ends with a complete, correct results file.

Each test builds what a killed run leaves (a results file and its journal
holding some cells), damages or swaps the journal, resumes, and checks that
every cell is done and holds this run's values.  The cases of issue 16
("The journal", items 1-4) are named after it.
"""

import os
import shutil

import h5py
import numpy as np
import pytest

from hoi_fast.experiment import MetricSpec
from hoi_fast.store import (
    GroupLayout,
    ResultsWriter,
    consolidate,
    file_identity,
    journal_path,
    read_group,
    read_journal,
)
from hoi_fast.store.journal import _encode_cell, _journal_header

ALPHAS = 3
GENERATIONS = 3
SYMBOLS = 100  # makes each record ~3 kB, like a real cell (a journal "truncated to 3000 bytes" cuts record 1)


def layout(seeds=4):
    return GroupLayout(
        name="gmm",
        cell_dims=(("alpha", np.linspace(0, 1, ALPHAS)), ("seed", np.arange(seeds))),
        generations=GENERATIONS,
        specs=(MetricSpec("real_nll", "nats", "loss"),
               MetricSpec("means", "1", "means", ("component", "axis")),
               MetricSpec("counts", "1", "counts", ("symbol",))),
        coords={"component": np.arange(2), "axis": np.arange(2), "symbol": np.arange(SYMBOLS)},
        config={"k": 2},
    )


def config(root_seed=0, seeds=4):
    return {"root_seed": root_seed, "seeds": seeds}


def metrics(cfg, index):
    """This run's values of a cell: a function of the root seed and the cell, never all zeros."""
    a, s = index
    base = 1000.0 * (cfg["root_seed"] + 1) + 100 * a + 10 * s
    g = np.arange(GENERATIONS, dtype=float)[:, None]
    return {"real_nll": base + g[:, 0],
            "means": (base + g[:, :, None] + np.arange(4).reshape(1, 2, 2) / 10).reshape(GENERATIONS, 2, 2),
            "counts": base + g + np.arange(SYMBOLS) / 1000}


def all_cells(seeds=4):
    return [(a, s) for s in range(seeds) for a in range(ALPHAS)]


def killed_run(path, cfg=None, n_cells=10, seeds=None):
    """What SIGKILL leaves once the journal holds ``n_cells`` cells: the file and its journal."""
    cfg = cfg or config()
    seeds = cfg["seeds"] if seeds is None else seeds
    writer = ResultsWriter(path, [layout(seeds)], cfg, flush_seconds=0, warn=lambda m: None)
    for index in all_cells(seeds)[:n_cells]:
        writer.write_cell("gmm", index, metrics(cfg, index))
    writer._lock.release()  # the OS releases a killed process's lock; no close()
    return path


def resume(path, cfg=None, stop_after=None):
    """Rerun the same command: compute the cells not done; ``stop_after`` cells then "kill" it."""
    cfg = cfg or config()
    notes = []
    writer = ResultsWriter(path, [layout(cfg["seeds"])], cfg, flush_seconds=0, warn=notes.append)
    done = writer.done_mask("gmm")
    todo = [index for index in all_cells(cfg["seeds"]) if not done[index]]
    for n, index in enumerate(todo):
        if stop_after is not None and n == stop_after:
            writer._lock.release()
            return notes
        writer.write_cell("gmm", index, metrics(cfg, index))
    writer.close(finished=True)
    return notes


def assert_complete_and_correct(path, cfg=None):
    cfg = cfg or config()
    group = read_group(str(path), "gmm")
    assert group.done.all(), f"{int(group.done.sum())} of {group.done.size} cells done"
    for index in all_cells(cfg["seeds"]):
        for name, values in metrics(cfg, index).items():
            np.testing.assert_array_equal(group.data[name][index], values, err_msg=f"{name} {index}")
    assert group.provenance["finished"]
    helpers = {p.name for p in path.parent.iterdir() if p.name.startswith(path.name + ".")}
    assert not {n for n in helpers if not n.startswith(path.name + ".journal.set-aside-")}, helpers


def set_aside_files(path):
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name + ".journal.set-aside-"))


def journal_bytes(path):
    return open(journal_path(path), "rb").read()


def write_journal(path, data):
    with open(journal_path(path), "wb") as fh:
        fh.write(data)


# -- issue 16, item 1: a journal whose start is unreadable -------------------

def first_record_end(path):
    """End of the first record of the journal of ``path`` (after the header)."""
    data = journal_bytes(path)
    one = len(_encode_cell("gmm", (0, 0), metrics(config(), (0, 0))))
    return len(data) - 9 * one  # 10 records of equal size follow the header


@pytest.mark.parametrize("damage", ["truncated to 3000 bytes", "5000 random bytes",
                                    "torn inside the first record (a full disk at the first flush)"])
def test_unreadable_start_of_the_journal_still_ends_complete(tmp_path, damage):
    path = killed_run(tmp_path / "part.h5")
    data = journal_bytes(path)
    if damage.startswith("truncated"):
        write_journal(path, data[:3000])  # inside record 2 (record 1 inside the older format)
    elif damage.startswith("5000"):
        write_journal(path, np.random.default_rng(1).bytes(5000))
    else:
        write_journal(path, data[:first_record_end(path) - 1])
    notes = resume(path)
    assert_complete_and_correct(path)
    assert len(notes) == 1 and "\n" not in notes[0]


def test_records_written_after_a_damaged_start_are_read_by_the_next_resume(tmp_path):
    """The old journal appended new records after the bad bytes, where no reader ever found them."""
    path = killed_run(tmp_path / "part.h5")
    write_journal(path, journal_bytes(path)[:3000])
    resume(path, stop_after=5)  # the rerun is killed too
    assert len(read_journal(path)) == 5
    resume(path)
    assert_complete_and_correct(path)


# -- item 2: zeros -----------------------------------------------------------

@pytest.mark.parametrize("where", ["only zeros", "zeros after valid records", "zeros inside a record"])
def test_zero_filled_journal_never_passes_and_never_crashes(tmp_path, where):
    path = killed_run(tmp_path / "part.h5")
    data = journal_bytes(path)
    if where == "only zeros":
        data = bytes(len(data))
    elif where == "zeros after valid records":
        data += bytes(8192)
    else:
        end = first_record_end(path)
        data = data[:end + 20] + bytes(200) + data[end + 220:]
    write_journal(path, data)
    expected_kept = {"only zeros": 0, "zeros after valid records": 10, "zeros inside a record": 1}[where]
    assert len(read_journal(path)) == expected_kept
    resume(path)
    assert_complete_and_correct(path)


# -- items 3 and 4: another run's journal ------------------------------------

def foreign_journal(tmp_path, cfg, seeds=None):
    other = killed_run(tmp_path / "other" / "other.h5", cfg, n_cells=12, seeds=seeds)
    return journal_bytes(other)


@pytest.fixture
def other_dir(tmp_path):
    (tmp_path / "other").mkdir()
    return tmp_path


@pytest.mark.parametrize("other", ["a larger grid (--seeds 20)", "another root seed (--root-seed 7)"])
def test_journal_of_another_run_is_set_aside_not_merged(other_dir, other):
    tmp_path = other_dir
    cfg = config(root_seed=7) if "root seed" in other else config(seeds=20)
    foreign = foreign_journal(tmp_path, cfg)
    path = killed_run(tmp_path / "part.h5", n_cells=10)
    write_journal(path, foreign)
    notes = resume(path)
    assert_complete_and_correct(path)  # none of the other run's numbers
    assert len(notes) == 1 and "another run" in notes[0] and "set aside" in notes[0] and "\n" not in notes[0]
    [kept] = set_aside_files(path)
    assert kept.read_bytes() == foreign  # set aside untouched, for inspection


def test_another_runs_journal_never_counts_as_done(other_dir):
    from hoi_fast.store import done_masks

    tmp_path = other_dir
    foreign = foreign_journal(tmp_path, config(root_seed=7))
    path = killed_run(tmp_path / "part.h5", n_cells=0)
    write_journal(path, foreign)
    assert not done_masks(path, ["gmm"])["gmm"].any() and read_journal(path) == []


def test_a_new_file_sets_aside_an_orphan_journal(tmp_path):
    """A journal beside a missing results file belongs to no file: kept aside, not deleted, not merged."""
    path = killed_run(tmp_path / "part.h5")
    orphan = journal_bytes(path)
    path.unlink()
    notes = resume(path)
    assert_complete_and_correct(path)
    assert len(notes) == 1 and set_aside_files(path)[0].read_bytes() == orphan


def test_overwrite_drops_the_journal_of_the_file_it_replaces(tmp_path):
    path = killed_run(tmp_path / "part.h5")
    notes = []
    writer = ResultsWriter(path, [layout()], config(root_seed=7), overwrite=True, warn=notes.append)
    for index in all_cells():
        writer.write_cell("gmm", index, metrics(config(root_seed=7), index))
    writer.close(finished=True)
    assert notes == [] and not set_aside_files(path)
    assert_complete_and_correct(path, config(root_seed=7))


# -- records checked against the file before use -----------------------------

def misfits():
    good = metrics(config(), (0, 0))
    return {
        "unknown group": ("ngram", (0, 0), good),
        "index outside the grid": ("gmm", (0, 4), good),
        "index of too many dimensions": ("gmm", (0, 0, 0), good),
        "a missing metric": ("gmm", (0, 0), {k: v for k, v in good.items() if k != "means"}),
        "an unknown metric": ("gmm", (0, 0), {**good, "extra": np.zeros(GENERATIONS)}),
        "more generations": ("gmm", (0, 0), {**good, "real_nll": np.zeros(GENERATIONS + 1)}),
        "a longer extra dimension": ("gmm", (0, 0), {**good, "counts": np.zeros((GENERATIONS, SYMBOLS + 1))}),
    }


@pytest.mark.parametrize("case", sorted(misfits()))
def test_a_record_that_does_not_fit_sets_the_journal_aside(tmp_path, case):
    path = killed_run(tmp_path / "part.h5")
    data = journal_bytes(path)
    header = _journal_header(file_identity(path))
    assert data.startswith(header)  # the header names this file: only the record is wrong
    write_journal(path, data + _encode_cell(*misfits()[case]))
    notes = resume(path)
    assert_complete_and_correct(path)
    assert len(notes) == 1 and "does not fit" in notes[0]


def test_writer_refuses_a_cell_that_does_not_fit(tmp_path):
    from hoi_fast.store import ResultsFileError

    writer = ResultsWriter(tmp_path / "r.h5", [layout()], config(), flush_seconds=0)
    for case, cell in misfits().items():
        with pytest.raises(ResultsFileError, match="does not fit"):
            writer.write_cell(*cell)
    writer.close()
    assert not os.path.exists(journal_path(tmp_path / "r.h5"))


# -- any damage ends with a complete, correct file ---------------------------

def corrupt(data, rng):
    """One random damage: truncation, random bytes or zeros at a random offset, garbage appended, a bit flip.

    Returns the damaged bytes, the kind of damage and the offset of the first damaged byte.
    """
    kind = rng.integers(5)
    at = int(rng.integers(len(data) + 1))
    n = int(rng.integers(1, 4000))
    if kind == 0:
        return data[:at], "truncate", at
    if kind == 1:
        return data[:at] + rng.bytes(n) + data[at + n:], "random bytes", at
    if kind == 2:
        return data[:at] + bytes(n) + data[at + n:], "zeros", at
    if kind == 3:
        return data + (bytes(n) if rng.integers(2) else rng.bytes(n)), "appended", len(data)
    at = min(at, len(data) - 1)
    flip = bytearray(data)
    flip[at] ^= 1 << int(rng.integers(8))
    return bytes(flip), "bit flip", at


def test_journal_damaged_at_random_offsets_always_ends_complete_and_correct(tmp_path):
    """A seeded property test: 30 random damages, each resumed (sometimes killed again) to a correct file.

    The records before the first damaged byte are kept (a damaged header keeps none).
    """
    (tmp_path / "template").mkdir()
    template = killed_run(tmp_path / "template" / "part.h5")
    file_bytes, data = template.read_bytes(), journal_bytes(template)
    header = len(_journal_header(file_identity(template)))
    record = (len(data) - header) // 10
    rng = np.random.default_rng(16)
    for trial in range(30):
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        path = folder / "part.h5"
        path.write_bytes(file_bytes)
        damaged, kind, at = corrupt(data, rng)
        write_journal(path, damaged)
        if kind != "appended" or damaged[len(data):len(data) + 4] != b"CELL":
            kept = (at - header) // record if at >= header else 0
            assert len(read_journal(path)) == kept, (trial, kind, at)
        if rng.integers(2):
            resume(path, stop_after=int(rng.integers(1, 4)))  # killed again mid-resume
        resume(path)
        try:
            assert_complete_and_correct(path)
        except AssertionError as exc:
            raise AssertionError(f"trial {trial} ({kind}): {exc}") from None
        shutil.rmtree(folder)


def test_consolidate_cuts_a_torn_tail_before_anything_is_appended(tmp_path):
    path = killed_run(tmp_path / "part.h5")
    write_journal(path, journal_bytes(path) + b"CELL" + bytes(30))
    notes = []
    assert consolidate(path, warn=notes.append) == 10
    assert len(notes) == 1 and "cut" in notes[0]
    assert not os.path.exists(journal_path(path))
    with h5py.File(path, "r") as f:
        assert f["gmm/done"][...].sum() == 10


def test_records_of_the_older_npz_payload_are_still_merged(tmp_path):
    """Journals written before records became raw float64 (np.savez payloads) resume unchanged."""
    import io
    import struct
    import zlib

    path = killed_run(tmp_path / "part.h5", n_cells=0)
    records = []
    for index in all_cells()[:4]:
        buffer = io.BytesIO()
        np.savez(buffer, __group__=np.array("gmm"), __index__=np.asarray(index, dtype=np.int64),
                 **{f"m_{k}": np.asarray(v, dtype=np.float64) for k, v in metrics(config(), index).items()})
        payload = buffer.getvalue()
        prefix = struct.pack("<4sQ", b"CELL", len(payload))
        records.append(prefix + struct.pack("<I", zlib.crc32(payload, zlib.crc32(prefix))) + payload)
    write_journal(path, _journal_header(file_identity(path)) + b"".join(records))
    cells = read_journal(path)
    assert [c[1] for c in cells] == list(all_cells()[:4])
    for _, index, got in cells:
        want = metrics(config(), index)
        assert set(got) == set(want) and all(np.array_equal(got[k], want[k], equal_nan=True) for k in want)
    resume(path)
    assert_complete_and_correct(path)
