"""Run a tiny grid and write its report: the whole pipeline in well under a minute.

Usage::

    python examples/report_demo.py [--out DIR] [--experiment gmm|ngram|both]

It runs ``python -m hoi_fast.grid`` (3 synthetic fractions x 8 seeds x 5
generations) into ``DIR/results.h5``, then ``python -m hoi_fast.report`` into
``DIR/report/`` (PNG figures and ``summary.md``), exactly as a user would from
a shell.  Re-running resumes the grid (nothing left to do) and redraws the
report.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


def run(args):
    """Run a ``python -m`` command, echoing it; stop with its status on failure."""
    command = [sys.executable, "-m", *args]
    print("$ python -m " + " ".join(args), flush=True)
    status = subprocess.run(command).returncode
    if status != 0:
        sys.exit(status)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="report_demo", help="folder for results.h5 and report/")
    parser.add_argument("--experiment", choices=("gmm", "ngram", "both"), default="both")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    results = os.path.join(args.out, "results.h5")
    run(["hoi_fast.grid", "--experiment", args.experiment, "--alphas", "0,0.5,1", "--seeds", "8",
         "--generations", "5", "--out", results, "--jobs", "1", "--quiet"])
    report_dir = os.path.join(args.out, "report")
    run(["hoi_fast.report", results, "--out", report_dir])
    print(f"open {os.path.join(report_dir, 'summary.md')} for the summary and the figures")


if __name__ == "__main__":
    main()
