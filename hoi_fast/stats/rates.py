"""How fast the paired degradation grows: its slope per generation, and its plateau and half-life."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hoi_fast.stats._common import _check_level, _check_resamples, _generator
from hoi_fast.stats.bands import METHODS, Band, seed_band
from hoi_fast.stats.critical import _PairedCube


#: Half-lives (generations) over which the saturating fit is profiled: the smallest, and the
#: largest per generation of horizon.
HALF_LIFE_RANGE = (0.05, 20.0)
_HALF_LIFE_POINTS = 160


# -- results -----------------------------------------------------------------

@dataclass(frozen=True)
class Rate:
    """How fast the paired degradation grows with generations, per α (and batch).

    Attributes
    ----------
    slope : Band
        Per-seed least-squares slope of ``metric(α) - metric(α = 0)`` against
        the generation index (units of the metric per generation): its mean
        over seeds and interval, shape ``(alpha, *batch)``.
    plateau, plateau_low, plateau_high : ndarray of float64, shape ``(alpha, *batch)``
        ``P`` of the saturating fit ``P (1 - 2**(-g / h))`` of the mean
        degradation curve, and its bootstrap interval over seeds.
    half_life, half_life_low, half_life_high : ndarray of float64
        ``h``, generations to reach half the plateau, and its interval.
    saturated : ndarray of bool
        True where the curve demonstrably levels off within the horizon: the
        plateau's interval excludes 0 and the half-life's upper end is at
        most half the horizon.  Elsewhere the fit is an extrapolation and the
        slope is the number to quote.
    horizon : int
        The last generation index.
    level : float
    n_resamples : int
    """

    slope: Band
    plateau: np.ndarray
    plateau_low: np.ndarray
    plateau_high: np.ndarray
    half_life: np.ndarray
    half_life_low: np.ndarray
    half_life_high: np.ndarray
    saturated: np.ndarray
    horizon: int
    level: float
    n_resamples: int


# -- rates -------------------------------------------------------------------------

def degradation_rate(values, alphas=None, *, alpha_axis=None, seed_axis=None, generation_axis=None,
                     level=0.95, method="t", n_resamples=2000, rng=0):
    """Slope of the paired degradation per generation, and its plateau and half-life where it saturates.

    Parameters
    ----------
    values, alphas, alpha_axis, seed_axis, generation_axis
        As in :func:`~hoi_fast.stats.alpha_thresholds`.
    level : float
        Level of the intervals.
    method : {"t", "bca", "percentile"}
        Interval of the mean slope over seeds (:func:`~hoi_fast.stats.seed_band`).
    n_resamples : int
        Seed resamples for the plateau and half-life intervals (and the
        slope's with a bootstrap ``method``).
    rng : int, numpy.random.Generator or None

    Returns
    -------
    Rate
        Arrays over ``(alpha, *batch)``, α in the input order.

    Notes
    -----
    **Slope.** Each seed's ``metric(α) - metric(α = 0)`` is regressed on the
    generation index by least squares over its finite generations; the
    estimate is the mean of the seeds' slopes, which is the least-squares
    slope of the mean curve, with an interval over seeds (Student-t by
    default: exact for normal noise, whatever the noise's correlation over
    generations, since each seed contributes one slope).

    **Plateau and half-life.** The mean degradation curve is fitted by
    ``P (1 - 2**(-g / h))`` by least squares (``P`` in closed form, ``h``
    profiled over 160 log-spaced values from 0.05 to 20 horizons and refined
    by a parabola); the interval of each is the percentile interval over
    seed resamples.  The
    curve counts as ``saturated`` where ``P``'s interval excludes 0 and
    ``h``'s upper end is at most half the horizon (so at least 3/4 of the
    plateau is reached within the data).
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
    cube = _PairedCube(values, alphas, alpha_axis, seed_axis, generation_axis)
    level = _check_level(level)
    n_resamples = _check_resamples(n_resamples)
    gen = _generator(rng)
    slopes = _seed_slopes(cube.diff)  # (seed, alpha, *batch)
    slope = seed_band(slopes, axis=0, level=level, method=method, n_resamples=n_resamples, rng=gen)
    horizon = cube.gens - 1
    half_lives = np.geomspace(HALF_LIFE_RANGE[0], HALF_LIFE_RANGE[1] * max(horizon, 1), _HALF_LIFE_POINTS)
    basis = 1.0 - 2.0 ** (-np.arange(cube.gens)[:, None] / half_lives[None, :])  # (generation, K)

    def fits(w):
        mean = cube.moments(w, second=False)[0]  # (R, alpha, generation * batch)
        curves = np.moveaxis(mean.reshape((len(w), cube.n_alpha, cube.gens, -1)), 2, -1)
        return _saturating_fit(curves.reshape(-1, cube.gens), basis, half_lives)

    point = [a.reshape(cube.n_alpha, -1) for a in fits(np.ones((1, cube.seeds)))]
    boot_p = np.empty((n_resamples,) + point[0].shape)
    boot_h = np.empty_like(boot_p)
    done = 0
    for w in cube.resamples(n_resamples, gen, per_column=2 + 3 * _HALF_LIFE_POINTS // cube.gens):
        p, h = fits(w)
        boot_p[done:done + len(w)] = p.reshape((len(w),) + point[0].shape)
        boot_h[done:done + len(w)] = h.reshape((len(w),) + point[0].shape)
        done += len(w)
    qs = (0.5 - level / 2, 0.5 + level / 2)
    p_low, p_high = np.quantile(boot_p, qs, axis=0)
    h_low, h_high = np.quantile(boot_h, qs, axis=0)
    saturated = ((p_low > 0) | (p_high < 0)) & (h_high <= horizon / 2)
    shape = (cube.n_alpha,) + cube.batch_shape

    def out(a):
        return a.reshape(shape)[cube.unsort]

    band = Band(*(out(getattr(slope, f)) for f in ("mean", "low", "high", "method", "n")), level=level)
    return Rate(slope=band, plateau=out(point[0]), plateau_low=out(p_low), plateau_high=out(p_high),
                half_life=out(point[1]), half_life_low=out(h_low), half_life_high=out(h_high),
                saturated=out(saturated), horizon=horizon, level=level, n_resamples=n_resamples)


def _seed_slopes(diff):
    """Least-squares slope over generations of each seed's curve: ``(seed, alpha, *batch)``.

    ``diff`` is ``(seed, alpha, generation, *batch)``; non-finite values are
    left out; NaN where fewer than two generations are finite.
    """
    d = np.moveaxis(diff, 2, -1)
    ok = np.isfinite(d)
    g = np.broadcast_to(np.arange(d.shape[-1], dtype=np.float64), d.shape)
    count = ok.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        g_mean = np.where(ok, g, 0.0).sum(axis=-1) / count
        d_mean = np.where(ok, d, 0.0).sum(axis=-1) / count
        gc = np.where(ok, g - g_mean[..., None], 0.0)
        sxx = (gc * gc).sum(axis=-1)
        sxy = (gc * np.where(ok, d - d_mean[..., None], 0.0)).sum(axis=-1)
        return np.where((count >= 2) & (sxx > 0), sxy / sxx, np.nan)


def _saturating_fit(curves, basis, half_lives):
    """Least-squares ``P (1 - 2**(-g/h))`` of each row of ``curves`` ``(N, G)``: ``(P, h)``.

    ``h`` is profiled over ``half_lives`` (log-spaced; ``basis`` holds the
    model's curve for each) and refined by a parabola through the best
    point and its neighbours on the log scale; ``P`` is then in closed form.
    Non-finite points are left out; an all-zero (or empty) row gives
    ``P = 0`` at the smallest ``h``.
    """
    ok = np.isfinite(curves)
    y = np.where(ok, curves, 0.0)
    score = y @ basis  # x.y of each h, (N, K)
    all_ok = ok.all()
    if all_ok:
        inv_xx = 1.0 / np.maximum((basis * basis).sum(axis=0), 1e-300)
        score *= score
        score *= inv_xx  # RSS reduction of each h
    else:
        xx = ok.astype(np.float64) @ (basis * basis)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(xx > 0, score * score / xx, 0.0)
    k = np.argmax(score, axis=1)
    rows = np.arange(len(curves))
    inner = np.clip(k, 1, len(half_lives) - 2)
    s_lo, s_mid, s_hi = (score[rows, inner + d] for d in (-1, 0, 1))
    curvature = s_lo - 2 * s_mid + s_hi
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(curvature < 0, 0.5 * (s_lo - s_hi) / curvature, 0.0)
    interior = (k > 0) & (k < len(half_lives) - 1)
    log_h = np.log(half_lives)
    step = log_h[1] - log_h[0]
    half_life = np.exp(np.where(interior, log_h[inner] + np.clip(shift, -0.5, 0.5) * step, log_h[k]))
    g = np.arange(curves.shape[1])
    x = np.where(ok, 1.0 - 2.0 ** (-g[None, :] / half_life[:, None]), 0.0)
    xx = (x * x).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        plateau = np.where(xx > 0, (x * y).sum(axis=1) / xx, 0.0)
    return plateau, half_life
