"""Paired differences of the same seed, and the one-sided Student-t bound of their mean.

:func:`paired_degradation` is ``metric(α) - metric(α = 0)`` per seed,
:func:`illusion_gap` the real metric minus the self metric per seed, and
:func:`lower_confidence_bound` the one-sided lower bound of a mean over seeds
(the test that α* is built on).
"""

from __future__ import annotations

import numpy as np
import scipy.stats

from hoi_fast.stats._common import _alphas_of, _as_values, _centre, _check_level, _unwrap, _weighted_moments


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
        data; pass it to :func:`~hoi_fast.stats.seed_band` for a band.
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
