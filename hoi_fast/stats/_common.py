"""Private helpers shared by the modules of :mod:`hoi_fast.stats` (a leaf: it imports none of them).

Argument validation (arrays, axes given by position or by an xarray dimension
name, α, level, resamples, tolerance, random generator), and the mean,
variance and count of columns under seed weights, where a bootstrap resample
is a vector of seed counts, so resampled moments are matrix products.
"""

from __future__ import annotations

import numpy as np


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


# -- moments under resampling weights -----------------------------------------

def _row_means(rows, valid, n):
    total = np.where(valid, rows, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


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
