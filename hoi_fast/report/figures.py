"""The report's figures, one ``figure_*`` function per PNG, and their drawing helpers.

Figures are drawn with matplotlib's object API on ``Figure`` objects (Agg
canvas), imported inside the functions, so importing this module never
touches pyplot's global state or a display.
"""

from __future__ import annotations

import numpy as np

from hoi_fast import stats
from hoi_fast.report._common import _band_words, _fmt, _rule_words, _take, _units


DPI = 110


def _label(loaded, metric):
    attrs = loaded.attrs.get(metric, {})
    units = attrs.get("units", "")
    return f"{metric} [{units}]" if units else metric


def _figure(analyses, cols, width=6.4, height=4.0, title_lines=2):
    """A figure with a row of ``cols`` axes per analysis (facet), with fixed margins in inches.

    Fixed margins rather than matplotlib's constrained layout, which took
    half of the report's drawing time; titles of ``title_lines`` lines (and
    the facet label, if any) and colour bars fit.
    """
    from matplotlib.figure import Figure

    rows = len(analyses)
    title_lines += any(an.facet.label for an in analyses)
    fig = Figure(figsize=(width * cols, height * rows), dpi=DPI)
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    top, bottom, left, right, gap_x = 0.3 + 0.19 * title_lines, 0.55, 0.8, 0.2, 0.95
    axes_h = max(height - top - bottom, 0.5)
    axes_w = max(width - gap_x, 0.5)
    fig.subplots_adjust(left=left / (width * cols), right=1 - right / (width * cols),
                        top=1 - top / (height * rows), bottom=bottom / (height * rows),
                        hspace=(top + bottom) / axes_h, wspace=gap_x / axes_w)
    return fig, axes


def _alpha_colours(alphas):
    from matplotlib import cm, colors

    finite = alphas[np.isfinite(alphas)]
    norm = colors.Normalize(vmin=float(finite.min()), vmax=float(max(finite.max(), finite.min() + 1e-12)))
    return cm.ScalarMappable(norm=norm, cmap="viridis")


def _draw_bands(ax, gens, band, rows, mapper, alphas, linestyle="-", labels=True, step=False):
    for j, i in enumerate(rows):
        colour = mapper.to_rgba(alphas[i])
        label = f"α = {_fmt(alphas[i])}" if labels else None
        if step:
            ax.step(gens, band.mean[j], where="post", color=colour, lw=1.8, ls=linestyle, label=label)
        else:
            ax.plot(gens, band.mean[j], color=colour, lw=1.8, ls=linestyle, label=label)
        ax.fill_between(gens, band.low[j], band.high[j], color=colour, alpha=0.18, lw=0,
                        step="post" if step else None)


def _title(ax, analysis, text):
    label = analysis.facet.label
    ax.set_title(f"{text}\n{label}" if label else text, fontsize=10)


def _int_ticks(ax):
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _finish(ax, xlabel="generation", integer=True):
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    if integer:
        _int_ticks(ax)


def figure_collapse(loaded, analyses, options, path):
    """Real metric vs generation, one banded line per shown α; paired degradation beside it."""
    paired = all(a.degradation is not None for a in analyses)
    fig, axes = _figure(analyses, 2 if paired else 1, width=6.4, height=4.6)
    gens = np.arange(loaded.generations)
    for row, an in zip(axes, analyses):
        mapper = _alpha_colours(an.facet.alphas)
        ax = row[0]
        _draw_bands(ax, gens, an.real, an.shown, mapper, an.facet.alphas)
        ax.set_ylabel(_label(loaded, loaded.metric))
        _title(ax, an, f"{loaded.name}: {loaded.metric} on real held-out data\n"
                       f"mean over seeds, {_band_words(options)}")
        ax.legend(fontsize=8, ncols=2, loc="upper left", frameon=False)
        if paired:
            ax = row[1]
            _draw_bands(ax, gens, an.degradation, an.shown, mapper, an.facet.alphas)
            ax.plot(gens, options.tolerance * np.abs(an.base_mean), color="0.3", ls="--", lw=1,
                    label=f"tolerance: {100 * options.tolerance:g}% of α = 0")
            ax.axhline(0, color="0.6", lw=0.8)
            ax.set_ylabel(f"Δ {_label(loaded, loaded.metric)} vs α = 0")
            _title(ax, an, f"paired degradation {loaded.metric}(α) − {loaded.metric}(α = 0), "
                           "same seeds\n(higher = worse than training on real data only)")
            ax.legend(handles=ax.get_lines()[-2:-1], fontsize=8, loc="upper left", frameon=False)
        for ax in row:
            _finish(ax)
        fig.colorbar(mapper, ax=row[-1], label="synthetic fraction α")
    fig.savefig(path)


def figure_degradation(loaded, analyses, options, path):
    """Heatmap α × generation of the mean paired degradation, α* and the isotonic threshold on top."""
    from matplotlib import colors

    fig, axes = _figure(analyses, 1, width=7.5, height=4.6, title_lines=1)
    gens = np.arange(loaded.generations)
    for ax, an in zip(axes[:, 0], analyses):
        order = np.argsort(an.facet.alphas)
        alphas = an.facet.alphas[order]
        mean = an.degradation_mean[order]
        top = float(np.nanmax(np.abs(mean))) if np.isfinite(mean).any() else 1.0
        top = top if top > 0 else 1.0
        norm = colors.TwoSlopeNorm(vcenter=0.0, vmin=-top, vmax=top)
        mesh = ax.pcolormesh(_edges(gens.astype(float)), _edges(alphas), mean,
                             cmap="RdBu_r", norm=norm, shading="flat")
        for rule, style in ((options.alpha_rule, "k.-"), ("isotonic", "m--")):
            crit = an.thresholds[rule].per_generation
            ok = np.isfinite(crit)
            ax.plot(gens[ok], crit[ok], style, lw=1.2, ms=5, label=_rule_words(rule))
        ax.set_ylabel("synthetic fraction α")
        _title(ax, an, f"{loaded.name}: paired degradation {loaded.metric}(α) − {loaded.metric}(α = 0), "
                       "mean over seeds")
        ax.legend(fontsize=8, loc="upper right", framealpha=0.8)
        _finish(ax)
        ax.grid(False)
        fig.colorbar(mesh, ax=ax, label=f"Δ {_label(loaded, loaded.metric)}  (red = worse)")
    fig.savefig(path)


def _edges(centres):
    """Cell edges around sorted centres (for pcolormesh)."""
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mid = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def figure_critical(loaded, analyses, options, path):
    """α* by both rules and the isotonic threshold vs generation, with intervals; 'none' at the top."""
    fig, axes = _figure(analyses, 1, width=8.0, height=4.8, title_lines=3)
    gens = np.arange(loaded.generations)
    series = (("sequence", "tab:blue", "o", -0.15), ("first", "tab:orange", "s", 0.0),
              ("isotonic", "tab:purple", "D", 0.15))
    for ax, an in zip(axes[:, 0], analyses):
        top = float(np.max(an.facet.alphas))
        for rule, colour, marker, shift in series:
            crit = an.thresholds[rule]
            x = gens + shift
            low = np.minimum(np.nan_to_num(crit.per_generation_low, posinf=top), top)
            # an interval end beyond the grid is drawn just past the top, into the "none" zone
            high = np.minimum(np.nan_to_num(crit.per_generation_high, posinf=1.06 * top), 1.06 * top)
            ax.vlines(x, low, high, color=colour, lw=2.2, alpha=0.35)
            ok = np.isfinite(crit.per_generation)
            chosen = " (headline)" if rule == options.alpha_rule else ""
            ax.plot(x[ok], crit.per_generation[ok], marker=marker, ls="-", color=colour, ms=4.5, lw=1.2,
                    label=_rule_words(rule) + chosen)
            none = ~ok & ~np.isnan(crit.per_generation)
            if none.any():
                ax.plot(x[none], np.full(none.sum(), 1.06 * top), "^", color=colour, ms=6, alpha=0.8)
        ax.axhline(top, color="0.5", ls=":", lw=1, label=f"largest α of the grid ({_fmt(top)}); ▲ none")
        ax.set_ylim(-0.03 * top, 1.12 * top)
        ax.set_ylabel("critical synthetic fraction")
        _title(ax, an, f"{loaded.name}: where {loaded.metric} becomes more than {100 * options.tolerance:g}% "
                       f"worse than α = 0\nα*: one-sided {100 * options.level:g}% tests, fixed sequence from the "
                       f"largest α down (family-wise error ≤ {100 * (1 - options.level):g}%) or first α passing; "
                       f"\nisotonic: monotone fit of the mean crossing the tolerance; bars: "
                       f"{100 * options.level:g}% bootstrap intervals over seeds")
        ax.legend(fontsize=8, loc="lower left", frameon=False)
        _finish(ax)
    fig.savefig(path)


def figure_survival(loaded, analyses, options, path):
    """Kaplan-Meier curves for the shown α, the median generations to collapse and the rate against α."""
    fig, axes = _figure(analyses, 3, width=5.6, height=4.4)
    gens = np.arange(loaded.generations)
    horizon = loaded.generations - 1
    for row, an in zip(axes, analyses):
        surv, rate, alphas = an.survival, an.rate, an.facet.alphas
        mapper = _alpha_colours(alphas)
        band = stats.Band(surv.survival[an.shown], surv.low[an.shown], surv.high[an.shown],
                          np.array([]), np.array([]), surv.level)
        _draw_bands(row[0], gens, band, an.shown, mapper, alphas, step=True)
        row[0].set_ylim(-0.03, 1.03)
        row[0].set_ylabel("share of seeds not yet collapsed")
        row[0].legend(fontsize=8, ncols=2, loc="lower left", frameon=False)
        _title(row[0], an, f"{loaded.name}: Kaplan-Meier survival, collapse = first generation\nwith "
                           f"Δ{loaded.metric} > {100 * options.tolerance:g}% of α = 0; "
                           f"{100 * surv.level:g}% {surv.band} band")
        _finish(row[0])
        order = np.argsort(alphas)
        order = order[surv.n[order] > 0]
        _draw_medians(row[1], alphas[order], surv.median[order], surv.median_low[order],
                      surv.median_high[order], horizon)
        row[1].set_ylabel("generations to collapse (median)")
        _title(row[1], an, f"median generations to collapse\nbars: {100 * surv.level:g}% interval; "
                           f"▲ not within {horizon} generations")
        _finish(row[1], "synthetic fraction α", integer=False)
        slope = rate.slope
        ok = order[np.isfinite(slope.mean[order])]
        row[2].plot(alphas[ok], slope.mean[ok], "o-", color="tab:red", ms=3.5, lw=1.2, label="mean slope")
        row[2].fill_between(alphas[ok], slope.low[ok], slope.high[ok], color="tab:red", alpha=0.2, lw=0,
                            label=f"{100 * rate.level:g}% interval over seeds")
        sat = ok[rate.saturated[ok]]
        if len(sat):
            row[2].plot(alphas[sat], slope.mean[sat], "o", mfc="none", mec="k", ms=7,
                        label="levels off within the horizon")
        row[2].axhline(0, color="0.6", lw=0.8)
        row[2].set_ylabel(f"Δ{loaded.metric} per generation [{_units(loaded)}]")
        row[2].legend(fontsize=8, loc="upper left", frameon=False)
        _title(row[2], an, f"rate: least-squares slope of Δ{loaded.metric}\nover generations 0–{horizon}")
        _finish(row[2], "synthetic fraction α", integer=False)
    fig.savefig(path)


def _draw_medians(ax, alphas, median, low, high, horizon):
    """Median generations to collapse against α; 'not within the horizon' drawn as triangles above it."""
    beyond = horizon + 1
    found = np.isfinite(median)
    lo = np.where(np.isfinite(low), low, beyond)
    hi = np.where(np.isfinite(high), high, beyond)
    ax.vlines(alphas, lo, hi, color="tab:green", lw=2.2, alpha=0.4)
    ax.plot(alphas[found], median[found], "o-", color="tab:green", ms=4, lw=1.2)
    if (~found).any():
        ax.plot(alphas[~found], np.full((~found).sum(), beyond), "^", color="tab:green", ms=6, alpha=0.7)
    ax.axhline(beyond, color="0.6", ls=":", lw=1)
    ax.set_ylim(0, beyond + 0.8)


def figure_gap(loaded, analyses, options, path):
    """Real vs self metric for a few α, and the gap real − self with its band."""
    fig, axes = _figure(analyses, 2, width=6.0, height=4.1, title_lines=1)
    gens = np.arange(loaded.generations)
    for row, an in zip(axes, analyses):
        mapper = _alpha_colours(an.facet.alphas)
        pick = np.searchsorted(an.shown, an.gap_index) if len(an.shown) else []
        real = _take(an.real, pick)
        self_ = _take(an.self_, pick)
        _draw_bands(row[0], gens, real, an.gap_index, mapper, an.facet.alphas)
        _draw_bands(row[0], gens, self_, an.gap_index, mapper, an.facet.alphas, "--", labels=False)
        row[0].plot([], [], "k-", label="real held-out data")
        row[0].plot([], [], "k--", label="model's own samples")
        row[0].set_ylabel(_label(loaded, loaded.metric).replace("real_", ""))
        _title(row[0], an, f"{loaded.name}: {loaded.metric} (solid) vs {loaded.self_metric} (dashed)")
        _draw_bands(row[1], gens, an.gap, an.gap_index, mapper, an.facet.alphas)
        row[1].axhline(0, color="0.4", lw=0.8)
        row[1].set_ylabel(f"gap {loaded.metric} − {loaded.self_metric} [{_units(loaded)}]")
        _title(row[1], an, "hall-of-illusions gap (higher = the model fools itself more)")
        for ax in row:
            _finish(ax)
            ax.legend(fontsize=8, frameon=False, loc="upper left")
    fig.savefig(path)


def figure_tail(loaded, analyses, options, path):
    """The tail metric next to the overall one, same α and colours."""
    fig, axes = _figure(analyses, 2, width=6.0, height=4.1, title_lines=1)
    gens = np.arange(loaded.generations)
    for row, an in zip(axes, analyses):
        mapper = _alpha_colours(an.facet.alphas)
        for ax, band, metric, what in ((row[0], an.real, loaded.metric, "all of the held-out data"),
                                       (row[1], an.tail, loaded.tail_metric, "the rare tail only")):
            _draw_bands(ax, gens, band, an.shown, mapper, an.facet.alphas)
            ax.set_ylabel(_label(loaded, metric))
            _title(ax, an, f"{loaded.name}: {metric} on {what}")
            _finish(ax)
        row[0].legend(fontsize=8, ncols=2, frameon=False, loc="upper left")
        fig.colorbar(mapper, ax=row[1], label="synthetic fraction α")
    fig.savefig(path)
