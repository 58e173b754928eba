"""bench/regress.py flags a planted slowdown, passes against itself and refuses other CPUs.

The checks run on small throw-away git projects so that the verdict depends
only on the planted change.  The toy project plants a 5 ms sleep against
~1 ms of work (a ~6x slowdown) and uses a 100% threshold: on a loaded 2-core
machine the same code measured up to 1.4x apart.  The n-gram project times
one generation step of hoi_fast's n-gram experiment at the defaults and
plants a 25% slowdown in it (the step spins for a quarter of its own
CPU time, so the slowdown stays 25% however loaded the machine is); it
compares the fastest round of each run timed by CPU time (``--stat min
--timer cpu``: a loaded shared machine mostly makes a process wait for a
core) with a 15% threshold, over three interleaved rounds (the median of
the paired ratios: same code measured up to 1.10x apart here, the planted
step 1.30-1.40x, as the spin overshoots a little).
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
    assert saved["machine"]["cpu_model"]  # the CPU is stored with the medians
    proc = regress(project, "--rounds", "1", "--threshold", "1.0", "--baseline", str(tmp_path / "baseline.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bad_input_exits_2(project):
    assert regress(project, "--baseline", "/nonexistent.json").returncode == 2
    assert regress(project, "--base", "no-such-revision").returncode == 2


def test_baseline_from_another_cpu_is_refused_unless_allowed(project, tmp_path):
    here = {"cpu_model": "AMD EPYC", "cpu_id": "AuthenticAMD family 23 model 1", "simd": "sse2 avx fma avx2"}
    baseline = tmp_path / "other.json"
    baseline.write_text(json.dumps({"medians": {"test_work": 1e-3}, "machine": here}))
    proc = regress(project, "--rounds", "1", "--threshold", "100", "--baseline", str(baseline))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not comparable" in proc.stderr and "--allow-other-cpu" in proc.stderr
    proc = regress(project, "--rounds", "1", "--threshold", "100", "--baseline", str(baseline), "--allow-other-cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # a baseline that does not say where it was measured is refused too
    baseline.write_text(json.dumps({"medians": {"test_work": 1e-3}}))
    proc = regress(project, "--rounds", "1", "--threshold", "100", "--baseline", str(baseline))
    assert proc.returncode == 2 and "unrecorded CPU" in proc.stderr


STEP = """
from hoi_fast.experiment import run_cell


def generation(experiment, cell, first):
    \"\"\"One n-gram generation step at the defaults (generation 0 shared, as the grid runs it).\"\"\"
    return run_cell(experiment, 0.5, 2, "mix", cell, first)


planted = generation
"""

PLANTED = STEP.replace("planted = generation", """
import time


def planted(experiment, cell, first):
    t0 = time.process_time()
    out = generation(experiment, cell, first)
    end = time.process_time() + 0.25 * (time.process_time() - t0)
    while time.process_time() < end:  # planted: 25% more CPU time, however loaded the machine is
        pass
    return out
""")

NGRAM_BENCH = """
import ngram_step
import pytest
from hoi_fast.experiment import first_generation
from hoi_fast.experiments import streams
from hoi_fast.experiments.ngram import NGramConfig, NGramExperiment


@pytest.fixture(scope="module")
def cell():
    experiment = NGramExperiment(NGramConfig())
    streams_ = streams("ngram", 0, 0, 0.5)
    return experiment, streams_, first_generation(experiment, streams_)


def test_unchanged(benchmark, cell):
    benchmark.pedantic(ngram_step.generation, args=cell, rounds=40, iterations=1, warmup_rounds=3)


def test_planted(benchmark, cell):
    benchmark.pedantic(ngram_step.planted, args=cell, rounds=40, iterations=1, warmup_rounds=3)
"""


@pytest.fixture
def ngram_project(tmp_path):
    root = tmp_path / "ngram_project"
    (root / "bench").mkdir(parents=True)
    (root / "bench" / "ngram_step.py").write_text(STEP)
    (root / "bench" / "bench_step.py").write_text(NGRAM_BENCH)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-qm", "base")
    return root


def test_ngram_step_unchanged_passes_and_a_planted_25_percent_slowdown_is_caught(ngram_project):
    """One interleaved comparison of two benchmarks of the n-gram generation step: the
    unchanged one passes, the one with a planted 25% slowdown is named."""
    (ngram_project / "bench" / "ngram_step.py").write_text(PLANTED)
    proc = subprocess.run([sys.executable, str(REGRESS), "--bench", "bench/bench_step.py", "--rounds", "3",
                           "--stat", "min", "--timer", "cpu", "--threshold", "0.15"], cwd=ngram_project,
                          capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    table = proc.stdout.split("REGRESSION")[0]
    rows = {line.split()[0]: line.split()[-1] for line in table.splitlines() if line.startswith("test_")}
    assert rows == {"test_planted": "SLOWER", "test_unchanged": "ok"}, proc.stdout
    assert proc.stdout.split("REGRESSION")[1].split(":")[-1].strip() == "test_planted"
