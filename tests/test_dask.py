"""The grid on Dask distributed: identical results, worker deaths survived, driver resumable."""

import os
import signal
import subprocess
import sys

import pytest

distributed = pytest.importorskip("distributed")

from hoi_fast import grid  # noqa: E402
from hoi_fast.config import GridConfig
from hoi_fast.experiments.gmm import GMMConfig
from hoi_fast.experiments.ngram import NGramConfig  # noqa: E402

from test_grid import assert_same_results, datasets  # noqa: E402

TINY = dict(
    experiment="both", generations=3, seeds=6, alphas=(0.0, 0.5, 1.0),
    configs={"gmm": GMMConfig(components=3, samples=200, heldout=400, tail_heldout=100, self_samples=200),
             "ngram": NGramConfig(train_chars=3000, heldout_chars=2000, self_chars=500)},
)


@pytest.fixture(scope="module")
def serial_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "serial.h5"
    grid.run(GridConfig(**TINY), str(out), jobs=1, quiet=True)
    return out


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=50) as cluster:
        yield cluster


class DieOnFirstTask(distributed.WorkerPlugin):
    """Kill the worker process the first time any worker starts a task."""

    def __init__(self, marker):
        self.marker = marker

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)


def test_dask_local_cluster_matches_jobs_1(tmp_path, serial_file):
    out = tmp_path / "dask.h5"
    grid.run(GridConfig(**TINY), str(out), jobs=2, quiet=True, executor="dask")
    assert_same_results(serial_file, out)


def test_worker_killed_mid_task_is_recomputed(tmp_path, serial_file, cluster):
    marker = tmp_path / "died"
    with distributed.Client(cluster) as client:
        client.register_plugin(DieOnFirstTask(str(marker)), name="die-once")
        try:
            out = tmp_path / "survived.h5"
            grid.run(GridConfig(**TINY), str(out), quiet=True, executor=client.get_executor())
        finally:
            client.unregister_worker_plugin("die-once")
    assert marker.exists()  # a worker really died
    assert_same_results(serial_file, out)
    assert datasets(out)["gmm/done"].all() and datasets(out)["ngram/done"].all()


def test_cli_driver_killed_then_resumed(tmp_path, serial_file):
    out = tmp_path / "driver.h5"
    cmd = [sys.executable, "-m", "hoi_fast.grid", "--executor", "dask", "--jobs", "2", "--out", str(out),
           "--alphas", "0,0.5,1", "--seeds", "6", "--generations", "3", "--flush-seconds", "0",
           "--experiment", "both", "--config", str(_tiny_toml(tmp_path))]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    for line in proc.stderr:
        if "cells (" in line and not line.startswith("[hoi_fast.grid] 0/"):
            break
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local cluster
    proc.wait()
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    assert_same_results(serial_file, out)


def test_unreachable_scheduler_is_a_one_line_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hoi_fast.grid", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9",
         "--alphas", "1.0", "--seeds", "1", "--out", str(tmp_path / "r.h5"), "--experiment", "gmm"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "`--scheduler`" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def _tiny_toml(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(
        "[gmm]\ncomponents = 3\nsamples = 200\nheldout = 400\ntail_heldout = 100\nself_samples = 200\n"
        "[ngram]\ntrain_chars = 3000\nheldout_chars = 2000\nself_chars = 500\n")
    return path


def test_missing_dask_says_how_to_install(monkeypatch):
    from hoi_fast._validate import ConfigError
    from hoi_fast.executors import open_executor

    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(ConfigError, match=r"pip install 'hoi_fast\[dask\]'"):
        with open_executor("dask", 2):
            pass
