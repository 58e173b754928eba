"""2-D Gaussian mixtures: EM fitting, sampling and log-density.

A thin validated layer over :mod:`hoi_fast.kernels.gmm`.  Inputs are checked
and coerced once (float64, C-contiguous); every check raises ``ValueError``
naming the argument in backticks.

Conventions are scikit-learn's ``GaussianMixture(covariance_type="full")``
(see :mod:`hoi_fast.kernels.gmm`): started from the same parameters, :func:`fit`
takes the same number of iterations and reaches the same log-likelihood.
Without ``init``, the start is deterministic given ``seed``: greedy
k-means++ seeding, then Lloyd's k-means until no label changes (at most
``LLOYD_ITERS`` iterations), then one M-step on the hard labels — the
analogue of scikit-learn's default ``init_params="kmeans"`` (the random
draws differ from scikit-learn's, so the start does too).

Degenerate components (an almost empty component, or a covariance that is not
positive definite to working precision) are re-seeded by the rule documented
in :mod:`hoi_fast.kernels.gmm` instead of producing NaN; ``FitResult.n_resets``
counts them.

Examples
--------
>>> import numpy as np
>>> from hoi_fast import gmm
>>> truth = gmm.GMMParams([0.7, 0.3], [[0, 0], [5, 5]], [np.eye(2), np.eye(2)])
>>> X = gmm.sample(truth, 2000, np.random.default_rng(0))
>>> result = gmm.fit(X, 2, seed=1)
>>> result.converged, result.weights.round(1).tolist()
(True, [0.7, 0.3])
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np

from hoi_fast._validate import ConfigError, require
from hoi_fast.kernels import gmm as _k

__all__ = ["GMMParams", "FitResult", "fit", "sample", "log_density", "validate_truth"]

LLOYD_ITERS = _k.LLOYD_ITERS

#: Largest coordinate magnitude accepted (points, means); covariance entries
#: and ``reg_covar`` may reach its square.  Beyond it the squared distances and
#: 2x2 determinants of EM overflow float64: rescale the data.
MAX_COORDINATE = 1e50


def validate_truth(weights, means, covariances, name="gmm.truth"):
    """Validate and coerce the parameters of a 2-D Gaussian mixture.

    Every check raises :class:`hoi_fast._validate.ConfigError` (a
    ``ValueError``) naming ``name``.

    Returns
    -------
    weights : ndarray, shape (K,), float64
    means : ndarray, shape (K, 2), float64
    covariances : ndarray, shape (K, 2, 2), float64
    """
    try:
        w = np.asarray(weights, dtype=np.float64)
        mu = np.asarray(means, dtype=np.float64)
        cov = np.asarray(covariances, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"`{name}` weights, means and covariances must be numeric arrays") from None
    require(w.ndim == 1 and w.size >= 1, f"`{name}.weights` must be a non-empty list, got shape {w.shape}")
    k = w.size
    require(mu.shape == (k, 2), f"`{name}.means` must have shape ({k}, 2) to match the weights, got {mu.shape}")
    require(cov.shape == (k, 2, 2), f"`{name}.covariances` must have shape ({k}, 2, 2), got {cov.shape}")
    for arr, part in ((w, "weights"), (mu, "means"), (cov, "covariances")):
        require(np.all(np.isfinite(arr)), f"`{name}.{part}` must be finite numbers")
    require(np.all(np.abs(mu) <= MAX_COORDINATE),
            f"`{name}.means` must have coordinates of magnitude at most {MAX_COORDINATE:g}; rescale them")
    require(np.all(np.abs(cov) <= MAX_COORDINATE ** 2),
            f"`{name}.covariances` must have entries of magnitude at most {MAX_COORDINATE ** 2:g}; rescale them")
    require(np.all(w > 0), f"`{name}.weights` must all be positive")
    require(abs(w.sum() - 1.0) < 1e-9, f"`{name}.weights` must sum to 1, they sum to {w.sum():.12g}")
    for j in range(k):
        c = cov[j]
        require(abs(c[0, 1] - c[1, 0]) <= 1e-12 * max(1.0, abs(c).max()),
                f"`{name}.covariances[{j}]` must be symmetric")
        det = c[0, 0] * c[1, 1] - c[0, 1] * c[1, 0]
        require(c[0, 0] > 0 and det > 0,
                f"`{name}.covariances[{j}]` must be positive definite (det = {det:.3g}); fix the covariances")
    return w, mu, cov


@dataclass(frozen=True, eq=False)  # eq on arrays would be ambiguous
class GMMParams:
    """Parameters of a 2-D Gaussian mixture with K components.

    Validated on construction: weights positive and summing to 1 (within
    1e-9), covariances symmetric positive definite, everything finite.  The
    arrays are stored as read-only float64 copies.

    Attributes
    ----------
    weights : ndarray, shape (K,), float64
    means : ndarray, shape (K, 2), float64
    covariances : ndarray, shape (K, 2, 2), float64
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def __post_init__(self):
        self._set(*validate_truth(self.weights, self.means, self.covariances, name="params"))

    def _set(self, w, mu, cov):
        for name, value in (("weights", w), ("means", mu), ("covariances", cov)):
            value = np.array(value, dtype=np.float64, order="C")
            value.flags.writeable = False
            object.__setattr__(self, name, value)

    @property
    def n_components(self):
        """Number of components K."""
        return self.weights.shape[0]

    @classmethod
    def _trusted(cls, w, mu, cov):
        """Wrap kernel output without re-validating it (internal)."""
        obj = object.__new__(cls)
        obj._set(w, mu, cov)
        return obj


@dataclass(frozen=True, eq=False)  # eq on arrays would be ambiguous
class FitResult:
    """Result of :func:`fit`.

    Attributes
    ----------
    weights : ndarray, shape (K,), float64
    means : ndarray, shape (K, 2), float64
    covariances : ndarray, shape (K, 2, 2), float64
    n_iter : int
        EM iterations run (scikit-learn's ``n_iter_``).
    converged : bool
        Whether the change of the mean log-likelihood fell below ``tol``.
    log_likelihood : float
        Mean log-likelihood per point (nats) of the returned parameters on
        the training data (scikit-learn's ``score(X)``).
    lower_bound : float
        Mean log-likelihood of the last E-step, i.e. of the parameters before
        the final M-step (scikit-learn's ``lower_bound_``).
    n_resets : int
        Number of degenerate-component re-seedings (initialisation included).
    log_likelihood_trace : ndarray, shape (n_iter,), float64
        Mean log-likelihood of each iteration's E-step (scikit-learn's
        ``lower_bounds_``); non-decreasing except right after a reset.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    n_iter: int
    converged: bool
    log_likelihood: float
    lower_bound: float
    n_resets: int
    log_likelihood_trace: np.ndarray

    @property
    def params(self):
        """The fitted parameters as :class:`GMMParams`."""
        return GMMParams._trusted(self.weights, self.means, self.covariances)


# ---------------------------------------------------------------- validation


def _as_points(X, name="X"):
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a numeric array of shape (n_points, 2)") from None
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"`{name}` must have shape (n_points, 2), got {arr.shape}; reshape it")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must not contain NaN or inf; drop or impute those points")
    if arr.size and np.abs(arr).max() > MAX_COORDINATE:
        raise ValueError(f"`{name}` has coordinates beyond {MAX_COORDINATE:g} in magnitude, where EM overflows; "
                         "rescale the data")
    return np.ascontiguousarray(arr)


def _as_int(name, value, minimum):
    try:
        if isinstance(value, bool):
            raise TypeError
        out = operator.index(value)
    except TypeError:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}") from None
    if out < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {out}")
    return out


def _as_float(name, value, *, positive, maximum=math.inf):
    try:
        if isinstance(value, bool):
            raise TypeError
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    ok = math.isfinite(out) and (out > 0 if positive else out >= 0) and out <= maximum
    if not ok:
        what = "a positive finite number" if positive else "a finite number >= 0"
        bound = f" (at most {maximum:g})" if math.isfinite(maximum) else ""
        raise ValueError(f"`{name}` must be {what}{bound}, got {value!r}")
    return out


def _as_params(params, name):
    if isinstance(params, GMMParams):
        return params
    try:
        weights, means, covariances = params
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a GMMParams or a (weights, means, covariances) tuple"
        ) from None
    try:
        w, mu, cov = validate_truth(weights, means, covariances, name=name)
    except ConfigError as err:
        raise ValueError(str(err)) from None
    return GMMParams._trusted(w, mu, cov)


def _as_rng(name, value):
    if isinstance(value, np.random.Generator):
        return value
    if value is None or (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0):
        return np.random.default_rng(value)
    raise ValueError(f"`{name}` must be a numpy Generator, a non-negative int or None, got {value!r}")


# ---------------------------------------------------------------- public API


def fit(X, n_components, *, seed=None, init=None, max_iter=100, tol=1e-3, reg_covar=1e-6):
    """Fit a K-component 2-D Gaussian mixture with full covariances by EM.

    Parameters
    ----------
    X : array_like, shape (n, 2)
        Training points; finite, coordinates of magnitude at most
        :data:`MAX_COORDINATE` (``ValueError`` otherwise: rescale the data).
    n_components : int
        K, between 1 and n.
    seed : None, int or numpy.random.Generator
        Randomness of the k-means++ initialisation (ignored with ``init``).
    init : GMMParams or (weights, means, covariances), optional
        Explicit initial parameters (as scikit-learn's ``weights_init``,
        ``means_init`` and ``precisions_init = inv(covariances)``).
    max_iter : int
        Maximum number of EM iterations (>= 1).
    tol : float
        Convergence threshold (> 0) on the absolute change of the mean
        log-likelihood between iterations.
    reg_covar : float
        Non-negative value added to the diagonal of every covariance (at
        most ``MAX_COORDINATE ** 2``).

    Returns
    -------
    FitResult
    """
    X = _as_points(X)
    n = X.shape[0]
    K = _as_int("n_components", n_components, 1)
    if K > n:
        raise ValueError(
            f"`n_components` ({K}) must not exceed the number of points in `X` ({n}); "
            "lower it or add points"
        )
    max_iter = _as_int("max_iter", max_iter, 1)
    tol = _as_float("tol", tol, positive=True)
    reg_covar = _as_float("reg_covar", reg_covar, positive=False, maximum=MAX_COORDINATE ** 2)
    if init is not None:
        init = _as_params(init, "init")
        if init.n_components != K:
            raise ValueError(
                f"`init` has {init.n_components} components but `n_components` is {K}; make them agree"
            )
        rng = None
    else:
        rng = _as_rng("seed", seed)
    return _fit(X, K, rng, init, max_iter, tol, reg_covar)


def _fit(X, K, rng, init, max_iter, tol, reg_covar, final_score=True):
    """:func:`fit` on trusted input: ``X`` float64 C-contiguous (n, 2)."""
    n_resets = 0
    if init is None:
        w, mu, cov, n_resets = _k.kmeans_init(X, K, rng, reg_covar, LLOYD_ITERS)
    else:
        w, mu, cov = init.weights.copy(), init.means.copy(), init.covariances.copy()
    trace = np.empty(max_iter)
    n_iter, converged, lower, resets, final_ll = _k.em(
        X, w, mu, cov, max_iter, tol, reg_covar, trace, final_score
    )
    return FitResult(
        weights=w,
        means=mu,
        covariances=cov,
        n_iter=int(n_iter),
        converged=bool(converged),
        log_likelihood=float(final_ll),
        lower_bound=float(lower),
        n_resets=int(n_resets + resets),
        log_likelihood_trace=trace[:n_iter].copy(),
    )


def sample(params, n, rng, *, return_labels=False):
    """Draw ``n`` points from a mixture.

    Parameters
    ----------
    params : GMMParams or (weights, means, covariances)
    n : int
        Number of points (>= 0).
    rng : numpy.random.Generator or int
        Source of randomness (an int seeds a new Generator).
    return_labels : bool
        Also return the component of every point.

    Returns
    -------
    X : ndarray, shape (n, 2), float64
    labels : ndarray, shape (n,), int64
        Only with ``return_labels=True``.
    """
    params = _as_params(params, "params")
    n = _as_int("n", n, 0)
    rng = _as_rng("rng", rng)
    X, labels = _sample(params.weights, params.means, params.covariances, n, rng)
    return (X, labels) if return_labels else X


def _sample(weights, means, covariances, n, rng):
    out = np.empty((n, 2))
    labels = np.empty(n, dtype=np.int64)
    _k.sample(weights, means, covariances, n, rng, out, labels)
    return out, labels


def log_density(params, X):
    """Log-density of the mixture at each row of ``X``.

    Parameters
    ----------
    params : GMMParams or (weights, means, covariances)
    X : array_like, shape (n, 2)

    Returns
    -------
    ndarray, shape (n,), float64
        ``log sum_k w_k N(x | mu_k, S_k)`` in nats.
    """
    params = _as_params(params, "params")
    X = _as_points(X)
    return _k.log_density(X, params.weights, params.means, params.covariances)
