"""The closed forms the reproductions compare the grids with: one Gaussian, linear regression, categorical, mixtures.

Index convention: generation 0 is fitted on the real pool R, so generation
``g`` is the ``(g + 1)``-th fit.  Every closed form below states its
derivation in its docstring and is tested against a direct NumPy simulation
(independent of hoi_fast's loop) in ``tests/test_reproduce.py``.
``r = (n - 1) / n`` throughout.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import special, stats as sps

from hoi_fast.experiment import real_count


# -- closed forms: one Gaussian --------------------------------------------------------


def _k(g):
    """Number of fits ``g + 1`` as float64 (``g`` an array of generations)."""
    return np.asarray(g, dtype=np.float64) + 1.0


def variance_factor(n, ddof=0):
    """E of one refit's covariance relative to the sampled model's: ``(n - 1) / (n - ddof)``."""
    return (n - 1.0) / (n - ddof)


def replace_trace(n, g, ddof=0):
    """E tr Σ_g / tr Σ0 under replacement (``mix``, α = 1): ``((n - 1)/(n - ddof))^(g+1)``.

    E[S | model] = (n - 1)/(n - ddof) Σ_model for the sample covariance S of n
    points of any distribution; iterate over the g + 1 fits.
    """
    return variance_factor(n, ddof) ** _k(g)


def replace_mean_error(n, g, ddof=0):
    """E ||μ_g - μ0||² / tr Σ0 under replacement: ``(1/n) Σ_{j=0..g} c^j``, c = (n - 1)/(n - ddof).

    μ_g = μ_{g-1} + η_g with E||η_g||² = E tr Σ_{g-1} / n and η_g
    uncorrelated with the past, so E||μ_g - μ0||² = (tr Σ0 / n)(1 + Σ_{j=1..g} c^j).
    With ddof 0 (c = r) this is ``1 - r^(g+1)``: the variance of the mean
    saturates at tr Σ0 (Shumailov et al.'s "Var μ_g").
    """
    c = variance_factor(n, ddof)
    k = _k(g)
    return k / n if c == 1 else (1.0 - c ** k) / (1.0 - c) / n


def replace_log_variance(n, g, ddof=0):
    """E log(σ²_g / σ0²) in one dimension under replacement: ``(g+1) [ψ((n-1)/2) + log(2/(n - ddof))]``.

    σ²_g = σ²_{g-1} χ²_{n-1} / (n - ddof) with independent χ² factors, and
    E log χ²_m = ψ(m/2) + log 2.  The typical path: E σ²_g = r^(g+1) is carried by
    rare seeds once (g + 1) 2/n is not small, while this mean of logs is not.
    """
    return _k(g) * (special.digamma((n - 1.0) / 2.0) + math.log(2.0 / (n - ddof)))


def replace_det(n, d, g, ddof=0):
    """E det Σ_g / det Σ0 under replacement: ``[Π_{i=1..d} (n - i)/(n - ddof)]^(g+1)`` (0 when n <= d).

    det of a Wishart(n - 1, Σ) matrix is det Σ Π_{i=1..d} χ²_{n-i} with
    independent factors (Bartlett), so one fit multiplies E det by
    Π (n - i) / (n - ddof)^d independently of the past.
    """
    factor = float(np.prod([(n - i) / (n - ddof) for i in range(1, d + 1)])) if n > d else 0.0
    return factor ** _k(g)


def chi_moment(n, s, ddof=0):
    """``m(s) = E[(χ²_{n-1}/(n - ddof))^(s/2)] = (2/(n - ddof))^(s/2) Γ((n - 1 + s)/2) / Γ((n - 1)/2)``."""
    return math.exp(0.5 * s * math.log(2.0 / (n - ddof)) + special.gammaln((n - 1.0 + s) / 2.0)
                    - special.gammaln((n - 1.0) / 2.0))


def sigma_moment(n, s, g, ddof=0):
    """E (σ_g / σ0)^s in one dimension under replacement: ``m(s)^(g+1)`` (:func:`chi_moment`).

    σ_g = σ0 Π_{j=0..g} sqrt(χ²_{n-1, j} / (n - ddof)) with independent factors.
    """
    return chi_moment(n, s, ddof) ** _k(g)


def abs_mean_error_bound(n, g, ddof=0):
    """Upper bound of E|μ_g - μ0| / σ0 in one dimension: ``sqrt(2/π · E(μ_g - μ0)²/σ0²)``.

    Given the path of variances, μ_g - μ0 is normal (sample means and
    variances of normal data are independent) with variance V, and
    E|N(0, V)| = sqrt(2V/π); Jensen's inequality on the concave sqrt gives
    E sqrt(2V/π) <= sqrt(2 E V / π), with E V from :func:`replace_mean_error`.
    """
    return np.sqrt(2.0 / math.pi * replace_mean_error(n, g, ddof))


def abs_sigma_error_bound(n, g, ddof=0):
    """Lower bound of E|σ_g - σ0| / σ0: ``|1 - m(1)^(g+1)|`` (Jensen: E|X| >= |E X|)."""
    return np.abs(1.0 - sigma_moment(n, 1.0, g, ddof))


def suresh_bound(n, eps, g, sigma0=1.0):
    """Suresh et al.'s bound P(σ_k > ε) <= (σ0/ε) exp(-k/(4n - 1)) at ``k = g + 1`` fits.

    Markov's inequality on E σ_k = σ0 c4(n)^k (unbiased variance, ``ddof`` 1),
    with c4(n) = sqrt(2/(n-1)) Γ(n/2)/Γ((n-1)/2) <= exp(-1/(4n - 1)) (checked
    numerically for 2 <= n <= 10^4 in the tests; asymptotically c4 = 1 - 1/(4n)
    - 7/(32n²) + ... against 1 - 1/(4n) - 1/(32n²) + ...).
    """
    return sigma0 / eps * np.exp(-_k(g) / (4.0 * n - 1.0))


def moment_bound(n, s, eps, g, sigma0=1.0, ddof=1):
    """The exact moment bound P(σ_g > ε) <= E σ_g^s / ε^s = (σ0/ε)^s m(s)^(g+1) (Markov on σ^s)."""
    return (sigma0 / eps) ** s * sigma_moment(n, s, g, ddof)


def accumulate_gaussian(n, g):
    """E tr Σ_g / tr Σ0 and E ||μ_g - μ0||² / tr Σ0 under ``accumulate`` with α = 1, ddof 0.

    Generation g trains on R and n points from each of the models 0..g-1:
    (g + 1) n points.  With e_g = μ_g - μ0, the new set's mean is
    μ_{g-1} + η_g (E||η_g||² = E tr Σ_{g-1}/n), so e_g = e_{g-1} + η_g/(g + 1).
    The second moment about μ0, M_g = E[tr Σ_g + ||e_g||²], is the average of
    R's (tr Σ0) and the models' M_0..M_{g-1}, hence M_g = tr Σ0 for all g and
    E tr Σ_g = tr Σ0 - E||e_g||².  So ``1 - a_g = (1 - a_{g-1})(1 - 1/(n (g+1)²))``:

        E tr Σ_g / tr Σ0 = Π_{j=1..g+1} (1 - 1/(n j²))  ->  sin(π/√n) / (π/√n)

    (Euler's product), bounded away from 0: accumulating does not collapse.

    Returns
    -------
    trace, mean_error : ndarray of float64, shaped like ``g``
    """
    g = np.asarray(g, dtype=np.int64)
    j = np.arange(1, int(g.max(initial=0)) + 2, dtype=np.float64)
    trace = np.cumprod(1.0 - 1.0 / (n * j * j))[g]
    return trace, 1.0 - trace


def accumulate_limit(n):
    """``lim_g E tr Σ_g / tr Σ0`` under ``accumulate``: ``sin(π/√n) / (π/√n)``."""
    x = math.pi / math.sqrt(n)
    return math.sin(x) / x


def subsample_gaussian(n, g):
    """E tr Σ_g / tr Σ0 and E ||μ_g - μ0||² / tr Σ0 under ``accumulate-subsample`` with α = 1, ddof 0.

    The pool P_g = R plus n points from each model 0..g-1 holds N_g = (g+1) n
    points; generation g >= 1 fits n of them drawn without replacement.  Let
    u_g be the pool's mean minus μ0 and δ_g the training mean minus the
    pool's (δ_0 = 0): e_g = u_g + δ_g.  With t = tr Σ0, U = E||u||², Δ = E||δ||²:

    * the pool's second moment about μ0 stays t (as under ``accumulate``), so
      E tr Σ_g = t - U_g - Δ_g;
    * Δ_g = (N_g - n)/((N_g - 1) n) (t - U_g) (the mean of a sample without
      replacement; the pool's variance about its mean is t - ||u_g||²);
    * the next set has mean μ_g + η, so u_{g+1} = u_g + (δ_g + η)/(g + 2) with
      uncorrelated terms: U_{g+1} = U_g + (Δ_g + E tr Σ_g / n)/(g + 2)², U_0 = t/n.

    Returns
    -------
    trace, mean_error : ndarray of float64, shaped like ``g``
    """
    g = np.asarray(g, dtype=np.int64)
    G = int(g.max(initial=0)) + 1
    trace, error = np.empty(G), np.empty(G)
    U = 1.0 / n
    for j in range(G):
        N = (j + 1) * n
        delta = 0.0 if j == 0 else (N - n) / ((N - 1.0) * n) * (1.0 - U)
        trace[j] = 1.0 - U - delta
        error[j] = U + delta
        U = U + (delta + trace[j] / n) / (j + 2.0) ** 2
    return trace[g], error[g]


def fresh_step(n, alpha, ddof=0):
    """The affine map of one ``fresh`` generation on per-coordinate moments.

    With ``m = real_count(alpha, n)`` fresh real points and ``k = n - m``
    points of the previous model, ``s = E sigma^2`` (a diagonal entry of
    Sigma) and ``e = E (mu - mu0)^2`` (same coordinate), the next generation has
    ``(s', e') = M (s, e) + b sigma0^2`` with

        M = [[(n-1) k / (n (n - ddof)),  m k / (n (n - ddof))],
             [k / n^2,                   k^2 / n^2          ]],
        b = [(n-1) m / (n (n - ddof)),  m / n^2].

    Proof: given the previous model (sigma^2, mu), the n points are
    independent with variances sigma0^2 (m of them) and sigma^2 (k), means mu0
    and mu.  The mean of the set is unbiased for (m mu0 + k mu)/n with variance
    (m sigma0^2 + k sigma^2)/n^2, which gives e'.  For independent points,
    E sum (x_i - xbar)^2 = (1 - 1/n) sum Var x_i + sum (E x_i - E xbar)^2, and the
    last sum is (mu - mu0)^2 m k / n; dividing by n - ddof and averaging over
    the previous model gives s'.

    Returns
    -------
    M : ndarray, shape (2, 2)
    b : ndarray, shape (2,)
        Multiply by sigma0^2.
    """
    m = real_count(alpha, n)
    k = n - m
    denom = n * (n - ddof)
    M = np.array([[(n - 1) * k / denom, m * k / denom], [k / n**2, k**2 / n**2]])
    b = np.array([(n - 1) * m / denom, m / n**2])
    return M, b


def fresh_recursion(alpha, sizes, ddof=0, variance=1.0):
    """Exact E sigma_g^2 and E (mu_g - mu0)^2 per coordinate under ``fresh``, generation by generation.

    Parameters
    ----------
    alpha : float
    sizes : sequence of int
        Training-set sizes n_0 (= |R|), n_1, ... (:meth:`hoi_fast.experiments.gaussian.GaussianExperiment.train_size`).
    ddof : int
    variance : float
        sigma0^2 of the coordinate (or tr Sigma0 for the summed moments E tr Sigma_g
        and E ||mu_g - mu0||^2: the recursion is linear).

    Returns
    -------
    s, e : ndarray, shape (len(sizes),)
        Generation 0: s_0 = sigma0^2 (n_0 - 1)/(n_0 - ddof), e_0 = sigma0^2 / n_0.
    """
    n0 = sizes[0]
    x = np.array([variance * (n0 - 1) / (n0 - ddof), variance / n0])
    out = [x]
    for n in sizes[1:]:
        M, b = fresh_step(n, alpha, ddof)
        x = M @ x + b * variance
        out.append(x)
    out = np.array(out)
    return out[:, 0], out[:, 1]


def fresh_gaussian(n, alpha, g, ddof=0):
    """E tr Σ_g / tr Σ0 and E ||μ_g - μ0||² / tr Σ0 under ``fresh`` (any α): the exact affine recursion.

    Generation g >= 1 trains on m = round((1 - α) n) fresh truth points (halves
    up, :func:`hoi_fast.experiment.real_count`) and k = n - m points from model
    g - 1.  With T = E tr Σ, D = E||μ - μ0||² (units of tr Σ0):

        D_g = (m + k T_{g-1} + k² D_{g-1}) / n²
        T_g = (m + k (T_{g-1} + D_{g-1}) - n D_g) / (n - ddof)

    (the training mean is (m x̄ + k ȳ)/n with independent parts; the scatter
    about it is the sum of squares about μ0 minus n ||μ_g - μ0||²), from
    D_0 = 1/n, T_0 = (n - 1)/(n - ddof).  For k < n the linear part has
    spectral radius < 1: the recursion contracts to a fixed point for every
    α < 1 (m >= 1), not only for Bertrand et al.'s λ = α/(1 - α) < 1.

    :func:`fresh_recursion` with a constant n.

    Returns
    -------
    trace, mean_error : ndarray of float64, shaped like ``g``
    """
    g = np.asarray(g, dtype=np.int64)
    trace, error = fresh_recursion(alpha, [n] * (int(g.max(initial=0)) + 1), ddof)
    return trace[g], error[g]


def fresh_fixed_point(n, alpha, ddof=0, variance=1.0):
    """The limit (s*, e*) of :func:`fresh_recursion` for a constant n and its contraction rate.

    Returns
    -------
    fixed : ndarray, shape (2,)
        (I - M)^-1 b sigma0^2.
    rate : float
        Spectral radius of M: below 1 for every alpha with at least one real
        point (real_count(alpha, n) >= 1), so the moments converge geometrically
        to the fixed point from any start; 1 (no contraction) when m = 0.
    """
    M, b = fresh_step(n, alpha, ddof)
    rate = float(np.max(np.abs(np.linalg.eigvals(M))))
    fixed = np.linalg.solve(np.eye(2) - M, b * variance) if rate < 1 else np.full(2, np.nan)
    return fixed, rate


# -- closed forms: linear regression --------------------------------------------------

def ols_error(T, d, noise):
    """E ||ŵ - w*||² of one least-squares fit on a Gaussian design: σ² d / (T - d - 1) (inverse Wishart)."""
    return noise * d / (T - d - 1.0)


def regression_replace(T, d, noise, g):
    """E ||ŵ_g - w*||² under replacement: ``(g + 1) σ² d / (T - d - 1)`` (independent errors add up)."""
    return _k(g) * ols_error(T, d, noise)


def regression_accumulate(T, d, noise, g):
    """E ||ŵ_g - w*||² under ``accumulate`` (α = 1): ``σ² d/(T - d - 1) Σ_{i=1..g+1} 1/i²``.

    The design stacked g + 1 times: ŵ_g averages the fits of the g + 1 label
    sets, so ŵ_g - w* = (ŵ_{g-1} - w*) + ξ_g/(g + 1) with E||ξ||² = σ² tr (X^T X)^-1.
    Bounded by π²/6 times the first generation's error.
    """
    g = np.asarray(g, dtype=np.int64)
    i = np.arange(1, int(g.max(initial=0)) + 2, dtype=np.float64)
    return ols_error(T, d, noise) * np.cumsum(1.0 / (i * i))[g]


# -- closed forms: categorical -----------------------------------------------------------

def collision_replace(n, g, s0):
    """E[Σ p_g² | p_0] = 1 - (1 - 1/n)^g (1 - S_0) under replacement with MLE (Wright-Fisher; Seddik et al.).

    Given p_{g-1}, n multinomial draws give E Σ p_g² = Σ p² + Σ p(1 - p)/n,
    i.e. 1 - S_g = (1 - 1/n)(1 - S_{g-1}) in expectation.
    """
    return 1.0 - (1.0 - 1.0 / n) ** np.asarray(g, dtype=np.float64) * (1.0 - np.asarray(s0, dtype=np.float64))


def pool_l2_coefficient(n, alpha, g):
    """a_g with E[Σ (p_g - p_0)² | p_0] = (1 - S_0) a_g under ``mix`` with MLE.

    m real items drawn without replacement from R (frequencies p_0) and k = n - m
    draws from p_{g-1}: the two parts are independent given the past, the real
    part has E||f - p_0||² = (1 - S_0)(n - m)/(m (n - 1)), the synthetic part
    (1 - S_{g-1})/k + D_{g-1}, and E S_{g-1} = S_0 + E D_{g-1}; so

        a_g = k (m/(n - 1) + 1)/n² + k (k - 1)/n² a_{g-1},   a_0 = 0,

    which settles at k (m/(n - 1) + 1) / (n² - k(k - 1)): the deviation from
    the pool shrinks with the real share (Seddik et al.'s partially synthetic case).
    """
    g = np.asarray(g, dtype=np.int64)
    m = real_count(alpha, n)
    k = n - m
    a = np.zeros(int(g.max(initial=0)) + 1)
    for j in range(1, len(a)):
        a[j] = k * (m / (n - 1.0) + 1.0) / n ** 2 + k * (k - 1.0) / n ** 2 * a[j - 1]
    return a[g]


@lru_cache(maxsize=8)
def _extinction(n, generations):
    """w[g, c]: probability that a count c at generation 0 is 0 at generation g (binomial Wright-Fisher chain)."""
    c = np.arange(n + 1)
    transition = sps.binom.pmf(c[None, :], n, c[:, None] / n)  # [from, to]
    w = np.zeros((generations, n + 1))
    w[0, 0] = 1.0
    for g in range(1, generations):
        w[g] = transition @ w[g - 1]
    return w


def survival_exact(q, n, g):
    """E[number of symbols with positive probability at generation g] under replacement with MLE.

    R's counts are Binomial(n, q_i) per symbol and each later count is
    Binomial(n, c/n) of the previous one (Wright-Fisher), so
    E support_g = Σ_i (1 - Σ_c Bin(c; n, q_i) w_g[c]) with w_g = T^g e_0.
    """
    g = np.asarray(g, dtype=np.int64)
    w = _extinction(int(n), int(g.max(initial=0)) + 1)
    start = sps.binom.pmf(np.arange(n + 1)[None, :], n, np.asarray(q)[:, None])  # (V, n + 1)
    return (1.0 - start @ w[g].T).sum(axis=0)


def iterate_g(k):
    """``g^(k)(∞)`` with g(x) = 1 - e^(-x): 1, 1 - 1/e, ... (k >= 1; ∞ for k = 0)."""
    out = math.inf
    for _ in range(int(k)):
        out = 1.0 - math.exp(-out)
    return out


def survival_lower_bound(q, n, g):
    """Suresh et al.'s Corollary 1 bound E support_g >= Σ_i [1 - exp(-n q_i g_k)], g_k = g^(k)(∞), k = g + 1.

    Proof (the direction): E[s^{c'} | c] = (1 - (c/n)(1 - s))^n <= exp(-c(1 - s)),
    so the generating function F_g of the count obeys F_g(s) <= F_{g-1}(e^{s-1})
    and P(c_g = 0) = F_g(0) <= F_0(f^(g)(0)) with f(s) = e^{s-1}; F_0(s) =
    (1 - q(1 - s))^n <= exp(-n q (1 - s)), and 1 - f^(g)(0) = g^(g+1)(∞).
    """
    g = np.asarray(g, dtype=np.int64)
    gk = np.array([iterate_g(k + 1) for k in g.ravel()]).reshape(g.shape)
    return (1.0 - np.exp(-n * np.asarray(q)[:, None] * gk.ravel()[None, :])).sum(axis=0).reshape(g.shape)


def top_k_set(counts, k):
    """The top-k symbols of a count vector (ties to the lower index), as the categorical experiment ranks them."""
    order = np.lexsort((np.arange(counts.shape[-1]), -counts))
    return order[:k]


def missing_mass_first(q, counts0, top_k, alpha):
    """E[missing mass of generation 1 | R] when generation 1 samples generation 0's model with top-k (MLE).

    Generation 1 trains on m = round((1 - α) n) items of R drawn without
    replacement and k = n - m draws from generation 0's frequencies restricted
    to their top-k symbols (p̃).  A symbol s with R-count c_s stays unseen
    with probability C(n - c_s, m)/C(n, m) · (1 - p̃_s)^k, and the missing mass
    (truth probability of unseen symbols: Hutter's test error, Dohmatob et al.)
    is Σ_s q_s times that.

    Parameters
    ----------
    q : ndarray (V,)
    counts0 : ndarray (seeds, V)
        R's counts per seed.
    """
    counts0 = np.asarray(counts0, dtype=np.float64)
    n = int(round(counts0[0].sum()))
    m = real_count(alpha, n)
    k = n - m
    out = np.empty(counts0.shape[0])
    for i, c in enumerate(counts0):
        keep = top_k_set(c, top_k)
        p = np.zeros_like(c)
        p[keep] = c[keep] / c[keep].sum()
        real_miss = np.exp(special.gammaln(n - c + 1) - special.gammaln(n - c - m + 1)
                           - special.gammaln(n + 1) + special.gammaln(n - m + 1)) if m else np.ones_like(c)
        real_miss = np.where(n - c >= m, real_miss, 0.0)
        out[i] = np.sum(q * real_miss * (1.0 - p) ** k)
    return out


def cut_tail(q, k):
    """Σ of the truth beyond its k largest probabilities: the plateau of Dohmatob et al.'s top-k scaling law."""
    return float(np.sort(q)[::-1][k:].sum())


# -- closed forms: mixtures ------------------------------------------------------------------

def mixture_trace(weights, means, covariances):
    """tr Cov of 2-D Gaussian mixtures: Σ_k w_k tr(Σ_k + μ_k μ_k^T) - ||Σ_k w_k μ_k||² over leading axes."""
    w = np.nan_to_num(weights)
    mu = np.nan_to_num(means)
    cov = np.nan_to_num(covariances)
    centre = np.einsum("...k,...ki->...i", w, mu)
    second = np.einsum("...k,...kii->...", w, cov) + np.einsum("...k,...ki,...ki->...", w, mu, mu)
    return second - np.einsum("...i,...i->...", centre, centre)


def gmm_trace(n, g, trace0, reg, d=2):
    """E tr Cov(p_g) under replacement for an EM fit: ``r^(g+1) tr Σ0 + d reg Σ_{j=0..g} r^j``.

    Every M-step matches moments: Σ_k w_k (Σ_k + μ_k μ_k^T) = (1/n) Σ_i x_i x_i^T
    + reg I and Σ_k w_k μ_k = x̄ (up to scikit-learn's 10 eps in the weights),
    so the mixture's covariance is the training set's MLE covariance plus
    reg_covar I, whatever the fit, and E[S | p_{g-1}] = r Cov(p_{g-1}) for n
    draws of any distribution.  (A re-seeded component breaks the matching;
    the page reports their count.)
    """
    r = (n - 1.0) / n
    k = _k(g)
    return r ** k * trace0 + d * reg * (1.0 - r ** k) / (1.0 - r)


def _gauss_overlap(m1, c1, m2, c2):
    """∫ N(x; m1, c1) N(x; m2, c2) dx = N(m1; m2, c1 + c2) for 2-D Gaussians, broadcast over leading axes."""
    s = c1 + c2
    det = s[..., 0, 0] * s[..., 1, 1] - s[..., 0, 1] * s[..., 1, 0]
    dx = m1 - m2
    quad = (s[..., 1, 1] * dx[..., 0] ** 2 - 2 * s[..., 0, 1] * dx[..., 0] * dx[..., 1]
            + s[..., 0, 0] * dx[..., 1] ** 2) / det
    return np.exp(-0.5 * quad) / (2 * math.pi * np.sqrt(det))


def _cross(w1, m1, c1, w2, m2, c2):
    """Σ_ij w1_i w2_j ∫ N_1i N_2j over leading axes (components on the last axis of the weights)."""
    overlap = _gauss_overlap(m1[..., :, None, :], c1[..., :, None, :, :], m2[..., None, :, :], c2[..., None, :, :, :])
    return np.einsum("...i,...j,...ij->...", w1, w2, overlap)


def mixture_l2(w1, m1, c1, w2, m2, c2):
    """∫ (p - q)² dx between 2-D Gaussian mixtures p = (w1, m1, c1) and q = (w2, m2, c2), in closed form.

    ∫ (p - q)² = Σ_ij w1_i w1_j N(m1_i; m1_j, c1_i + c1_j) - 2 Σ_ij w1_i w2_j N(m1_i; m2_j, c1_i + c2_j)
    + Σ_ij w2_i w2_j N(m2_i; m2_j, c2_i + c2_j), from ∫ N(x; a, A) N(x; b, B) dx = N(a; b, A + B).
    Shapes: weights (..., K), means (..., K, 2), covariances (..., K, 2, 2).
    """
    return (_cross(w1, m1, c1, w1, m1, c1) - 2.0 * _cross(w1, m1, c1, w2, m2, c2)
            + _cross(w2, m2, c2, w2, m2, c2))

