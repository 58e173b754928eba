"""The journal end to end: what SIGKILL leaves, damaged or swapped for another run's, resumes to the same file.

Issue 16, items 1 and 4 through `python -m hoi_fast.grid` (the store-level
cases, faster and more of them, are in test_journal.py).
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from hoi_fast.store import done_masks

TINY = """
[grid]
generations = 4

[gmm]
components = 2
samples = 100
heldout = 200
tail_heldout = 50
self_samples = 100
"""

KILL_AFTER = 10  # cells in the journal when the run is killed


def command(tmp_path, out, *extra):
    (tmp_path / "tiny.toml").write_text(TINY)
    return [sys.executable, "-m", "hoi_fast.grid", "--config", str(tmp_path / "tiny.toml"), "--experiment", "gmm",
            "--alphas", "4", "--seeds", "30", "--jobs", "1", "--flush-seconds", "0", "--out", str(out),
            *map(str, extra)]


def recorded(path):
    try:
        return int(done_masks(str(path), ["gmm"])["gmm"].sum())
    except (OSError, KeyError, ValueError):
        return 0


def killed(tmp_path, out, *extra):
    """Run the grid into ``out`` and SIGKILL it once its journal holds at least KILL_AFTER cells."""
    proc = subprocess.Popen(command(tmp_path, out, *extra, "--quiet"))
    while proc.poll() is None and recorded(out) < KILL_AFTER:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert os.path.getsize(str(out) + ".journal") > 3000
    return out


def run(tmp_path, out, *extra):
    proc = subprocess.run(command(tmp_path, out, *extra), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


def metric_arrays(path):
    with h5py.File(path, "r") as f:
        return {k: f["gmm"][k][...] for k in f["gmm"] if f["gmm"][k].dtype.kind == "f"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run, and what SIGKILL leaves of the same run and of a --root-seed 7 run."""
    tmp_path = tmp_path_factory.mktemp("runs")
    whole = tmp_path / "whole.h5"
    run(tmp_path, whole)
    return whole, killed(tmp_path, tmp_path / "part.h5"), killed(tmp_path, tmp_path / "seven.h5", "--root-seed", 7)


@pytest.mark.parametrize("damage", ["the journal of --root-seed 7", "truncated to 3000 bytes"])
def test_cli_resume_after_a_swapped_or_damaged_journal_equals_an_uninterrupted_run(tmp_path, runs, damage):
    whole, killed_part, seven = runs
    part = tmp_path / "part.h5"
    shutil.copyfile(killed_part, part)
    journal = str(part) + ".journal"
    if damage.startswith("the journal"):
        shutil.copyfile(str(seven) + ".journal", journal)
    else:
        with open(str(killed_part) + ".journal", "rb") as fh:
            open(journal, "wb").write(fh.read(3000))
    proc = run(tmp_path, part)
    with h5py.File(part, "r") as f:
        assert f["gmm/done"][...].all() and f.attrs["finished"]
    expected, got = metric_arrays(whole), metric_arrays(part)
    for name in expected:
        assert expected[name].tobytes() == got[name].tobytes(), name
    assert np.isfinite(got["real_nll"]).all()
    notes = [line for line in proc.stderr.splitlines() if "journal `" in line]
    assert len(notes) == 1, proc.stderr
    assert ("set aside" in notes[0]) == damage.startswith("the journal")
