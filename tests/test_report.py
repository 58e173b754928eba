"""The report end to end on fake results files, and its command-line errors.

The files are written through the real store (``ResultsWriter`` with the real
layouts and metric specs) but filled with synthetic numbers from a planted
model, so the report's statements can be checked against the plant.
"""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hoi_fast import report, stats
from hoi_fast.experiment import MetricSpec
from hoi_fast.report.cli import _experiment_words
from hoi_fast.store import GroupLayout, ResultsWriter

GMM_SPECS = (
    MetricSpec("real_nll", "nats", "mean negative log-likelihood of real held-out points", role="real"),
    MetricSpec("tail_nll", "nats", "mean negative log-likelihood of held-out tail points", role="tail"),
    MetricSpec("self_nll", "nats", "mean negative log-likelihood of the model's own samples", role="self"),
    MetricSpec("kl", "nats", "KL(truth || model), Monte Carlo"),
    MetricSpec("weights", "1", "mixture weights", ("component",)),
)
NGRAM_SPECS = (
    MetricSpec("real_bpc", "bits/char", "cross-entropy on real held-out text", role="real"),
    MetricSpec("tail_bpc", "bits/char", "cross-entropy on rare held-out contexts", role="tail"),
    MetricSpec("self_bpc", "bits/char", "cross-entropy on the model's own samples", role="self"),
    MetricSpec("char_counts", "1", "character counts of the training set", ("symbol",)),
)
THRESHOLD = 0.5  # planted: alpha >= THRESHOLD degrades, below it nothing happens


def planted(alpha, seed, generations, base, rng, sweep=1.0):
    """Metrics of one fake cell: flat below THRESHOLD, rising after it; paired at generation 0."""
    g = np.arange(generations)
    seed_rng = np.random.default_rng([seed, 7])  # shared by every alpha: common random numbers
    level = base + 0.05 * seed_rng.standard_normal()
    noise = 0.004 * rng.standard_normal(generations)
    noise[0] = 0.0
    effect = sweep * 0.08 * base * g * max(0.0, alpha - THRESHOLD + 0.1) / 0.6 * (alpha >= THRESHOLD)
    real = level + effect + noise
    gap = 0.02 * base * alpha * g
    return {"real": real, "tail": 1.6 * level + 2.5 * effect + 2 * noise, "self": real - gap}


def write_fake(path, alphas=(0.0, 0.2, 0.4, 0.5, 0.7, 1.0), seeds=12, generations=5, sweep=None,
               done=None, experiments=("gmm", "ngram")):
    """Write a fake results file; ``done(name, alpha_index, seed)`` picks the cells written."""
    alphas = np.asarray(alphas, dtype=np.float64)
    layouts = []
    for name in experiments:
        dims = [("alpha", alphas)]
        if sweep is not None and name == "gmm":
            dims.append(sweep)
        dims.append(("seed", np.arange(seeds, dtype=np.int64)))
        specs = GMM_SPECS if name == "gmm" else NGRAM_SPECS
        coords = {"component": np.arange(3)} if name == "gmm" else {"symbol": np.array(list("abc"))}
        layouts.append(GroupLayout(name, tuple(dims), generations, specs, coords, {"fake": True}))
    writer = ResultsWriter(path, layouts, {"grid": "fake"}, command_line="fake grid", flush_seconds=0)
    for layout in layouts:
        sweep_values = layout.cell_dims[1][1] if len(layout.cell_dims) == 3 else [None]
        for a, alpha in enumerate(alphas):
            for w, value in enumerate(sweep_values):
                for s in range(seeds):
                    if done is not None and not done(layout.name, a, s):
                        continue
                    rng = np.random.default_rng([a, w, s, 1 if layout.name == "gmm" else 2])
                    m = planted(alpha, s, generations, 2.8 if layout.name == "gmm" else 2.2, rng,
                                1.0 if value is None else float(value))
                    index = (a, s) if value is None else (a, w, s)
                    writer.write_cell(layout.name, index, _metrics(layout.name, m, generations))
    writer.close(finished=done is None)
    return path


def _metrics(name, m, generations):
    if name == "gmm":
        return {"real_nll": m["real"], "tail_nll": m["tail"], "self_nll": m["self"],
                "kl": m["real"] - 2.7, "weights": np.full((generations, 3), 1 / 3)}
    return {"real_bpc": m["real"], "tail_bpc": m["tail"], "self_bpc": m["self"],
            "char_counts": np.ones((generations, 3))}


def run_cli(*args):
    """The command line in a fresh interpreter, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "hoi_fast.report", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def run_main(capsys, *args):
    """The same entry point in this process (no interpreter start-up): (status, stderr)."""
    status = report.main([str(a) for a in args])
    return status, capsys.readouterr().err


FAST = ("--n-resamples", "999", "--alpha-resamples", "500")


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return str(write_fake(tmp_path_factory.mktemp("fake") / "results.h5"))


@pytest.fixture(scope="module")
def cli_report(fake, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    result = run_cli(fake, "--out", out, *FAST)
    return out, result


def _assert_nontrivial_png(path):
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] >= 300 and image.shape[1] >= 500
    rgb = image[..., :3].reshape(-1, 3)
    assert rgb.std(axis=0).max() > 0.05  # not a single colour
    # many distinct colours: lines, bands, colour bars
    packed = np.round(rgb * 255).astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], np.uint32)
    assert len(np.unique(packed)) > 50


def test_report_end_to_end_writes_figures_and_names_alpha_star(cli_report):
    out, result = cli_report
    assert result.returncode == 0, result.stderr
    names = sorted(os.listdir(out))
    for experiment in ("gmm", "ngram"):
        for kind in ("collapse", "degradation", "critical_alpha", "survival", "gap", "tail"):
            assert f"{experiment}_{kind}.png" in names
            _assert_nontrivial_png(os.path.join(out, f"{experiment}_{kind}.png"))
    text = (out / "summary.md").read_text(encoding="utf-8")
    # the planted threshold is found at the last generation in both experiments
    assert text.count(f"**α\\* = {THRESHOLD:g}** at generation 4") == 2
    # the first lines of each experiment: α*, generations to collapse and the rate, before the details
    for experiment in ("gmm", "ngram"):
        section = text.split(f"## {experiment}\n\n", 1)[1]
        first = section.split("\n\n")[:3]
        assert first[0].startswith(f"**α\\* = {THRESHOLD:g}**") and "fixed-sequence" in first[0]
        assert first[1].startswith("**Generations to collapse**") and "α = 1: 1 (1–1)" in first[1]
        assert first[2].startswith("**Rate:**") and "at α = 1 by " in first[2] and " ± " in first[2]
    assert "seeds: 12 per α" in text and "generations: 5" in text
    assert "fake grid" in text  # provenance: the command line of the file
    for figure in ("gmm_collapse.png", "ngram_tail.png"):
        assert f"]({figure})" in text
    assert "Partial results" not in text


def test_workers_and_serial_run_write_the_same_report(fake, cli_report, tmp_path, capsys):
    # the CLI run above reports both experiments at once in forked workers (on Linux with 2+ cores)
    out, result = cli_report
    serial = tmp_path / "serial"
    status, err = run_main(capsys, fake, "--out", serial, "--jobs", "1", *FAST)
    assert status == 0, err

    def body(folder):
        return [line for line in (folder / "summary.md").read_text(encoding="utf-8").splitlines()
                if not line.startswith("Written ")]

    assert body(serial) == body(out)
    for png in sorted(p.name for p in serial.glob("*.png")):
        assert (serial / png).read_bytes() == (out / png).read_bytes(), png


def test_report_alpha_star_matches_stats(fake):
    loaded = report.load(fake, "gmm")
    options = report.Options(n_resamples=999, alpha_resamples=500)
    analysis = report.analyse(loaded.facets[0], options)
    direct = stats.critical_alpha(loaded.facets[0].real, loaded.facets[0].alphas,
                                  n_resamples=500, rng=np.random.default_rng([0, 0, 5]))
    np.testing.assert_array_equal(analysis.critical.per_generation, direct.per_generation)
    np.testing.assert_array_equal(analysis.critical.per_generation_low, direct.per_generation_low)
    assert analysis.critical.value == THRESHOLD and analysis.critical.rule == "sequence"
    # the planted effect grows by generation above the threshold: the isotonic
    # threshold lies between the last flat α (0.4) and the threshold
    assert 0.4 < analysis.thresholds["isotonic"].value <= THRESHOLD
    # every α at or above the threshold collapses at generation 1; none below
    surv = analysis.survival
    np.testing.assert_array_equal(surv.median, [np.inf, np.inf, np.inf, 1, 1, 1])
    np.testing.assert_array_equal(surv.never[:3], 1)
    # the rate: the planted slope 0.08 * 2.8 * (α - 0.4) / 0.6 per generation above the threshold
    planted_slope = 0.08 * 2.8 * (loaded.facets[0].alphas - THRESHOLD + 0.1) / 0.6 * (loaded.facets[0].alphas >= THRESHOLD)
    np.testing.assert_allclose(analysis.rate.slope.mean, planted_slope, atol=0.003)
    # generation 0 is paired and identical across alpha: zero-width degradation
    assert np.all(analysis.degradation_mean[:, 0] == 0)


def test_partial_file_uses_done_cells_and_says_so(tmp_path, capsys):
    # alpha row 1.0 not started, alpha 0.7 half done; ngram untouched rows too
    path = write_fake(tmp_path / "partial.h5", done=lambda name, a, s: a < 4 or (a == 4 and s < 6))
    out = tmp_path / "rep"
    status, err = run_main(capsys, path, "--out", out, *FAST)
    assert status == 0, err
    text = (out / "summary.md").read_text(encoding="utf-8")
    assert "**Partial results:** 54 of 72 cells are done" in text
    assert "the grid has not finished" in text
    assert "| 0.7 |" in text and "| 6 |" in text  # the half-done row, with its 6 seeds
    loaded = report.load(str(path), "gmm")
    assert np.isnan(loaded.facets[0].real[5]).all()  # not-done cells are masked


def test_sweep_dimension_is_faceted(tmp_path, capsys):
    path = write_fake(tmp_path / "sweep.h5", sweep=("strength", np.array([0.5, 1.0])),
                      experiments=("gmm",))
    out = tmp_path / "rep"
    status, err = run_main(capsys, path, "--out", out, *FAST)
    assert status == 0, err
    text = (out / "summary.md").read_text(encoding="utf-8")
    assert "### strength = 0.5" in text and "### strength = 1" in text
    assert text.count("*strength = 0.5:* **α\\* =") == 1 and text.count("*strength = 1:* **α\\* =") == 1
    _assert_nontrivial_png(out / "gmm_survival.png")
    _assert_nontrivial_png(out / "gmm_collapse.png")


def test_options_alphas_metric_and_t_method(fake, tmp_path, capsys):
    out = tmp_path / "rep"
    status, err = run_main(capsys, fake, "--out", out, "--experiment", "gmm", "--metric", "kl",
                           "--alphas", "0,1", "--method", "t", "--generation", "2", *FAST)
    assert status == 0, err
    text = (out / "summary.md").read_text(encoding="utf-8")
    assert "`kl`" in text and "Student-t" in text and "generation 2" in text
    assert "ngram" not in text.split("## Provenance")[0]
    # kl has no self_/tail_ counterpart: those figures are skipped, the rest are drawn
    assert sorted(os.listdir(out)) == ["gmm_collapse.png", "gmm_critical_alpha.png",
                                       "gmm_degradation.png", "gmm_survival.png", "summary.md"]


def test_alpha_rule_first_is_the_old_rule(fake, tmp_path, capsys):
    out = tmp_path / "rep"
    status, err = run_main(capsys, fake, "--out", out, "--experiment", "gmm", "--alpha-rule", "first", *FAST)
    assert status == 0, err
    text = (out / "summary.md").read_text(encoding="utf-8")
    assert "(first α whose own test passes)" in text and "the smallest α whose own test passes" in text
    assert "| generation | first-passing α* |" in text


def test_only_the_drawn_metrics_are_read(fake, monkeypatch):
    read = []
    original = report.Group.read

    def spy(self, metric):
        read.append(metric)
        return original(self, metric)

    monkeypatch.setattr(report.Group, "read", spy)
    report.load(fake, "ngram")
    assert sorted(read) == ["real_bpc", "self_bpc", "tail_bpc"]  # never char_counts


def test_experiment_words_expand_registry_aliases():
    assert _experiment_words("both") == ["gmm", "ngram"]
    assert _experiment_words("gmm, mypkg.mod:Exp") == ["gmm", "mypkg.mod:Exp"]


def _error_paths(tmp_path, fake):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = 1
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    return {"missing": tmp_path / "nope.h5", "foreign": foreign, "text": text, "fake": fake}


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "does not exist"),
    (["{foreign}"], "is not a hoi_fast results file"),
    (["{fake}", "--metric", "real_bpc"], "`--metric` real_bpc is not in the gmm results"),
    (["{fake}", "--level", "2"], "argument --level: must be strictly between 0 and 1"),
    (["{fake}", "--seed=-1"], "argument --seed: must be an integer in [0, 2**63)"),
    (["{fake}", "--n-resamples", str(10**12)], "argument --n-resamples: must be an integer in 1..100000"),
    (["{fake}", "--alpha-resamples", "1e6"], "argument --alpha-resamples: must be an integer in 1..20000"),
    (["{fake}", "--generation", "9"], "`--generation` 9 is out of range"),  # fails inside the workers
])
def test_cli_errors_are_one_line_exit_2(fake, tmp_path, args, message):
    args = [a.format(**_error_paths(tmp_path, fake)) for a in args] + ["--out", tmp_path / "out"]
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert message in lines[0]
    assert not (tmp_path / "out").exists()  # nothing written on error


@pytest.mark.parametrize("args, message", [
    (["{text}"], "cannot be read as HDF5"),
    (["{fake}", "--experiment", "gmm", "--metric", "weights"], "choose a per-generation scalar"),
    (["{fake}", "--alphas", "0.3"], "`--alphas` value 0.3 is not in the grid"),
    (["{fake}", "--generation", "9"], "`--generation` 9 is out of range"),
    (["{fake}", "--out", "{text}"], "`--out` {text} is a file"),
])
def test_main_errors_are_one_line_exit_2(fake, tmp_path, capsys, args, message):
    paths = _error_paths(tmp_path, fake)
    args = [a.format(**paths) for a in args]
    if "--out" not in args:
        args += ["--out", tmp_path / "out"]
    status, err = run_main(capsys, *args)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message.format(**paths) in lines[0]
    assert not (tmp_path / "out").exists()  # a failed report leaves no folder it made


def test_unwritable_out_folder_is_one_line_and_leaves_nothing(fake, tmp_path, capsys):
    """An `--out` folder (or its parent) the report may not write into is refused before any work
    (`os.access`; as root an immutable folder stands in for a read-only one)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    immutable = os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(locked)]).returncode == 0
    try:
        if os.geteuid() == 0 and not immutable:
            pytest.skip("root without chattr: every folder is writable")
        for out in (locked, locked / "sub"):
            status, err = run_main(capsys, fake, "--out", out)
            lines = err.strip().splitlines()
            assert status == 2 and len(lines) == 1 and "is not writable; choose another --out" in lines[0]
        assert list(locked.iterdir()) == []
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(locked)])
        os.chmod(locked, 0o755)


def test_help_documents_options():
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in ("--metric", "--alphas", "--level", "--n-resamples", "--method", "--out",
                 "--simultaneous", "--tolerance", "--alpha-rule", "--jobs"):
        assert flag in result.stdout


def test_missing_alpha_zero_skips_degradation(tmp_path, capsys):
    path = write_fake(tmp_path / "noz.h5", alphas=(0.2, 0.6, 1.0), experiments=("ngram",))
    out = tmp_path / "rep"
    status, err = run_main(capsys, path, "--out", out, *FAST)
    assert status == 0, err
    text = (out / "summary.md").read_text(encoding="utf-8")
    assert "the grid has no α = 0" in text
    assert not (out / "ngram_degradation.png").exists()
    assert (out / "ngram_collapse.png").exists()
