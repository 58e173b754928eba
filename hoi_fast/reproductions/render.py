"""A reproduction's page (``NAME.md``: the table, the rule, the verdict) and figure (``NAME.png``).

:mod:`hoi_fast.reproduce` writes both for every reproduction it runs.
"""

from __future__ import annotations

import math
import os

import numpy as np
import scipy.stats

from hoi_fast import stats
from hoi_fast.reproductions.cases import SYMBOLS, _fmt
from hoi_fast.reproductions.judge import FAMILY_LEVEL, _theory_values

#: Level of the pointwise bands drawn in the figures.
BAND_LEVEL = 0.95
JUDGE_WORDS = {"equal": "equal", "upper": "upper bound", "lower": "lower bound",
               "greater": "claim: above", "less": "claim: below"}
DPI = 100


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

