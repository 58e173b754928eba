"""Confidence bands over seeds, paired degradation, the critical α and the illusion gap.

Pure functions over NumPy arrays.  The grid's metric cubes have the layout
``(alpha, [sweeps...], seed, generation)`` with NaN where a cell is not done;
every function here takes the positions of the axes it needs (the seed axis,
the generation axis, the α axis) so that new sweep dimensions are carried
along as batch dimensions.

Seeds are the replicates: all bands and tests are over seeds.  A NaN value is
"not computed" and is left out of its point only (a point with ``k`` done seeds
uses those ``k``).

Summary of the statistics
-------------------------
:func:`seed_band`
    Mean over seeds with a two-sided confidence band at every point: BCa
    bootstrap (``scipy.stats.bootstrap``, vectorised over the points), the
    percentile bootstrap, or a Student-t interval.  Points where every seed
    agrees get a zero-width band (method ``"exact"``), never NaN.
:func:`simultaneous_band`
    A band that covers a whole curve (e.g. all generations at one α) at the
    nominal level: the sup-t bootstrap, ``mean ± c · se`` with ``c`` the
    ``level`` quantile of ``max_g |mean*_g - mean_g| / se_g`` over resamples.
:func:`paired_degradation`
    ``metric(α) - metric(α = 0)`` per seed.  The real pool and the held-out
    sets of a seed are shared by every α (common random numbers), so the
    difference is paired and much less noisy than the difference of means.
:func:`critical_alpha`
    α*, the smallest α whose paired degradation is significantly above a
    tolerance, with a bootstrap confidence interval over seeds.
:func:`illusion_gap`
    The real metric minus the self metric per seed: how much better the model
    looks on its own samples than on real held-out data.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.stats

METHODS = ("bca", "percentile", "t")

#: Bytes of resampled data one ``scipy.stats.bootstrap`` batch may hold.
BOOTSTRAP_MEMORY = 32 << 20

_SCIPY_METHOD = {"bca": "BCa", "percentile": "percentile"}


# -- results -----------------------------------------------------------------

@dataclass(frozen=True)
class Band:
    """Mean over seeds and a confidence band, at every point.

    Attributes
    ----------
    mean : ndarray of float64
        Mean over the done seeds; the input's shape without the seed axis.
        NaN only where no seed is done.
    low, high : ndarray of float64
        The band's ends, same shape.  ``low == high == mean`` where every
        done seed has the same value; NaN only where fewer than two seeds are
        done (no interval exists).
    method : ndarray of str
        How each point's band was made: ``"bca"``, ``"percentile"``
        (requested, or the fallback where BCa is undefined), ``"t"``,
        ``"sup-t"`` (simultaneous), ``"exact"`` (all seeds agree: zero
        width), ``"infinite"`` (a seed's value is ±inf: the band is the
        mean), ``"too few"`` (fewer than two seeds: NaN band).
    n : ndarray of int64
        Number of seeds used at each point.
    level : float
        Confidence level of the band.
    simultaneous : bool
        True if the band covers each whole curve at ``level`` (sup-t),
        False if it covers each point separately.
    """

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    method: np.ndarray
    n: np.ndarray
    level: float
    simultaneous: bool = False

    @property
    def width(self):
        """``high - low``."""
        return self.high - self.low


@dataclass(frozen=True)
class CriticalAlpha:
    """The critical synthetic fraction α* and its bootstrap interval.

    α* is the smallest α of the grid whose paired degradation is
    significantly above the tolerance.  **When no α of the grid qualifies, α*
    is ``+inf``** ("beyond the grid"), so that it still orders above every α
    and percentile intervals stay defined; ``found`` tells the two apart.  An
    interval end of ``inf`` means more than ``(1 - level) / 2`` of the
    resamples found no qualifying α.  NaN appears only where no seed of α = 0
    is done.

    Attributes
    ----------
    value, low, high : float or ndarray of float64
        α* and its ``level`` bootstrap percentile interval at ``generation``;
        scalars, or arrays over the batch dimensions (sweeps) if any.
    generation : int
        Index of the generation ``value`` refers to.
    per_generation, per_generation_low, per_generation_high : ndarray of float64
        The same for every generation, shape ``(generations, *batch)``.
    found_fraction : ndarray of float64
        Per generation, the fraction of bootstrap resamples in which some α
        qualified, shape ``(generations, *batch)``.
    tolerance : float
        Relative tolerance: the degradation must exceed ``tolerance`` times
        ``|mean metric at α = 0|``.
    level : float
        Level of the one-sided test and of the two-sided interval.
    n_seeds : int
        Seeds done at α = 0 (the most any test uses).
    n_resamples : int
    """

    value: object
    low: object
    high: object
    generation: int
    per_generation: np.ndarray
    per_generation_low: np.ndarray
    per_generation_high: np.ndarray
    found_fraction: np.ndarray
    tolerance: float
    level: float
    n_seeds: int
    n_resamples: int

    @property
    def found(self):
        """True where some α of the grid qualified (``value`` is finite)."""
        return np.isfinite(self.value)


# -- validation --------------------------------------------------------------

def _as_values(values, name="values"):
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError(f"`{name}` must be an array with a seed axis, got a scalar")
    return x


def _axis(axis, ndim, name):
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ValueError(f"`{name}` must be an integer axis of an array with {ndim} dimensions, got {axis!r}")
    return int(axis) % ndim


def _check_level(level):
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"`level` must be strictly between 0 and 1 (e.g. 0.95), got {level!r}")
    return float(level)


def _check_resamples(n_resamples):
    if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"`n_resamples` must be a positive integer (e.g. 9999), got {n_resamples!r}")
    return int(n_resamples)


def _generator(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


# -- pointwise bands ---------------------------------------------------------

def seed_band(values, axis=-1, *, level=0.95, method="bca", n_resamples=9999, rng=0):
    """Mean over seeds with a pointwise confidence band.

    Parameters
    ----------
    values : array_like of float, any shape
        NaN marks a seed not done at that point; it is left out there.
    axis : int
        The seed axis.
    level : float
        Two-sided confidence level.
    method : {"bca", "percentile", "t"}
        ``"bca"``: bias-corrected and accelerated bootstrap of the mean
        (``scipy.stats.bootstrap``), falling back to the percentile bootstrap
        at points where BCa is undefined.  ``"percentile"``: percentile
        bootstrap.  ``"t"``: Student-t interval ``mean ± t_{n-1} s / sqrt(n)``.
    n_resamples : int
        Bootstrap resamples (ignored by ``"t"``).
    rng : int, numpy.random.Generator or None
        Source of the bootstrap resamples; an int gives a reproducible band.

    Returns
    -------
    Band
        Arrays of ``values.shape`` without ``axis``.

    Notes
    -----
    Points are grouped by their set of done seeds (in a grid, whole α rows are
    done or not) and each group is bootstrapped in one vectorised call, in
    resample batches that hold at most :data:`BOOTSTRAP_MEMORY` bytes.  Within
    a call every point is resampled with the same seed indices, which keeps
    the pairing across points and does not change any point's band.

    At ``n`` of about 30 seeds bootstrap bands of a mean undercover slightly
    (about 93.5% for a nominal 95% on normal data, because they use the
    normal rather than the t quantile); ``"t"`` is exact for normal data.
    """
    x = _as_values(values)
    axis = _axis(axis, x.ndim, "axis")
    level = _check_level(level)
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
    n_resamples = _check_resamples(n_resamples)
    gen = _generator(rng)

    x = np.moveaxis(x, axis, -1)
    shape = x.shape[:-1]
    rows = np.ascontiguousarray(x.reshape(-1, x.shape[-1]))
    mean, low, high, used, n = _band_rows(rows, level, method, n_resamples, gen)
    return Band(mean.reshape(shape), low.reshape(shape), high.reshape(shape),
                used.reshape(shape), n.reshape(shape), level)


def _band_rows(rows, level, method, n_resamples, gen):
    """Band of each row of ``rows`` (points x seeds) over its non-NaN entries."""
    valid = ~np.isnan(rows)
    n = valid.sum(axis=1).astype(np.int64)
    mean = _row_means(rows, valid, n)
    low = np.full(len(rows), np.nan)
    high = np.full(len(rows), np.nan)
    used = np.full(len(rows), "too few", dtype="<U10")
    if rows.size == 0:
        return mean, low, high, used, n
    patterns, inverse = np.unique(valid, axis=0, return_inverse=True)
    for k, pattern in enumerate(patterns):
        if pattern.sum() < 2:
            continue  # no interval from fewer than two seeds
        idx = np.flatnonzero(inverse.ravel() == k)
        sub = rows[np.ix_(idx, pattern)]
        finite = np.isfinite(sub).all(axis=1)
        # An infinite value makes the mean infinite: nothing to resample.
        inf_idx = idx[~finite]
        low[inf_idx] = high[inf_idx] = mean[inf_idx]
        used[inf_idx] = "infinite"
        const = finite & (sub.max(axis=1, initial=-np.inf) == sub.min(axis=1, initial=np.inf))
        # All seeds agree (e.g. generation 0, or alpha = 0 in a paired
        # difference): the band is the value itself, not a NaN from BCa.
        const_idx = idx[const]
        mean[const_idx] = low[const_idx] = high[const_idx] = sub[const, 0]
        used[const_idx] = "exact"
        todo = finite & ~const
        if todo.any():
            lo, hi, how = _interval(sub[todo], level, method, n_resamples, gen)
            low[idx[todo]], high[idx[todo]], used[idx[todo]] = lo, hi, how
    return mean, low, high, used, n


def _row_means(rows, valid, n):
    total = np.where(valid, rows, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _interval(sub, level, method, n_resamples, gen):
    """Two-sided interval of the mean of each row of a NaN-free, non-constant ``sub``."""
    if method == "t":
        lo, hi = _t_interval(sub, level)
        return lo, hi, "t"
    lo, hi = _bootstrap(sub, level, _SCIPY_METHOD[method], n_resamples, gen)
    how = np.full(len(sub), method, dtype="<U10")
    bad = ~(np.isfinite(lo) & np.isfinite(hi))
    if bad.any():
        # BCa is undefined when the bootstrap distribution sits on one side
        # of the estimate; the percentile interval is always defined.
        lo[bad], hi[bad] = _bootstrap(sub[bad], level, "percentile", n_resamples, gen)
        how[bad] = "percentile"
    return lo, hi, how


def _t_interval(sub, level):
    m = sub.shape[1]
    mean = sub.mean(axis=1)
    se = sub.std(axis=1, ddof=1) / np.sqrt(m)
    q = scipy.stats.t.ppf(0.5 + level / 2, m - 1)
    return mean - q * se, mean + q * se


def _bootstrap(sub, level, scipy_method, n_resamples, gen):
    """``scipy.stats.bootstrap`` of the row means, in memory-bounded chunks."""
    points, m = sub.shape
    per_resample = 8 * m  # bytes of one resample of one point
    # Keep batches of >= 16 resamples (fewer makes scipy's loop overhead
    # dominate) and split the points if even that exceeds the budget.
    chunk = max(1, BOOTSTRAP_MEMORY // (per_resample * 16))
    lo = np.empty(points)
    hi = np.empty(points)
    for start in range(0, points, chunk):
        part = sub[start:start + chunk]
        batch = int(max(16, min(n_resamples, BOOTSTRAP_MEMORY // (per_resample * len(part)))))
        with warnings.catch_warnings():
            # Handled by the caller: NaN ends are replaced by percentile ends.
            warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
            with np.errstate(invalid="ignore", divide="ignore"):
                res = scipy.stats.bootstrap(
                    (part,), np.mean, n_resamples=n_resamples, batch=batch, vectorized=True,
                    axis=-1, confidence_level=level, method=scipy_method, rng=gen,
                )
        lo[start:start + chunk] = res.confidence_interval.low
        hi[start:start + chunk] = res.confidence_interval.high
    return lo, hi


# -- moments under resampling weights -----------------------------------------

def _columns(x, seed_axis, keep_axes):
    """Move ``seed_axis`` first and ``keep_axes`` next; flatten the rest as columns."""
    order = [seed_axis] + list(keep_axes)
    order += [a for a in range(x.ndim) if a not in order]
    y = np.transpose(x, order)
    return y, y.shape


def _centre(cols):
    """Columns minus their mean over done seeds (for stable moments), and masks."""
    valid = ~np.isnan(cols)
    n = valid.sum(axis=0)
    centre = _row_means(cols.T, valid.T, n)
    centre = np.where(np.isfinite(centre), centre, 0.0)
    z = np.where(valid, cols - centre, 0.0)
    return z, valid.astype(np.float64), centre


def _weighted_moments(w, z, v, centre):
    """Mean, variance (ddof=1) and count of each column under seed weights ``w``.

    ``w`` is ``(resamples, seeds)`` of counts (ones for the data itself); a
    bootstrap resample is a multinomial count vector, so resampled moments
    are matrix products instead of gathers.
    """
    n = w @ v
    s1 = w @ z
    s2 = w @ (z * z)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var = np.maximum(s2 - s1 * mean, 0.0) / (n - 1)
    return centre + mean, var, n


def _resample_weights(gen, seeds, count):
    """``count`` bootstrap resamples of ``seeds`` seeds as multinomial counts."""
    return gen.multinomial(seeds, np.full(seeds, 1.0 / seeds), size=count).astype(np.float64)


def _chunks(total, size):
    for start in range(0, total, size):
        yield min(size, total - start)


# -- simultaneous band -------------------------------------------------------

def simultaneous_band(values, seed_axis=-2, curve_axis=-1, *, level=0.95, n_resamples=2000, rng=0):
    """Mean over seeds with a band that covers each whole curve at ``level``.

    Parameters
    ----------
    values : array_like of float, at least 2-D
        NaN marks a seed not done at a point.
    seed_axis : int
        The seed axis.
    curve_axis : int
        The axis along which a curve runs (usually generation); every other
        axis indexes separate curves, each with its own critical value.
    level : float
        Probability that the band covers the whole true curve.
    n_resamples : int
    rng : int, numpy.random.Generator or None

    Returns
    -------
    Band
        ``simultaneous=True``; arrays of ``values.shape`` without
        ``seed_axis``.  ``method`` is ``"sup-t"`` (or ``"exact"`` /
        ``"too few"`` as in :func:`seed_band`).

    Notes
    -----
    The sup-t bootstrap: with ``se_g = s_g / sqrt(n_g)``, the critical value
    ``c`` is the ``level`` quantile over seed resamples of
    ``max_g |mean*_g - mean_g| / se_g`` (points with ``se_g = 0`` left out),
    and the band is ``mean_g ± c se_g``.  It is wider than the pointwise band
    by just enough for the whole curve; ``scipy.stats.bootstrap`` has no such
    statistic, so resamples are drawn here as multinomial seed counts.
    """
    x = _as_values(values)
    if x.ndim < 2:
        raise ValueError("`values` must have a seed axis and a curve axis (at least 2-D)")
    seed_axis = _axis(seed_axis, x.ndim, "seed_axis")
    curve_axis = _axis(curve_axis, x.ndim, "curve_axis")
    if seed_axis == curve_axis:
        raise ValueError("`seed_axis` and `curve_axis` must differ")
    level = _check_level(level)
    n_resamples = _check_resamples(n_resamples)
    gen = _generator(rng)

    # (seed, curve point, other...) -> columns ordered (curve point, curves)
    y, shape = _columns(x, seed_axis, [curve_axis])
    seeds, points = shape[0], shape[1]
    cols = y.reshape(seeds, -1)
    z, v, centre = _centre(cols)
    mean, var, n = _weighted_moments(np.ones((1, seeds)), z, v, centre)
    mean, var, n = mean[0], var[0], n[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(var / n)
    usable = (n >= 2) & (se > 0) & np.isfinite(se)
    inv_se = np.where(usable, 1.0 / np.where(usable, se, 1.0), 0.0)

    curves = cols.shape[1] // points
    sup = np.empty((n_resamples, curves))
    done = 0
    step = max(1, (8 << 20) // (8 * cols.shape[1]))
    for size in _chunks(n_resamples, step):
        w = _resample_weights(gen, seeds, size)
        m_star, v_star, n_star = _weighted_moments(w, z, v, centre)
        dev = _studentised(m_star - mean, v_star, n_star, inv_se)
        sup[done:done + size] = dev.reshape(size, points, curves).max(axis=1)
        done += size
    crit = np.quantile(sup, level, axis=0)  # one critical value per curve
    half = np.broadcast_to(crit, (points, curves)).reshape(-1) * se

    used = np.where(n < 2, "too few", np.where(usable, "sup-t", "exact")).astype("<U10")
    exact = used == "exact"
    low = np.where(n >= 2, mean - np.where(exact, 0.0, half), np.nan)
    high = np.where(n >= 2, mean + np.where(exact, 0.0, half), np.nan)
    mean = np.where(n > 0, mean, np.nan)
    out_shape = shape[1:]
    back = _inverse_order(x.ndim, seed_axis, curve_axis)

    def shaped(a):
        return np.transpose(a.reshape(out_shape), back)

    return Band(shaped(mean), shaped(low), shaped(high), shaped(used),
                shaped(n.astype(np.int64)), level, simultaneous=True)


def _studentised(delta, var_star, n_star, inv_se):
    """``|delta| / se*`` of a resample; the data's ``se`` where ``se*`` is 0.

    Dividing by the resample's own standard error (bootstrap-t) carries the
    uncertainty of ``se`` into the critical value; with fixed ``se`` the band
    undercovers at tens of seeds.  Unusable points (``inv_se == 0``) give 0.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        inv_star = 1.0 / np.sqrt(var_star / n_star)
    inv = np.where(np.isfinite(inv_star) & (n_star >= 2), inv_star, inv_se)
    return np.where((inv_se > 0) & (n_star > 0), np.abs(delta) * inv, 0.0)


def _inverse_order(ndim, seed_axis, curve_axis):
    """Axis permutation from (curve, other...) back to the input order without seeds."""
    rest = [a for a in range(ndim) if a != seed_axis]
    moved = [curve_axis] + [a for a in rest if a != curve_axis]
    return tuple(int(np.argsort(moved)[i]) for i in range(len(moved)))


# -- paired differences ------------------------------------------------------

def _alpha_zero(alphas, length):
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1 or len(alphas) != length:
        raise ValueError(f"`alphas` must be 1-D with one value per entry of the alpha axis ({length}), "
                         f"got shape {alphas.shape}")
    zero = np.flatnonzero(alphas == 0.0)
    if len(zero) == 0:
        raise ValueError("`alphas` has no 0: paired degradation compares each alpha with alpha = 0 "
                         "of the same seed; run the grid with 0 among its --alphas")
    return alphas, int(zero[0])


def paired_degradation(values, alphas, alpha_axis=0):
    """``metric(α) - metric(α = 0)`` of the same seed, at every point.

    Parameters
    ----------
    values : array_like of float
        A metric cube with an α axis, e.g. ``(alpha, seed, generation)``.
    alphas : array_like of float
        The α of each entry along ``alpha_axis``; must contain 0.
    alpha_axis : int

    Returns
    -------
    ndarray of float64
        Same shape as ``values``; exactly 0 at α = 0 (where done), NaN where
        either cell is not done.  Positive means worse for metrics where
        higher is worse (every NLL and bits/char metric).

    Raises
    ------
    ValueError
        If ``alphas`` has no 0 or does not match the α axis.
    """
    x = _as_values(values)
    alpha_axis = _axis(alpha_axis, x.ndim, "alpha_axis")
    _, zero = _alpha_zero(alphas, x.shape[alpha_axis])
    return x - np.take(x, [zero], axis=alpha_axis)


def illusion_gap(real, self_):
    """The hall-of-illusions gap ``real - self_`` per seed, at every point.

    Parameters
    ----------
    real : array_like of float
        The model's metric on real held-out data (e.g. ``real_nll``).
    self_ : array_like of float
        The same metric on the model's own samples (e.g. ``self_nll``), same shape.

    Returns
    -------
    ndarray of float64
        Positive where the model looks better on its own outputs than on real
        data; pass it to :func:`seed_band` for a band.
    """
    real = _as_values(real, "real")
    self_ = _as_values(self_, "self_")
    if real.shape != self_.shape:
        raise ValueError(f"`real` and `self_` must have the same shape, got {real.shape} and {self_.shape}")
    return real - self_


# -- one-sided test and the critical alpha ------------------------------------

def _t_quantiles(level, seeds):
    """``t.ppf(level, df)`` for df = 0..seeds (df 0 -> inf: never significant)."""
    q = np.full(seeds + 1, np.inf)
    if seeds >= 1:
        q[1:] = scipy.stats.t.ppf(level, np.arange(1, seeds + 1))
    return q


def _lower_bound(mean, var, n, tq):
    """One-sided Student-t lower confidence bound of a mean; -inf if n < 2."""
    df = np.clip(n - 1, 0, len(tq) - 1).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        bound = mean - tq[df] * np.sqrt(var / n)
    return np.where(n >= 2, bound, -np.inf)


def lower_confidence_bound(values, seed_axis=-1, *, level=0.95):
    """One-sided Student-t lower confidence bound of the mean over seeds.

    Parameters
    ----------
    values : array_like of float
        NaN marks a seed not done at a point.
    seed_axis : int
    level : float
        The mean is above the bound with probability ``level``.

    Returns
    -------
    ndarray of float64
        ``mean - t_{level, n-1} s / sqrt(n)`` at every point (shape without
        the seed axis); ``-inf`` where fewer than two seeds are done.
    """
    x = _as_values(values)
    seed_axis = _axis(seed_axis, x.ndim, "seed_axis")
    level = _check_level(level)
    y = np.moveaxis(x, seed_axis, 0)
    cols = y.reshape(y.shape[0], -1)
    z, v, centre = _centre(cols)
    mean, var, n = _weighted_moments(np.ones((1, len(cols))), z, v, centre)
    bound = _lower_bound(mean[0], var[0], n[0], _t_quantiles(level, len(cols)))
    return bound.reshape(y.shape[1:])


def critical_alpha(values, alphas, *, alpha_axis=0, seed_axis=1, generation_axis=2, generation=-1,
                   tolerance=0.01, level=0.95, n_resamples=2000, rng=0):
    """The critical synthetic fraction α*, per generation, with a bootstrap interval.

    α* is the smallest α of the grid whose mean paired degradation
    ``metric(α) - metric(α = 0)`` is significantly above
    ``tolerance * |mean metric(α = 0)|``: its one-sided Student-t lower
    confidence bound at ``level`` exceeds that tolerance.

    Parameters
    ----------
    values : array_like of float
        Metric cube with α, seed and generation axes (higher = worse); any
        other axes (sweeps) are batch axes with their own α*.  NaN = not done.
    alphas : array_like of float
        α of each entry of the α axis; must contain 0.  Need not be sorted.
    alpha_axis, seed_axis, generation_axis : int
    generation : int
        Generation index of the headline ``value`` (default: the last).
    tolerance : float
        Relative tolerance (0.01 = a 1% increase over the α = 0 mean).
    level : float
        Level of the one-sided test and of the two-sided interval of α*.
    n_resamples : int
        Bootstrap resamples of the seeds.
    rng : int, numpy.random.Generator or None

    Returns
    -------
    CriticalAlpha
        ``+inf`` where no α qualifies (see :class:`CriticalAlpha`).

    Notes
    -----
    The interval resamples whole seeds (every α and generation of a seed go
    together, keeping the pairing), recomputes the tolerance, the tests and
    α* in each resample, and takes the percentile interval of the resampled
    α* (``inverted_cdf``, since α* lives on the grid).  The test is the
    Student-t bound rather than a bootstrap band because re-running a BCa
    bootstrap inside every resample would be a double bootstrap, thousands
    of times slower; with tens of seeds the t bound of a mean is accurate.
    Resampled moments are matrix products of multinomial seed counts with
    the data, so the whole cube is one pass per batch of resamples.
    """
    x = _as_values(values)
    if x.ndim < 3:
        raise ValueError("`values` must have alpha, seed and generation axes (at least 3-D)")
    axes = [_axis(a, x.ndim, name) for a, name in
            ((alpha_axis, "alpha_axis"), (seed_axis, "seed_axis"), (generation_axis, "generation_axis"))]
    if len(set(axes)) != 3:
        raise ValueError("`alpha_axis`, `seed_axis` and `generation_axis` must be three different axes")
    alpha_axis, seed_axis, generation_axis = axes
    alphas, zero = _alpha_zero(alphas, x.shape[alpha_axis])
    if not np.all(np.isfinite(alphas)):
        raise ValueError("`alphas` must be finite")
    if not float(tolerance) >= 0.0:
        raise ValueError(f"`tolerance` must be >= 0 (a relative increase such as 0.01), got {tolerance!r}")
    level = _check_level(level)
    n_resamples = _check_resamples(n_resamples)
    gens = x.shape[generation_axis]
    if not isinstance(generation, (int, np.integer)) or not -gens <= generation < gens:
        raise ValueError(f"`generation` must be an index into {gens} generations, got {generation!r}")
    gen = _generator(rng)

    # (seed, alpha, generation, batch...) with alphas ascending
    y, shape = _columns(x, seed_axis, [alpha_axis, generation_axis])
    order = np.argsort(alphas, kind="stable")
    y = y[:, order]
    sorted_alphas = alphas[order]
    zero = int(np.flatnonzero(order == zero)[0])
    seeds, n_alpha, batch_shape = shape[0], shape[1], shape[3:]
    diff = y - y[:, zero:zero + 1]
    d_cols = diff.reshape(seeds, -1)
    b_cols = y[:, zero].reshape(seeds, -1)
    dz, dv, dc = _centre(d_cols)
    bz, bv, bc = _centre(b_cols)
    tq = _t_quantiles(level, seeds)
    tol = float(tolerance)

    def alpha_star(w):
        d_mean, d_var, d_n = _weighted_moments(w, dz, dv, dc)
        b_mean, _, b_n = _weighted_moments(w, bz, bv, bc)
        bound = _lower_bound(d_mean, d_var, d_n, tq).reshape(len(w), n_alpha, -1)
        threshold = np.where(b_n > 0, tol * np.abs(b_mean), np.nan)[:, None, :]
        significant = bound > threshold  # NaN threshold: never significant
        first = np.argmax(significant, axis=1)
        star = np.where(significant.any(axis=1), sorted_alphas[first], np.inf)
        return np.where(b_n > 0, star, np.nan)  # (resamples, generation * batch)

    point = alpha_star(np.ones((1, seeds)))[0]
    boot = np.empty((n_resamples, point.size))
    step = max(1, (16 << 20) // (8 * d_cols.shape[1]))
    done = 0
    for size in _chunks(n_resamples, step):
        boot[done:done + size] = alpha_star(_resample_weights(gen, seeds, size))
        done += size
    lo_q, hi_q = 0.5 - level / 2, 0.5 + level / 2
    with np.errstate(invalid="ignore"):
        low = np.quantile(boot, lo_q, axis=0, method="inverted_cdf")
        high = np.quantile(boot, hi_q, axis=0, method="inverted_cdf")
        found = np.mean(np.isfinite(boot), axis=0)
    no_base = np.isnan(point)
    low[no_base] = high[no_base] = found[no_base] = np.nan

    per_shape = (gens,) + batch_shape
    per, per_low, per_high = (a.reshape(per_shape) for a in (point, low, high))
    g = int(generation) % gens

    def at(a):
        v = a[g]
        return float(v) if v.ndim == 0 else v

    return CriticalAlpha(
        value=at(per), low=at(per_low), high=at(per_high), generation=g,
        per_generation=per, per_generation_low=per_low, per_generation_high=per_high,
        found_fraction=found.reshape(per_shape), tolerance=tol, level=level,
        n_seeds=int(bv.sum(axis=0).max(initial=0)), n_resamples=n_resamples,
    )
