"""The critical synthetic fraction α* (fixed sequence or first passing test) and the isotonic threshold.

:class:`_PairedCube` arranges a metric cube's paired degradation for
resampling whole seeds; :mod:`hoi_fast.stats.survival` and
:mod:`hoi_fast.stats.rates` build on it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hoi_fast.stats._common import (
    _alphas_of,
    _centre,
    _check_level,
    _check_resamples,
    _check_tolerance,
    _chunks,
    _columns,
    _generator,
    _resample_weights,
    _unwrap,
    _weighted_moments,
)
from hoi_fast.stats.paired import _alpha_zero, _lower_bound, _t_quantiles


#: Rules for α*: fixed-sequence test from the largest α down (default), first
#: α that passes its own test, crossing of the isotonic fit.
RULES = ("sequence", "first", "isotonic")


# -- results -----------------------------------------------------------------

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
