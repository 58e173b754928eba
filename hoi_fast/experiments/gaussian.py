"""The ``gaussian`` experiment: one d-dimensional Gaussian refitted on its own samples.

The setting of Shumailov et al. (2024), Bertrand et al. (2024) and Kazdan,
Schaeffer et al. (2024): a truth N(mu0, Sigma0) in ``dim`` dimensions, a model
N(mu_g, Sigma_g) fitted by the sample mean and covariance (``ddof`` 0: MLE;
1: unbiased), every generation trained on real points mixed with points
sampled from the previous model by the shared loop
(:func:`hoi_fast.experiment.run_cell`, every regime).

Truth
-----
Default mu0 = 0, Sigma0 = I.  ``mean`` (``dim`` numbers) replaces mu0;
``covariance`` (a ``dim`` x ``dim`` symmetric positive definite matrix) or
``spectrum`` (``dim`` positive eigenvalues: Sigma0 = diag(spectrum))
replaces Sigma0.

Data and random streams
-----------------------
Items are points (rows).  A training part is either :class:`Points` (rows of
an array: R, real subsets, small sets) or :class:`Draw` (``m > dim`` i.i.d.
points of a Gaussian held as their sufficient statistics, drawn exactly by the
Bartlett decomposition, :func:`hoi_fast.kernels.gaussian.draw_statistics`;
the MLE needs nothing else).  A :class:`Draw` turns into points only when a
regime needs rows (``accumulate-subsample``): :func:`materialise` then draws
points with exactly its statistics, distributed as the points conditional on
them, so every regime sees the same joint law as explicit sampling.

* R (real stream): ``samples`` points ``mu0 + z K0^T``, ``z`` standard normal
  rows, ``K0`` the lower Cholesky factor of Sigma0.
* Held-out sets (held-out stream): ``heldout`` truth points the same way,
  then ``tail_heldout`` truth points conditioned on the tail, drawn exactly:
  radius^2 = ``chi2(dim).isf((1 - tail_quantile) u)`` with ``u = 1 - U(0,1)``
  (one uniform per point), then a direction per point (a normalised
  standard normal row), ``x = mu0 + radius * direction K0^T``.  The squared
  Mahalanobis radius of x under the truth is then distributed as chi2(dim)
  conditioned to exceed its ``tail_quantile`` quantile, and the direction is
  uniform: exactly the truth's law on its tail.
* ``mix``: real items are rows of R drawn without replacement (:func:`choose`:
  ``rng.random(m)`` drives a partial Fisher-Yates shuffle); ``fresh``: a
  :class:`Draw` from the truth (fresh stream); synthetic items: a
  :class:`Draw` from the previous model (temperature tau: from
  N(mu, tau Sigma)).  A :class:`Draw` of m points reads
  ``rng.standard_normal(d + d (d - 1))`` then ``rng.chisquare(m - d, size=d)``;
  sets of at most ``dim`` points are drawn as explicit points
  (``rng.standard_normal((m, d))``).
* ``accumulate-subsample``: every :class:`Draw` of the pool not yet turned
  into points is materialised (in pool order, ``m d`` normals each), then n
  rows are chosen by :func:`choose`.
* ``sample_truncation`` = q: to make m synthetic points, ``M = ceil(m / (1 - q))``
  points are drawn explicitly (from N(mu, tau Sigma)) and the m of highest
  model density (smallest Mahalanobis radius; ties keep the earlier draw) are
  kept in draw order.
* Generation 0 fits R and draws only ``self_nll``'s chi-square from the
  generation-0 stream, which every alpha shares.

Fit
---
mu_g = mean of the training set, Sigma_g = scatter / (N - ddof) (parts pooled
by Chan's formula, :func:`hoi_fast.kernels.gaussian.pooled_fit`).  Sigma_g is
*singular* when the training set has at most ``dim`` points (its rank is at
most N - 1) or its Cholesky factorisation fails in float64; a singular model
samples through its eigen-factor (negative eigenvalues of rounding set to 0)
and its densities are degenerate: ``real_nll``, ``tail_nll`` and ``kl`` are
``+inf``, ``self_nll`` and ``log_det_ratio`` are ``-inf`` (never NaN).

Metrics per generation
----------------------
=================  =====  ===========================================================
``real_nll``       nats   mean NLL of the held-out truth points
``tail_nll``       nats   mean NLL of the held-out tail points (squared Mahalanobis
                          radius under the truth above its chi2 ``tail_quantile``)
``self_nll``       nats   mean NLL of ``self_samples`` fresh points of the model
``kl``             nats   KL(truth || model), closed form
``w2``             1      squared 2-Wasserstein distance to the truth, closed form
``mean_error``     1      ||mu_g - mu0||^2
``log_det_ratio``  nats   log det Sigma_g - log det Sigma0
``trace_ratio``    1      tr Sigma_g / tr Sigma0
``mean``           1      mu_g, ``(axis,)``, only while dim <= 16 (and ``store_parameters``)
``covariance``     1      Sigma_g, ``(axis, axis2)``, likewise
=================  =====  ===========================================================

The held-out NLLs are computed from each set's mean and scatter:
mean NLL = (d log 2 pi + log det Sigma + tr(Sigma^-1 C) + (xbar - mu)^T Sigma^-1 (xbar - mu)) / 2
with C = scatter / count, the same number as the average over the points.
``self_nll`` uses that the summed squared Mahalanobis radius of m model points
is chi2(m d): one ``rng.chisquare(m d)`` draw, exact in distribution.

Closed forms (proved in the README; the functions are in
:mod:`hoi_fast.reproductions.closed_forms`, tested through this experiment's
loop in ``tests/test_gaussian.py``)
--------------------------------------------------------------------------
Index convention (verified by simulation): generation 0 is fitted on R (n
real points), so after generation g there have been g + 1 fits; r = (n - 1)/n.
With ``mix`` at alpha = 1 (pure replacement), ``ddof`` 0:
E Sigma_g = r^(g+1) Sigma0; E det Sigma_g / det Sigma0 = [prod_{i=1..d} (n - i)/n]^(g+1);
E ||mu_g - mu0||^2 = tr Sigma0 (1 - r^(g+1)).  With ``ddof`` 1, d = 1:
E sigma_g^2 = sigma0^2 and E sigma_g = sigma0 c(n)^(g+1),
c(n) = sqrt(2/(n-1)) Gamma(n/2) / Gamma((n-1)/2).  ``fresh``: the affine
recursion of :func:`hoi_fast.reproductions.closed_forms.fresh_recursion`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from hoi_fast import _validate as v
from hoi_fast._validate import require
from hoi_fast.experiment import ExperimentError, MetricSpec, scheduled_size
from hoi_fast.experiments.gmm import top_indices, truncation_draws
from hoi_fast.kernels import gaussian as _k

MAX_DIM = 256
#: Largest dimension whose fitted mean and covariance are stored per generation.
MAX_STORED_DIM = 16
#: Most float64 values in one set of points (training set, held-out set): 800 MB.
MAX_VALUES = 10**8
MAX_SELF_SAMPLES = 10**12  # self_nll draws one chi-square, whatever the count
MAX_TEMPERATURE = 1e6
#: Truth scales: eigenvalues of Sigma0 within [MIN_VARIANCE, MAX_VARIANCE], their
#: ratio at most MAX_CONDITION (Cholesky and the metrics stay accurate), and
#: |mu0_i| at most MAX_MEAN_RATIO smallest standard deviations (points keep their
#: precision: float64 holds x = mu + noise with relative error 1e-16 |mu| / sigma).
MIN_VARIANCE, MAX_VARIANCE = 1e-50, 1e50
MAX_CONDITION = 1e12
MAX_MEAN_RATIO = 1e8


@dataclass(frozen=True)
class GaussianConfig:
    """Parameters of the ``gaussian`` experiment (TOML table ``[gaussian]``).

    Attributes
    ----------
    dim : int
        Dimension d, 1 to 256.
    samples : int
        Training-set size n per generation (at least 2); R has n points.
    heldout : int
        Held-out truth points (``real_nll``).
    tail_heldout : int
        Held-out tail points (``tail_nll``).
    self_samples : int
        Fresh points of the model (``self_nll``).
    ddof : int
        0: MLE covariance (scatter / n); 1: unbiased (scatter / (n - 1)).
    mean : tuple of float
        mu0 (``dim`` numbers); empty: the origin.
    covariance : tuple of tuple of float
        Sigma0 (symmetric positive definite); empty: ``spectrum`` or the identity.
    spectrum : tuple of float
        Eigenvalues of Sigma0 = diag(spectrum); empty: ``covariance`` or the identity.
    schedule : {"constant", "linear", "geometric"}
        Training-set size per generation: n, round(n (1 + growth g)), round(n growth^g).
    growth : float
    sample_temperature : float
        Synthetic points come from N(mu_g, temperature Sigma_g).
    sample_truncation : float
        In [0, 1): of ceil(m / (1 - q)) candidates the m of highest model density are kept.
    tail_quantile : float
        In (0, 1): tail points have squared Mahalanobis radius above the chi2(dim) quantile.
    store_parameters : bool
        Store the fitted mean and covariance every generation (only while
        dim <= 16).  At dim = 10 they are 110 of the 118 values a generation
        stores (141 of 187 MB for 11 alpha x 1000 seeds x 20 generations);
        false keeps the file small when only the scalar metrics matter.
    """

    dim: int = 10
    samples: int = 1000
    heldout: int = 5000
    tail_heldout: int = 1000
    self_samples: int = 2000
    ddof: int = 0
    mean: tuple = ()
    covariance: tuple = ()
    spectrum: tuple = ()
    schedule: str = "constant"
    growth: float = 1.0
    sample_temperature: float = 1.0
    sample_truncation: float = 0.0
    tail_quantile: float = 0.99
    store_parameters: bool = True

    UNSWEEPABLE = ("mean", "covariance", "spectrum")

    def __post_init__(self):
        d = v.positive_int("gaussian.dim", self.dim, MAX_DIM)
        require(v.is_int(self.ddof) and self.ddof in (0, 1),
                f"`gaussian.ddof` must be 0 (maximum likelihood) or 1 (unbiased), got {self.ddof!r}")
        v.positive_int("gaussian.samples", self.samples, MAX_VALUES // d)
        require(self.samples >= 2, f"`gaussian.samples` must be at least 2 (a covariance needs two points), "
                f"got {self.samples!r}")
        v.positive_int("gaussian.heldout", self.heldout, MAX_VALUES // d)
        v.positive_int("gaussian.tail_heldout", self.tail_heldout, MAX_VALUES // d)
        v.positive_int("gaussian.self_samples", self.self_samples, MAX_SELF_SAMPLES)
        v.check_schedule("gaussian", self.schedule, self.growth)
        v.positive_float("gaussian.sample_temperature", self.sample_temperature, MAX_TEMPERATURE)
        v.fraction("gaussian.sample_truncation", self.sample_truncation)
        require(truncation_draws(self.samples, self.sample_truncation) * d <= MAX_VALUES,
                f"`gaussian.sample_truncation` {self.sample_truncation!r} draws "
                f"{truncation_draws(self.samples, self.sample_truncation):,} candidate points of dimension {d} "
                f"per generation, more than {MAX_VALUES:,} values; lower it or gaussian.samples")
        require(v.is_real(self.tail_quantile) and 0.0 < self.tail_quantile < 1.0,
                f"`gaussian.tail_quantile` must be in (0, 1), got {self.tail_quantile!r}")
        require(isinstance(self.store_parameters, (bool, np.bool_)),
                f"`gaussian.store_parameters` must be true or false, got {self.store_parameters!r}")
        for name in ("mean", "covariance", "spectrum"):  # lists from Python: keep the config hashable
            object.__setattr__(self, name, v.as_tuple(getattr(self, name)))
        self.truth()

    def truth(self):
        """``(mu0, Sigma0)`` as float64 arrays of shapes ``(dim,)`` and ``(dim, dim)``, validated."""
        d = self.dim
        require(not (self.covariance and self.spectrum),
                "give `gaussian.covariance` or `gaussian.spectrum`, not both")
        mu = (v.finite_array("gaussian.mean", self.mean, (None,), MAX_VARIANCE) if self.mean
              else np.zeros(d))
        require(mu.shape == (d,), f"`gaussian.mean` has {mu.shape[0]} entries but `gaussian.dim` is {d}; "
                "give dim numbers (or set gaussian.dim)")
        if self.spectrum:
            lam = v.finite_array("gaussian.spectrum", self.spectrum, (None,), MAX_VARIANCE)
            require(lam.shape == (d,), f"`gaussian.spectrum` has {lam.shape[0]} entries but `gaussian.dim` is "
                    f"{d}; give dim eigenvalues (or set gaussian.dim)")
            cov = np.diag(lam)
            where = "gaussian.spectrum"
        elif self.covariance:
            cov = v.finite_array("gaussian.covariance", self.covariance, (None, None), MAX_VARIANCE)
            require(cov.shape == (d, d), f"`gaussian.covariance` has shape {cov.shape} but `gaussian.dim` is {d}; "
                    "give a dim x dim matrix (or set gaussian.dim)")
            require(np.all(np.abs(cov - cov.T) <= 1e-12 * np.abs(cov).max()),
                    "`gaussian.covariance` must be symmetric")
            cov = (cov + cov.T) / 2
            lam = np.linalg.eigvalsh(cov)
            where = "gaussian.covariance"
        else:
            cov, lam, where = np.eye(d), np.ones(d), "gaussian.covariance"
        require(lam.min() > 0, f"`{where}` must be positive definite (smallest eigenvalue {lam.min():.3g})")
        require(MIN_VARIANCE <= lam.min() and lam.max() <= MAX_VARIANCE,
                f"`{where}` eigenvalues must lie in [{MIN_VARIANCE:g}, {MAX_VARIANCE:g}]; rescale the data")
        require(lam.max() <= MAX_CONDITION * lam.min(),
                f"`{where}` has condition number {lam.max() / lam.min():.3g}, above {MAX_CONDITION:g}; "
                "the fitted covariances would lose their precision")
        require(np.abs(mu).max() <= MAX_MEAN_RATIO * math.sqrt(lam.min()),
                f"`gaussian.mean` is more than {MAX_MEAN_RATIO:g} smallest standard deviations from the origin; "
                "shift the data (points would lose their precision)")
        return mu, cov

    def check_grid(self, grid):
        """Every generation of the grid trains on 2 to ``MAX_VALUES / dim`` points."""
        sizes = [scheduled_size(self.samples, self.schedule, self.growth, g) for g in range(grid.generations)]
        require(min(sizes) >= 2, f"`gaussian.schedule` {self.schedule} with `gaussian.growth` {self.growth} gives "
                f"{min(sizes)} training points at generation {int(np.argmin(sizes))}; a covariance needs 2: "
                "raise gaussian.growth or run fewer generations")
        largest = truncation_draws(max(sizes), self.sample_truncation) * self.dim
        require(largest <= MAX_VALUES, f"`gaussian.schedule` {self.schedule} with `gaussian.growth` {self.growth} "
                f"asks for {largest:,} values in one training set, more than {MAX_VALUES:,}; lower "
                "gaussian.growth or run fewer generations")


# -- training parts -------------------------------------------------------------

class Points:
    """Rows of a ``(n, d)`` float64 array, optionally a subset ``data[index]``; statistics cached.

    Parameters
    ----------
    data : ndarray, shape (n, d), float64, C-contiguous
    index : ndarray of int64, optional
    """

    __slots__ = ("data", "index", "_stats")

    def __init__(self, data, index=None):
        self.data = data
        self.index = index
        self._stats = None

    def __len__(self):
        return self.data.shape[0] if self.index is None else self.index.shape[0]

    def stats(self):
        """``(count, mean (d,), scatter (d, d))`` of the rows."""
        if self._stats is None:
            d = self.data.shape[1]
            mean, scatter = np.empty(d), np.empty((d, d))
            use = self.index is not None
            _k.row_statistics(self.data, self.index if use else _NO_INDEX, use, mean, scatter)
            self._stats = (len(self), mean, scatter)
        return self._stats

    def points(self, rng=None):
        """The rows as an ``(m, d)`` array (``rng`` unused)."""
        return self.data if self.index is None else self.data[self.index]


_NO_INDEX = np.empty(0, np.int64)


class Draw:
    """``count`` i.i.d. points of a Gaussian, held as their exact sufficient statistics.

    Parameters
    ----------
    count : int
        Number of points m (> d).
    mean : ndarray, shape (d,)
        Their sample mean.
    root : ndarray, shape (d, d)
        A factor F of their scatter, ``scatter = F F^T``.
    scatter : ndarray, shape (d, d)
    """

    __slots__ = ("count", "mean", "root", "scatter", "_points")

    def __init__(self, count, mean, root, scatter):
        self.count = count
        self.mean = mean
        self.root = root
        self.scatter = scatter
        self._points = None

    def __len__(self):
        return self.count

    def stats(self):
        return self.count, self.mean, self.scatter

    def points(self, rng):
        """The points, drawn from ``rng`` on first use (:func:`materialise`) and kept."""
        if self._points is None:
            self._points = materialise(self.mean, self.root, self.count, rng)
        return self._points


def materialise(mean, root, m, rng):
    """``m`` points with sample mean ``mean`` and scatter ``root root^T``, as i.i.d. Gaussian points given those.

    For Gaussian points the centred data matrix is ``U T`` with ``U`` uniform
    (Haar) among ``m x d`` matrices with orthonormal columns orthogonal to the
    ones vector, independent of ``T`` (thin QR with positive diagonal;
    Bartlett's factor is ``T^T``).  So ``mean + U root^T``, with ``U`` the
    orthonormalised centred standard normal ``(m, d)`` matrix
    (:func:`hoi_fast.kernels.gaussian.orthonormal_frame`), has exactly the
    conditional law.  Draws ``m d`` normals.

    Returns
    -------
    ndarray, shape (m, d), float64
    """
    W = rng.standard_normal((m, mean.shape[0]))
    if not _k.orthonormal_frame(W):  # probability 0 for m > d
        raise ExperimentError("gaussian: could not orthonormalise a standard normal matrix; report this")
    out = np.empty_like(W)
    _k.affine_rows(W, mean, root, 1.0, out)
    return out


def gaussian_points(center, factor, m, rng, scale=1.0):
    """``m`` explicit points ``center + scale z factor^T`` (``z`` standard normal rows), ``(m, d)`` float64."""
    z = rng.standard_normal((m, center.shape[0]))
    out = np.empty_like(z)
    _k.affine_rows(z, center, factor, scale, out)
    return out


def choose(n, m, rng):
    """``m`` distinct indices of ``range(n)`` in random order: ``rng.random(m)`` drives a partial
    Fisher-Yates shuffle (:func:`hoi_fast.kernels.gaussian.choose`)."""
    return _k.choose(n, rng.random(m))


def gaussian_part(center, factor, m, rng):
    """``m`` i.i.d. points of N(center, factor factor^T): a :class:`Draw` if ``m > d``, else :class:`Points`."""
    d = center.shape[0]
    if m <= d:
        return Points(gaussian_points(center, factor, m, rng))
    n_normals, n_chisquares = _k.statistics_draw_sizes(d)
    normals = rng.standard_normal(n_normals)
    chisquares = rng.chisquare(m - d, size=n_chisquares)
    mean, root, scatter = np.empty(d), np.empty((d, d)), np.empty((d, d))
    _k.draw_statistics(center, factor, m, normals, chisquares, mean, root, scatter)
    return Draw(m, mean, root, scatter)


# -- the model and the held-out sets ----------------------------------------------------

@dataclass(frozen=True, eq=False)
class GaussianModel:
    """A fitted Gaussian.

    Attributes
    ----------
    mean : ndarray, shape (d,)
    covariance : ndarray, shape (d, d)
    factor : ndarray, shape (d, d)
        ``factor factor^T = covariance``: the lower Cholesky factor, or the
        eigen-factor ``V diag(sqrt(max(lambda, 0)))`` when that fails.
    regular : bool
        Fitted on more than d points and positive definite in float64.
    count : int
        Training points.
    """

    mean: np.ndarray
    covariance: np.ndarray
    factor: np.ndarray
    regular: bool
    count: int


def fit_model(counts, means, scatters, ddof):
    """The :class:`GaussianModel` of pooled statistics (arrays as for :func:`hoi_fast.kernels.gaussian.pooled_fit`)."""
    d = means.shape[1]
    total = int(counts.sum())
    if len(counts) == 1:
        mean, covariance = means[0].copy(), scatters[0] / (total - ddof)
    else:
        mean, covariance = np.empty(d), np.empty((d, d))
        _k.pooled_fit(counts, means, scatters, ddof, mean, covariance)
    return model_of(mean, covariance, total)


def model_of(mean, covariance, count):
    """A :class:`GaussianModel` with its factor and regularity."""
    L = np.empty_like(covariance)
    ok = _k.cholesky(covariance, L)
    if not ok:
        lam, V = np.linalg.eigh(covariance)
        L = V * np.sqrt(np.maximum(lam, 0.0))
    return GaussianModel(mean, covariance, L, bool(ok and count > mean.shape[0]), count)


@dataclass(frozen=True)
class GaussianHeldout:
    """Held-out sets of one seed and their statistics.

    Attributes
    ----------
    real, tail : ndarray, shapes (heldout, d), (tail_heldout, d)
    real_mean, tail_mean : ndarray, shape (d,)
    real_second, tail_second : ndarray, shape (d, d)
        Scatter / count.
    """

    real: np.ndarray
    tail: np.ndarray
    real_mean: np.ndarray
    real_second: np.ndarray
    tail_mean: np.ndarray
    tail_second: np.ndarray


def _moments(X):
    mean, scatter = np.empty(X.shape[1]), np.empty((X.shape[1], X.shape[1]))
    _k.row_statistics(X, _NO_INDEX, False, mean, scatter)
    return mean, scatter / X.shape[0]


# -- the experiment -------------------------------------------------------------------

class GaussianExperiment:
    """The ``gaussian`` experiment for :func:`hoi_fast.experiment.run_cell` (see the module docstring).

    Parameters
    ----------
    config : GaussianConfig
    """

    name = "gaussian"
    config_class = GaussianConfig

    def __init__(self, config):
        self.config = config
        d = config.dim
        self.truth_mean, self.truth_cov = config.truth()
        self.truth_chol = np.linalg.cholesky(self.truth_cov)
        self.truth_logdet = 2.0 * float(np.log(np.diag(self.truth_chol)).sum())
        self.tail_threshold = float(stats.chi2.ppf(config.tail_quantile, d))
        self.store_parameters = bool(config.store_parameters) and d <= MAX_STORED_DIM

    def notes(self):
        """One-line remarks the grid prints once before running."""
        c = self.config
        if c.samples > c.dim:
            return []
        return [f"gaussian: samples ({c.samples}) <= dim ({c.dim}): fitted covariances are singular, so real_nll, "
                "tail_nll and kl are +inf and self_nll and log_det_ratio -inf while the training set has at "
                "most dim points"]

    def train_size(self, generation):
        """Training-set size of ``generation``; ValueError below 2."""
        c = self.config
        n = scheduled_size(c.samples, c.schedule, c.growth, generation)
        if n < 2:
            raise ValueError(f"`gaussian.schedule` = {c.schedule!r} with `gaussian.growth` = {c.growth} gives {n} "
                             f"training points at generation {generation}; a covariance needs 2")
        return n

    def real_pool(self, rng):
        return Points(gaussian_points(self.truth_mean, self.truth_chol, self.config.samples, rng))

    def heldout(self, rng, pool):
        c = self.config
        real = gaussian_points(self.truth_mean, self.truth_chol, c.heldout, rng)
        tail = self.tail_points(c.tail_heldout, rng)
        real_mean, real_second = _moments(real)
        tail_mean, tail_second = _moments(tail)
        return GaussianHeldout(real, tail, real_mean, real_second, tail_mean, tail_second)

    def tail_points(self, m, rng):
        """``m`` truth points conditioned on squared Mahalanobis radius > the chi2 ``tail_quantile`` quantile.

        Draws ``m`` uniforms (radii), then an ``(m, d)`` standard normal matrix (directions).
        """
        c = self.config
        u = 1.0 - rng.random(m)  # in (0, 1]
        radius = np.sqrt(stats.chi2.isf((1.0 - c.tail_quantile) * u, c.dim))
        z = rng.standard_normal((m, c.dim))
        z *= (radius / np.sqrt(np.einsum("ij,ij->i", z, z)))[:, None]
        out = np.empty_like(z)
        _k.affine_rows(z, self.truth_mean, self.truth_chol, 1.0, out)
        return out

    def real_subset(self, pool, m, rng):
        return Points(pool.data, choose(len(pool), m, rng))

    def fresh_real(self, m, rng):
        return gaussian_part(self.truth_mean, self.truth_chol, m, rng)

    def fit(self, parts, rng):
        if len(parts) == 1:
            count, mean, scatter = parts[0].stats()
            return model_of(mean.copy(), scatter / (count - self.config.ddof), count)
        stats_ = [p.stats() for p in parts]
        counts = np.array([s[0] for s in stats_], dtype=np.float64)
        return fit_model(counts, np.array([s[1] for s in stats_]), np.array([s[2] for s in stats_]),
                         self.config.ddof)

    def sample(self, model, n, rng):
        """``n`` points of the model (temperature 1): a :class:`Draw`, or :class:`Points` if ``n <= dim``."""
        return gaussian_part(model.mean, model.factor, n, rng)

    def synthesize(self, model, n, rng, first_model):
        """``n`` synthetic points after the sampling bias (temperature, truncation); acceptance 1.

        ``first_model`` is not used.
        """
        c = self.config
        tau, q = c.sample_temperature, c.sample_truncation
        if q == 0.0:
            factor = model.factor if tau == 1.0 else model.factor * math.sqrt(tau)
            return gaussian_part(model.mean, factor, n, rng), 1.0
        z = rng.standard_normal((truncation_draws(n, q), c.dim))
        keep = top_indices(-np.einsum("ij,ij->i", z, z), n)  # highest density: smallest radius
        z = z[keep]
        out = np.empty_like(z)
        _k.affine_rows(z, model.mean, model.factor, math.sqrt(tau), out)
        return Points(out), 1.0

    def subsample(self, parts, n, rng):
        """``n`` rows drawn without replacement from the union of ``parts`` (materialising :class:`Draw` parts)."""
        X = np.concatenate([p.points(rng) for p in parts])
        return [Points(X, choose(X.shape[0], n, rng))]

    def metrics(self, model, parts, heldout, rng):
        c = self.config
        values = _k.scalar_metrics(model.mean, model.covariance, model.factor, model.regular, self.truth_mean,
                                   self.truth_cov, self.truth_chol, self.truth_logdet, heldout.real_mean,
                                   heldout.real_second, heldout.tail_mean, heldout.tail_second)
        radius2 = rng.chisquare(c.self_samples * c.dim)
        real_nll, tail_nll, self_constant, kl, w2, mean_error, log_det_ratio, trace_ratio = values.tolist()
        row = {
            "real_nll": real_nll,
            "tail_nll": tail_nll,
            "self_nll": self_constant + 0.5 * radius2 / c.self_samples,
            "kl": kl,
            "w2": w2,
            "mean_error": mean_error,
            "log_det_ratio": log_det_ratio,
            "trace_ratio": trace_ratio,
        }
        bad = [k for k, x in row.items() if x != x]
        if bad:
            raise ExperimentError(f"gaussian: metric {bad[0]} is NaN (fitted covariance not finite?); "
                                  "check the scales of gaussian.mean, covariance and sample_temperature")
        if self.store_parameters:
            row["mean"] = model.mean
            row["covariance"] = model.covariance
        return row

    def metric_specs(self):
        singular = " (+inf when the fitted covariance is singular, never NaN)"
        out = [
            MetricSpec("real_nll", "nats", "mean negative log-likelihood of held-out truth points" + singular,
                       role="real", nan_ok=True),
            MetricSpec("tail_nll", "nats", "mean negative log-likelihood of held-out truth points whose squared "
                       "Mahalanobis radius exceeds the chi2 tail_quantile quantile" + singular,
                       role="tail", nan_ok=True),
            MetricSpec("self_nll", "nats", "mean negative log-likelihood of fresh points of the model itself "
                       "(-inf when the fitted covariance is singular, never NaN)", role="self", nan_ok=True),
            MetricSpec("kl", "nats", "KL(truth || model), closed form" + singular, nan_ok=True),
            MetricSpec("w2", "1", "squared 2-Wasserstein distance between model and truth, closed form"),
            MetricSpec("mean_error", "1", "squared distance ||mu_g - mu0||^2 of the fitted mean from the truth's"),
            MetricSpec("log_det_ratio", "nats", "log det Sigma_g - log det Sigma0 (-inf when the fitted covariance "
                       "is singular, never NaN)", nan_ok=True),
            MetricSpec("trace_ratio", "1", "tr Sigma_g / tr Sigma0"),
        ]
        if self.store_parameters:
            out += [MetricSpec("mean", "1", "fitted mean mu_g", ("axis",)),
                    MetricSpec("covariance", "1", "fitted covariance Sigma_g", ("axis", "axis2"))]
        return out

    def coords(self):
        if not self.store_parameters:
            return {}
        axis = np.arange(self.config.dim)
        return {"axis": axis, "axis2": axis.copy()}
