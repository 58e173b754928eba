"""Where a cell's time goes: per-stage cost of one generation, for every registered experiment.

Run as a script (prints the table; ``--json`` also writes it)::

    python bench/bench_stages.py                  # every experiment of hoi_fast.experiments.BUILTIN
    python bench/bench_stages.py ngram gmm --cells 20

or under pytest (``python -m pytest bench/bench_stages.py --benchmark-enable -s``:
one benchmark per experiment, the stages in ``extra_info``).

One cell is the default configuration of the experiment at α = 0.5 (the mean
synthetic share of the default α row) under ``mix``, 20 generations, with
generation 0 computed once per seed and shared, as the grid does; the stages
and how they are timed are :mod:`hoi_fast.stages`'s (``python -m
hoi_fast.grid --dry-run --profile`` prints the same table for a configured
run).  Times are means over ``--cells`` cells and their generations, in CPU
time of the process by default (``--clock wall`` for wall time); the
machine's CPU model is printed with the table.
"""

from __future__ import annotations

import argparse
import json
import sys

from hoi_fast import machine
from hoi_fast.config import GridConfig
from hoi_fast.experiments import BUILTIN, resolve, streams
from hoi_fast.grid import layouts_for
from hoi_fast.stages import CLOCKS, table
from hoi_fast.stages import cell_stages as _stages
from hoi_fast.store import storing_seconds

GENERATIONS = 20
ALPHA = 0.5


def cell_stages(name, cells=10, generations=GENERATIONS, clock_name="cpu"):
    """Mean seconds per generation of each stage of ``name``'s default cell (:func:`hoi_fast.stages.cell_stages`).

    The ``store`` stage holds what the parent spends to store the cell in the
    default grid's layout (:func:`hoi_fast.store.storing_seconds`).
    """
    entry = resolve(name)
    experiment = entry.experiment_class(entry.config_class())
    (layout,) = layouts_for(GridConfig(experiment=name, generations=generations))
    return _stages(experiment, entry.name, ALPHA, "mix", generations,
                   lambda seed: streams(entry.name, 0, seed, ALPHA), cells, clock_name,
                   storing=lambda result: storing_seconds(layout, result))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python bench/bench_stages.py", description=__doc__.split("\n\n")[0])
    p.add_argument("experiments", nargs="*", default=list(BUILTIN), help="registered names [default: all]")
    p.add_argument("--cells", type=int, default=10, help="cells timed per experiment (after one warm-up)")
    p.add_argument("--clock", choices=tuple(CLOCKS), default="cpu",
                   help="CPU time of the process (steady on a shared machine) or wall time")
    p.add_argument("--json", help="also write the figures (seconds per generation) to this file")
    args = p.parse_args(argv)
    results = {name: cell_stages(name, args.cells, clock_name=args.clock) for name in args.experiments}
    print(f"ms per generation (share; {args.clock} time), mean of {args.cells} cells, alpha = {ALPHA}, mix, "
          f"generation 0 shared; {machine.cpu_model()} ({machine.cpu_id()}; {machine.simd_flags()})")
    print(table(results))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine.describe(measure=False), "seconds_per_generation": results}, fh, indent=1)
    return 0


def test_stages(benchmark):
    """pytest entry: one round of the breakdown per experiment, stages in ``extra_info``."""
    results = benchmark.pedantic(lambda: {n: cell_stages(n, 3) for n in BUILTIN}, rounds=1, iterations=1)
    benchmark.extra_info.update(machine.describe(measure=False))
    benchmark.extra_info["ms_per_generation"] = {n: {s: 1e3 * v for s, v in r.items()} for n, r in results.items()}
    print("\n" + table(results))


if __name__ == "__main__":
    sys.exit(main())
