"""Where a cell's time goes: the cost of one generation, stage by stage.

:func:`cell_stages` runs cells of one experiment through
:func:`hoi_fast.experiment.run_cell`, as the grid does (generation 0
computed once per seed and shared), and times each stage by wrapping the
experiment's protocol methods, so the breakdown is the same for a plug-in:

``build set``
    :func:`hoi_fast.experiment.next_training_parts` without the synthesis:
    drawing the real part, joining parts.
``sample``
    ``synthesize`` (sampling the synthetic part, bias and filters).
``fit``
    ``fit`` (count / EM / the plug-in's fit).
``held-out``, ``self``
    ``metrics``, split where the experiment's metric calls are known
    (:data:`METRIC_PROBES`: the n-gram model's ``_score``/``_sample``, the
    GMM's ``log_density``/``_sample``); otherwise one ``metrics`` stage.
``check``
    validating the row (:class:`hoi_fast.experiment.RowCheck`).
``other``
    the rest of :func:`~hoi_fast.experiment.run_cell` (streams, stacking).
``store``
    once per cell, spread over its generations: pickling the cell's result
    (the worker-to-parent transport) and what the parent spends to store
    it: with a ``storing`` probe (:func:`hoi_fast.store.storing_seconds` on
    the run's layout: journal record, compression into the file's chunks)
    its measured seconds, else only the journal record's encoding.

Stages are exclusive and sum to the total.  ``python -m hoi_fast.grid
--dry-run --profile`` prints the table for the configured run (its
settings, regime and swept values); ``bench/bench_stages.py`` for the
built-in defaults.  The wrapped methods are restored afterwards.
"""

from __future__ import annotations

import collections
import contextlib
import pickle
import statistics
import time

from hoi_fast import experiment as _exp
from hoi_fast.store.journal import _encode_cell

#: The stages, in table order.
STAGES = ("build set", "sample", "fit", "held-out", "self", "metrics", "check", "other", "store")

#: The clock: CPU time of this (single-threaded) process, which leaves out the time it
#: waited for a core on a machine shared with noisy neighbours; or wall time.
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


class StageClock:
    """Accumulates time per stage; time in a nested stage is not counted in the stage around it.

    Parameters
    ----------
    now : callable
        Returns the current time in seconds (one of :data:`CLOCKS`).
    """

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


def _ngram_probes():
    from hoi_fast import ngram

    # metrics() scores the held-out text by its distinct grams and the self-sampled text by
    # _score (at the default kneser-ney, _score_distinct does not call _score)
    return [(ngram.NGramModel, "_score_distinct", lambda *_: "held-out"),
            (ngram.NGramModel, "_score", lambda *_: "self"), (ngram.NGramModel, "_sample", lambda *_: "self")]


def _gmm_probes():
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


@contextlib.contextmanager
def _patched(patches):
    """Set ``owner.name = replacement`` for each patch, then undo it: an attribute the owner
    only inherited (an instance's method) is deleted again rather than pinned."""
    saved = [(owner, name, vars(owner).get(name), name in vars(owner)) for owner, name, _ in patches]
    try:
        for owner, name, replacement in patches:
            setattr(owner, name, replacement)
        yield
    finally:
        for owner, name, original, own in reversed(saved):
            if own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)


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


def _cell_patches(experiment, name, clock):
    """What :func:`cell_stages` wraps for one cell: the metric probes, the protocol methods, the loop's steps."""
    metric_stage, patches = "metrics", []
    for probe in METRIC_PROBES.get(name, lambda: [])():
        owner, attr, label = probe[:3]
        after = probe[3] if len(probe) > 3 else None
        patches.append((owner, attr, _timed(clock, label, getattr(owner, attr), after, inside="held-out")))
        metric_stage = "held-out"  # what the probes do not claim
    return patches + [
        (experiment, "synthesize", _timed(clock, lambda *a: "sample", experiment.synthesize)),
        (experiment, "fit", _timed(clock, lambda *a: "fit", experiment.fit)),
        (experiment, "metrics", _timed(clock, lambda *a: metric_stage, experiment.metrics)),
        (_exp, "next_training_parts", _timed(clock, lambda *a, **k: "build set", _exp.next_training_parts)),
        (_exp.RowCheck, "__call__", _timed(clock, lambda *a: "check", _exp.RowCheck.__call__)),
    ]


def cell_stages(experiment, name, alpha, regime, generations, streams_of, cells=3, clock="cpu", storing=None):
    """Mean seconds per generation of each stage of ``cells`` cells of ``experiment``.

    One more cell runs first, untimed, to compile kernels and fill caches.

    Parameters
    ----------
    experiment : Experiment
        An instance, configured as the run configures it.
    name : str
        Its registered name (selects :data:`METRIC_PROBES`) and the journal group.
    alpha : float
    regime : str
        One of :data:`hoi_fast.experiment.REGIMES`.
    generations : int
        Generations per cell, >= 2 (generation 0 is not timed: it is shared
        across an α row).
    streams_of : callable
        ``streams_of(seed)`` -> :class:`hoi_fast.seeding.CellStreams` of the
        cell of replicate ``seed``; seeds 0 .. ``cells`` are used.
    cells : int
        Cells timed, >= 1.
    clock : {"cpu", "wall"}
    storing : callable, optional
        ``storing(result)`` -> seconds the parent spends to store one cell
        like ``result`` (the store's own probe, wall time), counted in
        ``store`` instead of the journal encoding alone.

    Returns
    -------
    dict of str -> float
        Stage -> seconds per generation (stages that did not occur are
        absent), plus ``"total"``, their sum.
    """
    specs = _exp.cell_metric_specs(experiment)
    per_cell = []
    for seed in range(cells + 1):
        cell_streams = streams_of(seed)
        first = _exp.first_generation(experiment, cell_streams, specs)
        timer = StageClock(CLOCKS[clock])
        with _patched(_cell_patches(experiment, name, timer)):
            with timer.stage("other"):
                result = _exp.run_cell(experiment, alpha, generations, regime, cell_streams, first)
            with timer.stage("store"):
                pickle.loads(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
                if storing is None:
                    _encode_cell(name, (0, seed), result)
            if storing is not None:
                timer.total["store"] += storing(result)
        if seed:  # the first cell warms up
            steps = generations - 1
            per_cell.append({k: v / steps for k, v in timer.total.items()})
            per_cell[-1]["total"] = sum(timer.total.values()) / steps
    seen = dict.fromkeys(k for c in per_cell for k in c)  # a stage of any cell, in order of appearance
    return {k: statistics.mean(c.get(k, 0.0) for c in per_cell) for k in seen}


def table(results):
    """Markdown table of :func:`cell_stages` results: one row per label, ms per generation and shares.

    Parameters
    ----------
    results : dict of str -> dict
        Row label -> :func:`cell_stages` result.
    """
    used = [s for s in STAGES if any(r.get(s, 0) > 0 for r in results.values())]
    lines = ["| experiment | " + " | ".join(used) + " | total |", "|---" * (len(used) + 2) + "|"]
    for label, r in results.items():
        whole = r["total"] or 1.0  # a clock that did not tick
        cells = [f"{1e3 * r.get(s, 0):.3f} ({100 * r.get(s, 0) / whole:.0f}%)" for s in used]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {1e3 * r['total']:.3f} |")
    return "\n".join(lines)
