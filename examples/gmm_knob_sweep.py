"""Sweep one GMM knob (the synthetic-data filter) over a small grid and write its report.

Usage::

    python examples/gmm_knob_sweep.py [--out DIR] [--knob gmm.filter=none,quality,verifier]

It writes ``DIR/knobs.toml`` (small sizes so the whole run takes well under a
minute, and ``verifier_c = 20`` so that the verifier is corrective), runs::

    python -m hoi_fast.grid --experiment gmm --alphas 0,0.5,0.9 --seeds 10 \\
        --generations 6 --sweep gmm.filter=none,quality,verifier \\
        --config DIR/knobs.toml --out DIR/results.h5

and then ``python -m hoi_fast.report DIR/results.h5 --out DIR/report``, which
draws one panel (and one critical alpha) per value of the swept knob.  Any
other knob works the same way, e.g. ``--knob gmm.sample_temperature=0.7,1,1.3``
or ``--knob gmm.sample_truncation=0,0.1,0.3``.  Re-running resumes the grid
(nothing left to do) and redraws the report.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CONFIG = """\
# Small sizes: the example must finish in well under a minute on 2 cores.
[gmm]
samples = 400
heldout = 1000
tail_heldout = 400
self_samples = 200
verifier_c = 20.0        # c p_model >= p_true almost everywhere: a corrective verifier
quality_quantile = 0.05  # the quality filter drops the truth's least likely 5%
"""


def run(args):
    """Run a ``python -m`` command, echoing it; stop with its status on failure."""
    print("$ python -m " + " ".join(args), flush=True)
    status = subprocess.run([sys.executable, "-m", *args]).returncode
    if status != 0:
        sys.exit(status)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="gmm_knob_sweep", help="folder for knobs.toml, results.h5 and report/")
    parser.add_argument("--knob", default="gmm.filter=none,quality,verifier",
                        help="the sweep, NAME=V1,V2,... [default: %(default)s]")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    config = os.path.join(args.out, "knobs.toml")
    with open(config, "w", encoding="utf-8") as f:
        f.write(CONFIG)
    results = os.path.join(args.out, "results.h5")
    run(["hoi_fast.grid", "--experiment", "gmm", "--alphas", "0,0.5,0.9", "--seeds", "10",
         "--generations", "6", "--sweep", args.knob, "--config", config, "--out", results, "--quiet"])
    report = os.path.join(args.out, "report")
    run(["hoi_fast.report", results, "--out", report])
    print(f"figures (one panel per {args.knob.split('=')[0]} value) and summary.md are in {report}/")


if __name__ == "__main__":
    main()
