"""The grid end to end: CLI in a subprocess, xarray schema, determinism, crash safety, errors."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from hoi_fast.store import done_masks

TINY_TOML = """
[grid]
generations = 3

[gmm]
components = 3
samples = 200
heldout = 400
tail_heldout = 100
self_samples = 200

[ngram]
order = 3
train_chars = 3000
heldout_chars = 2000
self_chars = 500
"""


@pytest.fixture
def tiny_toml(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


def grid(*args, check=True, **kwargs):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "hoi_fast.grid", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=600, **kwargs)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def datasets(path):
    """Every dataset of a results file as bytes-comparable arrays."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[...]) if isinstance(obj, h5py.Dataset) else None)
    return out


def assert_same_results(a, b):
    da, db = datasets(a), datasets(b)
    assert da.keys() == db.keys()
    for name in da:
        if da[name].dtype.kind == "O":  # strings: compare values, not object pointers
            assert np.array_equal(da[name], db[name]), name
        else:
            assert da[name].tobytes() == db[name].tobytes(), name


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_tiny_grid_opens_in_xarray_with_labelled_dims(tmp_path, tiny_toml):
    xr = pytest.importorskip("xarray")
    out = tmp_path / "r.h5"
    grid("--config", tiny_toml, "--alphas", "0,0.5,1", "--seeds", 2, "--jobs", 1, "--out", out)
    gmm = xr.open_dataset(out, group="gmm", engine="h5netcdf")
    assert gmm.real_nll.dims == ("alpha", "seed", "generation")
    np.testing.assert_array_equal(gmm.alpha.values, [0, 0.5, 1])
    np.testing.assert_array_equal(gmm.seed.values, [0, 1])
    np.testing.assert_array_equal(gmm.generation.values, [0, 1, 2])
    assert gmm.means.dims == ("alpha", "seed", "generation", "component", "axis")
    assert gmm.covariances.dims[-2:] == ("axis", "axis2")
    assert gmm.real_nll.attrs["units"] == "nats" and gmm.real_nll.attrs["long_name"]
    assert np.all(gmm.done.values == 1)
    assert np.all(np.isfinite(gmm.real_nll.values))
    ngram = xr.open_dataset(out, group="ngram", engine="h5netcdf")
    assert ngram.char_counts.dims == ("alpha", "seed", "generation", "symbol")
    assert ngram.symbol.size == ngram.char_counts.shape[-1] and ngram.symbol.dtype.kind in "UO"
    assert np.all(np.isfinite(ngram.real_bpc.values))
    with h5py.File(out, "r") as f:
        for key in ("config", "hoi_fast_version", "numpy_version", "numba_version", "h5py_version",
                    "command_line", "started", "finished", "root_seed"):
            assert key in f.attrs, key
        assert f.attrs["finished"]
        assert f["gmm/real_nll"].chunks[0] == 1 and f["gmm/real_nll"].compression == "gzip"


def test_jobs_1_and_2_give_identical_files(tmp_path, tiny_toml):
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    common = ("--config", tiny_toml, "--alphas", 3, "--seeds", 6)
    grid(*common, "--jobs", 1, "--out", one)
    grid(*common, "--jobs", 2, "--out", two)
    assert_same_results(one, two)


def test_the_probe_cells_run_in_the_executor_all_submitted_at_once():
    """With an executor, every (experiment, swept values) probe cell is submitted before any result is
    awaited, so the workers build the experiments and compile their kernels side by side."""
    from types import SimpleNamespace

    from hoi_fast.config import GridConfig
    from hoi_fast.grid import probe
    from hoi_fast.runner import probe_cell

    class Deferred:
        """An executor that runs a call when its result is asked for, and logs both."""

        def __init__(self):
            self.log = []

        def submit(self, fn, *args):
            assert fn is probe_cell
            self.log.append(("submit", args[1], dict(args[2])))

            def result():
                self.log.append(("result", args[1], dict(args[2])))
                return fn(*args)
            return SimpleNamespace(result=result)

    config = GridConfig(experiment="categorical,regression", alphas=3, seeds=2, generations=3,
                        configs={"categorical": {"vocab_size": 20, "samples": 50}},
                        sweeps=[("categorical.top_k", "0,2")])
    executor = Deferred()
    probe(config, executor)
    points = [("categorical", {"categorical.top_k": 0}), ("categorical", {"categorical.top_k": 2}),
              ("regression", {})]
    assert executor.log == [("submit", *p) for p in points] + [("result", *p) for p in points]


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, tiny_toml):
    common = ["--config", tiny_toml, "--alphas", 4, "--seeds", 10, "--generations", 4,
              "--experiment", "gmm", "--flush-seconds", 0]
    whole, killed = tmp_path / "whole.h5", tmp_path / "killed.h5"
    grid(*common, "--jobs", 1, "--out", whole)
    proc = subprocess.Popen([sys.executable, "-m", "hoi_fast.grid", *map(str, common), "--jobs", "1",
                             "--out", killed], stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # plain progress lines: kill once some cells are stored
        if "cells (" in line and not line.startswith("[hoi_fast.grid] 0/"):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with h5py.File(killed, "r") as f:  # readable
        f["gmm/real_nll"][...]
    n_done = int(done_masks(str(killed), ["gmm"])["gmm"].sum())  # file + journal
    assert 0 < n_done < 40
    grid(*common, "--jobs", 2, "--out", killed)
    assert_same_results(whole, killed)


def test_other_configuration_is_refused_unless_overwrite(tmp_path, tiny_toml):
    out = tmp_path / "r.h5"
    grid("--config", tiny_toml, "--experiment", "gmm", "--alphas", 2, "--seeds", 1, "--out", out, "--jobs", 1)
    before = digest(out)
    real_nll = datasets(out)["gmm/real_nll"].tobytes()
    proc = grid("--config", tiny_toml, "--experiment", "gmm", "--alphas", 2, "--seeds", 1, "--out", out,
                "--root-seed", 5, check=False)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert digest(out) == before
    # the same configuration again: a resume with nothing left to do, results unchanged
    grid("--config", tiny_toml, "--experiment", "gmm", "--alphas", 2, "--seeds", 1, "--out", out, "--jobs", 1)
    assert digest(out) != before or np.all(datasets(out)["gmm/done"] == 1)
    assert datasets(out)["gmm/real_nll"].tobytes() == real_nll
    grid("--config", tiny_toml, "--experiment", "gmm", "--alphas", 2, "--seeds", 1, "--out", out,
         "--root-seed", 5, "--overwrite", "--jobs", 1)
    with h5py.File(out, "r") as f:
        assert '"root_seed": 5' in f.attrs["config"]


def test_dry_run_writes_nothing(tmp_path, tiny_toml):
    out = tmp_path / "r.h5"
    proc = grid("--config", tiny_toml, "--alphas", 3, "--seeds", 2, "--out", out, "--dry-run")
    assert "cells" in proc.stdout and "estimated time" in proc.stdout
    assert not out.exists() and list(tmp_path.iterdir()) == [tiny_toml]


BAD_TOML = {
    "malformed": ("[grid\nseeds = 3", "`--config`"),
    "unknown key": ("[gmm]\ncomponentz = 3", "`gmm.componentz` is not a known setting"),
    "truth not PD": ("[gmm.truth]\nweights = [0.97, 0.03]\nmeans = [[0.0, 0.0], [8.0, 8.0]]\n"
                     "covariances = [[[1.0, 2.0], [2.0, 1.0]], [[0.5, 0.0], [0.0, 0.5]]]",
                     "must be positive definite"),
    "bad smoothing": ("[ngram]\nsmoothing = 'good-turing'", "`ngram.smoothing`"),
    "missing corpus": ("[ngram]\ncorpus = '/nonexistent/corpus.txt'", "`ngram.corpus`"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOML))
def test_bad_config_file_exits_2_with_one_line(tmp_path, case):
    text, match = BAD_TOML[case]
    (tmp_path / "bad.toml").write_text(text)
    out = tmp_path / "r.h5"
    proc = grid("--config", tmp_path / "bad.toml", "--seeds", 1, "--alphas", "0.0", "--out", out, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "args, match",
    [
        (("--alphas", "0,1.5"), "`alphas`"),
        (("--alphas", "a,b"), "`--alphas`"),
        (("--seeds", "0"), "`seeds`"),
        (("--generations", "-2"), "`generations`"),
        (("--regime", "recycle"), "--regime"),
        (("--experiment", "vae"), "--experiment"),
        (("--jobs", "0"), "`--jobs`"),
        (("--out", "/nonexistent-folder/r.h5"), "`--out` folder"),
        (("--config", "/nonexistent.toml"), "`--config`"),
    ],
)
def test_bad_flags_exit_2_with_one_line(tmp_path, args, match):
    out = tmp_path / "r.h5"
    full = ["--seeds", 1, "--alphas", "0.0", "--out", out, *args]
    proc = grid(*full, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists()


def test_bad_input_never_touches_an_existing_file(tmp_path, tiny_toml):
    out = tmp_path / "r.h5"
    grid("--config", tiny_toml, "--experiment", "gmm", "--alphas", "0.0", "--seeds", 1, "--out", out, "--jobs", 1)
    before = digest(out)
    proc = grid("--config", tiny_toml, "--experiment", "gmm", "--alphas", "0,2", "--out", out, check=False)
    assert proc.returncode == 2 and digest(out) == before


def test_help_documents_every_option():
    proc = grid("--help")
    for flag in ("--experiment", "--alphas", "--seeds", "--generations", "--regime", "--root-seed",
                 "--jobs", "--out", "--config", "--dry-run", "--overwrite"):
        assert flag in proc.stdout


def test_sweep_adds_a_dimension_and_adding_a_value_keeps_existing_cells(tmp_path, tiny_toml):
    xr = pytest.importorskip("xarray")
    two, three = tmp_path / "two.h5", tmp_path / "three.h5"
    common = ("--config", tiny_toml, "--experiment", "gmm", "--alphas", "0,0.9", "--seeds", 2, "--jobs", 1)
    grid(*common, "--sweep", "gmm.sample_temperature=0.5,1", "--out", two)
    grid(*common, "--sweep", "gmm.sample_temperature=0.5,1,2", "--out", three)
    a = xr.open_dataset(two, group="gmm", engine="h5netcdf")
    b = xr.open_dataset(three, group="gmm", engine="h5netcdf")
    assert a.real_nll.dims == ("alpha", "sample_temperature", "seed", "generation")
    np.testing.assert_array_equal(b.sample_temperature.values, [0.5, 1, 2])
    assert a.done.all()
    for t in (0.5, 1.0):
        np.testing.assert_array_equal(a.real_nll.sel(sample_temperature=t).values,
                                      b.real_nll.sel(sample_temperature=t).values)
    # synthesis-only knobs share generation 0 exactly (common random numbers)
    g0 = b.real_nll.isel(generation=0).values
    assert np.all(g0 == g0[:1, :1])
    # temperature only acts on synthetic data: at alpha = 0.9 the values differ after generation 0
    assert not np.array_equal(b.real_nll.sel(alpha=0.9, sample_temperature=0.5).values[:, 1:],
                              b.real_nll.sel(alpha=0.9, sample_temperature=2.0).values[:, 1:])


def test_string_sweep_from_toml_and_resume(tmp_path):
    (tmp_path / "sweep.toml").write_text(
        TINY_TOML + '\n[sweep]\n"gmm.filter" = ["none", "quality"]\n')
    out = tmp_path / "r.h5"
    args = ("--config", tmp_path / "sweep.toml", "--experiment", "gmm", "--alphas", "0,1", "--seeds", 2,
            "--jobs", 1, "--out", out)
    grid(*args)
    before = datasets(out)["gmm/real_nll"].tobytes()
    proc = grid(*args)  # same configuration: nothing left to do
    assert "0 cells run" in proc.stderr
    assert datasets(out)["gmm/real_nll"].tobytes() == before
    with h5py.File(out, "r") as f:
        assert [v.decode() for v in f["gmm/filter"][...]] == ["none", "quality"]
        assert f["gmm/done"].shape == (2, 2, 2)


def test_sweep_over_ngram_smoothing_records_one_set_of_metrics(tmp_path, tiny_toml):
    """Every smoothing records the same metrics (mle's unseen_events is 0 for the others),
    so a sweep over smoothing writes one schema."""
    out = tmp_path / "s.h5"
    grid("--config", tiny_toml, "--experiment", "ngram", "--alphas", "0,1", "--seeds", 2, "--generations", 2,
         "--sweep", "ngram.smoothing=kneser-ney,add-k,mle", "--jobs", 1, "--out", out)
    with h5py.File(out, "r") as f:
        unseen = f["ngram/unseen_events"][...]
        assert f["ngram/done"][...].all() and unseen.shape[:2] == (2, 3)
        assert np.all(unseen[:, :2] == 0)


def recorded_cells(path):
    """Cells a (possibly running) grid has recorded in ``path`` and its journal."""
    try:
        return int(done_masks(str(path), ["gmm"])["gmm"].sum())
    except (OSError, KeyError, ValueError):  # not created yet, or mid-creation
        return 0


def test_repeated_kills_at_arbitrary_moments_leave_a_readable_resumable_file(tmp_path, tiny_toml):
    """SIGKILL at several moments of a run (once at least 7, 19, 31 and 43 more cells
    are recorded, so the kills land mid-run whatever the machine's speed); every
    time the file opens, and the final resume equals an uninterrupted run."""
    common = ["--config", tiny_toml, "--alphas", 4, "--seeds", 100, "--generations", 6,
              "--experiment", "gmm", "--flush-seconds", 0, "--jobs", "1"]
    whole, killed = tmp_path / "whole.h5", tmp_path / "killed.h5"
    grid(*common, "--out", whole)
    done_counts = []
    for more in (7, 19, 31, 43):
        target = recorded_cells(killed) + more
        proc = subprocess.Popen([sys.executable, "-m", "hoi_fast.grid", *map(str, common), "--out", killed,
                                 "--quiet"])
        while proc.poll() is None and recorded_cells(killed) < target:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if killed.exists():
            with h5py.File(killed, "r") as f:  # readable after every kill
                done = f["gmm/done"][...].astype(bool)
                real = f["gmm/real_nll"][...]
            assert np.isfinite(real[done]).all()  # every cell marked done is complete
            done_counts.append(int(done_masks(str(killed), ["gmm"])["gmm"].sum()))
    assert any(0 < n < 400 for n in done_counts), done_counts  # at least one kill landed mid-run
    grid(*common, "--out", killed)
    assert_same_results(whole, killed)
