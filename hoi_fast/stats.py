"""Confidence bands over seeds, paired degradation, the critical α, time to collapse and rates.

Pure functions over NumPy arrays or xarray DataArrays.  The grid's metric
cubes have the layout ``(alpha, [sweeps...], seed, generation)`` with NaN
where a cell is not done; every function here takes the positions of the axes
it needs (the seed axis, the generation axis, the α axis) so that new sweep
dimensions are carried along as batch dimensions.  With a DataArray
(``xarray.open_dataset(path, group=..., engine="h5netcdf").real_nll``) the
axes may be given by dimension name and default to the dimensions named
``alpha``, ``seed`` and ``generation``; α then comes from the ``alpha``
coordinate.  Results are NumPy arrays.

Seeds are the replicates: all bands, tests and intervals are over seeds.  A
NaN value is "not computed" and is left out of its point only (a point with
``k`` done seeds uses those ``k``).

Summary of the statistics
-------------------------
:func:`seed_band`
    Mean over seeds with a two-sided confidence band at every point: BCa or
    percentile bootstrap of the mean, or a Student-t interval.  Points where
    every seed agrees get a zero-width band (method ``"exact"``), never NaN.
:func:`simultaneous_band`
    A band that covers a whole curve (e.g. all generations at one α) at the
    nominal level: the sup-t bootstrap.
:func:`paired_degradation`
    ``metric(α) - metric(α = 0)`` per seed.  The real pool and the held-out
    sets of a seed are shared by every α (common random numbers), so the
    difference is paired and much less noisy than the difference of means.
:func:`critical_alpha`, :func:`isotonic_threshold`, :func:`alpha_thresholds`
    α*, the smallest α from which the paired degradation is significantly
    above a tolerance: by a fixed-sequence test from the largest α down
    (family-wise error control, the default), or by the first α that passes
    its own test (``rule="first"``, no multiplicity control); and the α where
    an isotonic (monotone in α) fit of the mean degradation crosses the
    tolerance, interpolated between grid points.  Each with a bootstrap
    interval that resamples whole seeds.
:func:`collapse_times`, :func:`time_to_collapse`
    The first generation at which a seed's paired degradation exceeds the
    tolerance, right-censored at the last generation; Kaplan-Meier survival
    curves (``scipy.stats.ecdf``) with pointwise bands, the median number of
    generations to collapse with its interval, and the share of seeds that
    never collapse within the horizon.
:func:`degradation_rate`
    The slope of the paired degradation over generations with an interval
    over seeds, and where the curve saturates its plateau and half-life.
:func:`illusion_gap`
    The real metric minus the self metric per seed: how much better the model
    looks on its own samples than on real held-out data.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.special
import scipy.stats

METHODS = ("bca", "percentile", "t")

#: Rules for α*: fixed-sequence test from the largest α down (default), first
#: α that passes its own test, crossing of the isotonic fit.
RULES = ("sequence", "first", "isotonic")

#: Bands of a Kaplan-Meier curve (``scipy.stats`` names).
SURVIVAL_BANDS = ("log-log", "linear")

#: Bytes of resampled statistics one bootstrap batch may hold.
BOOTSTRAP_MEMORY = 32 << 20


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
    """The critical synthetic fraction α* (or the isotonic threshold) and its bootstrap interval.

    With ``rule="sequence"`` α* is the smallest α of the grid such that it
    and every larger α are significantly worse than the tolerance; with
    ``rule="first"`` the smallest α that is significantly worse on its own;
    with ``rule="isotonic"`` the α (continuous, interpolated) where the
    isotonic fit of the mean paired degradation crosses the tolerance.
    **When no α qualifies, the value is ``+inf``** ("beyond the grid"), so
    that it still orders above every α and percentile intervals stay
    defined; ``found`` tells the two apart.  An interval end of ``inf``
    means more than ``(1 - level) / 2`` of the resamples found none.  NaN
    appears only where no seed of α = 0 is done.

    Attributes
    ----------
    value, low, high : float or ndarray of float64
        The estimate and its ``level`` bootstrap percentile interval at
        ``generation``; scalars, or arrays over the batch dimensions (sweeps).
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
        Level of the one-sided tests and of the two-sided interval.
    n_seeds : int
        Seeds done at α = 0 (the most any test uses).
    n_resamples : int
    rule : {"sequence", "first", "isotonic"}
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
    rule: str = "sequence"

    @property
    def found(self):
        """True where some α of the grid qualified (``value`` is finite)."""
        return np.isfinite(self.value)


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


def _dims(values):
    """Dimension names of an xarray DataArray (anything with ``dims`` and ``values``), else None."""
    dims = getattr(values, "dims", None)
    if dims is None or not hasattr(values, "values") or isinstance(values, np.ndarray):
        return None
    return tuple(dims)


def _unwrap(values, axes, name="values"):
    """The float64 data of ``values`` and its axes as integers.

    ``axes`` maps an argument name to ``(given, dimension name, default)``: an
    integer, a dimension name (DataArrays only) or None, which picks the
    dimension of that name of a DataArray that has one, else ``default``.
    """
    dims = _dims(values)
    x = _as_values(values.values if dims is not None else values, name)
    out = {}
    for arg, (given, dim, default) in axes.items():
        if given is None:
            given = dim if dims is not None and dim in dims else default
        if isinstance(given, str):
            if dims is None:
                raise ValueError(f"`{arg}` {given!r} is a dimension name; pass an xarray DataArray "
                                 "or give an integer axis")
            if given not in dims:
                raise ValueError(f"`{arg}` {given!r} is not a dimension of `{name}`; "
                                 f"it has {', '.join(map(str, dims))}")
            given = dims.index(given)
        out[arg] = _axis(given, x.ndim, arg)
    return x, out, dims


def _alphas_of(values, dims, alphas, alpha_axis):
    """``alphas`` as given, or the coordinate of a DataArray's α dimension."""
    if alphas is not None:
        return alphas
    if dims is not None and dims[alpha_axis] in getattr(values, "coords", {}):
        return np.asarray(values.coords[dims[alpha_axis]].values, dtype=np.float64)
    raise ValueError("`alphas` is required: the α of each entry of the alpha axis "
                     "(an xarray DataArray supplies it as the coordinate of its alpha dimension)")


def _check_level(level):
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"`level` must be strictly between 0 and 1 (e.g. 0.95), got {level!r}")
    return float(level)


def _check_resamples(n_resamples):
    if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"`n_resamples` must be a positive integer (e.g. 9999), got {n_resamples!r}")
    return int(n_resamples)


def _check_tolerance(tolerance):
    if not float(tolerance) >= 0.0:
        raise ValueError(f"`tolerance` must be >= 0 (a relative increase such as 0.01), got {tolerance!r}")
    return float(tolerance)


def _generator(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


# -- pointwise bands ---------------------------------------------------------

def seed_band(values, axis=None, *, level=0.95, method="bca", n_resamples=9999, rng=0):
    """Mean over seeds with a pointwise confidence band.

    Parameters
    ----------
    values : array_like or xarray.DataArray of float, any shape
        NaN marks a seed not done at that point; it is left out there.
    axis : int or str, optional
        The seed axis (a dimension name for a DataArray).  Default: the
        ``seed`` dimension of a DataArray, else the last axis.
    level : float
        Two-sided confidence level.
    method : {"bca", "percentile", "t"}
        ``"bca"``: bias-corrected and accelerated bootstrap of the mean,
        falling back to the percentile bootstrap at points where BCa is
        undefined.  ``"percentile"``: percentile bootstrap.  ``"t"``:
        Student-t interval ``mean ± t_{n-1} s / sqrt(n)``.
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
    done or not) and each group is bootstrapped at once: a resample is a
    vector of seed counts, so the resampled means of every point are one
    matrix product, and every point is resampled with the same seeds, which
    keeps the pairing across points and does not change any point's band.
    The intervals are those of ``scipy.stats.bootstrap`` (Efron's BCa with
    the jackknife acceleration, which for a mean is
    ``sum(d**3) / (6 sum(d**2)**1.5)`` with ``d`` the deviations from the
    mean; linear percentiles) — the tests compare the two — computed without
    gathering the resampled data, which is 10-20 times faster at hundreds of
    seeds.

    At ``n`` of about 30 seeds bootstrap bands of a mean undercover slightly
    (about 93.5% for a nominal 95% on normal data, because they use the
    normal rather than the t quantile); ``"t"`` is exact for normal data.
    """
    x, axes, _ = _unwrap(values, {"axis": (axis, "seed", -1)})
    axis = axes["axis"]
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
    return _bootstrap(sub, level, method, n_resamples, gen)


def _t_interval(sub, level):
    m = sub.shape[1]
    mean = sub.mean(axis=1)
    se = sub.std(axis=1, ddof=1) / np.sqrt(m)
    q = scipy.stats.t.ppf(0.5 + level / 2, m - 1)
    return mean - q * se, mean + q * se


def _bootstrap(sub, level, method, n_resamples, gen):
    """Percentile or BCa interval of the mean of each row of ``sub`` (points x seeds).

    Returns the interval ends and, per row, the method used (BCa falls back
    to the percentile interval where it is undefined: every resampled mean
    on one side of the estimate).
    """
    points, m = sub.shape
    centre = sub.mean(axis=1, keepdims=True)
    dev = sub - centre  # deviations: resampled means of small numbers keep their precision
    estimate = dev.mean(axis=1)
    # points per pass so that the resampled means of a pass fit the budget
    per_pass = max(1, BOOTSTRAP_MEMORY // (8 * n_resamples))
    lo = np.empty(points)
    hi = np.empty(points)
    how = np.full(points, method, dtype="<U10")
    alpha = (1.0 - level) / 2
    for start in range(0, points, per_pass):
        part = slice(start, start + per_pass)
        boot = _resampled_means(dev[part], n_resamples, gen)  # (resamples, points)
        probs = np.broadcast_to(np.array([alpha, 1.0 - alpha]), (boot.shape[1], 2))
        if method == "bca":
            bca = _bca_probabilities(boot, estimate[part], dev[part], alpha)
            ok = np.isfinite(bca).all(axis=1)
            probs = np.where(ok[:, None], bca, probs)
            how[part][~ok] = "percentile"
        ends = _column_quantiles(boot, probs)
        lo[part] = centre[part, 0] + ends[:, 0]
        hi[part] = centre[part, 0] + ends[:, 1]
    return lo, hi, how


def _resampled_means(dev, n_resamples, gen):
    """Means of ``n_resamples`` bootstrap resamples of the seeds of each row: ``(resamples, rows)``."""
    rows, m = dev.shape
    out = np.empty((n_resamples, rows))
    step = max(1, (BOOTSTRAP_MEMORY // 2) // (8 * m))
    done = 0
    for size in _chunks(n_resamples, step):
        out[done:done + size] = _resample_weights(gen, m, size) @ dev.T
        done += size
    out /= m
    return out


def _bca_probabilities(boot, estimate, dev, alpha):
    """BCa's adjusted percentile levels ``(points, 2)``, as in ``scipy.stats.bootstrap``; NaN where undefined."""
    below = (np.count_nonzero(boot < estimate, axis=0) + np.count_nonzero(boot <= estimate, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        z0 = scipy.special.ndtri(below / (2.0 * len(boot)))
        # jackknife acceleration of a mean, in closed form
        accel = (dev ** 3).sum(axis=1) / (6.0 * ((dev ** 2).sum(axis=1)) ** 1.5)
        z = scipy.special.ndtri(np.array([alpha, 1.0 - alpha]))
        num = z0[:, None] + z[None, :]
        return scipy.special.ndtr(z0[:, None] + num / (1.0 - accel[:, None] * num))


def _column_quantiles(boot, probs):
    """Linear-interpolation quantile ``probs[j, k]`` of column ``j`` of ``boot`` (NumPy's default method)."""
    ordered = np.sort(boot, axis=0)
    pos = probs * (len(boot) - 1)
    below = np.floor(pos).astype(np.int64)
    above = np.minimum(below + 1, len(boot) - 1)
    cols = np.arange(boot.shape[1])[:, None]
    a, b = ordered[below, cols], ordered[above, cols]
    return a + (b - a) * (pos - below)


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


def _weighted_moments(w, z, v, centre, second=True):
    """Mean, variance (ddof=1) and count of each column under seed weights ``w``.

    ``w`` is ``(resamples, seeds)`` of counts (ones for the data itself); a
    bootstrap resample is a count vector, so resampled moments are matrix
    products instead of gathers.  ``v`` None means every seed is done in
    every column (the counts are then the resample sizes); ``second=False``
    skips the variance (returned as None).
    """
    n = w @ v if v is not None else np.broadcast_to(w.sum(axis=1)[:, None], (len(w), z.shape[1]))
    s1 = w @ z
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var = None
        if second:
            var = np.maximum(w @ (z * z) - s1 * mean, 0.0) / (n - 1)
    return centre + mean, var, n


def _resample_weights(gen, seeds, count):
    """``count`` bootstrap resamples of ``seeds`` seeds as count vectors ``(count, seeds)``.

    Drawn as ``seeds`` uniform indices per resample (the same law as
    ``gen.multinomial``, three times faster at hundreds of seeds).
    """
    idx = gen.integers(0, seeds, size=(count, seeds))
    idx += seeds * np.arange(count)[:, None]
    return np.bincount(idx.ravel(), minlength=count * seeds).reshape(count, seeds).astype(np.float64)


def _chunks(total, size):
    for start in range(0, total, size):
        yield min(size, total - start)


# -- simultaneous band -------------------------------------------------------

def simultaneous_band(values, seed_axis=None, curve_axis=None, *, level=0.95, n_resamples=2000, rng=0):
    """Mean over seeds with a band that covers each whole curve at ``level``.

    Parameters
    ----------
    values : array_like or xarray.DataArray of float, at least 2-D
        NaN marks a seed not done at a point.
    seed_axis : int or str, optional
        The seed axis; default the ``seed`` dimension of a DataArray, else -2.
    curve_axis : int or str, optional
        The axis along which a curve runs; default the ``generation``
        dimension of a DataArray, else -1.  Every other axis indexes
        separate curves, each with its own critical value.
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
    ``max_g |mean*_g - mean_g| / se*_g`` (points with ``se_g = 0`` left out),
    and the band is ``mean_g ± c se_g``.  It is wider than the pointwise band
    by just enough for the whole curve; ``scipy.stats.bootstrap`` has no such
    statistic, so resamples are drawn here as seed counts.
    """
    x, axes, _ = _unwrap(values, {"seed_axis": (seed_axis, "seed", -2),
                                  "curve_axis": (curve_axis, "generation", -1)})
    if x.ndim < 2:
        raise ValueError("`values` must have a seed axis and a curve axis (at least 2-D)")
    seed_axis, curve_axis = axes["seed_axis"], axes["curve_axis"]
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


def paired_degradation(values, alphas=None, alpha_axis=None):
    """``metric(α) - metric(α = 0)`` of the same seed, at every point.

    Parameters
    ----------
    values : array_like or xarray.DataArray of float
        A metric cube with an α axis, e.g. ``(alpha, seed, generation)``.
    alphas : array_like of float, optional
        The α of each entry along ``alpha_axis``; must contain 0.  Default:
        the coordinate of a DataArray's α dimension.
    alpha_axis : int or str, optional
        Default: the ``alpha`` dimension of a DataArray, else 0.

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
    x, axes, dims = _unwrap(values, {"alpha_axis": (alpha_axis, "alpha", 0)})
    alpha_axis = axes["alpha_axis"]
    alphas = _alphas_of(values, dims, alphas, alpha_axis)
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
    real = _as_values(getattr(real, "values", real), "real")
    self_ = _as_values(getattr(self_, "values", self_), "self_")
    if real.shape != self_.shape:
        raise ValueError(f"`real` and `self_` must have the same shape, got {real.shape} and {self_.shape}")
    return real - self_


# -- one-sided test ------------------------------------------------------------

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


def lower_confidence_bound(values, seed_axis=None, *, level=0.95):
    """One-sided Student-t lower confidence bound of the mean over seeds.

    Parameters
    ----------
    values : array_like or xarray.DataArray of float
        NaN marks a seed not done at a point.
    seed_axis : int or str, optional
        Default: the ``seed`` dimension of a DataArray, else the last axis.
    level : float
        The mean is above the bound with probability ``level``.

    Returns
    -------
    ndarray of float64
        ``mean - t_{level, n-1} s / sqrt(n)`` at every point (shape without
        the seed axis); ``-inf`` where fewer than two seeds are done.
    """
    x, axes, _ = _unwrap(values, {"seed_axis": (seed_axis, "seed", -1)})
    level = _check_level(level)
    y = np.moveaxis(x, axes["seed_axis"], 0)
    cols = y.reshape(y.shape[0], -1)
    z, v, centre = _centre(cols)
    mean, var, n = _weighted_moments(np.ones((1, len(cols))), z, v, centre)
    bound = _lower_bound(mean[0], var[0], n[0], _t_quantiles(level, len(cols)))
    return bound.reshape(y.shape[1:])


# -- the critical alpha and the isotonic threshold ----------------------------

class _PairedCube:
    """A metric cube's paired degradation, arranged for resampling whole seeds.

    ``diff`` is ``metric(α) - metric(α = 0)`` of the same seed with axes
    ``(seed, alpha ascending, generation, *batch)``; ``base`` is
    ``metric(α = 0)``, ``(seed, generation, *batch)``.  Their flattened,
    centred columns give resampled moments as matrix products.
    """

    def __init__(self, values, alphas, alpha_axis, seed_axis, generation_axis):
        x, axes, dims = _unwrap(values, {"alpha_axis": (alpha_axis, "alpha", 0),
                                         "seed_axis": (seed_axis, "seed", 1),
                                         "generation_axis": (generation_axis, "generation", 2)})
        if x.ndim < 3:
            raise ValueError("`values` must have alpha, seed and generation axes (at least 3-D)")
        if len(set(axes.values())) != 3:
            raise ValueError("`alpha_axis`, `seed_axis` and `generation_axis` must be three different axes")
        alphas = _alphas_of(values, dims, alphas, axes["alpha_axis"])
        alphas, zero = _alpha_zero(alphas, x.shape[axes["alpha_axis"]])
        if not np.all(np.isfinite(alphas)):
            raise ValueError("`alphas` must be finite")
        y, shape = _columns(x, axes["seed_axis"], [axes["alpha_axis"], axes["generation_axis"]])
        self.order = np.argsort(alphas, kind="stable")
        self.unsort = np.argsort(self.order)
        self.alphas = alphas[self.order]
        y = y[:, self.order]
        zero = int(self.unsort[zero])
        self.seeds, self.n_alpha, self.gens = shape[:3]
        self.batch_shape = tuple(shape[3:])
        self.diff = y - y[:, zero:zero + 1]
        self.base = y[:, zero]
        self.base_seeds = int((~np.isnan(self.base)).sum(axis=0).max(initial=0))
        self._centred = None

    def _columns(self):
        """Centred columns of ``diff`` and ``base`` and their masks (None: all done), made on first use."""
        if self._centred is None:
            dz, dv, dc = _centre(self.diff.reshape(self.seeds, -1))
            bz, bv, bc = _centre(self.base.reshape(self.seeds, -1))
            # all done: the counts are the resample sizes, no mask product needed
            self._centred = (dz, None if dv.all() else dv, dc, bz, None if bv.all() else bv, bc)
        return self._centred

    def moments(self, w, second=True):
        """Resampled moments under seed weights ``w`` ``(R, seeds)``.

        Returns ``d_mean, d_var, d_n`` of shape ``(R, alpha, columns)`` (``d_var``
        None unless ``second``) and ``b_mean, b_n`` of shape ``(R, columns)``;
        columns run over ``(generation, *batch)``.
        """
        dz, dv, dc, bz, bv, bc = self._columns()
        d_mean, d_var, d_n = _weighted_moments(w, dz, dv, dc, second)
        b_mean, _, b_n = _weighted_moments(w, bz, bv, bc, second=False)
        shape = (len(w), self.n_alpha, -1)
        d_var = d_var.reshape(shape) if second else None
        return d_mean.reshape(shape), d_var, np.reshape(d_n, shape), b_mean, b_n

    def resamples(self, n_resamples, gen, per_column=6):
        """Chunks of bootstrap seed weights, sized so ~``per_column`` arrays of moments fit 96 MB."""
        step = max(1, (96 << 20) // (8 * per_column * self.diff[0].size))
        for size in _chunks(n_resamples, step):
            yield _resample_weights(gen, self.seeds, size)


def _check_generation(generation, gens):
    if not isinstance(generation, (int, np.integer)) or not -gens <= generation < gens:
        raise ValueError(f"`generation` must be an index into {gens} generations, got {generation!r}")
    return int(generation) % gens


def alpha_thresholds(values, alphas=None, *, rules=RULES, alpha_axis=None, seed_axis=None,
                     generation_axis=None, generation=-1, tolerance=0.01, level=0.95, n_resamples=2000,
                     rng=0):
    """α* by several rules from the same seed resamples.

    Parameters
    ----------
    values : array_like or xarray.DataArray of float
        Metric cube with α, seed and generation axes (higher = worse); any
        other axes (sweeps) are batch axes with their own estimates.  NaN =
        not done.
    alphas : array_like of float, optional
        α of each entry of the α axis; must contain 0; need not be sorted.
        Default: the coordinate of a DataArray's α dimension.
    rules : sequence of {"sequence", "first", "isotonic"}
        ``"sequence"``: the fixed-sequence test — test α from the largest
        down, each with the one-sided Student-t test at ``level`` of "mean
        paired degradation > tolerance", and stop at the first that is not
        significant; α* is the last α that was (the smallest α such that it
        and every larger α are significantly worse).  α rows with fewer than
        two done seeds are skipped.  ``"first"``: the smallest α whose own
        test is significant (no multiplicity control: with many α below the
        threshold one passes by chance).  ``"isotonic"``: the α where the
        weighted isotonic (non-decreasing in α) least-squares fit of the mean
        paired degradation first exceeds the tolerance, interpolated linearly
        between the grid points on either side.
    alpha_axis, seed_axis, generation_axis : int or str, optional
        Defaults: the ``alpha``, ``seed`` and ``generation`` dimensions of a
        DataArray, else 0, 1, 2.
    generation : int
        Generation index of the headline ``value`` (default: the last).
    tolerance : float
        Relative tolerance (0.01 = a 1% increase over the α = 0 mean).
    level : float
        Level of the one-sided tests and of the two-sided intervals.
    n_resamples : int
        Bootstrap resamples of the seeds.
    rng : int, numpy.random.Generator or None

    Returns
    -------
    dict of str -> CriticalAlpha
        One entry per rule; ``+inf`` where no α qualifies.

    Notes
    -----
    Family-wise error: under the fixed sequence, a true null hypothesis (an
    α whose degradation is at most the tolerance) can be rejected only if
    the first true null of the sequence is, which happens with probability
    at most ``1 - level``.  So when degradation grows with α the probability
    that α* falls below the true threshold is at most ``1 - level``, however
    many α the grid holds (``tests/test_stats_alpha.py`` measures it).

    The interval resamples whole seeds (every α and generation of a seed go
    together, keeping the pairing), recomputes the tolerance, the tests and
    the estimate in each resample, and takes the percentile interval of the
    resampled estimates (``inverted_cdf``).  All rules use the same
    resamples.  The tests use the Student-t bound rather than a bootstrap
    band because a bootstrap inside every resample would be a double
    bootstrap, thousands of times slower.

    The isotonic crossing needs no fit of the whole curve: the fit exceeds
    ``t`` exactly after the last minimiser of the cumulative sum
    ``sum_{j<=m} w_j (y_j - t)``, and the fitted values on either side are
    the averages of the blocks that start and end there, so every resample
    costs a few cumulative sums (tested against
    ``scipy.optimize.isotonic_regression``).
    """
    rules = tuple(rules)
    for rule in rules:
        if rule not in RULES:
            raise ValueError(f"`rule` must be one of {RULES}, got {rule!r}")
    cube = _PairedCube(values, alphas, alpha_axis, seed_axis, generation_axis)
    tol = _check_tolerance(tolerance)
    level = _check_level(level)
    n_resamples = _check_resamples(n_resamples)
    g = _check_generation(generation, cube.gens)
    gen = _generator(rng)
    tq = _t_quantiles(level, cube.seeds)
    tested = any(r != "isotonic" for r in rules)

    def estimates(w):
        d_mean, d_var, d_n, b_mean, b_n = cube.moments(w, second=tested)
        threshold = np.where(b_n > 0, tol * np.abs(b_mean), np.nan)  # (R, columns)
        out = {}
        if tested:
            significant = _lower_bound(d_mean, d_var, d_n, tq) > threshold[:, None, :]  # NaN: never
            for rule in set(rules) - {"isotonic"}:
                out[rule] = _star_by_test(rule, significant, d_n >= 2, cube.alphas)
        if "isotonic" in rules:
            out["isotonic"] = _isotonic_crossing(
                np.swapaxes(d_mean, 1, 2).reshape(-1, cube.n_alpha),
                np.swapaxes(d_n, 1, 2).reshape(-1, cube.n_alpha),
                threshold.reshape(-1), cube.alphas).reshape(threshold.shape)
        return {k: np.where(b_n > 0, v, np.nan) for k, v in out.items()}  # (R, columns)

    point = {k: v[0] for k, v in estimates(np.ones((1, cube.seeds))).items()}
    boot = {k: np.empty((n_resamples, v.size)) for k, v in point.items()}
    done = 0
    for w in cube.resamples(n_resamples, gen):
        for k, v in estimates(w).items():
            boot[k][done:done + len(w)] = v
        done += len(w)
    return {rule: _critical_result(point[rule], boot[rule], cube, g, tol, level, n_resamples, rule)
            for rule in rules}


def _star_by_test(rule, significant, tested, alphas):
    """α* of each (resample, column) from the tests ``significant`` ``(R, alpha, columns)``."""
    if rule == "first":
        member = significant
    else:
        # fixed sequence from the largest α down: α is in the run if it and
        # every larger tested α are significant (untested rows are skipped)
        passes = significant | ~tested
        run = np.flip(np.logical_and.accumulate(np.flip(passes, axis=1), axis=1), axis=1)
        member = run & tested
    first = np.argmax(member, axis=1)
    return np.where(member.any(axis=1), alphas[first], np.inf)


def _isotonic_crossing(y, w, tau, alphas):
    """α where the weighted isotonic fit of each row of ``y`` first exceeds ``tau``.

    Parameters
    ----------
    y, w : ndarray of float64, shape ``(N, A)``
        Means and weights (seed counts) at ``alphas``; weight 0 = no data.
    tau : ndarray of float64, shape ``(N,)``
    alphas : ndarray of float64, shape ``(A,)``, ascending

    Returns
    -------
    ndarray of float64, shape ``(N,)``
        Linear interpolation between the grid points on either side of the
        first fitted value above ``tau``; the smallest α if the fit starts
        above it; ``+inf`` if it never exceeds it (or ``tau`` is NaN).
    """
    n_rows, n_alpha = y.shape
    valid = (w > 0) & np.isfinite(y)
    if valid.all():
        a = np.broadcast_to(alphas, y.shape)
    else:
        order = np.argsort(~valid, axis=1, kind="stable")  # each row's data first, in α order
        y = np.take_along_axis(np.where(valid, y, 0.0), order, axis=1)
        w = np.take_along_axis(np.where(valid, w, 0.0), order, axis=1)
        a = alphas[order]
    count = valid.sum(axis=1)
    zero = np.zeros((n_rows, 1))
    rows = np.arange(n_rows)
    cols = np.arange(n_alpha)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        diagram = np.concatenate([zero, np.cumsum(w * (y - tau[:, None]), axis=1)], axis=1)
        diagram[np.arange(n_alpha + 1)[None, :] > count[:, None]] = np.inf
        # the fit exceeds tau from the point after the last minimiser of the diagram
        first = n_alpha - np.argmin(diagram[:, ::-1], axis=1)
        found = (first < count) & np.isfinite(tau)
        i = np.minimum(first, np.maximum(count - 1, 0))
        sum_y = np.concatenate([zero, np.cumsum(w * y, axis=1)], axis=1)
        sum_w = np.concatenate([zero, np.cumsum(w, axis=1)], axis=1)
        start_y, start_w = sum_y[rows, i][:, None], sum_w[rows, i][:, None]
        # fitted value at i (a block starts there): min over k >= i of mean(i..k)
        ahead = (sum_y[:, 1:] - start_y) / (sum_w[:, 1:] - start_w)
        f_hi = np.where((cols >= i[:, None]) & (cols < count[:, None]), ahead, np.inf).min(axis=1)
        # fitted value at i - 1 (a block ends there): max over j < i of mean(j..i-1)
        behind = (start_y - sum_y[:, :-1]) / (start_w - sum_w[:, :-1])
        f_lo = np.where(cols < i[:, None], behind, -np.inf).max(axis=1)
        frac = np.clip((tau - f_lo) / (f_hi - f_lo), 0.0, 1.0)
        a_hi = a[rows, i]
        a_lo = a[rows, np.maximum(i - 1, 0)]
        theta = np.where(i == 0, a_hi, a_lo + np.nan_to_num(frac) * (a_hi - a_lo))
    return np.where(found, theta, np.inf)


def _critical_result(point, boot, cube, g, tol, level, n_resamples, rule):
    lo_q, hi_q = 0.5 - level / 2, 0.5 + level / 2
    with np.errstate(invalid="ignore"):
        low = np.quantile(boot, lo_q, axis=0, method="inverted_cdf")
        high = np.quantile(boot, hi_q, axis=0, method="inverted_cdf")
    found = np.mean(np.isfinite(boot), axis=0)
    no_base = np.isnan(point)
    low[no_base] = high[no_base] = found[no_base] = np.nan
    per_shape = (cube.gens,) + cube.batch_shape
    per, per_low, per_high = (a.reshape(per_shape) for a in (point, low, high))

    def at(a):
        v = a[g]
        return float(v) if v.ndim == 0 else v

    return CriticalAlpha(
        value=at(per), low=at(per_low), high=at(per_high), generation=g,
        per_generation=per, per_generation_low=per_low, per_generation_high=per_high,
        found_fraction=found.reshape(per_shape), tolerance=tol, level=level,
        n_seeds=cube.base_seeds, n_resamples=n_resamples, rule=rule,
    )


def critical_alpha(values, alphas=None, *, rule="sequence", alpha_axis=None, seed_axis=None,
                   generation_axis=None, generation=-1, tolerance=0.01, level=0.95, n_resamples=2000,
                   rng=0):
    """The critical synthetic fraction α*, per generation, with a bootstrap interval.

    By default (``rule="sequence"``) α* is the smallest α of the grid such
    that it and every larger α have a mean paired degradation
    ``metric(α) - metric(α = 0)`` significantly above
    ``tolerance * |mean metric(α = 0)|`` (one-sided Student-t test at
    ``level``, tested from the largest α down); this controls the
    family-wise error rate.  ``rule="first"`` is the smallest α whose own
    test passes (the earlier rule, kept for comparison); ``rule="isotonic"``
    is :func:`isotonic_threshold`.

    Parameters and the interval: see :func:`alpha_thresholds`.

    Returns
    -------
    CriticalAlpha
        ``+inf`` where no α qualifies (see :class:`CriticalAlpha`).
    """
    return alpha_thresholds(values, alphas, rules=(rule,), alpha_axis=alpha_axis, seed_axis=seed_axis,
                            generation_axis=generation_axis, generation=generation, tolerance=tolerance,
                            level=level, n_resamples=n_resamples, rng=rng)[rule]


def isotonic_threshold(values, alphas=None, *, alpha_axis=None, seed_axis=None, generation_axis=None,
                       generation=-1, tolerance=0.01, level=0.95, n_resamples=2000, rng=0):
    """The α where the monotone fit of the mean paired degradation crosses the tolerance.

    Per generation, the mean paired degradation of each α (weighted by its
    done seeds) is fitted by isotonic regression (non-decreasing in α); the
    threshold is where the fit first exceeds ``tolerance * |mean metric(α =
    0)|``, interpolated linearly between the grid points on either side: a
    continuous estimate that does not move in steps of the grid's spacing.
    Its interval resamples whole seeds.  See :func:`alpha_thresholds`.

    Returns
    -------
    CriticalAlpha
        ``rule="isotonic"``; ``+inf`` where the fit stays at or below the
        tolerance over the whole grid.
    """
    return alpha_thresholds(values, alphas, rules=("isotonic",), alpha_axis=alpha_axis,
                            seed_axis=seed_axis, generation_axis=generation_axis, generation=generation,
                            tolerance=tolerance, level=level, n_resamples=n_resamples, rng=rng)["isotonic"]


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
        As in :func:`alpha_thresholds`.
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


# -- rates -------------------------------------------------------------------------

#: Half-lives (generations) over which the saturating fit is profiled: the smallest, and the
#: largest per generation of horizon.
HALF_LIFE_RANGE = (0.05, 20.0)
_HALF_LIFE_POINTS = 160


def degradation_rate(values, alphas=None, *, alpha_axis=None, seed_axis=None, generation_axis=None,
                     level=0.95, method="t", n_resamples=2000, rng=0):
    """Slope of the paired degradation per generation, and its plateau and half-life where it saturates.

    Parameters
    ----------
    values, alphas, alpha_axis, seed_axis, generation_axis
        As in :func:`alpha_thresholds`.
    level : float
        Level of the intervals.
    method : {"t", "bca", "percentile"}
        Interval of the mean slope over seeds (:func:`seed_band`).
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
