"""Numba kernels of the ``regression`` experiment: labels, sufficient statistics and least squares.

Labels are held as *residuals about the true weights*: a row ``(x, y)`` is
stored as ``(x, r)`` with ``r = y - x^T w*``, so every quantity the experiment
reports (``w - w*``, residual sums of squares) is computed without the
cancellation of large ``y`` against ``x^T w``.  These kernels trust their
inputs (float64, C-contiguous); serial and deterministic.
"""

import numpy as np

from hoi_fast._jit import jit
from hoi_fast.kernels.gaussian import cholesky

#: A Gram matrix whose Cholesky pivot^2 falls below this share of its largest diagonal entry is
#: treated as singular: a rank-deficient X^T X often factorises in float64 with pivots of rounding size.
SINGULAR_PIVOT = 1e-12


@jit
def residual_labels(X, index, use_index, delta, sd, eps, out, cross):
    """``out[i] = X[row_i] . delta + sd eps[i]`` for the rows ``X[index]`` (all rows unless ``use_index``),
    with their moments ``X_S^T out`` and ``out^T out`` in the same pass.

    With ``delta = w - w*`` these are the residuals ``y - x^T w*`` of labels
    ``y = x^T w + sd eps`` drawn from a model with weights ``w``.

    Parameters
    ----------
    X : ndarray, shape (T, d), float64
    index : ndarray, shape (k,), int64
    use_index : bool
    delta : ndarray, shape (d,), float64
    sd : float
    eps : ndarray, shape (k,), float64
        Standard normals.
    out : ndarray, shape (k,), float64
        Output: the residuals.
    cross : ndarray, shape (d,), float64
        Output: ``X_S^T out``.

    Returns
    -------
    float
        ``out^T out``.
    """
    d = X.shape[1]
    k = eps.shape[0]
    cross[:] = 0.0
    rr = 0.0
    for r in range(k):
        i = index[r] if use_index else r
        s = 0.0
        for a in range(d):
            s += X[i, a] * delta[a]
        e = s + sd * eps[r]
        out[r] = e
        rr += e * e
        for a in range(d):
            cross[a] += X[i, a] * e
    return rr


@jit
def row_moments(X, index, use_index, resid, want_gram, gram, cross):
    """``X_S^T X_S`` (if ``want_gram``), ``X_S^T r`` and ``r^T r`` of the rows ``X_S = X[index]``.

    Parameters
    ----------
    X : ndarray, shape (T, d), float64
    index : ndarray, shape (k,), int64
    use_index : bool
        False: all rows, in order (``k = T``).
    resid : ndarray, shape (k,), float64
    want_gram : bool
    gram : ndarray, shape (d, d), float64
        Output (untouched unless ``want_gram``).
    cross : ndarray, shape (d,), float64
        Output.

    Returns
    -------
    float
        ``r^T r``.
    """
    d = X.shape[1]
    k = resid.shape[0]
    cross[:] = 0.0
    if want_gram:
        gram[:, :] = 0.0
    rr = 0.0
    for r in range(k):
        i = index[r] if use_index else r
        e = resid[r]
        rr += e * e
        for a in range(d):
            xa = X[i, a]
            cross[a] += xa * e
            if want_gram:
                for b in range(a + 1):
                    gram[a, b] += xa * X[i, b]
    if want_gram:
        for a in range(d):
            for b in range(a):
                gram[b, a] = gram[a, b]
    return rr


@jit
def subset_gram(X, index, full, gram):
    """``X_S^T X_S`` for distinct rows ``S = index``, from the cheaper side.

    If ``S`` holds more than half of the rows, ``full - X_C^T X_C`` over the
    complement ``C`` (``full = X^T X``), else the sum over ``S``; either way
    at most ``T / 2`` rows are read.

    Parameters
    ----------
    X : ndarray, shape (T, d), float64
    index : ndarray, shape (k,), int64
        Distinct rows.
    full : ndarray, shape (d, d), float64
    gram : ndarray, shape (d, d), float64
        Output.
    """
    T, d = X.shape
    k = index.shape[0]
    if 2 * k <= T:
        rows = index
        sign = 1.0
        for a in range(d):
            for b in range(d):
                gram[a, b] = 0.0
    else:
        keep = np.ones(T, dtype=np.bool_)
        for r in range(k):
            keep[index[r]] = False
        rows = np.empty(T - k, dtype=np.int64)
        c = 0
        for i in range(T):
            if keep[i]:
                rows[c] = i
                c += 1
        sign = -1.0
        for a in range(d):
            for b in range(d):
                gram[a, b] = full[a, b]
    for r in range(rows.shape[0]):
        i = rows[r]
        for a in range(d):
            xa = sign * X[i, a]
            for b in range(a + 1):
                gram[a, b] += xa * X[i, b]
    for a in range(d):
        for b in range(a):
            gram[b, a] = gram[a, b]


@jit
def least_squares(gram, cross, rr, delta):
    """Solve ``gram delta = cross`` by Cholesky; the residual sum of squares.

    Parameters
    ----------
    gram : ndarray, shape (d, d), float64
    cross : ndarray, shape (d,), float64
    rr : float
        ``r^T r`` of the training residuals about w*.
    delta : ndarray, shape (d,), float64
        Output: ``w - w*`` of the least-squares fit.

    Returns
    -------
    ok : bool
        False if ``gram`` is singular: not positive definite in float64, or a
        pivot^2 at most ``SINGULAR_PIVOT`` times its largest diagonal entry
        (``delta`` is then unset).
    rss : float
        ``||r - X delta||^2 = rr - cross^T delta``, at least 0.
    """
    d = gram.shape[0]
    L = np.empty((d, d))
    if not cholesky(gram, L):
        return False, 0.0
    scale = 0.0
    for a in range(d):
        scale = max(scale, gram[a, a])
    for a in range(d):
        if L[a, a] * L[a, a] <= SINGULAR_PIVOT * scale:
            return False, 0.0
    z = np.empty(d)
    for a in range(d):
        s = cross[a]
        for b in range(a):
            s -= L[a, b] * z[b]
        z[a] = s / L[a, a]
    for a in range(d - 1, -1, -1):
        s = z[a]
        for b in range(a + 1, d):
            s -= L[b, a] * delta[b]
        delta[a] = s / L[a, a]
    fit = 0.0
    for a in range(d):
        fit += cross[a] * delta[a]
    return True, max(rr - fit, 0.0)


@jit
def quadratic_loss(delta, second, cross, mean_sq):
    """``mean (e_i - x_i^T delta)^2 = mean_sq - 2 delta^T cross + delta^T second delta``, at least 0.

    With ``second = X^T X / N``, ``cross = X^T e / N``, ``mean_sq = e^T e / N`` of
    a set whose residuals about w* are ``e``: its mean squared error under
    weights ``w* + delta``.
    """
    d = delta.shape[0]
    q = 0.0
    for a in range(d):
        s = 0.0
        for b in range(d):
            s += second[a, b] * delta[b]
        q += delta[a] * (s - 2.0 * cross[a])
    return max(mean_sq + q, 0.0)
