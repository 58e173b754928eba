"""The regression check against a planted 25% slowdown of the n-gram generation step.

Usage::

    python bench/planted_slowdown.py [--rounds 9] [--threshold 0.15]

Builds a throw-away git project whose benchmark times one n-gram generation
step at the defaults (generation 0 shared, as the grid runs it), 300 rounds
each, twice: as it is (``test_unchanged``) and with a planted slowdown (``test_planted``: the
step spins for a quarter of its own CPU time, so the slowdown stays 25%
however loaded the machine is).  It commits that project, plants the
slowdown in the working tree and runs ``bench/regress.py --stat min --timer
cpu`` on it.  The check is right when ``test_planted`` is SLOWER and
``test_unchanged`` is ok; exit status 0 then, 1 otherwise.  It is a timing,
so it is a bench, not a test: on a quiet 2-core machine the unchanged step
measured within 1.10x of itself, on a shared CI machine up to 1.21x.
"""

import argparse
import pathlib
import subprocess
import sys
import tempfile

REGRESS = pathlib.Path(__file__).resolve().parent / "regress.py"

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
    benchmark.pedantic(ngram_step.generation, args=cell, rounds=300, iterations=1, warmup_rounds=5)


def test_planted(benchmark, cell):
    benchmark.pedantic(ngram_step.planted, args=cell, rounds=300, iterations=1, warmup_rounds=5)
"""


def _git(repo, *args):
    subprocess.run(["git", "-c", "user.email=b@b", "-c", "user.name=b", *args], cwd=repo, check=True,
                   capture_output=True)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python bench/planted_slowdown.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=9, help="interleaved rounds per tree")
    p.add_argument("--threshold", type=float, default=0.15, help="allowed slowdown (0.15 = 15%%)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp) / "ngram_project"
        (root / "bench").mkdir(parents=True)
        (root / "bench" / "ngram_step.py").write_text(STEP)
        (root / "bench" / "bench_step.py").write_text(NGRAM_BENCH)
        _git(root, "init", "-q", "-b", "main")
        _git(root, "add", ".")
        _git(root, "commit", "-qm", "base")
        (root / "bench" / "ngram_step.py").write_text(PLANTED)
        proc = subprocess.run([sys.executable, str(REGRESS), "--bench", "bench/bench_step.py",
                               "--rounds", str(args.rounds), "--stat", "min", "--timer", "cpu",
                               "--threshold", str(args.threshold)], cwd=root, capture_output=True, text=True)
    print(proc.stdout + proc.stderr, end="")
    table = proc.stdout.split("REGRESSION")[0]
    rows = {line.split()[0]: line.split()[-1] for line in table.splitlines() if line.startswith("test_")}
    right = rows == {"test_planted": "SLOWER", "test_unchanged": "ok"}
    print("planted slowdown caught, unchanged step passed" if right else f"WRONG verdicts: {rows}")
    return 0 if right else 1


if __name__ == "__main__":
    sys.exit(main())
