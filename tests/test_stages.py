"""Where a cell's time goes (``hoi_fast.stages``, ``python -m hoi_fast.grid --dry-run --profile``).

Nothing here compares timings with a bound: the clock is either a fake one
whose ticks the test chooses, or the stages are checked for what they must
be whatever the machine (present, non-negative).
"""

from pathlib import Path

import numpy as np

from hoi_fast import experiment as _exp
from hoi_fast import grid, ngram, stages
from hoi_fast.experiments import resolve, streams
from hoi_fast.experiments.ngram import NGramConfig, NGramExperiment
from test_bad_input import SMALL  # a tiny gmm and ngram

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_a_nested_stage_is_counted_once():
    now = FakeClock()
    clock = stages.StageClock(now)
    with clock.stage("other"):
        now.t += 1.0
        with clock.stage("fit"):
            now.t += 2.0
            with clock.stage("check"):
                now.t += 4.0
            assert clock.current() == "fit"
        now.t += 8.0
        with clock.stage("fit"):
            now.t += 16.0
    assert clock.current() is None
    assert dict(clock.total) == {"other": 9.0, "fit": 18.0, "check": 4.0}
    assert sum(clock.total.values()) == now.t


def _check_stages(result, expected):
    assert set(result) == set(expected) | {"total"}, result
    assert all(v >= 0 for v in result.values()), result


def test_ngram_stages_split_the_metrics_and_restore_every_method():
    originals = {name: vars(ngram.NGramModel)[name] for name in ("_score", "_score_distinct", "_sample")}
    call, next_parts = _exp.RowCheck.__call__, _exp.next_training_parts
    experiment = NGramExperiment(NGramConfig(order=3, train_chars=600, heldout_chars=400, self_chars=100))
    before = _exp.run_cell(experiment, 0.5, 4, "mix", streams("ngram", 0, 7, 0.5))
    result = stages.cell_stages(experiment, "ngram", 0.5, "mix", 4, lambda s: streams("ngram", 0, s, 0.5), cells=2)
    _check_stages(result, {"build set", "sample", "fit", "held-out", "self", "check", "other", "store"})
    assert {name: vars(ngram.NGramModel)[name] for name in originals} == originals
    assert _exp.RowCheck.__call__ is call and _exp.next_training_parts is next_parts
    assert not {"fit", "synthesize", "metrics"} & set(vars(experiment))  # the instance's own methods again
    after = _exp.run_cell(experiment, 0.5, 4, "mix", streams("ngram", 0, 7, 0.5))
    for name in before:  # timing a cell changes none of its numbers
        np.testing.assert_array_equal(after[name], before[name])


def test_a_storing_probe_is_the_store_stage(monkeypatch):
    seen, encoded = [], []

    def storing(result):
        seen.append(result)
        return 0.75  # seconds per cell, as hoi_fast.store.storing_seconds returns them

    monkeypatch.setattr(stages, "_encode_cell", lambda *a: encoded.append(a))
    monkeypatch.setitem(stages.CLOCKS, "frozen", lambda: 0.0)  # every timed stage takes 0 s
    experiment = NGramExperiment(NGramConfig(order=3, train_chars=600, heldout_chars=400, self_chars=100))
    streams_of = lambda s: streams("ngram", 0, s, 0.5)  # noqa: E731
    result = stages.cell_stages(experiment, "ngram", 0.5, "mix", 4, streams_of, cells=2, clock="frozen",
                                storing=storing)
    assert len(seen) == 3 and not encoded  # every cell, the warm-up one too; no journal encoding besides
    assert all(r["real_bpc"].shape == (4,) for r in seen)
    assert result["store"] == 0.25 and result["total"] == 0.25  # 0.75 s a cell over its 3 timed generations
    stages.cell_stages(experiment, "ngram", 0.5, "mix", 4, streams_of, cells=1, clock="frozen")
    assert len(encoded) == 2  # without the probe: the journal record of each cell


def test_the_gmm_metrics_split_into_held_out_and_self():
    entry = resolve("gmm")
    config = entry.config_class(components=2, samples=60, heldout=60, tail_heldout=20, self_samples=30)
    result = stages.cell_stages(entry.experiment_class(config), "gmm", 0.5, "accumulate", 3,
                                lambda s: streams("gmm", 0, s, 0.5), cells=1)
    _check_stages(result, {"build set", "sample", "fit", "held-out", "self", "check", "other", "store"})


def test_a_plugin_without_probes_has_one_metrics_stage(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    from kde_experiment import KDEConfig, KDEExperiment

    spec = "kde_experiment:KDEExperiment"
    result = stages.cell_stages(KDEExperiment(KDEConfig()), spec, 0.9, "mix", 3,
                                lambda s: streams(spec, 0, s, 0.9), cells=1, clock="wall")
    _check_stages(result, {"build set", "sample", "fit", "metrics", "check", "other", "store"})


def test_the_table_shows_each_row_its_stages_and_shares():
    text = stages.table({"a": {"fit": 0.003, "other": 0.001, "total": 0.004},
                         "b (order = 2)": {"fit": 0.001, "metrics": 0.001, "total": 0.002}})
    lines = text.splitlines()
    assert lines[0] == "| experiment | fit | metrics | other | total |"
    assert lines[2] == "| a | 3.000 (75%) | 0.000 (0%) | 1.000 (25%) | 4.000 |"
    assert lines[3] == "| b (order = 2) | 1.000 (50%) | 1.000 (50%) | 0.000 (0%) | 2.000 |"


def _dry(tmp_path, capsys, *args):
    toml = tmp_path / "small.toml"
    toml.write_text(SMALL)
    out = tmp_path / "r.h5"
    status = grid.main(["--config", str(toml), "--out", str(out), "--jobs", "1", "--alphas", "0,0.5,1",
                        "--seeds", "2", *args])
    captured = capsys.readouterr()
    assert not out.exists()
    return status, captured.out, captured.err


def test_dry_run_profile_prints_a_row_per_experiment_and_swept_value(tmp_path, capsys):
    status, out, err = _dry(tmp_path, capsys, "--experiment", "gmm,ngram", "--generations", "3",
                            "--sweep", "ngram.smoothing=kneser-ney,add-k", "--dry-run", "--profile")
    assert status == 0, err
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("stages: "))
    assert "generations 1-2" in lines[head] and "alpha = 0.5, mix" in lines[head]
    rows = [line.split(" | ")[0].lstrip("| ") for line in lines[head + 3:]]
    assert rows == ["gmm", "ngram (smoothing = kneser-ney)", "ngram (smoothing = add-k)"]
    assert lines[head + 1].startswith("| experiment | build set | sample | fit | held-out | self |")


def test_dry_run_profile_counts_what_the_parent_spends_storing(tmp_path, capsys, monkeypatch):
    layouts = []

    def storing(layout, result):
        layouts.append((layout.name, layout.generations))
        return 7.0  # seconds per cell

    monkeypatch.setattr(grid, "storing_seconds", storing)
    status, out, err = _dry(tmp_path, capsys, "--experiment", "gmm", "--generations", "3", "--dry-run", "--profile")
    assert status == 0, err
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("stages: "))
    columns = lines[head + 1].split(" | ")
    store = lines[head + 3].split(" | ")[columns.index("store")]
    assert store.startswith("3500.0"), store  # 7 s a cell over its 2 timed generations, in ms
    assert layouts[-4:] == [("gmm", 3)] * 4  # the run's layout, for the warm-up cell and the 3 timed ones


def test_dry_run_profile_of_generation_0_alone_says_so(tmp_path, capsys):
    status, out, err = _dry(tmp_path, capsys, "--experiment", "gmm", "--generations", "1", "--dry-run", "--profile")
    assert status == 0, err
    assert "stages: nothing to profile" in out


def test_profile_without_dry_run_is_refused_in_one_line(tmp_path, capsys):
    status, out, err = _dry(tmp_path, capsys, "--experiment", "gmm", "--generations", "3", "--profile")
    assert status == 2
    assert err.strip() == ("python -m hoi_fast.grid: error: `--profile` times the stages of a dry run; "
                           "add `--dry-run`")
    assert list(tmp_path.iterdir()) == [tmp_path / "small.toml"]
