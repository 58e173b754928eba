"""bench/regress.py flags a planted slowdown and passes against itself.

The check runs on a small throw-away git project so that the verdict depends
only on the planted change (a 5 ms sleep against ~1 ms of work, a ~6x
slowdown), not on the speed of hoi_fast's own kernels.  The tests use a 100%
threshold: on a loaded 2-core machine the same code measured up to 1.4x apart,
and the planted slowdown is far beyond either.
"""

import json
import pathlib
import subprocess
import sys

import pytest

REGRESS = pathlib.Path(__file__).resolve().parents[1] / "bench" / "regress.py"

WORK = """
def work():
    total = 0
    for i in range(20000):
        total += i * i
    return total
"""

BENCH = """
import workpkg


def test_work(benchmark):
    benchmark.pedantic(workpkg.work, rounds=30, iterations=1, warmup_rounds=2)
"""


def git(repo, *args):
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "workpkg").mkdir()
    (tmp_path / "workpkg" / "__init__.py").write_text(WORK)
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "bench_work.py").write_text(BENCH)
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "base")
    return tmp_path


def regress(project, *args):
    return subprocess.run([sys.executable, str(REGRESS), "--bench", "bench/bench_work.py", *args],
                          cwd=project, capture_output=True, text=True, timeout=300)


def test_planted_slowdown_is_named(project):
    init = project / "workpkg" / "__init__.py"
    init.write_text("import time\n" + WORK.replace("return total", "time.sleep(0.005)\n    return total"))
    proc = regress(project, "--rounds", "1", "--threshold", "1.0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "REGRESSION" in proc.stdout and "test_work" in proc.stdout.split("REGRESSION")[1]


def test_same_code_passes_and_baseline_round_trips(project, tmp_path):
    proc = regress(project, "--rounds", "2", "--threshold", "1.0", "--save", str(tmp_path / "baseline.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no regression" in proc.stdout
    saved = json.loads((tmp_path / "baseline.json").read_text())
    assert set(saved["medians"]) == {"test_work"}
    proc = regress(project, "--rounds", "1", "--threshold", "1.0", "--baseline", str(tmp_path / "baseline.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bad_input_exits_2(project):
    assert regress(project, "--baseline", "/nonexistent.json").returncode == 2
    assert regress(project, "--base", "no-such-revision").returncode == 2
