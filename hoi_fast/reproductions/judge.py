"""Judging a reproduction: every quantity of every case against its theory, one verdict per table.

:mod:`hoi_fast.reproduce` calls :func:`evaluate` for every reproduction it runs.

The verdict rule
----------------
A table of R judged rows uses two-sided intervals at level
``1 - (1 - FAMILY_LEVEL) / R`` (Bonferroni), so that a correct theory gets a
whole table of "agrees" with probability at least ``FAMILY_LEVEL`` (99%):

* means: the Student-t interval of the mean over seeds
  (:func:`hoi_fast.stats.seed_band` with ``method="t"``); a per-seed theory
  (a conditional expectation given the seed's generation-0 data) is compared
  through the per-seed differences (paired), and the interval shown is that
  of the mean difference, centred on the mean theory;
* proportions: the exact Clopper-Pearson interval.

``equal``: agrees when the theory lies inside the interval.  ``upper`` (the
theory is an upper bound of the expectation): agrees unless the whole
interval lies above it; ``lower`` the mirror image.  ``greater`` / ``less``
(a claim that the expectation exceeds / stays below a value): agrees only
when the whole interval lies on the claimed side, i.e. the one-sided test
rejects at ``(1 - FAMILY_LEVEL) / R``.  An interval within a relative
``EXACT_RTOL`` (1 ppm) of the theory counts as containing it: points where
every seed has the same value (zero-width intervals), and rare events that
no seed shows (see :data:`EXACT_RTOL`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.stats

from hoi_fast import stats
from hoi_fast.reproductions.spec import Reproduction

#: Probability that a correct theory gets a whole table of "agrees" (Bonferroni over its rows).
FAMILY_LEVEL = 0.99
#: Relative tolerance of every comparison: an interval within this fraction of the compared values
#: counts as containing the theory.  It covers zero-width intervals (every seed agrees) and rare
#: events: a per-seed theory such as E[missing mass | R] can include terms of probability 1e-6
#: per seed, which a few hundred seeds never show, so their mean differs from the theory by far
#: less than 1 ppm with an interval that shrinks around the difference.
EXACT_RTOL = 1e-6


@dataclass(frozen=True)
class Row:
    """One judged row of a table."""

    quantity: str
    theory: str
    case: str
    generation: str
    judge: str
    paired: bool
    mean: float
    low: float
    high: float
    value: float
    p: float
    seeds: int
    agrees: bool


def _verdict(judge, low, high, value, tol=0.0):
    """Whether the interval ``[low, high]`` agrees with ``value`` under ``judge``.

    ``tol`` is the rounding tolerance: an interval within ``tol`` of the value
    counts as containing it (a zero-width interval of seeds that all agree, or
    differences from a per-seed theory that are pure rounding).
    """
    low_ok, high_ok = low <= value + tol, high >= value - tol
    return {"equal": low_ok and high_ok, "upper": low_ok, "lower": high_ok,
            "greater": low > value + tol, "less": high < value - tol}[judge]


def _t_pvalue(judge, t, dof):
    if not math.isfinite(t):
        return 0.0 if judge == "equal" or (t > 0) == (judge in ("upper", "greater")) else 1.0
    if judge == "equal":
        return float(2 * scipy.stats.t.sf(abs(t), dof))
    if judge in ("upper", "greater"):  # evidence that the mean lies above the value
        return float(scipy.stats.t.sf(t, dof))
    return float(scipy.stats.t.cdf(t, dof))


def judge_mean(x, theory, judge, level):
    """Mean of ``x`` over seeds vs ``theory`` (scalar, or per seed: paired).

    Returns ``(mean, low, high, value, p, seeds, agrees)`` with the interval
    centred as described in the module docstring.
    """
    x = np.asarray(x, dtype=np.float64)
    theory = np.broadcast_to(np.asarray(theory, dtype=np.float64), x.shape)
    keep = ~np.isnan(x)
    x, theory = x[keep], theory[keep]
    seeds = int(x.size)
    value = float(theory.mean()) if seeds else math.nan
    if seeds < 2:
        return (float(x.mean()) if seeds else math.nan, math.nan, math.nan, value, math.nan, seeds, False)
    if not np.all(np.isfinite(x)) or not np.all(np.isfinite(theory)):
        mean = float(x.mean())
        same = bool(np.all(x == theory))
        return mean, mean, mean, value, 0.0 if not same else 1.0, seeds, same and judge in ("equal", "upper",
                                                                                             "lower")
    diff = x - theory
    band = stats.seed_band(diff, axis=-1, level=level, method="t")
    d_mean, d_low, d_high = float(band.mean), float(band.low), float(band.high)
    sd = float(diff.std(ddof=1))
    t = d_mean / (sd / math.sqrt(seeds)) if sd > 0 else (0.0 if d_mean == 0 else math.copysign(math.inf, d_mean))
    p = _t_pvalue(judge, t, seeds - 1)
    tol = EXACT_RTOL * float(np.mean(np.abs(x)) + np.mean(np.abs(theory)))
    agrees = _verdict(judge, d_low, d_high, 0.0, tol)
    return value + d_mean, value + d_low, value + d_high, value, p, seeds, agrees


def judge_proportion(x, theory, judge, level):
    """Share of seeds with ``x == 1`` vs ``theory`` with an exact Clopper-Pearson interval."""
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    value = float(np.mean(theory))
    seeds = int(x.size)
    k = int(np.sum(x > 0.5))
    if seeds == 0:
        return math.nan, math.nan, math.nan, value, math.nan, 0, False
    ci = scipy.stats.binomtest(k, seeds).proportion_ci(confidence_level=level, method="exact")
    low, high = float(ci.low), float(ci.high)
    clipped = min(max(value, 0.0), 1.0)
    if judge == "equal":
        p = scipy.stats.binomtest(k, seeds, clipped).pvalue if 0 < clipped < 1 else float(k / seeds != clipped)
    elif judge in ("upper", "greater"):
        p = scipy.stats.binomtest(k, seeds, clipped, alternative="greater").pvalue if clipped < 1 else 1.0
    else:
        p = scipy.stats.binomtest(k, seeds, clipped, alternative="less").pvalue if clipped > 0 else 1.0
    return k / seeds, low, high, value, float(p), seeds, _verdict(judge, low, high, value, EXACT_RTOL * abs(value))


def _at(values, g):
    return values[:, g] if g is not None else values


def _theory_values(theory, case, gens):
    value = np.asarray(theory.value(case, gens), dtype=np.float64)
    if theory.per_seed:
        return np.broadcast_to(value, (case.seeds,) + (() if gens is None else gens.shape))
    return np.broadcast_to(value, () if gens is None else gens.shape)


@dataclass
class Evaluation:
    """The judged rows of a reproduction and the measured values behind its figure."""

    spec: Reproduction
    cases: list
    rows: list
    level: float
    measured: dict  # (quantity index, case index) -> (seeds, G) or (seeds,) array

    @property
    def agrees(self):
        return bool(self.rows) and all(r.agrees for r in self.rows)

    @property
    def seeds(self):
        return sorted({c.seeds for c in self.cases})


def _covered(quantity, cases):
    return [c for c in cases if quantity.cases is None or quantity.cases(c)]


def evaluate(spec, cases):
    """Measure every quantity of ``spec`` on ``cases`` and judge every theory (Bonferroni over the rows).

    Returns
    -------
    Evaluation
    """
    measured = {}
    plan = []  # (quantity, theory, case, generation or None, values)
    for qi, q in enumerate(spec.quantities):
        for ci, case in enumerate(cases):
            if q.cases is not None and not q.cases(case):
                continue
            values = np.asarray(q.measure(case), dtype=np.float64)
            measured[qi, ci] = values
            for theory in q.theories:
                if values.ndim == 1:
                    plan.append((q, theory, case, None, values))
                else:
                    for g in q.table_generations(case):
                        plan.append((q, theory, case, g, values))
    level = 1 - (1 - FAMILY_LEVEL) / max(1, len(plan))
    rows = []
    for q, theory, case, g, values in plan:
        gens = None if g is None else np.array([g])
        theta = _theory_values(theory, case, gens)
        theta = theta if g is None else theta[..., 0]
        x = _at(values, g)
        if q.statistic == "proportion":
            result = judge_proportion(x, theta, theory.judge, level)
        else:
            result = judge_mean(x, theta, theory.judge, level)
        mean, low, high, value, p, seeds, agrees = result
        rows.append(Row(q.label, theory.label, case.label, q.summary if g is None else str(g), theory.judge,
                        theory.per_seed, mean, low, high, value, p, seeds, agrees))
    return Evaluation(spec, cases, rows, level, measured)

