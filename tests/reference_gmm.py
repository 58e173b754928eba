"""Slow, obvious reference implementations of the GMM kernels (for tests only).

Everything here uses scipy.stats.multivariate_normal and plain NumPy, one
component at a time, with scikit-learn's formulas written out.
"""

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal


def weighted_log_prob(X, weights, means, covariances):
    """log w_k + log N(x_i | mu_k, S_k), shape (n, K)."""
    return np.column_stack([
        np.log(w) + multivariate_normal(mean=m, cov=c).logpdf(X)
        for w, m, c in zip(weights, means, covariances)
    ])


def log_density(X, weights, means, covariances):
    """Mixture log-density of every row, shape (n,)."""
    return logsumexp(weighted_log_prob(X, weights, means, covariances), axis=1)


def e_step(X, weights, means, covariances):
    """Responsibilities (n, K) and mean log-likelihood."""
    wlp = weighted_log_prob(X, weights, means, covariances)
    norm = logsumexp(wlp, axis=1)
    return np.exp(wlp - norm[:, None]), norm.mean()


def m_step(X, resp, reg_covar):
    """scikit-learn's M-step: weights (K,), means (K, 2), covariances (K, 2, 2)."""
    nk = resp.sum(axis=0) + 10 * np.finfo(float).eps
    means = resp.T @ X / nk[:, None]
    covariances = np.empty((len(nk), 2, 2))
    for k in range(len(nk)):
        diff = X - means[k]
        covariances[k] = (resp[:, k] * diff.T) @ diff / nk[k] + reg_covar * np.eye(2)
    return nk / nk.sum(), means, covariances


def em(X, weights, means, covariances, max_iter, tol, reg_covar):
    """EM from the given parameters; returns params, n_iter, converged, trace."""
    params = (weights, means, covariances)
    trace = []
    lower = -np.inf
    converged = False
    for _ in range(max_iter):
        prev = lower
        resp, lower = e_step(X, *params)
        params = m_step(X, resp, reg_covar)
        trace.append(lower)
        if abs(lower - prev) < tol:
            converged = True
            break
    return params, len(trace), converged, np.array(trace)


def sample_moments(weights, means, covariances):
    """Mean (2,) and covariance (2, 2) of the mixture."""
    mean = weights @ means
    second = sum(w * (c + np.outer(m, m)) for w, m, c in zip(weights, means, covariances))
    return mean, second - np.outer(mean, mean)
