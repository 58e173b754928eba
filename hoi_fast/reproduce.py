"""``python -m hoi_fast.reproduce``: published model-collapse results, one command each, theory over the bands.

Each reproduction (:mod:`hoi_fast.reproductions`) is a declarative
:class:`Reproduction`: one or more grids (:class:`Run`, run through
:func:`hoi_fast.grid.run`, the machinery and file format of
``python -m hoi_fast.grid``, resumable), the quantities compared
(:class:`Quantity`: a function of the stored metrics of one *case*, i.e. one
α and swept value of one run, per seed and generation) and, for each, the
theory (:class:`Theory`: a closed form or a published bound as a function of
the case and the generation, or a per-seed conditional expectation) with how
to judge it.  This module runs them, judges them and writes, into the output
folder:

``NAME.md``
    The table: for a few generations of every case, the mean over seeds with
    its confidence interval, the theoretical value, how it is judged, a
    p-value and the verdict ("agrees" / "disagrees"), and the rule.
``NAME.png``
    The figure: mean over seeds with a 95% band, the theory drawn on top
    (dashed, dotted, ...), log scales where the paper used them.
``NAME.h5`` (``NAME-LABEL.h5`` for a reproduction with several grids)
    The results file of each grid (``python -m hoi_fast.report`` reads it).
``index.md``
    With ``all``: one line per reproduction with its verdict and time.

``--quick`` runs the small version of every grid (files ``NAME-quick.*``), in
seconds: the tests run it and assert the verdicts it reports.

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

import argparse
import math
import os
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass

import h5py
import numpy as np
import scipy.stats

from hoi_fast import grid as _grid
from hoi_fast import stats
from hoi_fast._validate import ConfigError, require
from hoi_fast.config import MAX_SEEDS
from hoi_fast.executors import local_pool
from hoi_fast.reproductions import REPRODUCTIONS, Quantity, Reproduction, Run, Theory  # noqa: F401 (the spec types)
from hoi_fast.store import ResultsFileError, check_output_path, check_resumable

#: Probability that a correct theory gets a whole table of "agrees" (Bonferroni over its rows).
FAMILY_LEVEL = 0.99
#: Level of the pointwise bands drawn in the figures.
BAND_LEVEL = 0.95
JUDGE_WORDS = {"equal": "equal", "upper": "upper bound", "lower": "lower bound",
               "greater": "claim: above", "less": "claim: below"}
DEFAULT_OUT = "repro"
DPI = 100
#: Relative tolerance of every comparison: an interval within this fraction of the compared values
#: counts as containing the theory.  It covers zero-width intervals (every seed agrees) and rare
#: events: a per-seed theory such as E[missing mass | R] can include terms of probability 1e-6
#: per seed, which a few hundred seeds never show, so their mean differs from the theory by far
#: less than 1 ppm with an interval that shrinks around the difference.
EXACT_RTOL = 1e-6

#: How swept parameters and case keys are written in labels.
SYMBOLS = {"samples": "n", "alpha": "α", "noise": "σ²", "zipf_a": "a", "zipf_b": "b", "top_k": "k",
           "dim": "d", "features": "d", "vocab_size": "V", "components": "K"}


# -- cases: one α and swept value of one run ------------------------------------------

class _Metrics(dict):
    """Metric name -> ``(seeds, generations, ...)`` array, read from the file on first use."""

    def __init__(self, path, group, index, done):
        super().__init__()
        self._path, self._group, self._index, self._done = path, group, index, done

    def __missing__(self, name):
        with h5py.File(self._path, "r") as f:
            g = f[self._group]
            if name not in g:
                raise KeyError(f"{self._path} group {self._group} has no metric {name!r}")
            values = np.asarray(g[name][self._index], dtype=np.float64)
        self[name] = values[self._done]
        return self[name]


@dataclass(eq=False)
class Case:
    """One α (and swept value) of one run of one experiment: the seeds that share its settings.

    Attributes
    ----------
    run : str
        The run's label.
    experiment : str
        The results group (experiment name).
    regime : str
    alpha : float
    config : dict
        The experiment's configuration with the swept values applied.
    swept : dict
        Swept field -> value.
    metrics : mapping
        Metric name -> float64 array ``(seeds, generations, ...)`` of the done seeds.
    seeds : int
        Done seeds.
    generations : int
    label : str
        Set by :func:`load_cases` from the keys that vary.
    """

    run: str
    experiment: str
    regime: str
    alpha: float
    config: dict
    swept: dict
    metrics: dict
    seeds: int
    generations: int
    label: str = ""

    def get(self, key):
        """A case key: ``alpha``, ``regime``, ``run``, ``experiment``, or a (swept) configuration field."""
        if key in ("alpha", "regime", "run", "experiment"):
            return getattr(self, key)
        if key in self.swept:
            return self.swept[key]
        return self.config[key]

    def keys(self):
        """The keys that distinguish cases: run, experiment, α and the swept fields."""
        return {"run": self.run, "experiment": self.experiment, "alpha": self.alpha, **self.swept}

    def gens(self):
        """``arange(generations)`` as int64."""
        return np.arange(self.generations, dtype=np.int64)


def _dims(ds):
    return tuple(ds.dims[i][0].name.rsplit("/", 1)[-1] for i in range(ds.ndim))


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def load_cases(spec, paths):
    """Every case of every run of ``spec`` from its results files (run label -> path).

    Returns
    -------
    list of Case
        In run order, then experiment, α and swept values in grid order;
        cases without any done seed are left out.
    """
    import json

    cases = []
    for run in spec.runs:
        path = paths[run.label]
        with h5py.File(path, "r") as f:
            grid_identity = json.loads(_text(f.attrs["config"]))
            for name in (k for k in f.keys() if isinstance(f[k], h5py.Group)):
                g = f[name]
                config = json.loads(_text(g.attrs["config"]))
                cell_dims = _dims(g["done"])
                done = g["done"][...].astype(bool)
                coords = {d: g[d][...] for d in cell_dims[:-1]}
                generations = int(g["generation"].shape[0])
                for index in np.ndindex(*done.shape[:-1]):
                    mask = done[index]
                    if not mask.any():
                        continue
                    values = {d: coords[d][i].item() for d, i in zip(cell_dims[:-1], index)}
                    alpha = float(values.pop("alpha"))
                    swept = {d: (_text(v) if isinstance(v, bytes) else v) for d, v in values.items()}
                    cases.append(Case(run=run.label, experiment=name, regime=grid_identity["regime"],
                                      alpha=alpha, config={**config, **swept}, swept=swept,
                                      metrics=_Metrics(path, name, index, mask), seeds=int(mask.sum()),
                                      generations=generations))
    _label_cases(cases)
    return cases


def _fmt(value, digits=4):
    """A number in at most ``digits`` significant digits (plain for integers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    value = float(value)
    if not math.isfinite(value):
        return {math.inf: "∞", -math.inf: "−∞"}.get(value, "NaN")
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:.{digits}g}"


def _scalar(value):
    return isinstance(value, (str, int, float, bool, np.generic))


def _label_cases(cases):
    """Label each case by the settings that vary between cases: experiment, α, swept and other scalar
    settings (e.g. a sample size swept in one run and fixed in another), and the run where those tie."""
    keys = ["experiment", "alpha"]
    for c in cases:
        keys += [k for k in c.swept if k not in keys]
    common = set.intersection(*(set(c.config) for c in cases)) if cases else set()
    keys += [k for k in (cases[0].config if cases else ()) if k not in keys and k in common]

    def value(case, key):
        try:
            v = case.get(key)
        except KeyError:
            return None
        return v if _scalar(v) else None

    varying = [k for k in keys if len({value(c, k) for c in cases}) > 1]
    for c in cases:
        parts = []
        for key in varying:
            v = value(c, key)
            if v is None:
                continue
            parts.append(str(v) if key == "experiment" else f"{SYMBOLS.get(key, key)} = {_fmt(v)}")
        c.label = ", ".join(parts)
    if len({c.label for c in cases}) < len(cases) or not any(c.label for c in cases):
        for c in cases:
            c.label = ", ".join(p for p in (c.run, c.label) if p)
    for c in cases:
        c.label = c.label or "all seeds"


# -- judging ---------------------------------------------------------------------

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


# -- the page ----------------------------------------------------------------------

def _cell(text):
    """Text for a Markdown table cell: a literal | would end the cell."""
    return str(text).replace("|", "\\|")


def _interval(row):
    return f"{_fmt(row.mean)} [{_fmt(row.low)}, {_fmt(row.high)}]"


def _p(p):
    if not math.isfinite(p):
        return "—"
    return "< 1e-300" if p < 1e-300 else _fmt(p, 2)


def rule_text(evaluation):
    """The verdict rule of a table, in words."""
    rows = len(evaluation.rows)
    return (f"**Rule.** Each row compares the mean over seeds (a share of seeds for events) with the theory. "
            f"Intervals are two-sided at level {100 * evaluation.level:.4g}% = 1 − {1 - FAMILY_LEVEL:g}/{rows} "
            f"(Bonferroni over the {rows} rows), so a correct theory gets a whole table of \"agrees\" with "
            f"probability ≥ {100 * FAMILY_LEVEL:g}%: Student-t intervals of means (`hoi_fast.stats.seed_band`, "
            "method `t`), exact Clopper–Pearson intervals of shares.  *equal*: agrees when the theory lies in the "
            "interval; *upper bound* / *lower bound*: agrees unless the whole interval lies above / below the "
            "bound; *claim: above* / *below*: agrees only when the whole interval lies on the claimed side "
            "(the one-sided p-value is below the row's error rate).  Agreement within 1 ppm counts as agreement "
            "(zero-width intervals where every seed agrees, and rare events no seed shows).  *paired* rows "
            "compare each seed with its own "
            "conditional expectation given its generation-0 data: the interval is that of the mean difference, "
            "centred on the mean theory.  p: two-sided for *equal*, one-sided toward a violation (bounds) or "
            "toward the claim (claims).")


def table_lines(evaluation):
    """The Markdown table of the judged rows."""
    lines = ["| quantity | theory | case | g | measured mean [interval] | theory value | judged as | p | seeds "
             "| verdict |", "|---|---|---|---:|---|---:|---|---:|---:|---|"]
    for r in evaluation.rows:
        judge = JUDGE_WORDS[r.judge] + (", paired" if r.paired else "")
        verdict = "agrees" if r.agrees else "**disagrees**"
        lines.append(f"| {_cell(r.quantity)} | {_cell(r.theory)} | {_cell(r.case)} | {r.generation} | {_interval(r)} "
                     f"| {_fmt(r.value)} | {judge} | {_p(r.p)} | {r.seeds} | {verdict} |")
    return lines


def verdict_words(evaluation):
    agree = sum(r.agrees for r in evaluation.rows)
    word = "agrees" if evaluation.agrees else "disagrees"
    return f"{word} ({agree} of {len(evaluation.rows)} rows agree)"


def write_page(evaluation, path, figure_name, command, seconds, result_files):
    """Write the Markdown page of one reproduction."""
    spec = evaluation.spec
    seeds = evaluation.seeds
    seed_words = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
    lines = [f"# {spec.paper}", "",
             f"**Setting.** {spec.setting}", "",
             f"**Compared.** {spec.compared}", "",
             f"**Verdict: {verdict_words(evaluation)}.**", "",
             f"Command: `{command}` · {seed_words} seeds per case · {seconds:.0f} s · results: "
             + ", ".join(f"`{os.path.basename(p)}`" for p in result_files), "",
             rule_text(evaluation), ""]
    lines += table_lines(evaluation)
    lines += ["", f"![{spec.name}]({figure_name})", ""]
    if spec.claims is not None:
        extra = spec.claims(evaluation.cases)
        if extra:
            lines += extra + [""]
    if spec.notes:
        lines += ["## Notes", ""]
        for note in spec.notes:
            lines += [note, ""]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))


# -- the figure ----------------------------------------------------------------------

def _band(values, statistic):
    """Mean and pointwise BAND_LEVEL band over the seed axis 0 of ``values`` ``(seeds, ...)``."""
    if statistic == "proportion":
        n = np.sum(~np.isnan(values), axis=0)
        k = np.nansum(values > 0.5, axis=0)
        a = (1 - BAND_LEVEL) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            low = np.where(k > 0, scipy.stats.beta.ppf(a, k, n - k + 1), 0.0)
            high = np.where(k < n, scipy.stats.beta.ppf(1 - a, k + 1, n - k), 1.0)
            return k / n, low, high
    finite = np.where(np.isfinite(values), values, np.nan)
    band = stats.seed_band(finite, axis=0, level=BAND_LEVEL, method="t")
    return band.mean, band.low, band.high


def _colours(count):
    from matplotlib import colormaps

    if count <= 10:
        cmap = colormaps["tab10"]
        return [cmap(i) for i in range(count)]
    cmap = colormaps["viridis"]
    return [cmap(i / max(1, count - 1)) for i in range(count)]


STYLES = ("--", ":", "-.", (0, (5, 1, 1, 1)))


def _positive(values, log):
    return np.where(values > 0, values, np.nan) if log else values


def _panel_generation(ax, q, qi, evaluation):
    cases = [(ci, c) for ci, c in enumerate(evaluation.cases) if (qi, ci) in evaluation.measured]
    colours = _colours(len(cases))
    for colour, (ci, case) in zip(colours, cases):
        values = evaluation.measured[qi, ci]
        gens = case.gens()
        mean, low, high = _band(values, q.statistic)
        x = gens.astype(float)
        keep = x >= 1 if q.log_x else np.ones_like(x, bool)
        ax.plot(x[keep], _positive(mean, q.log_y)[keep], color=colour, lw=1.6, label=case.label)
        ax.fill_between(x[keep], _positive(low, q.log_y)[keep], _positive(high, q.log_y)[keep], color=colour,
                        alpha=0.2, lw=0)
        for style, theory in zip(STYLES, q.theories):
            value = _theory_values(theory, case, gens)
            if theory.per_seed:
                value = value.mean(axis=0)
            ax.plot(x[keep], _positive(np.asarray(value, float), q.log_y)[keep], color=colour, lw=1.1, ls=style)
    ax.set_xlabel("generation")
    if q.log_x:
        ax.set_xscale("log")


def _panel_parameter(ax, q, qi, evaluation):
    key = q.x
    cases = [(ci, c) for ci, c in enumerate(evaluation.cases) if (qi, ci) in evaluation.measured]
    groups = {}
    for ci, c in cases:
        rest = tuple((k, v) for k, v in c.keys().items() if k != key)
        groups.setdefault(rest, []).append((ci, c))
    colours = _colours(len(groups))
    for colour, (rest, members) in zip(colours, groups.items()):
        members.sort(key=lambda m: m[1].get(key))
        xs, means, lows, highs, theories = [], [], [], [], [[] for _ in q.theories]
        for ci, c in members:
            g = q.at % c.generations
            values = evaluation.measured[qi, ci]
            mean, low, high = _band(values[:, g:g + 1], q.statistic)
            xs.append(float(c.get(key)))
            means.append(mean[0]), lows.append(low[0]), highs.append(high[0])
            for t, theory in zip(theories, q.theories):
                value = _theory_values(theory, c, np.array([g]))
                t.append(float(np.mean(value)))
        xs, means = np.array(xs), np.array(means)
        label = ", ".join(f"{SYMBOLS.get(k, k)} = {_fmt(v)}" if k not in ("run", "experiment") else str(v)
                          for k, v in rest if len({dict(r).get(k) for r in groups}) > 1) or None
        ax.errorbar(xs, means, yerr=[means - np.array(lows), np.array(highs) - means], color=colour, marker="o",
                    ms=3.5, lw=1.4, capsize=2, label=label)
        for style, t in zip(STYLES, theories):
            ax.plot(xs, t, color=colour, lw=1.1, ls=style)
    ax.set_xlabel(SYMBOLS.get(key, key) + (f"  (generation {q.at})" if q.at >= 0 else "  (last generation)"))
    if q.log_x:
        ax.set_xscale("log")


def write_figure(evaluation, path, dpi=DPI, width=5.2, height=3.9):
    """The reproduction's figure: one panel per plotted quantity, theory lines over the bands."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    spec = evaluation.spec
    shown = [(qi, q) for qi, q in enumerate(spec.quantities)
             if q.plot and any(k[0] == qi for k in evaluation.measured)]
    if not shown:
        return False
    cols = min(spec.columns, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig = Figure(figsize=(width * cols, height * rows + 0.5), dpi=dpi)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (qi, q) in zip(axes.ravel(), shown):
        if q.x == "generation":
            _panel_generation(ax, q, qi, evaluation)
        else:
            _panel_parameter(ax, q, qi, evaluation)
        for x, label in q.marks:
            ax.axvline(x, color="0.45", ls=":", lw=1.2, label=label)
        if q.log_y:
            ax.set_yscale("log")
        ax.set_ylabel(q.label)
        ax.set_title(q.title or q.label, fontsize=9.5)
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        handles += [Line2D([], [], color="0.2", ls=s, lw=1.1) for s, _ in zip(STYLES, q.theories)]
        labels += [t.label for t in q.theories]
        if handles:
            ax.legend(handles, labels, fontsize=6.5, frameon=False, loc="best", ncols=2 if len(handles) > 6 else 1)
    for ax in axes.ravel()[len(shown):]:
        ax.set_visible(False)
    fig.suptitle(f"{spec.paper}: mean over seeds with {100 * BAND_LEVEL:g}% band (solid), theory (dashed/dotted)",
                 fontsize=10)
    # fixed margins in inches (matplotlib's tight layout took a third of a quick reproduction)
    total_w, total_h = width * cols, height * rows + 0.5
    fig.subplots_adjust(left=0.95 / total_w, right=1 - 0.15 / total_w, bottom=0.5 / total_h,
                        top=1 - 0.85 / total_h, wspace=1.2 / (width - 1.2), hspace=0.95 / (height - 0.95))
    fig.savefig(path)
    return True


# -- running ------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What :func:`reproduce` wrote and found."""

    spec: Reproduction
    evaluation: Evaluation
    page: str
    figure: str
    results: dict
    seconds: float


def command_for(name, quick=False, seeds=None, out=None):
    """The command line that reproduces ``name``."""
    words = ["python", "-m", "hoi_fast.reproduce", name]
    if quick:
        words.append("--quick")
    if seeds is not None:
        words += ["--seeds", str(seeds)]
    if out is not None and out != DEFAULT_OUT:
        words += ["--out", out]
    return shlex.join(words)


def reproduce(spec, folder, quick=False, seeds=None, jobs=1, quiet=True, overwrite=False, executor="local"):
    """Run (or resume) every grid of ``spec`` into ``folder``, judge it and write its page and figure.

    Parameters
    ----------
    spec : Reproduction
    folder : str
        An existing, writable folder.
    quick : bool
        The small grids of ``--quick``.
    seeds : int, optional
        Seeds of every grid (default: the spec's).
    jobs : int
        Worker processes of each grid.
    quiet : bool
        No progress output from the grids.
    overwrite : bool
        Replace results files that hold another configuration (e.g. other seeds).
    executor : "local", None or concurrent.futures.Executor
        Where the grids' blocks run (:func:`hoi_fast.grid.run`): ``"local"``
        opens a pool of ``jobs`` workers per grid; an executor (or None: this
        process) is shared by every grid, so workers start once.

    Returns
    -------
    Outcome
    """
    t0 = time.perf_counter()
    paths = spec.result_paths(folder, quick)
    command = command_for(spec.name, quick, seeds)
    for run in spec.runs:
        config = run.grid_config(quick, seeds)
        _grid.run(config, paths[run.label], jobs=jobs, overwrite=overwrite, command_line=command, quiet=quiet,
                  executor=executor)
    cases = load_cases(spec, paths)
    evaluation = evaluate(spec, cases)
    page, figure = spec.page_paths(folder, quick)
    seconds = time.perf_counter() - t0
    drawn = write_figure(evaluation, figure)
    write_page(evaluation, page, os.path.basename(figure) if drawn else "", command, seconds, list(paths.values()))
    return Outcome(spec, evaluation, page, figure if drawn else "", paths, seconds)


def write_index(outcomes, path, quick=False, total_seconds=None):
    """The index page of ``all``: one row per reproduction."""
    lines = ["# Reproductions", "",
             f"Every table uses intervals at a Bonferroni level over its rows, so that a correct theory "
             f"gets a whole table of \"agrees\" with probability ≥ {100 * FAMILY_LEVEL:g}%.", "",
             "| reproduction | paper | setting | compared | verdict | time | command |",
             "|---|---|---|---|---|---:|---|"]
    for o in outcomes:
        s = o.spec
        page = os.path.basename(o.page)
        lines.append(f"| [`{s.name}`]({page}) | {_cell(s.paper)} | {_cell(s.setting)} | {_cell(s.compared)} "
                     f"| {verdict_words(o.evaluation)} | {o.seconds:.0f} s | `{command_for(s.name, quick)}` |")
    if total_seconds is not None:
        lines += ["", f"Total: {total_seconds:.0f} s (`{command_for('all', quick)}`)."]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


# -- command line ---------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see --help\n")


def build_parser():

    p = _Parser(prog="python -m hoi_fast.reproduce",
                description="Reproduce published model-collapse results: run the grid, draw the theory over the "
                "bands, judge it in a table.  Without NAME: list the reproductions.",
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("name", nargs="?", default=None,
                   help="a reproduction (" + ", ".join(REPRODUCTIONS) + ") or all")
    p.add_argument("--seeds", default=None, help="seeds of every grid [default: each reproduction's]")
    p.add_argument("--quick", action="store_true", help="the small version (seconds; what the tests run)")
    p.add_argument("--out", default=DEFAULT_OUT, help="folder for the results files, tables and figures")
    p.add_argument("--jobs", default=None, help="worker processes [default: all cores]")
    p.add_argument("--overwrite", action="store_true",
                   help="replace results files that hold another configuration (e.g. other --seeds)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _positive_int(name, text, maximum):
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ConfigError(f"`{name}` must be a positive integer, got {text!r}") from None
    require(1 <= value <= maximum, f"`{name}` must be a positive integer (at most {maximum:,}), got {text!r}")
    return value


def _check_folder(folder):
    """The output folder: an existing writable folder, or a missing one in a writable parent (created later)."""
    require(bool(folder), "`--out` must be a folder name such as repro")
    if os.path.exists(folder):
        require(os.path.isdir(folder), f"`--out` {folder} exists and is not a folder; give a folder")
        require(os.access(folder, os.W_OK | os.X_OK), f"`--out` folder {folder} is not writable; "
                "make it writable or choose another --out")
        return False
    parent = os.path.dirname(os.path.abspath(folder))
    require(os.path.isdir(parent), f"`--out` {folder}: its parent folder {parent} does not exist; create it "
            "or choose another --out")
    require(os.access(parent, os.W_OK | os.X_OK), f"`--out` {folder} cannot be created: {parent} is not "
            "writable; choose another --out")
    return True


def list_text():
    """The list of reproductions (no NAME given)."""

    width = max(len(n) for n in REPRODUCTIONS)
    lines = ["reproductions (python -m hoi_fast.reproduce NAME [--quick] [--seeds N] [--out DIR]; or all):"]
    for name, spec in REPRODUCTIONS.items():
        lines.append(f"  {name:<{width}}  {spec.paper} — {spec.setting}")
    return "\n".join(lines)


def main(argv=None):
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if threading.current_thread() is not threading.main_thread():
        return _main(parser, args)
    previous = signal.signal(signal.SIGINT, _grid.INTERRUPTS.handler)
    try:
        return _main(parser, args)
    finally:
        signal.signal(signal.SIGINT, previous)


def _main(parser, args):

    try:
        if args.name is None:
            print(list_text())
            return 0
        if args.name != "all" and args.name not in REPRODUCTIONS:
            raise ConfigError(f"`NAME` {args.name!r} names no reproduction; use one of "
                              f"{', '.join(REPRODUCTIONS)} or all (run without NAME to list them)")
        specs = list(REPRODUCTIONS.values()) if args.name == "all" else [REPRODUCTIONS[args.name]]
        seeds = None if args.seeds is None else _positive_int("--seeds", args.seeds, MAX_SEEDS)
        jobs = _grid.available_cores() if args.jobs is None else _positive_int("--jobs", args.jobs, 4096)
        create = _check_folder(args.out)
        for spec in specs:  # every grid and results file is checked before anything is written
            paths = spec.result_paths(args.out, args.quick)
            for run in spec.runs:
                config = run.grid_config(args.quick, seeds)
                if not create:
                    check_output_path(paths[run.label])
                    if not args.overwrite:
                        check_resumable(paths[run.label], config.identity(), _grid.same_run(config))
        if create:
            os.makedirs(args.out)
        t0 = time.perf_counter()
        outcomes = []
        with local_pool(jobs) as pool:  # workers start once for every grid
            for spec in specs:
                if not args.quiet:
                    print(f"[hoi_fast.reproduce] {spec.name}: running", file=sys.stderr, flush=True)
                outcome = reproduce(spec, args.out, args.quick, seeds, jobs, quiet=args.quiet,
                                    overwrite=args.overwrite, executor=pool)
                outcomes.append(outcome)
                print(f"{spec.name}: {verdict_words(outcome.evaluation)} in {outcome.seconds:.0f} s -> "
                      f"{outcome.page}", flush=True)
                if args.name == "all":
                    write_index(outcomes, os.path.join(args.out, "index-quick.md" if args.quick else "index.md"),
                                args.quick)
        if args.name == "all":
            total = time.perf_counter() - t0
            write_index(outcomes, os.path.join(args.out, "index-quick.md" if args.quick else "index.md"),
                        args.quick, total)
            print(f"all: {sum(o.evaluation.agrees for o in outcomes)} of {len(outcomes)} agree in {total:.0f} s",
                  flush=True)
        return 0
    except (ConfigError, ResultsFileError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except BaseException as exc:
        if _grid._interrupted(exc):
            print(f"{parser.prog}: interrupted; re-run the same command to resume", file=sys.stderr)
            return 130
        raise


if __name__ == "__main__":
    sys.exit(main())
