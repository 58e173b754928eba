"""The Markdown of ``summary.md``: the headline (α*, generations to collapse, rate), the tables, provenance."""

from __future__ import annotations

import json
import os

import numpy as np

from hoi_fast import stats
from hoi_fast.report._common import _band_words, _fmt, _rule_words, _take, _units


HEADLINE_ALPHAS = 3  # α quoted in the summary's first lines (the largest shown)


def _interval(low, high, digits=4):
    return f"[{_fmt(low, digits)}, {_fmt(high, digits)}]"


def _pct(x):
    return "n/a" if np.isnan(x) else f"{100 * x:.0f}%"


def _summary_experiment(loaded, analyses, options, figures):
    lines = [f"## {loaded.name}", ""]
    g = options.generation % loaded.generations
    for an in analyses:  # the answer first: when and how fast
        head = _headline_lines(loaded, an, options, g)
        if head and an.facet.label:
            head[0] = f"*{an.facet.label}:* " + head[0]
        lines += head
    if loaded.done_cells < loaded.total_cells:
        lines += [f"**Partial results:** {loaded.done_cells} of {loaded.total_cells} cells are done; "
                  "everything below uses only the done cells.", ""]
    attrs = loaded.attrs.get(loaded.metric, {})
    seeds_min = int(min(a.seeds_per_alpha.min() for a in analyses))
    seeds_max = int(max(a.seeds_per_alpha.max() for a in analyses))
    level = f"{100 * options.level:g}%"
    lines += [
        f"- metric: `{loaded.metric}` — {attrs.get('long_name', '')} [{attrs.get('units', '')}]; higher is worse",
        f"- seeds: {seeds_max} per α (done per α: {seeds_min}–{seeds_max}); "
        f"generations: {loaded.generations} (0 = trained on real data only); "
        f"α grid: {len(analyses[0].facet.alphas)} values in "
        f"[{_fmt(analyses[0].facet.alphas.min())}, {_fmt(analyses[0].facet.alphas.max())}]",
        f"- bands: {_band_words(options)} over seeds ({options.n_resamples} resamples)",
        f"- α*: one-sided {level} Student-t tests of \"mean paired degradation > {100 * options.tolerance:g}% "
        f"of the α = 0 mean\"; "
        + ("fixed sequence from the largest α down, stopping at the first α not significant (family-wise "
           f"error ≤ {100 * (1 - options.level):g}%)" if options.alpha_rule == "sequence" else
           "the smallest α whose own test passes (no multiplicity control)")
        + f"; isotonic threshold: where the monotone fit of the mean degradation crosses the tolerance; "
        f"intervals: {level} bootstrap percentile over seeds ({options.alpha_resamples} resamples)",
        f"- collapse of a seed: the first generation where its paired degradation exceeds the tolerance "
        f"(right-censored at the last generation); Kaplan-Meier (`scipy.stats.ecdf`), median interval "
        f"from the {level} log-log band; rate: least-squares slope per seed, {level} Student-t interval",
        "",
    ]
    for an in analyses:
        if an.facet.label:
            lines += [f"### {an.facet.label}", ""]
        lines += [f"- {note}" for note in an.notes] + ([""] if an.notes else [])
        lines += _critical_lines(loaded, an, options, g)
        lines += _collapse_lines(loaded, an, options)
        lines += _rate_lines(loaded, an, options)
        lines += _degradation_lines(loaded, an, options, g)
        lines += _gap_lines(loaded, an, options, g)
    lines += ["### Figures", ""]
    for file, caption, reading in figures:
        lines += [f"**{caption}.** {reading}", "", f"![{caption}]({file})", ""]
    return lines


def _headline_alphas(an):
    """The α quoted in the first lines: the largest shown α above 0 with done seeds, largest first."""
    alphas = an.facet.alphas
    rows = [i for i in an.shown if alphas[i] > 0 and an.seeds_per_alpha[i] > 0]
    return sorted(rows, key=lambda i: -alphas[i])[:HEADLINE_ALPHAS]


def _headline_lines(loaded, an, options, g):
    """α* at ``g`` with its interval, the median generations to collapse and the rate at a few α."""
    if an.critical is None:
        return []
    metric, tol, level = loaded.metric, f"{100 * options.tolerance:g}%", f"{100 * options.level:g}%"
    top = float(np.max(an.facet.alphas))
    crit, iso = an.critical, an.thresholds["isotonic"]
    other = an.thresholds["first" if options.alpha_rule == "sequence" else "sequence"]
    rule = "fixed-sequence test from the largest α down" if options.alpha_rule == "sequence" else \
        "first α whose own test passes"
    value = crit.per_generation[g]
    if np.isfinite(value):
        first = (f"**α\\* = {_fmt(value)}** at generation {g} ({level} interval "
                 f"{_ci_alpha(crit.per_generation_low[g], crit.per_generation_high[g], top)}): from this "
                 f"synthetic fraction up, `{metric}` is significantly more than {tol} worse than with real "
                 f"data only ({rule}).")
    else:
        first = (f"**α\\* = none** at generation {g}: no α ≤ {_fmt(top)} makes `{metric}` significantly "
                 f"more than {tol} worse than with real data only ({rule}).")
    first += (f" Isotonic threshold {_fmt(iso.per_generation[g])} "
              f"({_ci_alpha(iso.per_generation_low[g], iso.per_generation_high[g], top)}); "
              f"{_rule_words(other.rule)} {_fmt(other.per_generation[g])}.")
    rows = _headline_alphas(an)
    surv, rate = an.survival, an.rate
    horizon = loaded.generations - 1
    collapse = "; ".join(f"α = {_fmt(an.facet.alphas[i])}: {_median_words(surv, i, horizon)}" for i in rows)
    if horizon == 0:
        collapse = "none can be seen with a single generation"
    units = _units(loaded)
    rates = "; ".join(f"at α = {_fmt(an.facet.alphas[i])} {_rate_words(rate, i, units)}" for i in rows)
    return [first, "",
            f"**Generations to collapse** (first generation at which a seed's `{metric}` is more than {tol} "
            f"worse than at α = 0; median and {level} interval): {collapse}.", "",
            f"**Rate:** `{metric}` gets worse per generation {rates}.", ""]


def _median_words(surv, i, horizon):
    never = (f"{_pct(surv.never[i])} of seeds never collapse "
             f"[{_pct(surv.never_low[i])}, {_pct(surv.never_high[i])}]")
    if not np.isfinite(surv.median[i]):
        low = surv.median_low[i]
        since = f", possibly from generation {_fmt(low)}" if np.isfinite(low) else ""
        return f"not within {horizon} generations ({never}{since})"
    high = surv.median_high[i]
    high = _fmt(high) if np.isfinite(high) else f"> {horizon}"
    words = f"{_fmt(surv.median[i])} ({_fmt(surv.median_low[i])}–{high})"
    return words + (f", {never}" if surv.never[i] >= 0.005 else "")


def _half_life(x):
    """A half-life in generations; at the bottom of the fitted range it only says "within a generation"."""
    return f"≤ {_fmt(x, 2)}" if x <= stats.HALF_LIFE_RANGE[0] * 1.0001 else _fmt(x, 2)


def _rate_words(rate, i, units):
    slope = rate.slope
    half = (slope.high[i] - slope.low[i]) / 2
    words = f"by {_fmt(slope.mean[i], 3)} ± {_fmt(half, 2)} {units}".rstrip()
    if rate.saturated[i]:
        words += (f" (levelling off at {_fmt(rate.plateau[i], 3)} {units} "
                  f"[{_fmt(rate.plateau_low[i], 3)}, {_fmt(rate.plateau_high[i], 3)}], half-life "
                  f"{_half_life(rate.half_life[i])} generations [{_half_life(rate.half_life_low[i])}, "
                  f"{_half_life(rate.half_life_high[i])}])")
    return words


def _critical_lines(loaded, an, options, g):
    crit = an.critical
    if crit is None:
        return []
    top = float(np.max(an.facet.alphas))
    level = f"{100 * crit.level:g}%"
    other = "first" if options.alpha_rule == "sequence" else "sequence"
    seq, iso, alt = an.thresholds[options.alpha_rule], an.thresholds["isotonic"], an.thresholds[other]
    lines = ["#### Critical α* by generation", "",
             f"| generation | {_rule_words(options.alpha_rule)} | {level} interval | resamples with some α* | "
             f"{_rule_words(other)} | isotonic threshold | {level} interval |",
             "|---:|---:|:---:|---:|---:|---:|:---:|"]
    for k in range(len(seq.per_generation)):
        lines.append(f"| {k} | {_fmt(seq.per_generation[k])} | "
                     f"{_ci_alpha(seq.per_generation_low[k], seq.per_generation_high[k], top)} | "
                     f"{_pct(seq.found_fraction[k])} | {_fmt(alt.per_generation[k])} | "
                     f"{_fmt(iso.per_generation[k])} | "
                     f"{_ci_alpha(iso.per_generation_low[k], iso.per_generation_high[k], top)} |")
    return lines + [""]


def _ci_alpha(low, high, top):
    def one(x):
        if np.isnan(x):
            return "n/a"
        return _fmt(x) if np.isfinite(x) else f"> {_fmt(top)}"
    return f"{one(low)} – {one(high)}"


def _collapse_lines(loaded, an, options):
    surv = an.survival
    if surv is None:
        return []
    horizon = loaded.generations - 1
    level = f"{100 * surv.level:g}%"
    lines = [f"#### Generations to collapse (Δ{loaded.metric} > {100 * options.tolerance:g}% of α = 0)", "",
             f"| α | median generation | {level} interval | never collapse (by generation {horizon}) | "
             f"{level} interval | collapsed / seeds |",
             "|---:|---:|:---:|---:|:---:|---:|"]
    for i in an.shown:
        median = _fmt(surv.median[i]) if np.isfinite(surv.median[i]) else f"> {horizon}"
        ends = [_fmt(x) if np.isfinite(x) else f"> {horizon}" for x in (surv.median_low[i], surv.median_high[i])]
        lines.append(f"| {_fmt(an.facet.alphas[i])} | {median} | {ends[0]} – {ends[1]} | {_pct(surv.never[i])} | "
                     f"{_pct(surv.never_low[i])} – {_pct(surv.never_high[i])} | {surv.events[i]} / {surv.n[i]} |")
    return lines + [""]


def _rate_lines(loaded, an, options):
    rate = an.rate
    if rate is None:
        return []
    units = _units(loaded)
    level = f"{100 * rate.level:g}%"
    lines = [f"#### Rate: Δ{loaded.metric} per generation", "",
             f"| α | slope [{units}/generation] | {level} interval | plateau [{units}] | half-life "
             f"[generations] | levels off within {rate.horizon} generations |",
             "|---:|---:|:---:|---:|---:|:---:|"]
    for i in an.shown:
        plateau = f"{_fmt(rate.plateau[i], 3)} {_interval(rate.plateau_low[i], rate.plateau_high[i], 3)}"
        half = (f"{_half_life(rate.half_life[i])} [{_half_life(rate.half_life_low[i])}, "
                f"{_half_life(rate.half_life_high[i])}]")
        sat = rate.saturated[i]
        lines.append(f"| {_fmt(an.facet.alphas[i])} | {_fmt(rate.slope.mean[i], 4)} | "
                     f"{_interval(rate.slope.low[i], rate.slope.high[i])} | {plateau if sat else '—'} | "
                     f"{half if sat else '—'} | {'yes' if sat else 'no'} |")
    return lines + [""]


def _degradation_lines(loaded, an, options, g):
    if an.degradation is None:
        return []
    band = _take(an.degradation, slice(None), g)
    units = _units(loaded)
    lines = [f"#### Degradation at generation {g}: {loaded.metric}(α) − {loaded.metric}(α = 0)", "",
             f"| α | mean Δ [{units}] | {100 * options.level:g}% band | relative to α = 0 | seeds | "
             f"own test: above {100 * options.tolerance:g}% tolerance |",
             "|---:|---:|:---:|---:|---:|:---:|"]
    base = an.base_mean[g]
    for j, i in enumerate(an.shown):
        rel = band.mean[j] / abs(base) if base else np.nan
        sig = "yes" if an.significant[i, g] else "no"
        lines.append(f"| {_fmt(an.facet.alphas[i])} | {_fmt(band.mean[j], 4)} | "
                     f"{_interval(band.low[j], band.high[j])} | {_fmt(100 * rel, 3)}% | {band.n[j]} | {sig} |")
    return lines + [""]


def _gap_lines(loaded, an, options, g):
    if an.gap is None:
        return []
    units = _units(loaded)
    lines = [f"#### Hall-of-illusions gap at generation {g}: {loaded.metric} − {loaded.self_metric}", "",
             f"| α | real [{units}] | self [{units}] | gap [{units}] | {100 * options.level:g}% band |",
             "|---:|---:|---:|---:|:---:|"]
    pick = np.searchsorted(an.shown, an.gap_index)
    for j, (i, p) in enumerate(zip(an.gap_index, pick)):
        lines.append(f"| {_fmt(an.facet.alphas[i])} | {_fmt(an.real.mean[p, g], 4)} | "
                     f"{_fmt(an.self_.mean[p, g], 4)} | {_fmt(an.gap.mean[j, g], 4)} | "
                     f"{_interval(an.gap.low[j, g], an.gap.high[j, g])} |")
    return lines + [""]


def _provenance_lines(path, provenance):
    finished = provenance.get("finished", "")
    lines = ["## Provenance", "", f"Results file: `{os.path.abspath(path)}`"
             + ("" if finished else " — **the grid has not finished** (no finish time recorded)"), "",
             "| attribute | value |", "|---|---|"]
    for key in sorted(provenance):
        if key == "config":
            continue
        value = str(provenance[key]).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {key} | `{value}` |" if value else f"| {key} | |")
    config = provenance.get("config")
    if config:
        try:
            config = json.dumps(json.loads(config), indent=2, sort_keys=True)
        except (TypeError, ValueError):
            pass
        lines += ["", "Run configuration:", "", "```json", str(config), "```"]
    return lines + [""]
