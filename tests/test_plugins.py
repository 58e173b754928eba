"""Users' own experiments through the same grid, store and report (examples/kde_experiment.py).

The plug-in is imported by its import string; it runs on every executor, is
seeded by a key derived from its name, resumes after SIGKILL, and every way a
plug-in can be broken is one line and exit status 2 before any cell runs.
"""

import os
import signal
import subprocess
import sys
import re
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from hoi_fast.seeding import plugin_stream_key
from hoi_fast.store import done_masks

from test_grid import assert_same_results

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PLUGIN = "kde_experiment:KDEExperiment"
SMALL = ["--alphas", "0,0.5,1", "--seeds", "4", "--generations", "3"]
SMALL_TOML = """
[kde]
samples = 60
heldout = 100
tail_heldout = 30
self_samples = 50
"""


def env_with(*paths):
    return dict(os.environ, PYTHONUNBUFFERED="1",
                PYTHONPATH=os.pathsep.join([*map(str, paths), os.environ.get("PYTHONPATH", "")]))


def run(module, *args, paths=(EXAMPLES,), check=True, cwd=None):
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          env=env_with(*paths), timeout=600, cwd=cwd)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def small_toml(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL_TOML)
    return path


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "small.toml").write_text(SMALL_TOML)
    out = folder / "serial.h5"
    run("hoi_fast.grid", "--experiment", PLUGIN, "--config", folder / "small.toml", *SMALL, "--jobs", 1,
        "--out", out)
    return out


def test_plugin_group_is_xarray_readable_with_roles(serial):
    xr = pytest.importorskip("xarray")
    kde = xr.open_dataset(serial, group="kde", engine="h5netcdf")
    assert kde.real_nll.dims == ("alpha", "seed", "generation")
    assert kde.real_nll.attrs["role"] == "real" and kde.spread.attrs["role"] == ""
    assert bool(kde.done.all())
    assert np.isfinite(kde.real_nll.values).all()
    # collapse: at alpha = 1 the KDE inflates its spread generation after generation
    spread = kde.spread.sel(alpha=1.0).mean("seed").values
    assert spread[-1] > spread[0]


def test_plugin_on_two_workers_and_dask_is_bit_identical(serial, tmp_path, small_toml):
    two = tmp_path / "two.h5"
    run("hoi_fast.grid", "--experiment", PLUGIN, "--config", small_toml, *SMALL, "--jobs", 2, "--out", two)
    assert_same_results(serial, two)
    pytest.importorskip("distributed")
    dask = tmp_path / "dask.h5"
    run("hoi_fast.grid", "--experiment", PLUGIN, "--config", small_toml, *SMALL, "--jobs", 2,
        "--executor", "dask", "--out", dask)
    assert_same_results(serial, dask)


def test_plugin_report_draws_every_figure_from_the_roles(serial, tmp_path):
    out = tmp_path / "report"
    run("hoi_fast.report", serial, "--out", out, "--n-resamples", 200, "--alpha-resamples", 200)
    for figure in ("collapse", "degradation", "critical_alpha", "gap", "tail"):
        assert (out / f"kde_{figure}.png").stat().st_size > 5000, figure
    summary = (out / "summary.md").read_text()
    assert "## kde" in summary and "real_nll" in summary and "self_nll" in summary


def test_toml_table_by_name_or_import_string_and_sweep(tmp_path):
    by_name, by_spec = tmp_path / "a.toml", tmp_path / "b.toml"
    by_name.write_text(SMALL_TOML + "bandwidth = 0.5\n")
    by_spec.write_text(SMALL_TOML.replace("[kde]", f'["{PLUGIN}"]') + "bandwidth = 0.5\n")
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    run("hoi_fast.grid", "--experiment", PLUGIN, "--config", by_name, *SMALL, "--jobs", 1, "--out", a)
    run("hoi_fast.grid", "--experiment", PLUGIN, "--config", by_spec, *SMALL, "--jobs", 1, "--out", b)
    assert_same_results(a, b)
    swept = tmp_path / "s.h5"
    run("hoi_fast.grid", "--experiment", f"gmm,{PLUGIN}", "--config", by_name, *SMALL, "--jobs", 1,
        "--sweep", "kde.bandwidth=0.2,0.5", "--out", swept, "--dry-run")
    run("hoi_fast.grid", "--experiment", PLUGIN, "--config", by_name, *SMALL, "--jobs", 1,
        "--sweep", "kde.bandwidth=0.2,0.5", "--out", swept)
    with h5py.File(swept, "r") as f:
        assert f["kde/real_nll"].shape == (3, 2, 4, 3)
        np.testing.assert_array_equal(f["kde/bandwidth"][...], [0.2, 0.5])
        # generation 0 (R, held-out sets, the first fit) is shared by every swept value and the unswept run
        with h5py.File(a, "r") as g:
            assert f["kde/real_nll"][:, 1, :, 0].tobytes() == g["kde/real_nll"][..., 0].tobytes()
            assert f["kde/real_nll"][:, 0, :, 1].tobytes() != g["kde/real_nll"][..., 1].tobytes()


def test_streams_are_keyed_by_the_plugin_name():
    assert plugin_stream_key("kde") != plugin_stream_key("kde2")
    assert plugin_stream_key("kde") >= 2**31  # never a built-in's key


SLOW_KDE = """
import time
from kde_experiment import KDEExperiment

class SlowKDE(KDEExperiment):
    name = "kde"  # the same name, so the same streams: only slower

    def fit(self, parts, rng):
        time.sleep(0.05)
        return super().fit(parts, rng)
"""


def test_sigkill_then_resume_with_a_plugin(tmp_path, small_toml, serial):
    (tmp_path / "slow_kde.py").write_text(SLOW_KDE)
    common = ["--experiment", "slow_kde:SlowKDE", "--config", str(small_toml), *SMALL, "--jobs", "1",
              "--flush-seconds", "0", "--quiet"]
    killed = tmp_path / "killed.h5"
    proc = subprocess.Popen([sys.executable, "-m", "hoi_fast.grid", *common, "--out", str(killed)],
                            env=env_with(tmp_path, EXAMPLES))
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if done_masks(str(killed), ["kde"])["kde"].sum() >= 1:
                break
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < done_masks(str(killed), ["kde"])["kde"].sum() < 12
    run("hoi_fast.grid", *common, "--out", killed, paths=(tmp_path, EXAMPLES))
    assert_same_results(serial, killed)


BROKEN = {
    "missing module": ("", "no_such_module_xyz:Exp", r"cannot import no_such_module_xyz \(ModuleNotFoundError"),
    "missing class": ("", "broken_plugin:Nope", "module broken_plugin has no class Nope"),
    "import error": ("raise RuntimeError('boom at import')\n", "broken_plugin:Exp",
                     r"cannot import broken_plugin \(RuntimeError: boom at import\)"),
    "no metrics method": ("class Exp(Base):\n    metrics = None\n", "broken_plugin:Exp",
                          r"lacks the method metrics\(\) of the experiment protocol"),
    "no config class": ("class Exp(Base):\n    config_class = None\n", "broken_plugin:Exp",
                        "must name its configuration: set the class attribute config_class"),
    "config without defaults": (
        "from dataclasses import dataclass\n@dataclass(frozen=True)\nclass C:\n    x: int\n"
        "class Exp(Base):\n    config_class = C\n", "broken_plugin:Exp", r"cannot be built from defaults"),
    "taken name": ("class Exp(Base):\n    name = 'gmm'\n", "broken_plugin:Exp", "its name 'gmm' is taken"),
    "extra metric": ("class Exp(Base):\n    def metrics(self, *a):\n        m = super().metrics(*a)\n"
                     "        m['surprise'] = 1.0\n        return m\n", "broken_plugin:Exp",
                     "returned metric 'surprise', which is not in its metric_specs"),
    "missing metric": ("class Exp(Base):\n    def metrics(self, *a):\n        m = super().metrics(*a)\n"
                       "        del m['spread']\n        return m\n", "broken_plugin:Exp",
                       "did not return metric 'spread'"),
    "wrong shape": ("class Exp(Base):\n    def metrics(self, *a):\n        m = super().metrics(*a)\n"
                    "        m['spread'] = [1.0, 2.0]\n        return m\n", "broken_plugin:Exp",
                    r"returned metric 'spread' with shape \(2,\)"),
    "nan metric": ("class Exp(Base):\n    def metrics(self, *a):\n        m = super().metrics(*a)\n"
                   "        m['spread'] = float('nan')\n        return m\n", "broken_plugin:Exp",
                   "metric 'spread' is nan at generation 0; the cell is not stored"),
    "raises in fit": ("class Exp(Base):\n    def fit(self, parts, rng):\n        raise ZeroDivisionError('oops')\n",
                      "broken_plugin:Exp", r"raised ZeroDivisionError: oops \(at broken_plugin.py:\d+ in fit\)"),
}


# the cases a probe cell finds (the others fail while the parent reads the configuration)
FOUND_BY_THE_PROBE = ["nan metric", "raises in fit", "wrong shape"]


@pytest.mark.parametrize("case, jobs", [(case, 1) for case in sorted(BROKEN)]
                         + [(case, 2) for case in FOUND_BY_THE_PROBE])
def test_a_broken_plugin_is_one_line_and_exit_2_before_any_cell(case, jobs, tmp_path, small_toml):
    """With two jobs the probe cells run in the workers (hoi_fast.grid.probe): the same one line."""
    body, spec, match = BROKEN[case]
    (tmp_path / "broken_plugin.py").write_text(
        "from kde_experiment import KDEExperiment as Base, KDEConfig\n" + textwrap.dedent(body))
    out = tmp_path / "r.h5"
    proc = run("hoi_fast.grid", "--experiment", spec, *SMALL, "--jobs", jobs, "--out", out,
               paths=(tmp_path, EXAMPLES), check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert re.search(match, lines[0]), lines[0]
    assert lines[0].startswith("python -m hoi_fast.grid: error: ")
    assert not out.exists() and not list(tmp_path.glob("r.h5*"))


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_dry_run_refuses_a_broken_plugin_in_one_line(jobs, tmp_path):
    """--dry-run runs the probe cells first (in its workers with two jobs): one line, exit 2, no traceback."""
    body, spec, match = BROKEN["raises in fit"]
    (tmp_path / "broken_plugin.py").write_text(
        "from kde_experiment import KDEExperiment as Base, KDEConfig\n" + textwrap.dedent(body))
    out = tmp_path / "r.h5"
    proc = run("hoi_fast.grid", "--experiment", spec, *SMALL, "--jobs", jobs, "--out", out, "--dry-run",
               paths=(tmp_path, EXAMPLES), check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert re.search(match, lines[0]), lines[0]
    assert not out.exists()
