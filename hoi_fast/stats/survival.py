"""Generations to collapse: per-seed collapse times and their Kaplan-Meier curves."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.stats

from hoi_fast.stats._common import _check_level, _check_tolerance
from hoi_fast.stats.critical import _PairedCube


#: Bands of a Kaplan-Meier curve (``scipy.stats`` names).
SURVIVAL_BANDS = ("log-log", "linear")


# -- results -----------------------------------------------------------------

@dataclass(frozen=True)
class CollapseTimes:
    """Per seed, the generation at which the paired degradation first exceeds the tolerance.

    Attributes
    ----------
    time : ndarray of float64, shape ``(alpha, *batch, seed)``
        The generation of the first exceedance (``event``), or the last
        generation observed without one (censored: the horizon, or the
        generation before a NaN value); NaN where the cell is not done.
    event : ndarray of bool, same shape
        True if the seed collapsed within the horizon.
    threshold : ndarray of float64, shape ``(generation, *batch)``
        The absolute tolerance ``tolerance * |mean metric(α = 0)|`` per generation.
    horizon : int
        The last generation index.
    """

    time: np.ndarray
    event: np.ndarray
    threshold: np.ndarray
    horizon: int


@dataclass(frozen=True)
class Survival:
    """Kaplan-Meier estimate of the generations to collapse, per α (and batch).

    ``S(g)`` is the probability that a seed has not collapsed by generation
    ``g`` (its paired degradation stayed at or below the tolerance at every
    generation ``1..g``).

    Attributes
    ----------
    generation : ndarray of int64, shape ``(G,)``
        ``0 .. G-1``.
    survival, low, high : ndarray of float64, shape ``(alpha, *batch, G)``
        ``S(g)`` and its pointwise ``level`` band (``band`` method of
        ``scipy.stats``; where ``S(g)`` is 0 or 1 and that band is undefined,
        the exact binomial interval of the seeds whose state at ``g`` is
        known).  NaN only where no seed is done.
    median, median_low, median_high : ndarray of float64, shape ``(alpha, *batch)``
        The median generation of collapse (the first ``g`` with
        ``S(g) <= 0.5``) and its interval (the first ``g`` where the band's
        low, resp. high, end is ``<= 0.5``).  ``inf`` means "not within the
        horizon".
    never, never_low, never_high : ndarray of float64, shape ``(alpha, *batch)``
        Share of seeds that never collapse within the horizon, ``S(G-1)``,
        and its band.
    events, n : ndarray of int64, shape ``(alpha, *batch)``
        Seeds that collapsed, and seeds done.
    tolerance, level : float
    band : {"log-log", "linear"}
    """

    generation: np.ndarray
    survival: np.ndarray
    low: np.ndarray
    high: np.ndarray
    median: np.ndarray
    median_low: np.ndarray
    median_high: np.ndarray
    never: np.ndarray
    never_low: np.ndarray
    never_high: np.ndarray
    events: np.ndarray
    n: np.ndarray
    tolerance: float
    level: float
    band: str


# -- generations to collapse -----------------------------------------------------

def collapse_times(values, alphas=None, *, alpha_axis=None, seed_axis=None, generation_axis=None,
                   tolerance=0.01):
    """Per seed, the first generation at which the paired degradation exceeds the tolerance.

    Parameters
    ----------
    values : array_like or xarray.DataArray of float
        Metric cube with α, seed and generation axes (higher = worse); other
        axes are batch axes.  NaN = not done.
    alphas : array_like of float, optional
        α of each entry of the α axis; must contain 0.
    alpha_axis, seed_axis, generation_axis : int or str, optional
        As in :func:`~hoi_fast.stats.alpha_thresholds`.
    tolerance : float
        Relative tolerance: a seed collapses at the first generation ``g >= 1``
        where ``metric(α) - metric(α = 0) > tolerance * |mean over seeds of
        metric(α = 0) at g|`` (the threshold of α*).

    Returns
    -------
    CollapseTimes
        Arrays ``(alpha, *batch, seed)``, α in the input order.  A seed that
        never exceeds the tolerance is censored at the last generation; one
        whose value becomes NaN first is censored at the generation before.

    Notes
    -----
    Generation 0 is the common start (trained on real data only; in the grid
    it is shared by every α), so collapse is looked for from generation 1.
    A single seed's degradation is noisy: at small α a seed can cross the
    tolerance by chance, which the survival curve of α = 0 (always 1) and of
    small α shows.
    """
    cube = _PairedCube(values, alphas, alpha_axis, seed_axis, generation_axis)
    tol = _check_tolerance(tolerance)
    # (alpha, *batch, seed, generation) in the input α order
    d = np.moveaxis(cube.diff, (0, 2), (-2, -1))[cube.unsort]
    base = np.moveaxis(cube.base, (0, 1), (-2, -1))  # (*batch, seed, generation)
    valid = ~np.isnan(base)
    count = valid.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, base, 0.0).sum(axis=-2) / count
        threshold = tol * np.abs(mean)  # (*batch, generation), NaN where no base seed is done
        exceed = d > threshold[..., None, :]
    exceed[..., 0] = False
    missing = np.isnan(d)
    missing[..., 0] = False
    gens = cube.gens
    first_exceed = np.where(exceed.any(axis=-1), np.argmax(exceed, axis=-1), gens)
    first_missing = np.where(missing.any(axis=-1), np.argmax(missing, axis=-1), gens)
    event = first_exceed < first_missing
    time = np.where(event, first_exceed, first_missing - 1).astype(np.float64)
    done = ~np.isnan(d[..., 0])
    time[~done] = np.nan
    event &= done
    return CollapseTimes(time=time, event=event, threshold=np.moveaxis(threshold, -1, 0),
                         horizon=gens - 1)


def time_to_collapse(values, alphas=None, *, alpha_axis=None, seed_axis=None, generation_axis=None,
                     tolerance=0.01, level=0.95, band="log-log"):
    """Kaplan-Meier curves of the generations to collapse, the median and the share that never collapse.

    Parameters
    ----------
    values, alphas, alpha_axis, seed_axis, generation_axis, tolerance
        As in :func:`collapse_times`.
    level : float
        Level of the pointwise bands and of the median's interval.
    band : {"log-log", "linear"}
        Band of the survival curve: the exponential Greenwood ("log-log",
        stays inside [0, 1]) or Greenwood's ("linear", clipped), as computed
        by ``scipy.stats.ecdf``.

    Returns
    -------
    Survival
        Arrays over ``(alpha, *batch)``, α in the input order.

    Notes
    -----
    The estimator is ``scipy.stats.ecdf`` of ``scipy.stats.CensoredData``
    (events at the collapse generations, right-censoring at the horizon),
    evaluated at every generation.  Where ``S(g)`` is 0 or 1 the Greenwood
    bands are undefined or of zero width; there the band is the exact
    (Clopper-Pearson) interval of the binomial proportion of the seeds whose
    state at ``g`` is known, which is what ``S(g)`` is when no seed was
    censored before ``g``.  The median's interval inverts the band (the
    first generation where its low, resp. high, end reaches 0.5), as R's
    ``survfit`` does; with generations as discrete times it is conservative.
    """
    if band not in SURVIVAL_BANDS:
        raise ValueError(f"`band` must be one of {SURVIVAL_BANDS}, got {band!r}")
    level = _check_level(level)
    times = collapse_times(values, alphas, alpha_axis=alpha_axis, seed_axis=seed_axis,
                           generation_axis=generation_axis, tolerance=tolerance)
    gens = times.horizon + 1
    shape = times.time.shape[:-1]
    t = times.time.reshape(-1, times.time.shape[-1])
    e = times.event.reshape(t.shape)
    curves = np.array([_kaplan_meier(t[k], e[k], gens, level, band) for k in range(len(t))])
    curves = curves.reshape(shape + (3, gens)) if len(t) else np.full(shape + (3, gens), np.nan)
    survival, low, high = curves[..., 0, :], curves[..., 1, :], curves[..., 2, :]
    n = np.sum(~np.isnan(times.time), axis=-1)
    return Survival(
        generation=np.arange(gens), survival=survival, low=low, high=high,
        median=_first_at_most_half(survival), median_low=_first_at_most_half(low),
        median_high=_first_at_most_half(high),
        never=survival[..., -1], never_low=low[..., -1], never_high=high[..., -1],
        events=times.event.sum(axis=-1), n=n, tolerance=_check_tolerance(tolerance), level=level, band=band,
    )


def _kaplan_meier(time, event, gens, level, band):
    """``S(g)``, low and high at ``g = 0..gens-1`` from one α's seeds: ``(3, gens)``."""
    done = ~np.isnan(time)
    time, event = time[done], event[done]
    if len(time) == 0:
        return np.full((3, gens), np.nan)
    grid = np.arange(gens, dtype=np.float64)
    fit = scipy.stats.ecdf(scipy.stats.CensoredData(uncensored=time[event], right=time[~event]))
    s = fit.sf.evaluate(grid)
    with warnings.catch_warnings():
        # undefined where S is 0 or 1: replaced below
        warnings.filterwarnings("ignore", "The confidence interval is undefined", RuntimeWarning)
        ci = fit.sf.confidence_interval(level, method=band)
    low, high = ci.low.evaluate(grid), ci.high.evaluate(grid)
    low, high = np.where(np.isnan(low), 0.0, low), np.where(np.isnan(high), 1.0, high)
    # exact binomial interval where S(g) is 0 or 1 (g >= 1: no seed can collapse at generation 0)
    known = len(time) - np.sum(~event[:, None] & (time[:, None] < grid[None, :]), axis=0)
    tail = (1.0 - level) / 2
    with np.errstate(divide="ignore"):
        edge = tail ** (1.0 / np.maximum(known, 1))
    top = (s == 1.0) & (grid >= 1)
    bottom = s == 0.0
    low = np.where(top, np.where(known > 0, edge, 0.0), low)
    high = np.where(bottom, np.where(known > 0, 1.0 - edge, 1.0), high)
    low = np.where(bottom, 0.0, low)
    high = np.where(top, 1.0, high)
    low[0] = high[0] = s[0]  # nobody collapses at generation 0: S(0) = 1 exactly
    return np.stack([s, np.minimum(low, s), np.maximum(high, s)])


def _first_at_most_half(curves):
    """First generation where each curve is ``<= 0.5``; inf if none; NaN if the curve is NaN."""
    hit = curves <= 0.5
    first = np.where(hit.any(axis=-1), np.argmax(hit, axis=-1), np.inf).astype(np.float64)
    return np.where(np.isnan(curves[..., 0]), np.nan, first)
