"""The statistics of one facet: bands over seeds, paired degradation, α*, time to collapse, rates."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hoi_fast import stats
from hoi_fast.report._common import ReportError, _fmt
from hoi_fast.report.loading import Facet


CURVES = 6  # α shown as lines by default
GAP_CURVES = 3


@dataclass
class Analysis:
    """Everything one facet's figures and tables need."""

    facet: Facet
    shown: np.ndarray  # indices of the α drawn as curves
    real: stats.Band  # (shown, generation)
    self_: stats.Band | None
    tail: stats.Band | None
    gap: stats.Band | None  # (gap α, generation)
    gap_index: np.ndarray
    degradation_mean: np.ndarray | None = None  # (alpha, generation)
    degradation: stats.Band | None = None  # (shown, generation) of metric(alpha) - metric(0)
    significant: np.ndarray | None = None  # (alpha, generation) bool: each α's own test
    base_mean: np.ndarray | None = None  # (generation,) mean metric at alpha = 0
    critical: stats.CriticalAlpha | None = None  # the chosen rule
    thresholds: dict | None = None  # rule -> CriticalAlpha (sequence, first, isotonic)
    survival: stats.Survival | None = None  # over alpha
    rate: stats.Rate | None = None  # over alpha
    seeds_per_alpha: np.ndarray | None = None
    notes: list = field(default_factory=list)


def _choose_alphas(alphas, done_rows, wanted):
    """Indices of the α shown as curves: the requested ones, or an even spread of done rows."""
    if wanted is not None:
        index = []
        for a in wanted:
            hit = np.flatnonzero(np.isclose(alphas, a, rtol=0, atol=1e-9))
            if len(hit) == 0:
                raise ReportError(f"`--alphas` value {a:g} is not in the grid "
                                  f"(it has {', '.join(_fmt(x) for x in alphas)})")
            index.append(int(hit[0]))
        return np.asarray(sorted(set(index), key=lambda i: alphas[i]), dtype=np.int64)
    rows = np.flatnonzero(done_rows)
    rows = rows[np.argsort(alphas[rows], kind="stable")]
    if len(rows) <= CURVES:
        return rows
    return rows[np.unique(np.round(np.linspace(0, len(rows) - 1, CURVES)).astype(int))]


def _band(values, options, rng, axis=1):
    if options.simultaneous and values.ndim == 3:
        return stats.simultaneous_band(values, seed_axis=axis, curve_axis=-1, level=options.level,
                                       n_resamples=min(options.n_resamples, 4999), rng=rng)
    return stats.seed_band(values, axis=axis, level=options.level, method=options.method,
                           n_resamples=options.n_resamples, rng=rng)


def analyse(facet, options, seed_key=0):
    """Bands, degradation, α*, the isotonic threshold, time to collapse and rates of one facet.

    Parameters
    ----------
    facet : Facet
    options : Options
    seed_key : int
        Distinguishes the bootstrap streams of facets and experiments.
    """
    def rng(k):
        return np.random.default_rng([options.seed, seed_key, k])

    alphas, real = facet.alphas, facet.real
    seeds_per_alpha = facet.done.sum(axis=1)
    shown = _choose_alphas(alphas, seeds_per_alpha > 0, options.alphas)
    gap_index = shown[np.unique(np.round(np.linspace(0, len(shown) - 1, min(GAP_CURVES, len(shown)))))
                      .astype(int)] if len(shown) else shown
    out = Analysis(
        facet=facet, shown=shown, real=_band(real[shown], options, rng(0)),
        self_=_band(facet.self_[shown], options, rng(1)) if facet.self_ is not None else None,
        tail=_band(facet.tail[shown], options, rng(2)) if facet.tail is not None else None,
        gap=None, gap_index=gap_index, seeds_per_alpha=seeds_per_alpha,
    )
    if facet.self_ is not None:
        out.gap = _band(stats.illusion_gap(real[gap_index], facet.self_[gap_index]), options, rng(3))
    zero = np.flatnonzero(alphas == 0.0)
    if len(zero) == 0:
        out.notes.append("the grid has no α = 0, so paired degradation, α* and the time to collapse "
                         "are not computed (run the grid with 0 among --alphas)")
        return out
    if seeds_per_alpha[zero[0]] < 2:
        out.notes.append("fewer than two seeds are done at α = 0, so paired degradation, α* and the "
                         "time to collapse are not computed yet")
        return out
    diff = stats.paired_degradation(real, alphas, alpha_axis=0)
    out.degradation_mean = _seed_mean(diff)
    out.degradation = _band(diff[shown], options, rng(4))
    out.base_mean = _seed_mean(real[zero[0]], axis=0)
    bound = stats.lower_confidence_bound(diff, seed_axis=1, level=options.level)
    out.significant = bound > options.tolerance * np.abs(out.base_mean)
    axes = dict(alpha_axis=0, seed_axis=1, generation_axis=2)
    out.thresholds = stats.alpha_thresholds(
        real, alphas, **axes, generation=options.generation, tolerance=options.tolerance,
        level=options.level, n_resamples=options.alpha_resamples, rng=rng(5))
    out.critical = out.thresholds[options.alpha_rule]
    out.survival = stats.time_to_collapse(real, alphas, **axes, tolerance=options.tolerance,
                                          level=options.level)
    out.rate = stats.degradation_rate(real, alphas, **axes, level=options.level, method="t",
                                      n_resamples=options.alpha_resamples, rng=rng(6))
    return out


def _seed_mean(values, axis=1):
    """Mean over the done (non-NaN) seeds; NaN where none is done, without warnings."""
    valid = ~np.isnan(values)
    n = valid.sum(axis=axis)
    total = np.where(valid, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)
