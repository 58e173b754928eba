"""Numba kernels of the ``gaussian`` experiment: sufficient statistics, exact sampling of them, fit and metrics.

These kernels trust their inputs (float64, C-contiguous, shapes as
documented); :mod:`hoi_fast.experiments.gaussian` validates once.  Everything
is serial and deterministic.

Why statistics, not points.  The Gaussian MLE depends on a training set only
through its count, mean and scatter ``S = sum_i (x_i - xbar)(x_i - xbar)^T``.
For ``m`` i.i.d. points ``x_i = mu + A z_i`` (``z_i ~ N(0, I_d)``) these are
independent, with ``xbar = mu + A zeta / sqrt(m)`` (``zeta ~ N(0, I_d)``) and
``S = (A B)(A B)^T`` where ``B B^T ~ Wishart_d(m - 1, I)`` is drawn by the
Bartlett decomposition: ``B`` lower triangular, ``B_ii^2 ~ chi2(m - 1 - i)``
(``i = 0 .. d - 1``), ``B_ij ~ N(0, 1)`` below the diagonal.  That is
``d^2 + d`` random numbers instead of ``m d`` (:func:`draw_statistics`),
exact in distribution.  :func:`orthonormal_frame` is the core of
:func:`hoi_fast.experiments.gaussian.materialise`, which recovers points with
exactly those statistics, distributed as the points conditional on them.

Passing a ``numpy.random.Generator`` into a compiled function costs about
10 us per call here, so the random numbers are drawn by NumPy and passed in
as arrays.
"""

import math

import numpy as np

from hoi_fast._jit import jit

LOG_2PI = math.log(2.0 * math.pi)
#: Positions in the array returned by :func:`scalar_metrics`.
METRICS = ("real_nll", "tail_nll", "self_constant", "kl", "w2", "mean_error", "log_det_ratio", "trace_ratio")


@jit
def cholesky(A, L):
    """Lower Cholesky factor of a symmetric matrix, or a failure flag.

    Parameters
    ----------
    A : ndarray, shape (d, d), float64
        Symmetric; only the lower triangle is read.
    L : ndarray, shape (d, d), float64
        Output: ``L L^T = A``, zeros above the diagonal.

    Returns
    -------
    bool
        False when a pivot is not positive and finite (``A`` is not positive
        definite in float64); ``L`` is then incomplete.
    """
    d = A.shape[0]
    L[:, :] = 0.0
    for j in range(d):
        s = A[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if not (s > 0.0 and s < math.inf):
            return False
        piv = math.sqrt(s)
        L[j, j] = piv
        for i in range(j + 1, d):
            t = A[i, j]
            for k in range(j):
                t -= L[i, k] * L[j, k]
            L[i, j] = t / piv
    return True


@jit
def choose(n, uniforms):
    """Distinct indices of ``range(n)`` in random order by a partial Fisher-Yates shuffle.

    Parameters
    ----------
    n : int
    uniforms : ndarray, shape (m,), float64
        Uniforms on [0, 1): position ``i`` is swapped with position
        ``i + floor(uniforms[i] (n - i))``, uniform on ``[i, n)`` (to within
        a relative 2^-53 of each probability).

    Returns
    -------
    ndarray, shape (m,), int64
        A uniformly random ordered sample of ``m`` indices without replacement.
    """
    m = uniforms.shape[0]
    perm = np.arange(n)
    for i in range(m):
        j = min(i + int(uniforms[i] * (n - i)), n - 1)
        t = perm[i]
        perm[i] = perm[j]
        perm[j] = t
    return perm[:m].copy()


@jit
def row_statistics(X, index, use_index, mean, scatter):
    """Mean and scatter of the rows ``X[index]`` (all rows unless ``use_index``), two-pass.

    Parameters
    ----------
    X : ndarray, shape (n, d), float64
    index : ndarray, shape (m,), int64
    use_index : bool
    mean : ndarray, shape (d,), float64
        Output.
    scatter : ndarray, shape (d, d), float64
        Output: ``sum_i (x_i - mean)(x_i - mean)^T`` (symmetric).
    """
    d = X.shape[1]
    m = index.shape[0] if use_index else X.shape[0]
    mean[:] = 0.0
    scatter[:, :] = 0.0
    for r in range(m):
        i = index[r] if use_index else r
        for a in range(d):
            mean[a] += X[i, a]
    for a in range(d):
        mean[a] /= m
    c = np.empty(d)
    for r in range(m):
        i = index[r] if use_index else r
        for a in range(d):
            c[a] = X[i, a] - mean[a]
        for a in range(d):
            ca = c[a]
            for b in range(a + 1):
                scatter[a, b] += ca * c[b]
    for a in range(d):
        for b in range(a):
            scatter[b, a] = scatter[a, b]


def statistics_draw_sizes(d):
    """``(normals, chisquares)``: how many standard normals and chi2(m - d) variates :func:`draw_statistics` reads."""
    return d + d * (d - 1), d


@jit
def draw_statistics(center, factor, m, normals, chisquares, mean, F, scatter):
    """Mean and scatter of ``m`` i.i.d. points of ``N(center, factor factor^T)``, exactly in distribution.

    The Bartlett factor ``B`` (lower triangular, ``B B^T ~ Wishart_d(m - 1, I)``)
    has ``B_ii^2 ~ chi2(m - 1 - i)``, made as ``chi2(m - d)`` plus the squares
    of ``d - 1 - i`` further standard normals (so that every chi-square
    variate has the same degrees of freedom and NumPy draws them in one call).

    Parameters
    ----------
    center : ndarray, shape (d,), float64
    factor : ndarray, shape (d, d), float64
        Any ``A`` with ``A A^T`` the covariance.
    m : int
        Number of points; ``m > d``.
    normals : ndarray, shape (d + d (d - 1),), float64
        Standard normals, read in this order: ``zeta`` (``d``), the entries of
        ``B`` below the diagonal row by row (``d (d - 1) / 2``), then for each
        row ``i`` the ``d - 1 - i`` normals added to its diagonal.
    chisquares : ndarray, shape (d,), float64
        chi2(m - d) variates, one per diagonal entry.
    mean : ndarray, shape (d,), float64
        Output: the sample mean ``center + A zeta / sqrt(m)``.
    F : ndarray, shape (d, d), float64
        Output: ``A B``.
    scatter : ndarray, shape (d, d), float64
        Output: ``F F^T``, the scatter of the points.
    """
    d = center.shape[0]
    B = np.zeros((d, d))
    r = d
    for i in range(d):
        for j in range(i):
            B[i, j] = normals[r]
            r += 1
    for i in range(d):
        s = chisquares[i]
        for _ in range(d - 1 - i):
            s += normals[r] * normals[r]
            r += 1
        B[i, i] = math.sqrt(s)
    root = 1.0 / math.sqrt(m)
    for a in range(d):
        s = 0.0
        for b in range(d):
            s += factor[a, b] * normals[b]
        mean[a] = center[a] + s * root
    for a in range(d):
        for k in range(d):
            s = 0.0
            for j in range(k, d):
                s += factor[a, j] * B[j, k]
            F[a, k] = s
    for a in range(d):
        for b in range(a + 1):
            s = 0.0
            for k in range(d):
                s += F[a, k] * F[b, k]
            scatter[a, b] = s
            scatter[b, a] = s


@jit
def affine_rows(Z, center, factor, scale, out):
    """``out = center + scale Z factor^T`` row by row (points from standard normal rows).

    Parameters
    ----------
    Z : ndarray, shape (m, d), float64
    center : ndarray, shape (d,), float64
    factor : ndarray, shape (d, d), float64
    scale : float
    out : ndarray, shape (m, d), float64
        Output (may be ``Z`` itself only if ``factor`` is the identity; normally a new array).
    """
    m, d = Z.shape
    row = np.empty(d)
    for i in range(m):
        for a in range(d):
            s = 0.0
            for b in range(d):
                s += factor[a, b] * Z[i, b]
            row[a] = center[a] + scale * s
        for a in range(d):
            out[i, a] = row[a]


@jit
def _gram_upper_factor(W):
    """Upper Cholesky factor R of W^T W (R^T R = W^T W), or ok = False."""
    m, d = W.shape
    G = np.zeros((d, d))
    for i in range(m):
        for a in range(d):
            wa = W[i, a]
            for b in range(a + 1):
                G[a, b] += wa * W[i, b]
    L = np.empty((d, d))
    ok = cholesky(G, L)
    return L.T.copy(), ok


@jit
def _solve_right_upper(W, R):
    """W <- W R^-1 in place (R upper triangular)."""
    m, d = W.shape
    for i in range(m):
        for j in range(d):
            s = W[i, j]
            for k in range(j):
                s -= W[i, k] * R[k, j]
            W[i, j] = s / R[j, j]


@jit
def orthonormal_frame(W):
    """Centre the columns of ``W`` and orthonormalise them in place (CholeskyQR2).

    For a standard normal ``W`` (``m > d`` rows) the result is the Q factor,
    with positive-diagonal R, of the thin QR decomposition of the centred
    matrix: uniform (Haar) among ``m x d`` matrices with orthonormal columns
    orthogonal to the ones vector.  CholeskyQR twice (Q1 = W R1^-1, then
    Q = Q1 R2^-1) is orthonormal to rounding for any condition number below
    about 1e7 (a centred Gaussian matrix of m > d rows is far better
    conditioned except with negligible probability).

    Returns
    -------
    bool
        False if a Cholesky factorisation failed (rank-deficient W).
    """
    m, d = W.shape
    for a in range(d):
        s = 0.0
        for i in range(m):
            s += W[i, a]
        s /= m
        for i in range(m):
            W[i, a] -= s
    for _ in range(2):
        R, ok = _gram_upper_factor(W)
        if not ok:
            return False
        _solve_right_upper(W, R)
    return True


@jit
def pooled_fit(counts, means, scatters, ddof, mean, covariance):
    """Mean and covariance of the union of parts given each part's statistics.

    Chan's pairwise update: ``S = sum_p S_p + sum_p c_p (xbar_p - xbar)(xbar_p - xbar)^T``,
    ``covariance = S / (N - ddof)`` with ``N = sum_p c_p``.

    Parameters
    ----------
    counts : ndarray, shape (p,), float64
    means : ndarray, shape (p, d), float64
    scatters : ndarray, shape (p, d, d), float64
    ddof : int
    mean, covariance : ndarray, shapes (d,), (d, d), float64
        Outputs.
    """
    p, d = means.shape
    total = 0.0
    for q in range(p):
        total += counts[q]
    mean[:] = 0.0
    for q in range(p):
        for a in range(d):
            mean[a] += counts[q] * means[q, a]
    for a in range(d):
        mean[a] /= total
    covariance[:, :] = 0.0
    delta = np.empty(d)
    for q in range(p):
        for a in range(d):
            delta[a] = means[q, a] - mean[a]
        c = counts[q]
        for a in range(d):
            for b in range(a + 1):
                covariance[a, b] += scatters[q, a, b] + c * delta[a] * delta[b]
    scale = 1.0 / (total - ddof)
    for a in range(d):
        for b in range(a + 1):
            covariance[a, b] *= scale
            covariance[b, a] = covariance[a, b]


@jit
def _lower_inverse(L):
    """Inverse of a lower-triangular matrix with positive diagonal (lower triangular)."""
    d = L.shape[0]
    M = np.zeros((d, d))
    for j in range(d):
        M[j, j] = 1.0 / L[j, j]
        for i in range(j + 1, d):
            s = 0.0
            for k in range(j, i):
                s += L[i, k] * M[k, j]
            M[i, j] = -s / L[i, i]
    return M


@jit
def _gaussian_nll(d, logdet, P, mean, data_mean, data_second):
    """Mean NLL of a set with mean ``data_mean`` and scatter / count ``data_second`` under N(mean, P^-1)."""
    tr = 0.0
    for a in range(d):
        for b in range(d):
            tr += P[a, b] * data_second[a, b]
    quad = 0.0
    for a in range(d):
        da = data_mean[a] - mean[a]
        for b in range(d):
            quad += da * P[a, b] * (data_mean[b] - mean[b])
    return 0.5 * (d * LOG_2PI + logdet + tr + quad)


@jit
def scalar_metrics(mean, covariance, L, regular, truth_mean, truth_cov, truth_chol, truth_logdet,
                   real_mean, real_second, tail_mean, tail_second):
    """Every scalar metric of a fitted N(mean, covariance) except the random part of ``self_nll``.

    Parameters
    ----------
    mean, covariance : ndarray, shapes (d,), (d, d), float64
        The model.
    L : ndarray, shape (d, d), float64
        Its lower Cholesky factor (read only when ``regular``).
    regular : bool
        False for a singular covariance: the densities are then degenerate and
        ``real_nll``, ``tail_nll``, ``kl`` are ``+inf``, ``log_det_ratio`` and
        the ``self_nll`` constant ``-inf``.
    truth_mean, truth_cov, truth_chol : ndarray
        mu0, Sigma0 and its lower Cholesky factor K0.
    truth_logdet : float
        log det Sigma0.
    real_mean, real_second, tail_mean, tail_second : ndarray
        Mean and scatter / count of the held-out real set and of the tail set.

    Returns
    -------
    ndarray, shape (8,), float64
        In the order of :data:`METRICS`.  ``self_constant`` is
        ``(d log 2 pi + log det covariance) / 2``; ``self_nll`` adds half the
        mean squared Mahalanobis radius of the model's own points.

    Notes
    -----
    ``w2`` = ``||mean - mu0||^2 + tr Sigma + tr Sigma0 - 2 tr (Sigma0^1/2 Sigma Sigma0^1/2)^1/2``;
    the last trace is the sum of square roots of the eigenvalues of
    ``K0^T Sigma K0`` (same spectrum as ``Sigma Sigma0``).
    """
    d = mean.shape[0]
    out = np.empty(8)
    mean_error = 0.0
    for a in range(d):
        mean_error += (mean[a] - truth_mean[a]) ** 2
    tr_model = 0.0
    tr_truth = 0.0
    for a in range(d):
        tr_model += covariance[a, a]
        tr_truth += truth_cov[a, a]
    # K0^T Sigma K0
    tmp = np.zeros((d, d))
    for a in range(d):
        for k in range(d):
            s = 0.0
            for b in range(k, d):
                s += covariance[a, b] * truth_chol[b, k]
            tmp[a, k] = s
    M = np.zeros((d, d))
    for i in range(d):
        for k in range(i + 1):
            s = 0.0
            for a in range(i, d):
                s += truth_chol[a, i] * tmp[a, k]
            M[i, k] = s
            M[k, i] = s
    roots = 0.0
    for lam in np.linalg.eigvalsh(M):
        if lam > 0.0:
            roots += math.sqrt(lam)
    out[4] = max(mean_error + tr_model + tr_truth - 2.0 * roots, 0.0)
    out[5] = mean_error
    out[7] = tr_model / tr_truth
    if not regular:
        out[0] = math.inf
        out[1] = math.inf
        out[2] = -math.inf
        out[3] = math.inf
        out[6] = -math.inf
        return out
    logdet = 0.0
    for a in range(d):
        logdet += 2.0 * math.log(L[a, a])
    Linv = _lower_inverse(L)
    P = np.zeros((d, d))  # Sigma^-1 = Linv^T Linv
    for a in range(d):
        for b in range(a + 1):
            s = 0.0
            for k in range(a, d):
                s += Linv[k, a] * Linv[k, b]
            P[a, b] = s
            P[b, a] = s
    out[0] = _gaussian_nll(d, logdet, P, mean, real_mean, real_second)
    out[1] = _gaussian_nll(d, logdet, P, mean, tail_mean, tail_second)
    out[2] = 0.5 * (d * LOG_2PI + logdet)
    # KL(truth || model) = (tr(P Sigma0) + (mu - mu0)^T P (mu - mu0) - d + logdet - logdet0) / 2
    kl = _gaussian_nll(d, logdet, P, mean, truth_mean, truth_cov) - 0.5 * (d * LOG_2PI + d + truth_logdet)
    out[3] = max(kl, 0.0)
    out[6] = logdet - truth_logdet
    return out
