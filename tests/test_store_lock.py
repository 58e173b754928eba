"""One writer per results file: an OS lock held for the whole run, released by the OS when the writer dies.

Issue 16, item 5: two runs on one `--out` (or a run and an `--overwrite` run
of another configuration) both exited 0 with a damaged file.  Readers take no
lock and keep working while a run writes.
"""

import os
import signal
import subprocess
import sys
import time

import h5py

import numpy as np
import pytest

from hoi_fast.store import (
    LOCK_SUFFIX,
    ResultsFileError,
    ResultsWriter,
    consolidate,
    done_masks,
    lock_held,
    lock_results,
    read_group,
    stored_config,
)

from test_journal import all_cells, assert_complete_and_correct, config, layout, metrics

HOLDER = """
import sys, time
from hoi_fast.store import lock_results
lock = lock_results(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(600)
"""


@pytest.fixture
def other_process(tmp_path):
    """Start a process that takes the lock of a path and holds it until killed."""
    procs = []

    def start(path):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def finished_file(path, cfg=None):
    cfg = cfg or config()
    writer = ResultsWriter(path, [layout()], cfg, flush_seconds=0)
    for index in all_cells():
        writer.write_cell("gmm", index, metrics(cfg, index))
    writer.close(finished=True)
    return path


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path, other_process):
    path = finished_file(tmp_path / "r.h5")
    before = path.read_bytes()
    holder = other_process(path)
    message = f"another run is writing {path} (pid {holder.pid}); wait for it or choose another --out"
    with pytest.raises(ResultsFileError) as caught:
        ResultsWriter(path, [layout()], config())
    assert str(caught.value) == message
    with pytest.raises(ResultsFileError, match="another run is writing"):  # --overwrite too
        ResultsWriter(path, [layout()], config(root_seed=7), overwrite=True)
    with pytest.raises(ResultsFileError, match=f"pid {holder.pid}"):
        lock_results(path).acquire()
    with pytest.raises(ResultsFileError, match="another run is writing"):
        consolidate(path, finished=True)
    assert path.read_bytes() == before


def test_readers_read_while_a_run_holds_the_lock(tmp_path, other_process):
    path = finished_file(tmp_path / "r.h5")
    other_process(path)
    assert read_group(str(path), "gmm").done.all() and stored_config(path) == config()
    xr = pytest.importorskip("xarray")
    with xr.open_dataset(path, group="gmm", engine="h5netcdf") as ds:
        assert int(ds.done.sum()) == len(all_cells())


def test_sigkill_never_leaves_a_stale_lock(tmp_path, other_process):
    path = tmp_path / "r.h5"
    holder = other_process(path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert os.path.exists(str(path) + LOCK_SUFFIX)  # the file stays, with a dead pid: not a lock
    finished_file(path)  # takes the lock at once
    assert_complete_and_correct(path)
    assert not os.path.exists(str(path) + LOCK_SUFFIX)


def test_lock_is_reentrant_in_one_process_and_removed_on_release(tmp_path):
    path = tmp_path / "r.h5"
    lock_file = str(path) + LOCK_SUFFIX
    with lock_results(path):
        assert lock_held(path) and open(lock_file).read().strip() == str(os.getpid())
        finished_file(path)  # the writer takes a reference and gives it back at close()
        assert lock_held(path)
    assert not lock_held(path) and not os.path.exists(lock_file)


def test_the_writer_takes_the_lock_itself_and_releases_it_on_close_and_on_failure(tmp_path, other_process):
    path = tmp_path / "r.h5"
    writer = ResultsWriter(path, [layout()], config())
    assert lock_held(path)
    writer.close()
    assert not lock_held(path)
    with pytest.raises(ResultsFileError, match="different configuration"):  # refused: lock released
        ResultsWriter(path, [layout()], config(root_seed=7))
    assert not lock_held(path)


def test_a_link_and_its_target_share_one_lock(tmp_path, other_process):
    target = tmp_path / "r.h5"
    link = tmp_path / "link.h5"
    link.symlink_to(target.name)
    other_process(target)
    with pytest.raises(ResultsFileError, match="another run is writing"):
        lock_results(link).acquire()


# -- end to end ---------------------------------------------------------------

def grid(*args):
    return subprocess.run([sys.executable, "-m", "hoi_fast.grid", *map(str, args)], capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, PYTHONUNBUFFERED="1"))


TINY = """
[grid]
generations = 2

[gmm]
components = 2
samples = 100
heldout = 200
tail_heldout = 50
self_samples = 100
"""


def test_cli_second_run_and_overwrite_run_exit_2_while_a_run_writes(tmp_path):
    """Run A writes; the same command (B) and an --overwrite run of another root seed (C) exit 2 at once."""
    (tmp_path / "tiny.toml").write_text(TINY)
    out = tmp_path / "r.h5"
    common = ["--config", tmp_path / "tiny.toml", "--experiment", "gmm", "--alphas", 4, "--seeds", 2000,
              "--generations", 4, "--jobs", 1, "--flush-seconds", 0, "--out", out]
    a = subprocess.Popen([sys.executable, "-m", "hoi_fast.grid", *map(str, common), "--quiet"])
    try:
        while a.poll() is None and not os.path.exists(str(out) + ".journal"):  # A is writing cells
            time.sleep(0.05)
        others = [subprocess.Popen([sys.executable, "-m", "hoi_fast.grid", *map(str, common + extra)],
                                   stderr=subprocess.PIPE, text=True)
                  for extra in ([], ["--root-seed", 7, "--overwrite"])]
        for proc in others:
            stderr = proc.communicate(timeout=600)[1]
            lines = stderr.strip().splitlines()
            assert proc.returncode == 2 and len(lines) == 1, stderr
            assert f"another run is writing {out} (pid {a.pid}); wait for it or choose another --out" in lines[0]
        assert a.poll() is None, "run A ended before the others tried: make it longer"
    finally:
        a.kill()
        a.wait()
    with h5py.File(out, "r") as f:
        assert '"root_seed": 0' in f.attrs["config"]
    assert done_masks(out, ["gmm"])["gmm"].sum() > 0
