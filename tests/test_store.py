"""The results file on its own: layout, UTF-8 coordinates, partial cells, refusal of foreign files."""

import h5py
import numpy as np
import pytest

from hoi_fast.experiment import MetricSpec
from hoi_fast.store import GroupLayout, ResultsFileError, ResultsWriter, read_group, stored_config


def layout(symbols=("a", " ", "\u2400", "\ufffd")):
    return GroupLayout(
        name="ngram",
        cell_dims=(("alpha", np.array([0.0, 1.0])), ("seed", np.arange(3))),
        generations=2,
        specs=(MetricSpec("real_bpc", "bits/char", "bpc"), MetricSpec("counts", "count", "c", ("symbol",))),
        coords={"symbol": np.array(symbols)},
        config={"order": 3},
    )


def test_round_trip_with_utf8_symbols_and_partial_cells(tmp_path):
    path = tmp_path / "r.h5"
    writer = ResultsWriter(path, [layout()], {"root_seed": 3}, "cmd", flush_seconds=0)
    writer.write_cell("ngram", (1, 2), {"real_bpc": np.array([1.5, 2.5]), "counts": np.ones((2, 4))})
    writer.close(finished=False)
    group = read_group(str(path), "ngram")
    assert list(group.coords["symbol"]) == ["a", " ", "\u2400", "\ufffd"]
    assert group.cell_dims == ("alpha", "seed") and group.sweep_dims == ()
    assert group.done.sum() == 1 and group.done[1, 2]
    np.testing.assert_array_equal(group.data["real_bpc"][1, 2], [1.5, 2.5])
    assert np.isnan(group.data["real_bpc"][0]).all()
    assert group.dims["counts"] == ("alpha", "seed", "generation", "symbol")
    assert group.provenance["root_seed"] == 3 and group.provenance["finished"] == ""
    layout_only = read_group(str(path), "ngram", values=False)  # the report's reading: no metric values
    assert layout_only.data == {}
    for field in ("coords", "dims", "attrs", "cell_dims", "config", "provenance"):
        assert repr(getattr(layout_only, field)) == repr(getattr(group, field)), field
    np.testing.assert_array_equal(layout_only.done, group.done)


def test_shorter_extra_dimension_is_padded_with_nan(tmp_path):
    path = tmp_path / "r.h5"
    writer = ResultsWriter(path, [layout()], {}, flush_seconds=0)
    writer.write_cell("ngram", (0, 0), {"real_bpc": np.zeros(2), "counts": np.ones((2, 2))})
    writer.close()
    counts = read_group(str(path), "ngram").data["counts"][0, 0]
    assert np.all(counts[:, :2] == 1) and np.isnan(counts[:, 2:]).all()


def test_other_configuration_is_refused_and_file_untouched(tmp_path):
    path = tmp_path / "r.h5"
    ResultsWriter(path, [layout()], {"a": 1}).close(finished=True)
    before = path.read_bytes()
    with pytest.raises(ResultsFileError, match="different configuration.*--overwrite"):
        ResultsWriter(path, [layout()], {"a": 2})
    assert path.read_bytes() == before
    ResultsWriter(path, [layout()], {"a": 2}, overwrite=True).close()
    assert stored_config(path) == {"a": 2}


def test_foreign_and_missing_files(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = 1
    with pytest.raises(ResultsFileError, match="not a hoi_fast results file"):
        read_group(str(foreign), "gmm")
    with pytest.raises(ResultsFileError, match="does not exist"):
        read_group(str(tmp_path / "missing.h5"), "gmm")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(ResultsFileError, match="cannot be read as HDF5"):
        stored_config(text)


def test_batched_cells_in_any_order_are_written_at_flush(tmp_path):
    path = tmp_path / "r.h5"
    writer = ResultsWriter(path, [layout()], {}, flush_seconds=3600)
    order = [(1, 2), (0, 0), (1, 0), (0, 2), (1, 1)]  # runs of seeds with gaps, out of order
    for a, s in order:
        assert not writer.write_cell("ngram", (a, s), {"real_bpc": np.array([a, s], float),
                                                        "counts": np.full((2, 4), 10 * a + s, float)})
    assert not writer.done_mask("ngram").any()  # nothing durable before the flush
    writer.close(finished=True)
    group = read_group(str(path), "ngram")
    expected_done = np.zeros((2, 3), bool)
    for a, s in order:
        expected_done[a, s] = True
        np.testing.assert_array_equal(group.data["real_bpc"][a, s], [a, s])
        assert np.all(group.data["counts"][a, s] == 10 * a + s)
    np.testing.assert_array_equal(group.done, expected_done)
    assert np.isnan(group.data["real_bpc"][0, 1]).all()


def test_journal_survives_a_kill_and_a_torn_tail_is_ignored(tmp_path):
    from hoi_fast.store import journal_path, read_journal

    path = tmp_path / "r.h5"
    writer = ResultsWriter(path, [layout()], {"k": 1}, flush_seconds=0)
    for s in range(3):
        writer.write_cell("ngram", (0, s), {"real_bpc": np.array([s, s], float), "counts": np.ones((2, 4))})
    # killed here: no close(); the results file itself was never modified in place
    assert not read_group(str(path), "ngram").done.any()
    assert [cell[1] for cell in read_journal(str(path))] == [(0, 0), (0, 1), (0, 2)]
    with open(journal_path(str(path)), "r+b") as fh:  # a kill in the middle of an append
        fh.truncate(fh.seek(0, 2) - 7)
    assert len(read_journal(str(path))) == 2
    (tmp_path / "r.h5.consolidating").write_bytes(b"garbage from a kill during consolidation")
    notes = []
    resumed = ResultsWriter(path, [layout()], {"k": 1}, warn=notes.append)  # resume: intact cells become done
    assert len(notes) == 1 and "bytes after its last intact record were cut" in notes[0]
    np.testing.assert_array_equal(resumed.done_mask("ngram")[0], [True, True, False])
    resumed.close(finished=True)
    group = read_group(str(path), "ngram")
    np.testing.assert_array_equal(group.data["real_bpc"][0, 1], [1, 1])
    assert group.provenance["finished"] and not (tmp_path / "r.h5.journal").exists()


def test_provenance_records_the_cpu_when_hoi_fast_machine_exists(tmp_path, monkeypatch):
    import sys
    import types

    from hoi_fast.store import versions

    monkeypatch.delattr("hoi_fast.machine", raising=False)  # the real module, if imported before
    monkeypatch.setitem(sys.modules, "hoi_fast.machine", None)  # absent: skipped
    assert "cpu_model" not in versions()
    fake = types.SimpleNamespace(cpu_model=lambda: "AMD EPYC 7B13", cpu_flags=lambda: ["avx2", "fma"])
    monkeypatch.setitem(sys.modules, "hoi_fast.machine", fake)
    found = versions()
    assert found["cpu_model"] == "AMD EPYC 7B13" and found["cpu_flags"] == "avx2 fma"
    ResultsWriter(tmp_path / "r.h5", [layout()], {}).close()
    assert read_group(str(tmp_path / "r.h5"), "ngram").provenance["cpu_flags"] == "avx2 fma"


def test_storing_seconds_measures_in_memory_and_writes_nothing(tmp_path, monkeypatch):
    """What --dry-run adds per cell: a positive time, measured without touching the disk."""
    from hoi_fast.store import storing_seconds

    monkeypatch.chdir(tmp_path)
    seconds = storing_seconds(layout(), {"real_bpc": np.array([1.5, 2.5]), "counts": np.ones((2, 4))})
    assert 0 < seconds < 1 and list(tmp_path.iterdir()) == []


def test_metric_chunks_hold_whole_cells_of_about_one_mebibyte(tmp_path):
    from hoi_fast.store import schema

    assert schema._chunks((50, 100, 20), 1) == (1, 100, 20)  # scalars: a whole α row
    assert schema._chunks((50, 100, 20, 1000), 1) == (1, 6, 20, 1000)  # 160 KB cells: 6 per chunk
    assert schema._chunks((50, 3, 100, 20, 10, 10), 2) == (1, 1, 65, 20, 10, 10)  # a sweep axis: one value
    assert schema._chunks((2, 1, 20, 10**6), 1) == (1, 1, 20, 10**6)  # a cell above 1 MiB: one per chunk


def test_mid_run_consolidations_keep_to_a_share_of_the_run_and_a_journal_size(tmp_path, monkeypatch):
    """The next consolidation waits CONSOLIDATE_SECONDS, or 1/CONSOLIDATE_SHARE times the last one's
    duration if longer; a journal of CONSOLIDATE_BYTES is moved at once (a fake clock: nothing timed).
    The writer reads ``consolidate`` and the settings in its own module, so they are patched there."""
    from hoi_fast.store import writer as store_writer

    clock = [1000.0]
    monkeypatch.setattr(store_writer.time, "monotonic", lambda: clock[0])
    moved = []
    real = store_writer.consolidate

    def slow_consolidate(path, finished=False, warn=None):  # each consolidation "takes" 12 s
        moved.append(clock[0])
        clock[0] += 12.0
        return real(path, finished=finished, warn=warn)

    monkeypatch.setattr(store_writer, "consolidate", slow_consolidate)
    path = tmp_path / "r.h5"
    writer = ResultsWriter(path, [layout()], {}, flush_seconds=0)
    moved.clear()  # (creating the file consolidates nothing: only count the writer's own)
    cell = {"real_bpc": np.zeros(2), "counts": np.ones((2, 4))}

    def write_at(t, index):
        clock[0] = t
        writer.write_cell("ngram", index, cell)

    write_at(1000.0 + store_writer.CONSOLIDATE_SECONDS - 1, (0, 0))
    assert moved == []
    write_at(1000.0 + store_writer.CONSOLIDATE_SECONDS, (0, 1))
    assert moved == [1030.0]  # the first: CONSOLIDATE_SECONDS after the start
    # it took 12 s: the next one is due 12 / CONSOLIDATE_SHARE = 120 s after it ended (> 30 s)
    write_at(1042.0 + 119.0, (0, 2))
    assert len(moved) == 1
    write_at(1042.0 + 120.0, (1, 0))
    assert moved == [1030.0, 1162.0]
    # a journal of CONSOLIDATE_BYTES is moved at once, whatever the clock
    monkeypatch.setattr(store_writer, "CONSOLIDATE_BYTES", 1)
    write_at(1175.0, (1, 1))
    assert moved == [1030.0, 1162.0, 1175.0]
    writer.close(finished=True)
    assert read_group(str(path), "ngram").done.sum() == 5
