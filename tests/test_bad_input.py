"""Every user mistake of issue 16 is one line naming the argument, exit status 2, and nothing created.

Most cases run ``hoi_fast.grid.main`` in this process (fast); the output
folder must hold nothing but the inputs afterwards.
"""

import math
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np
import pytest

from hoi_fast import gmm, grid
from hoi_fast.experiment import real_count

SMALL = """
[gmm]
components = 2
samples = 60
heldout = 60
tail_heldout = 20
self_samples = 30

[ngram]
order = 3
train_chars = 600
heldout_chars = 400
self_chars = 100
"""
G = ["--jobs", "1", "--alphas", "0,0.5,1", "--seeds", "3", "--generations", "3", "--quiet"]


def check_refused(tmp_path, capsys, args, match, toml=None, extra_toml=""):
    files_before = set(tmp_path.iterdir())
    if toml is None:
        toml = tmp_path / "small.toml"
        toml.write_text(SMALL + extra_toml)
        files_before.add(toml)
    out = tmp_path / "r.h5"
    status = grid.main(["--config", str(toml), "--out", str(out), *G, *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, err
    assert len(err) == 1 and err[0].startswith("python -m hoi_fast.grid: error: "), err
    assert match in err[0], err[0]
    assert set(tmp_path.iterdir()) == files_before  # nothing left behind


@pytest.mark.parametrize("extra, match", [
    ("\n[gmm.truth]\nweights = [1.0]\nmeans = [[1e300, 0.0]]\ncovariances = [[[1.0, 0.0], [0.0, 1.0]]]\n",
     "`gmm.truth.means` must have coordinates of magnitude at most"),
    ("\n[gmm.truth]\nweights = [1.0]\nmeans = [[0.0, 0.0]]\ncovariances = [[[1e300, 0.0], [0.0, 1.0]]]\n",
     "`gmm.truth.covariances` must have entries of magnitude at most"),
], ids=["mean", "covariance"])
def test_truth_scales_beyond_float64_are_refused_up_front(tmp_path, capsys, extra, match):
    toml = tmp_path / "c.toml"
    toml.write_text(SMALL + extra)
    check_refused(tmp_path, capsys, ["--experiment", "gmm"], match, toml=toml)


@pytest.mark.parametrize("section, line, match", [
    ("gmm", "sample_temperature = 1e300", "`gmm.sample_temperature` must be a positive finite number (at most"),
    ("gmm", "reg_covar = true", "`gmm.reg_covar` must be a finite number >= 0"),
    ("gmm", "reg_covar = 1e308", "`gmm.reg_covar` must be a finite number >= 0 (at most 1e+100)"),
    ("gmm", "max_iter = 100000000000000000000", "`gmm.max_iter` must be a positive integer (at most 1,000,000)"),
    ("gmm", "sample_truncation = 0.9999999999", "`gmm.sample_truncation` must be at most 0.999999"),
    ("gmm", "growth = 1e300\nschedule = 'linear'", "`gmm.growth` must be a finite number in [0, 1e6]"),
    ("ngram", "top_k = 100000000000000000000", "`ngram.top_k` must be an integer >= 0"),
    ("ngram", "temperature = 0", "`ngram.temperature` must be a positive finite number"),
], ids=["temperature", "reg_covar-bool", "reg_covar-huge", "max_iter", "truncation", "growth", "top_k", "ngram-T0"])
def test_bad_experiment_settings(tmp_path, capsys, section, line, match):
    toml = tmp_path / "c.toml"
    toml.write_text(SMALL.replace(f"[{section}]", f"[{section}]\n{line}"))
    check_refused(tmp_path, capsys, [], match, toml=toml)


@pytest.mark.parametrize("args, match", [
    (["--alphas", "0,,1"], "`--alphas` has an empty item"),
    (["--alphas", "0,1,"], "`--alphas` has an empty item"),
    (["--alphas", "1"], "`--alphas 1` is a count of α values"),
    (["--alphas", str(10**12)], "`alphas` count must be between 1 and 100,000"),
    (["--seeds", str(10**12)], "`seeds` must be a positive integer (at most 10,000,000)"),
    (["--generations", str(10**9), "--dry-run"], "`generations` must be a positive integer (at most 1,000,000)"),
    (["--root-seed", str(2**64)], "`root_seed` must be an integer in [0, 2**63)"),
    (["--root-seed", "-1"], "`root_seed` must be an integer in [0, 2**63)"),
    (["--sweep", "gmm.samples=200,inf"], "`gmm.samples` sweep values must be integers"),
    (["--sweep", "gmm.samples=200,1e12"], "`gmm.samples` must be a positive integer (at most 100,000,000)"),
    (["--sweep", "gmm.heldout=10,10000000000"], "`gmm.heldout` must be a positive integer (at most 100,000,000)"),
    (["--sweep", "gmm.max_iter=1e20"], "`gmm.max_iter` sweep values must be integers"),
    (["--flush-seconds", "nan"], "`--flush-seconds` must be a number of seconds"),
    (["--out", ""], "`--out` is empty; give a file name"),
    (["--executor", "dask", "--scheduler", "not an address"], "`--scheduler` 'not an address' is not a Dask"),
    (["--experiment", "gmm", "--seeds", "9000000", "--alphas", "50"], "more than 10,000,000"),
    (["--experiment", "ngram", "--generations", "1000000"], "one ngram cell would hold"),
])
def test_bad_flags(tmp_path, capsys, args, match):
    if "--scheduler" in args:
        pytest.importorskip("distributed")
    check_refused(tmp_path, capsys, args, match)


@pytest.mark.parametrize("text, match", [
    ("grid = 5\n", "`grid` must be a table"),
    ("[grid]\nroot_seed = 'many'\n", "`root_seed` must be an integer"),
    ("[grid]\nregime = 5\n", "`regime` must be one of"),
    ("[grid]\nexperiment = 5\n", "`--experiment`"),
    ("[gmm]\nreg_covar = true\n", "`gmm.reg_covar`"),
    ("[" * 100_000 + "]" * 100_000, "`--config`"),
    ("a = " + "[" * 100_000 + "]" * 100_000, "`--config`"),
    ("[vae]\nx = 1\n", "`[vae]` names no experiment that runs"),
    ("\x00\xff garbage", "`--config`"),
])
def test_bad_toml(tmp_path, capsys, text, match):
    toml = tmp_path / "bad.toml"
    toml.write_bytes(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
    check_refused(tmp_path, capsys, [], match, toml=toml)


@pytest.mark.parametrize("path, match", [("folder", "is a folder"), ("/dev/null", "is not a regular file"),
                                         ("missing.toml", "does not exist")])
def test_config_that_is_not_a_file(tmp_path, capsys, path, match):
    if path == "folder":
        (tmp_path / "folder").mkdir()
        path = tmp_path / "folder"
    elif path == "missing.toml":
        path = tmp_path / path
    check_refused(tmp_path, capsys, [], match, toml=path)


def test_a_byte_order_mark_is_accepted(tmp_path, capsys):
    toml = tmp_path / "bom.toml"
    toml.write_bytes(b"\xef\xbb\xbf" + SMALL.encode())
    assert grid.main(["--config", str(toml), "--out", str(tmp_path / "r.h5"), *G, "--experiment", "gmm",
                      "--dry-run"]) == 0


def test_a_filter_that_accepts_nothing_is_caught_before_any_file(tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text(SMALL.replace("[gmm]", "[gmm]\nfilter = 'verifier'\nverifier_c = 1e12"))
    check_refused(tmp_path, capsys, ["--experiment", "gmm"], "accepted only", toml=toml)


def test_a_cell_with_a_non_finite_metric_is_never_marked_done(tmp_path, capsys):
    # a variance that grows by 1e6 per generation overflows float64 after ~20 generations
    toml = tmp_path / "c.toml"
    toml.write_text(SMALL.replace("components = 2", "sample_temperature = 1e6\ncomponents = 1")
                    + "\n[gmm.truth]\nweights = [1.0]\nmeans = [[0.0, 0.0]]\ncovariances = [[[1e90, 0.0], [0.0, 1e90]]]\n")
    out = tmp_path / "r.h5"
    status = grid.main(["--config", str(toml), "--out", str(out), "--jobs", "1", "--alphas", "1.0", "--seeds", "1",
                        "--generations", "40", "--quiet", "--experiment", "gmm"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert " is inf " in err[0] or " is nan " in err[0] or " is -inf " in err[0], err[0]
    assert "the cell is not stored" in err[0] and "cell (alpha = 1, seed 0)" in err[0]
    if out.exists():
        import h5py

        with h5py.File(out, "r") as f:
            assert not f["gmm/done"][...].any()


def test_gmm_fit_refuses_data_beyond_its_range():
    X = np.random.default_rng(0).standard_normal((100, 2))
    with pytest.raises(ValueError, match="`X` has coordinates beyond 1e\\+50 in magnitude"):
        gmm.fit(X * 1e150, 2, seed=1)
    with pytest.raises(ValueError, match="`reg_covar` must be a finite number >= 0 \\(at most 1e\\+100\\)"):
        gmm.fit(X, 2, seed=1, reg_covar=1e308)
    assert np.isfinite(gmm.fit(X * 1e40, 2, seed=1).log_likelihood)


@pytest.mark.parametrize("alpha, n, m", [(0.9, 25, 3), (0.9, 5, 1), (0.5, 3, 2), (0.5, 1, 1), (0.7, 5, 2),
                                         (0.3, 5, 4), (0.1, 5, 5), (0.95, 10, 1), (0.99, 50, 1), (1.0, 7, 0)])
def test_real_counts_round_halves_up_exactly(alpha, n, m):
    assert real_count(alpha, n) == m


def test_real_counts_match_exact_decimal_arithmetic():
    rng = np.random.default_rng(3)
    for _ in range(3000):
        digits = int(rng.integers(1, 5))
        alpha = round(float(rng.random()), digits)
        n = int(rng.integers(1, 2000))
        exact = math.floor((1 - Fraction(str(alpha))) * n + Fraction(1, 2))
        assert real_count(alpha, n) == exact, (alpha, n)


def test_sigint_is_one_line_and_status_130(tmp_path):
    """Ctrl-C at several moments of a run (numba calls included) ends with the interrupted line, never a traceback."""
    toml = tmp_path / "small.toml"
    toml.write_text(SMALL)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    rng = np.random.default_rng(1)
    for trial in range(7):
        out = tmp_path / f"r{trial}.h5"
        proc = subprocess.Popen([sys.executable, "-m", "hoi_fast.grid", "--config", str(toml), "--out", str(out),
                                 "--jobs", "1", "--alphas", "0,0.5,1", "--seeds", "200", "--generations", "5",
                                 "--experiment", "both"], stderr=subprocess.PIPE, text=True, env=env)
        while proc.poll() is None and not (out.exists() or (tmp_path / f"r{trial}.h5.journal").exists()):
            time.sleep(0.01)
        time.sleep(float(rng.uniform(0.0, 0.5)))
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=120)[1]
        if proc.returncode == 0:  # finished before the signal
            continue
        assert proc.returncode == 130, err
        assert "Traceback" not in err and err.strip().splitlines()[-1].endswith(
            "interrupted; re-run the same command to resume"), err


def test_toml_lists_must_hold_numbers(tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text("[grid]\nalphas = [0.0, true]\n" + SMALL)
    status = grid.main(["--config", str(toml), "--out", str(tmp_path / "r.h5"), "--dry-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "`alphas` must be a count or a list of numbers" in err[0]
