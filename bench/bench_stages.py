"""Where a cell's time goes: per-stage cost of one generation, for every registered experiment.

Run as a script (prints the table; ``--json`` also writes it)::

    python bench/bench_stages.py                  # every experiment of hoi_fast.experiments.BUILTIN
    python bench/bench_stages.py ngram gmm --cells 20

or under pytest (``python -m pytest bench/bench_stages.py --benchmark-enable -s``:
one benchmark per experiment, the stages in ``extra_info``).

One cell is the default configuration of the experiment at α = 0.5 (the mean
synthetic share of the default α row) under ``mix``, 20 generations, with
generation 0 computed once per seed and shared, as the grid does.  Each stage
of generations 1..19 is timed by wrapping the experiment's protocol methods
(:mod:`hoi_fast.experiment`), so the breakdown is the same for a plug-in:

``build set``
    :func:`hoi_fast.experiment.next_training_parts` without the synthesis:
    drawing the real part, joining parts.
``sample``
    ``synthesize`` (sampling the synthetic part, bias and filters).
``fit``
    ``fit`` (count / EM).
``held-out``, ``self``
    ``metrics``, split where the experiment's metric calls are known
    (:data:`METRIC_PROBES`: the n-gram model's ``_score``/``_sample``, the
    GMM's ``log_density``/``_sample``); otherwise one ``metrics`` stage.
``check``
    validating the row (:class:`hoi_fast.experiment.RowCheck`).
``other``
    The rest of :func:`hoi_fast.experiment.run_cell` (streams, stacking).
``store``
    Once per cell, spread over its generations: pickling the cell's result
    (the worker-to-parent transport) and encoding it as a journal record
    (``hoi_fast.store._encode_cell``).

Times are means over ``--cells`` cells and their generations, in CPU time
of the process by default (``--clock wall`` for wall time); stages are
exclusive and sum to the total; the machine's CPU model is printed with the
table.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import pickle
import statistics
import sys
import time

from hoi_fast import experiment as _exp
from hoi_fast import machine, store
from hoi_fast.experiments import BUILTIN, resolve, streams

GENERATIONS = 20
ALPHA = 0.5
STAGES = ("build set", "sample", "fit", "held-out", "self", "metrics", "check", "other", "store")


def _ngram_probes():
    from hoi_fast import ngram

    # metrics() scores the held-out text by its distinct grams and the self-sampled text by
    # _score (at the default kneser-ney, _score_distinct does not call _score)
    return [(ngram.NGramModel, "_score_distinct", lambda *_: "held-out"),
            (ngram.NGramModel, "_score", lambda *_: "self"), (ngram.NGramModel, "_sample", lambda *_: "self")]


def _gmm_probes():
    from hoi_fast import gmm
    from hoi_fast.experiments import gmm as gmm_exp

    own = {"id": None}

    def sampled(result):
        own["id"] = id(result[0])

    def density_label(X, *_):
        return "self" if id(X) == own["id"] else "held-out"

    return [(gmm_exp._gmm, "_sample", lambda *_: "self", sampled),
            (gmm_exp._k, "log_density", density_label)]


#: experiment name -> factory of probes ``(owner, attribute, label(args) -> stage[, after(result)])``
#: that split ``metrics`` into held-out scoring and self metrics.
METRIC_PROBES = {"ngram": _ngram_probes, "gmm": _gmm_probes}


#: The clock: CPU time of this (single-threaded) process, which leaves out the time it
#: waited for a core on a machine shared with noisy neighbours (``--clock wall`` for wall time).
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


class StageClock:
    """Accumulates time per stage; nested stages are subtracted from their parent."""

    def __init__(self, now=time.process_time):
        self.total = collections.Counter()
        self._stack = []
        self.now = now

    def current(self):
        """The innermost open stage (None outside every stage)."""
        return self._stack[-1][0] if self._stack else None

    @contextlib.contextmanager
    def stage(self, name):
        start = self.now()
        self._stack.append([name, 0.0])
        try:
            yield
        finally:
            _, inner = self._stack.pop()
            spent = self.now() - start
            self.total[name] += spent - inner
            if self._stack:
                self._stack[-1][1] += spent


@contextlib.contextmanager
def _patched(patches):
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, replacement in patches:
            setattr(owner, name, replacement)
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def _timed(clock, stage_of, fn, after=None, inside=None):
    """``fn`` timed as stage ``stage_of(*args)``; with ``inside``, only when called within that stage."""
    def wrapper(*args, **kwargs):
        if inside is not None and clock.current() != inside:
            return fn(*args, **kwargs)
        with clock.stage(stage_of(*args, **kwargs)):
            result = fn(*args, **kwargs)
        if after is not None:
            after(result)
        return result
    return wrapper


def cell_stages(name, cells=10, generations=GENERATIONS, clock_name="cpu"):
    """Mean seconds per generation of each stage of ``name``'s default cell (stages sum to the total).

    Returns
    -------
    dict
        stage -> seconds per generation (stages that did not occur are absent),
        plus ``"total"``.
    """
    entry = resolve(name)
    experiment = entry.experiment_class(entry.config_class())
    specs = _exp.cell_metric_specs(experiment)
    per_cell = []
    for seed in range(cells + 1):  # the first cell warms up the JIT and caches
        cell_streams = streams(entry.name, 0, seed, ALPHA)
        first = _exp.first_generation(experiment, cell_streams, specs)
        clock = StageClock(CLOCKS[clock_name])
        metric_stage = "metrics"
        patches = []
        for probe in METRIC_PROBES.get(entry.name, lambda: [])():
            owner, attr, label = probe[:3]
            after = probe[3] if len(probe) > 3 else None
            patches.append((owner, attr, _timed(clock, label, getattr(owner, attr), after, inside="held-out")))
            metric_stage = "held-out"  # what the probes do not claim
        patches += [
            (experiment, "synthesize", _timed(clock, lambda *a: "sample", experiment.synthesize)),
            (experiment, "fit", _timed(clock, lambda *a: "fit", experiment.fit)),
            (experiment, "metrics", _timed(clock, lambda *a: metric_stage, experiment.metrics)),
            (_exp, "next_training_parts", _timed(clock, lambda *a, **k: "build set", _exp.next_training_parts)),
            (_exp.RowCheck, "__call__", _timed(clock, lambda *a: "check", _exp.RowCheck.__call__)),
        ]
        with _patched(patches):
            start = clock.now()
            with clock.stage("other"):
                result = _exp.run_cell(experiment, ALPHA, generations, "mix", cell_streams, first)
            with clock.stage("store"):
                pickle.loads(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
                store._encode_cell(entry.name, (0, seed), result)
            total = clock.now() - start
        if seed:
            per_cell.append({**{k: v / (generations - 1) for k, v in clock.total.items()},
                             "total": total / (generations - 1)})
    return {k: statistics.mean(c.get(k, 0.0) for c in per_cell) for k in per_cell[0]}


def table(results):
    """Markdown table: one row per experiment, ms per generation per stage, and shares."""
    used = [s for s in STAGES if any(r.get(s, 0) > 0 for r in results.values())]
    lines = ["| experiment | " + " | ".join(used) + " | total |", "|---" * (len(used) + 2) + "|"]
    for name, r in results.items():
        cells = [f"{1e3 * r.get(s, 0):.3f} ({100 * r.get(s, 0) / r['total']:.0f}%)" for s in used]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {1e3 * r['total']:.3f} |")
    return "\n".join(lines)


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
