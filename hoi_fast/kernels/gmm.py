"""Numba kernels for 2-D Gaussian mixtures: EM, log-density, sampling, k-means++.

These kernels trust their inputs (float64, C-contiguous, shapes as documented);
:mod:`hoi_fast.gmm` validates and coerces once.  Conventions follow
scikit-learn's ``GaussianMixture(covariance_type="full")`` so that, started
from the same parameters, EM takes the same number of iterations:

* ``nk = resp.sum(0) + 10 * eps``; ``means = resp.T @ X / nk``;
  ``covariances = resp-weighted scatter / nk + reg_covar * I``;
  ``weights = nk / nk.sum()``.
* Iteration ``t`` (1-based) runs an E-step with the current parameters, whose
  mean log-likelihood is the "lower bound" of iteration ``t``, then an M-step.
  EM stops after iteration ``t`` when ``|lower_bound_t - lower_bound_{t-1}| <
  tol`` (``lower_bound_0 = -inf``), so ``n_iter`` has sklearn's ``n_iter_``
  semantics and the final lower bound is the log-likelihood of the parameters
  *before* the last M-step (sklearn's ``lower_bound_``).

Speed.  The E-step and the M-step are fused into one pass over blocks of
``BLOCK`` points: log-densities of a block for every component, a log-sum-exp
per point, then the responsibility-weighted sufficient statistics are summed
while the block is in L1 cache.  ``math.exp``/``math.log`` are scalar calls
that stop LLVM from vectorising a loop, so :func:`_exp_nonpos` and
:func:`_log_pos` are branch-free polynomial versions (accurate to about one
ulp) that vectorise; the 2x2 covariance inverse and determinant are closed
forms.  Points are held as two coordinate arrays ``x0, x1`` so the loops read
contiguous memory.

Degenerate components (documented rule).  After every M-step (and after the
k-means++ initialisation) a component ``k`` is *degenerate* when

* ``resp[:, k].sum() < MIN_NK = 1e-10`` (numerically empty; a merely small
  component is left alone, as scikit-learn does), or
* its covariance ``[[a, b], [b, c]]`` is not safely positive definite:
  not ``a > 0 and c > 0 and a*c - b*b > SINGULAR_RATIO * a * c`` (a squared
  correlation within 1e-10 of 1 is singular to working precision), or any
  entry is not finite.

A degenerate component is re-seeded: its mean becomes the training point with
the lowest log-density under the parameters of the E-step just done (the r
lowest points for r degenerate components, in component order; ties broken
by point index), its covariance becomes the pooled covariance of all the data
(+ ``reg_covar`` on the diagonal, plus a ``1e-6 * max(trace / 2, 1)`` jitter
if that is itself singular), and its unnormalised weight ``nk`` becomes
``RESEED_NK = 1`` (one point's worth) before the weights are normalised.
The number of re-seeded
components is counted and returned.  After a reset the convergence test is
skipped for the next iteration (the previous lower bound is treated as
``-inf``), because the likelihood can drop at a reset.
"""

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from hoi_fast._jit import copy_into, jit

BLOCK = 256
LOG_2PI = math.log(2.0 * math.pi)
EPS10 = 10.0 * float(np.finfo(np.float64).eps)
MIN_NK = 1e-10
RESEED_NK = 1.0
SINGULAR_RATIO = 1e-10
LLOYD_ITERS = 20
# Columns of the per-component constants used by the E-step.
_M0, _M1, _QA, _QB, _QC, _H = range(6)

# exp: Cody-Waite reduction x = t*ln2 + r, |r| <= ln2/2, Taylor degree 13
# (truncation < 5e-18 relative), scale by 2**t built from its IEEE bits.
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # trailing zero bits: t * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_EXP_UNDERFLOW = -708.0  # below this exp(x) < 3e-308; treated as 0
# log: fdlibm's e_log.c minimax polynomial in s = f / (2 + f) (error < 1 ulp).
_SQRT2 = 1.4142135623730951
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01


@intrinsic
def _int64_as_float64(typingctx, bits):
    """Reinterpret the bits of an int64 as a float64 (no conversion)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        value = context.cast(builder, args[0], signature.args[0], types.int64)
        return builder.bitcast(value, ir.DoubleType())

    return types.float64(bits), codegen


@intrinsic
def _float64_as_int64(typingctx, value):
    """Reinterpret the bits of a float64 as an int64 (no conversion)."""
    if not isinstance(value, types.Float):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (``llvm.fma``), vectorisable.

    Written as an intrinsic call so that fast-math reassociation cannot fold
    the two-constant (Cody-Waite) range reduction ``(x - t*hi) - t*lo`` back
    into ``x - t*(hi + lo)``, whose error grows with ``|t|`` (2e-14 relative
    at x = -700 when folded).
    """
    if not all(isinstance(v, types.Float) for v in (a, b, c)):
        return None

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.DoubleType(), [ir.DoubleType()] * 3)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fma.f64")
        return builder.call(fn, list(args))

    return types.float64(types.float64, types.float64, types.float64), codegen


@jit
def _exp_nonpos(x):
    """``exp(x)`` for ``x <= 0``, vectorisable; 0 below -708 (and for -inf)."""
    xc = max(x, _EXP_UNDERFLOW)
    t = np.floor(xc * _LOG2E + 0.5)
    r = _fma(-t, _LN2_LO, _fma(-t, _LN2_HI, xc))
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    scale = _int64_as_float64((np.int64(t) + 1023) << 52)
    return p * scale if x > _EXP_UNDERFLOW else 0.0


@jit
def _log_pos(x):
    """``log(x)`` for a positive, normal, finite ``x``, vectorisable."""
    bits = _float64_as_int64(x)
    e = (bits >> 52) - 1023
    m = _int64_as_float64((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)  # [1, 2)
    big = m > _SQRT2
    m = m * 0.5 if big else m  # m in [sqrt(2)/2, sqrt(2))
    e = e + 1 if big else e
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = w * (_LG2 + w * (_LG4 + w * _LG6)) + z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    hfsq = 0.5 * f * f
    dk = float(e)
    return dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f)


@jit
def split_columns(X):
    """Coordinates of ``X`` (n, 2) as two contiguous float64 arrays ``(x0, x1)``."""
    n = X.shape[0]
    x0 = np.empty(n)
    x1 = np.empty(n)
    for i in range(n):
        x0[i] = X[i, 0]
        x1[i] = X[i, 1]
    return x0, x1


@jit
def is_safe_pd(a, b, c):
    """Whether ``[[a, b], [b, c]]`` is positive definite to working precision."""
    ok = a > 0.0 and c > 0.0 and (a * c - b * b) > SINGULAR_RATIO * a * c
    return ok and math.isfinite(a) and math.isfinite(b) and math.isfinite(c)


@jit
def prepare(weights, means, covariances, consts):
    """Per-component E-step constants.

    ``log(w_k N(x | mu_k, S_k)) = H + d0 * (QA*d0 + QB*d1) + QC*d1*d1`` with
    ``d = x - mu_k``; ``consts[k] = (mu0, mu1, QA, QB, QC, H)``, shape (K, 6).
    Components with zero weight get ``H = -inf``.
    """
    for k in range(weights.shape[0]):
        a = covariances[k, 0, 0]
        b = 0.5 * (covariances[k, 0, 1] + covariances[k, 1, 0])
        c = covariances[k, 1, 1]
        det = a * c - b * b
        consts[k, _M0] = means[k, 0]
        consts[k, _M1] = means[k, 1]
        consts[k, _QA] = -0.5 * c / det
        consts[k, _QB] = b / det
        consts[k, _QC] = -0.5 * a / det
        logw = math.log(weights[k]) if weights[k] > 0.0 else -np.inf
        consts[k, _H] = logw - LOG_2PI - 0.5 * math.log(det)


@jit
def _block_exp(xb0, xb1, nb, consts, E, mx, s):
    """Fill ``E[k, j] = exp(logp_kj - mx_j)`` and ``s_j = sum_k E[k, j]`` for a block.

    ``xb0, xb1`` are views of the block's coordinates (indexing a view from 0
    lets LLVM see contiguous loads; ``x[start + j]`` compiles to gathers
    because of negative-index wraparound), ``logp_kj`` is the weighted
    log-density of point ``j`` under component ``k`` and ``mx_j`` its
    maximum over components.
    """
    K = consts.shape[0]
    for k in range(K):
        m0 = consts[k, _M0]
        m1 = consts[k, _M1]
        qa = consts[k, _QA]
        qb = consts[k, _QB]
        qc = consts[k, _QC]
        h = consts[k, _H]
        for j in range(nb):
            d0 = xb0[j] - m0
            d1 = xb1[j] - m1
            v = h + d0 * (qa * d0 + qb * d1) + qc * d1 * d1
            E[k, j] = v
            mx[j] = v if k == 0 else max(mx[j], v)
    for j in range(nb):
        s[j] = 0.0
    for k in range(K):
        for j in range(nb):
            e = _exp_nonpos(E[k, j] - mx[j])
            E[k, j] = e
            s[j] += e


@jit
def log_norm(x0, x1, consts, out):
    """Mixture log-density ``out[i] = log sum_k w_k N(x_i | mu_k, S_k)``, shape (n,)."""
    n = x0.shape[0]
    K = consts.shape[0]
    E = np.empty((K, BLOCK))
    mx = np.empty(BLOCK)
    s = np.empty(BLOCK)
    for start in range(0, n, BLOCK):
        nb = min(BLOCK, n - start)
        _block_exp(x0[start:start + nb], x1[start:start + nb], nb, consts, E, mx, s)
        ob = out[start:start + nb]
        for j in range(nb):
            ob[j] = mx[j] + _log_pos(s[j])
    return out


@jit
def log_density(X, weights, means, covariances):
    """Mixture log-density of the rows of ``X`` (n, 2); float64 array (n,)."""
    x0, x1 = split_columns(X)
    consts = np.empty((weights.shape[0], 6))
    prepare(weights, means, covariances, consts)
    out = np.empty(X.shape[0])
    return log_norm(x0, x1, consts, out)


@jit
def e_step(x0, x1, consts):
    """Responsibilities (n, K) and per-point log-likelihoods (n,) (for tests)."""
    n = x0.shape[0]
    K = consts.shape[0]
    E = np.empty((K, BLOCK))
    mx = np.empty(BLOCK)
    s = np.empty(BLOCK)
    resp = np.empty((n, K))
    lse = np.empty(n)
    for start in range(0, n, BLOCK):
        nb = min(BLOCK, n - start)
        _block_exp(x0[start:start + nb], x1[start:start + nb], nb, consts, E, mx, s)
        for j in range(nb):
            lse[start + j] = mx[j] + _log_pos(s[j])
            inv = 1.0 / s[j]
            for k in range(K):
                resp[start + j, k] = E[k, j] * inv
    return resp, lse


@jit
def em_pass(x0, x1, consts, stats, E, mx, s):
    """Fused E-step and M-step sufficient statistics; returns the summed log-likelihood.

    ``stats[k] = (sum r, sum r d0, sum r d1, sum r d0^2, sum r d0 d1, sum r d1^2)``
    with ``r`` the responsibilities and ``d = x - mu_k`` relative to the
    component's *current* mean (centring keeps the scatter accurate).
    ``E`` (K, BLOCK), ``mx`` and ``s`` (BLOCK,) are scratch buffers.
    """
    n = x0.shape[0]
    K = consts.shape[0]
    stats[:, :] = 0.0
    total = 0.0
    for start in range(0, n, BLOCK):
        nb = min(BLOCK, n - start)
        xb0 = x0[start:start + nb]
        xb1 = x1[start:start + nb]
        _block_exp(xb0, xb1, nb, consts, E, mx, s)
        acc = 0.0
        for j in range(nb):
            acc += mx[j] + _log_pos(s[j])
            s[j] = 1.0 / s[j]
        total += acc
        for k in range(K):
            m0 = consts[k, _M0]
            m1 = consts[k, _M1]
            sr = 0.0
            s0 = 0.0
            s1 = 0.0
            s00 = 0.0
            s01 = 0.0
            s11 = 0.0
            for j in range(nb):
                r = E[k, j] * s[j]
                d0 = xb0[j] - m0
                d1 = xb1[j] - m1
                rd0 = r * d0
                rd1 = r * d1
                sr += r
                s0 += rd0
                s1 += rd1
                s00 += rd0 * d0
                s01 += rd0 * d1
                s11 += rd1 * d1
            stats[k, 0] += sr
            stats[k, 1] += s0
            stats[k, 2] += s1
            stats[k, 3] += s00
            stats[k, 4] += s01
            stats[k, 5] += s11
    return total


@jit
def m_step(stats, centres, reg_covar, nk, means, covariances):
    """Parameters from centred sufficient statistics (sklearn's formulas).

    ``centres`` (K, 2) are the points the statistics were centred on.  Writes
    the unnormalised ``nk = sum r + 10 eps`` (K,), ``means`` (K, 2) and
    ``covariances`` (K, 2, 2); the caller normalises ``nk`` into weights.
    """
    for k in range(stats.shape[0]):
        sr = stats[k, 0]
        n_k = sr + EPS10
        # sklearn: means = sum r x / nk = (sum r d + c sum r) / nk
        mu0 = (stats[k, 1] + centres[k, 0] * sr) / n_k
        mu1 = (stats[k, 2] + centres[k, 1] * sr) / n_k
        # sum r (x - mu)(x - mu)^T with x - mu = d - delta, delta = mu - c
        e0 = mu0 - centres[k, 0]
        e1 = mu1 - centres[k, 1]
        c00 = stats[k, 3] - 2.0 * e0 * stats[k, 1] + sr * e0 * e0
        c01 = stats[k, 4] - e0 * stats[k, 2] - e1 * stats[k, 1] + sr * e0 * e1
        c11 = stats[k, 5] - 2.0 * e1 * stats[k, 2] + sr * e1 * e1
        nk[k] = n_k
        means[k, 0] = mu0
        means[k, 1] = mu1
        covariances[k, 0, 0] = c00 / n_k + reg_covar
        covariances[k, 0, 1] = c01 / n_k
        covariances[k, 1, 0] = c01 / n_k
        covariances[k, 1, 1] = c11 / n_k + reg_covar


@jit
def pooled_covariance(x0, x1, reg_covar):
    """Covariance of all points (divided by n) + ``reg_covar`` I, made safely PD."""
    n = x0.shape[0]
    m0 = x0.mean()
    m1 = x1.mean()
    a = 0.0
    b = 0.0
    c = 0.0
    for i in range(n):
        d0 = x0[i] - m0
        d1 = x1[i] - m1
        a += d0 * d0
        b += d0 * d1
        c += d1 * d1
    a = a / n + reg_covar
    b = b / n
    c = c / n + reg_covar
    if not is_safe_pd(a, b, c):
        jitter = 1e-6 * max(0.5 * (a + c), 1.0)
        a += jitter
        c += jitter
    out = np.empty((2, 2))
    out[0, 0] = a
    out[0, 1] = b
    out[1, 0] = b
    out[1, 1] = c
    return out


@jit
def _is_degenerate(nk, means, covariances, k):
    if nk[k] - EPS10 < MIN_NK:
        return True
    if not is_safe_pd(covariances[k, 0, 0], covariances[k, 0, 1], covariances[k, 1, 1]):
        return True
    return not (math.isfinite(means[k, 0]) and math.isfinite(means[k, 1]))


@jit
def any_degenerate(nk, means, covariances):
    """Whether any component breaks the degenerate-component rule."""
    for k in range(nk.shape[0]):
        if _is_degenerate(nk, means, covariances, k):
            return True
    return False


@jit
def repair(nk, means, covariances, score, X0, X1, pooled):
    """Apply the degenerate-component rule (module docstring); returns #resets.

    ``score`` (n,) ranks the points (lowest = worst explained).  ``nk`` is
    updated in place (not yet normalised).
    """
    K = nk.shape[0]
    bad = np.zeros(K, dtype=np.bool_)
    n_bad = 0
    for k in range(K):
        bad[k] = _is_degenerate(nk, means, covariances, k)
        n_bad += bad[k]
    if n_bad == 0:
        return 0
    order = np.argsort(score, kind="mergesort")
    used = 0
    for k in range(K):
        if bad[k]:
            i = order[min(used, order.shape[0] - 1)]
            used += 1
            means[k, 0] = X0[i]
            means[k, 1] = X1[i]
            for a in range(2):  # element by element, not a slice assignment: see hoi_fast._jit
                for b in range(2):
                    covariances[k, a, b] = pooled[a, b]
            nk[k] = RESEED_NK
    return n_bad


@jit
def _normalise(nk, weights):
    total = nk.sum()
    for k in range(nk.shape[0]):
        weights[k] = nk[k] / total


@jit
def em(X, weights, means, covariances, max_iter, tol, reg_covar, trace, final_score):
    """Run EM in place from the given parameters.

    Parameters
    ----------
    X : float64 array (n, 2)
    weights, means, covariances : float64 arrays (K,), (K, 2), (K, 2, 2)
        Initial parameters, overwritten by the fitted ones.
    max_iter : int
    tol : float
        Absolute tolerance on the change of the mean log-likelihood
        (``tol <= 0`` runs exactly ``max_iter`` iterations).
    reg_covar : float
    trace : float64 array (max_iter,)
        Receives the lower bound (mean log-likelihood of the E-step) of each
        iteration; the first ``n_iter`` entries are written.
    final_score : bool
        Whether to compute the mean log-likelihood of the returned parameters.

    Returns
    -------
    n_iter : int
    converged : bool
    lower_bound : float
        sklearn's ``lower_bound_``: the last entry of the trace.
    n_resets : int
    final_ll : float
        Mean log-likelihood of the returned parameters (NaN if not requested).
    """
    n = X.shape[0]
    K = weights.shape[0]
    x0, x1 = split_columns(X)
    consts = np.empty((K, 6))
    stats = np.empty((K, 6))
    nk = np.empty(K)
    centres = np.empty((K, 2))
    E = np.empty((K, BLOCK))
    mx = np.empty(BLOCK)
    s = np.empty(BLOCK)
    prepare(weights, means, covariances, consts)
    lower = -np.inf
    converged = False
    n_iter = 0
    n_resets = 0
    for it in range(1, max_iter + 1):
        prev = lower
        lower = em_pass(x0, x1, consts, stats, E, mx, s) / n
        trace[it - 1] = lower
        n_iter = it
        for k in range(centres.shape[0]):  # not a slice assignment: see hoi_fast._jit
            centres[k, 0] = consts[k, _M0]
            centres[k, 1] = consts[k, _M1]
        m_step(stats, centres, reg_covar, nk, means, covariances)
        r = 0
        if any_degenerate(nk, means, covariances):
            # rank the points by their log-density under this iteration's E-step parameters
            score = log_norm(x0, x1, consts, np.empty(n))
            r = repair(nk, means, covariances, score, x0, x1, pooled_covariance(x0, x1, reg_covar))
        _normalise(nk, weights)
        if r > 0:
            n_resets += r
            lower = -np.inf  # a reset may lower the likelihood: no convergence test next
        elif abs(lower - prev) < tol:
            converged = True
            break
        prepare(weights, means, covariances, consts)
    final_ll = np.nan
    if final_score:
        prepare(weights, means, covariances, consts)
        final_ll = log_norm(x0, x1, consts, np.empty(n)).sum() / n
    return n_iter, converged, trace[n_iter - 1] if n_iter > 0 else -np.inf, n_resets, final_ll


@jit
def _sq_dist(x0, x1, i, c0, c1):
    d0 = x0[i] - c0
    d1 = x1[i] - c1
    return d0 * d0 + d1 * d1


@jit
def kmeans_plusplus(x0, x1, K, rng):
    """Greedy k-means++ seeding, as scikit-learn's ``kmeans_plusplus``.

    The first centre is a uniformly drawn point (``rng.integers``); each next
    centre is the best (lowest total squared distance) of
    ``2 + int(log(K))`` candidates drawn with probability proportional to the
    squared distance to the nearest centre so far (``rng.random`` per
    candidate, inverse CDF by ``searchsorted``).

    Returns
    -------
    centres : float64 array (K, 2)
    """
    n = x0.shape[0]
    n_trials = 2 + int(math.log(K))
    centres = np.empty((K, 2))
    first = rng.integers(0, n)
    centres[0, 0] = x0[first]
    centres[0, 1] = x1[first]
    closest = np.empty(n)
    for i in range(n):
        closest[i] = _sq_dist(x0, x1, i, centres[0, 0], centres[0, 1])
    candidate = np.empty(n)
    best = np.empty(n)
    for c in range(1, K):
        cum = np.cumsum(closest)
        pot = cum[n - 1]
        best_pot = np.inf
        best_index = 0
        for _ in range(n_trials):
            idx = min(np.searchsorted(cum, rng.random() * pot), n - 1)
            c0 = x0[idx]
            c1 = x1[idx]
            cand_pot = 0.0
            for i in range(n):
                candidate[i] = min(closest[i], _sq_dist(x0, x1, i, c0, c1))
                cand_pot += candidate[i]
            if cand_pot < best_pot:
                best_pot = cand_pot
                best_index = idx
                copy_into(candidate, best)
        centres[c, 0] = x0[best_index]
        centres[c, 1] = x1[best_index]
        copy_into(best, closest)
    return centres


@jit
def lloyd(x0, x1, centres, max_iter, labels):
    """Lloyd's k-means from ``centres`` (updated in place) until no label changes.

    Ties go to the lowest centre index; an empty cluster keeps its centre.
    Returns the number of iterations run; ``labels`` (n,) int64 receives the
    final assignment.
    """
    n = x0.shape[0]
    K = centres.shape[0]
    sums = np.empty((K, 3))
    labels[:] = -1
    for it in range(1, max_iter + 1):
        changed = False
        for i in range(n):
            best = 0
            best_d = _sq_dist(x0, x1, i, centres[0, 0], centres[0, 1])
            for k in range(1, K):
                d = _sq_dist(x0, x1, i, centres[k, 0], centres[k, 1])
                if d < best_d:
                    best_d = d
                    best = k
            if labels[i] != best:
                labels[i] = best
                changed = True
        if not changed:
            return it
        sums[:, :] = 0.0
        for i in range(n):
            sums[labels[i], 0] += 1.0
            sums[labels[i], 1] += x0[i]
            sums[labels[i], 2] += x1[i]
        for k in range(K):
            if sums[k, 0] > 0.0:
                centres[k, 0] = sums[k, 1] / sums[k, 0]
                centres[k, 1] = sums[k, 2] / sums[k, 0]
    return max_iter


@jit
def kmeans_init(X, K, rng, reg_covar, lloyd_iters):
    """Initial parameters from k-means++ seeding plus Lloyd's iterations.

    Like scikit-learn's default ``init_params="kmeans"``: hard k-means labels
    become one-hot responsibilities and one M-step (same formulas as EM) gives
    the weights, means and covariances.  The degenerate-component rule is
    applied (points ranked by minus their squared distance to their centre).

    Returns
    -------
    weights (K,), means (K, 2), covariances (K, 2, 2) : float64 arrays
    n_resets : int
    """
    n = X.shape[0]
    x0, x1 = split_columns(X)
    centres = kmeans_plusplus(x0, x1, K, rng)
    labels = np.empty(n, dtype=np.int64)
    lloyd(x0, x1, centres, lloyd_iters, labels)
    stats = np.zeros((K, 6))
    score = np.empty(n)
    for i in range(n):
        k = labels[i]
        d0 = x0[i] - centres[k, 0]
        d1 = x1[i] - centres[k, 1]
        stats[k, 0] += 1.0
        stats[k, 1] += d0
        stats[k, 2] += d1
        stats[k, 3] += d0 * d0
        stats[k, 4] += d0 * d1
        stats[k, 5] += d1 * d1
        score[i] = -(d0 * d0 + d1 * d1)
    nk = np.empty(K)
    weights = np.empty(K)
    means = np.empty((K, 2))
    covariances = np.empty((K, 2, 2))
    m_step(stats, centres, reg_covar, nk, means, covariances)
    r = 0
    if any_degenerate(nk, means, covariances):
        r = repair(nk, means, covariances, score, x0, x1, pooled_covariance(x0, x1, reg_covar))
    _normalise(nk, weights)
    return weights, means, covariances, r


@jit
def cholesky_2x2(covariances):
    """Lower Cholesky factors ``(L00, L10, L11)`` of each 2x2 covariance, (K, 3)."""
    K = covariances.shape[0]
    out = np.empty((K, 3))
    for k in range(K):
        l00 = math.sqrt(covariances[k, 0, 0])
        l10 = covariances[k, 1, 0] / l00
        out[k, 0] = l00
        out[k, 1] = l10
        out[k, 2] = math.sqrt(max(covariances[k, 1, 1] - l10 * l10, 0.0))
    return out


@jit
def sample(weights, means, covariances, n, rng, out, labels):
    """Draw ``n`` points from the mixture into ``out`` (n, 2) and ``labels`` (n,).

    Per point, in this order: ``u = rng.random()`` picks the first component
    whose cumulative weight (normalised by the total) exceeds ``u``; then
    ``z0, z1 = rng.standard_normal()`` twice and ``x = mu + L z`` with ``L``
    the lower Cholesky factor of the covariance.
    """
    K = weights.shape[0]
    cum = np.cumsum(weights)
    cum /= cum[K - 1]
    chol = cholesky_2x2(covariances)
    for i in range(n):
        u = rng.random()
        k = 0
        while k < K - 1 and u >= cum[k]:
            k += 1
        z0 = rng.standard_normal()
        z1 = rng.standard_normal()
        out[i, 0] = means[k, 0] + chol[k, 0] * z0
        out[i, 1] = means[k, 1] + chol[k, 1] * z0 + chol[k, 2] * z1
        labels[i] = k
