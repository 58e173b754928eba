"""The ``regression`` experiment: linear regression refitted on labels from its own predictions.

The fixed-design setting of Dohmatob et al. ("Model Collapse Demystified",
2024) and Gerstgrasser et al. (2024): T rows of d i.i.d. N(0, 1) features,
drawn once per seed, true weights w* ~ N(0, I/d) (or given), label noise of
variance sigma^2.  Generation 0 fits least squares on the real labels
``y = X w* + noise``; a synthetic label is ``x^T w_{g-1} + noise`` on a row of
the same design; the shared loop (:func:`hoi_fast.experiment.run_cell`) mixes
real and synthetic rows under every regime.

The fixed design and the rows
-----------------------------
Items are rows ``(x, y)``; except for ``fresh`` real rows, their features are
rows of the seed's design X.  Sets of k rows take their design rows by one rule, :func:`design_rows`: all T
rows in order when k = T; a uniformly random subset without replacement when
k < T (:func:`distinct_rows`); all rows as often as they fit and a random
subset for the rest when k > T (growing schedules).

* R (real stream): X (T x d standard normals), then w* (d standard normals /
  sqrt(d), unless ``weights`` is given), then the noise of the T real labels.
* Held-out real rows (held-out stream): ``heldout`` *fresh* feature rows (the
  population, not the design) with noisy labels from w*: the test
  distribution of ``real_nll``.
* ``mix``: real rows are rows of R drawn without replacement (design row and
  its real label together); synthetic rows: design rows by
  :func:`design_rows` labelled ``x^T w_{g-1} + noise``.  So at alpha = 1
  every generation relabels the whole design (the papers' setting) and at
  alpha = 0 ``mix`` refits R.
* ``fresh``: real rows are fresh draws from the population (features
  N(0, I), then label noise), not rows of the design; synthetic rows stay on
  the design.  (A model fitted on fresh rows alone, i.e. a ``fresh``
  generation without synthetic rows followed by one with some, which only a
  sample-size schedule can produce, labels the features of its own training
  rows instead.)
* ``accumulate``: R plus every synthetic set (each on the whole design when
  alpha = 1: the design stacked g + 1 times, Gerstgrasser et al.'s setting);
  ``accumulate-subsample``: n rows drawn without replacement from that pool.
* Row choices use :func:`hoi_fast.experiments.gaussian.choose`; within a set
  the row choice is drawn before the label noise.

Fit
---
Least squares, ``w_g = argmin ||y - X_g w||^2`` over the generation's rows
(Cholesky of X_g^T X_g).  If X_g^T X_g is singular in float64 (fewer than d
distinct rows), the minimum-norm solution ``pinv(X_g) y`` (eigenvalues below
``d eps lambda_max`` dropped; a training set of fresh rows alone must have
more rows than features).  The noise variance is known (sigma^2), not fitted.
Labels are held as residuals about w* (:mod:`hoi_fast.kernels.regression`),
so ``w_g - w*`` is computed without cancellation.

Metrics per generation
----------------------
``test_mse`` (label^2)
    ``||w_g - w*||^2``: the expected squared error on a fresh isotropic test
    point minus the noise sigma^2.
``real_nll`` (nats)
    Mean NLL of the held-out real rows under N(x^T w_g, sigma^2).
``self_nll`` (nats)
    Mean NLL of ``self_samples`` fresh rows of the model itself; their
    residuals are pure noise, so it is ``log(2 pi sigma^2)/2 + chi2(m)/(2m)``,
    drawn as one chi-square (exact in distribution, independent of w_g: the
    model always looks perfect to itself).
``train_nll`` (nats)
    Mean NLL of the generation's own training rows (in-sample).
``weights`` (1, ``(feature,)``, only while d <= 16)
    The fitted w_g.

Closed forms (tested in ``tests/test_regression.py``)
------------------------------------------------------
Index convention (verified by simulation): generation 0 is the fit on the real
labels, so generation g is the (g + 1)-th fit.  Given the design,
E ||w_g - w*||^2 = sigma^2 tr (X^T X)^-1 (g + 1) under ``mix`` with alpha = 1
(replace), and sigma^2 tr (X^T X)^-1 sum_{i=1..g+1} 1/i^2 under ``accumulate``
with alpha = 1; over Gaussian designs E tr (X^T X)^-1 = d / (T - d - 1)
(:func:`hoi_fast.reproductions.closed_forms.regression_replace` and
:func:`~hoi_fast.reproductions.closed_forms.regression_accumulate`, tested
through this experiment's loop in ``tests/test_regression.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hoi_fast import _validate as v
from hoi_fast._validate import require
from hoi_fast.experiment import ExperimentError, MetricSpec, scheduled_size
from hoi_fast.experiments.gaussian import choose
from hoi_fast.kernels import regression as _k

MAX_FEATURES = 4096
MAX_STORED_FEATURES = 16
#: Most float64 values in one design or held-out set: 800 MB.
MAX_VALUES = 10**8
MAX_SELF_SAMPLES = 10**12
MIN_NOISE, MAX_NOISE = 1e-50, 1e50
MAX_WEIGHT = 1e25
LOG_2PI = math.log(2.0 * math.pi)
_ALL = np.empty(0, np.int64)


@dataclass(frozen=True)
class RegressionConfig:
    """Parameters of the ``regression`` experiment (TOML table ``[regression]``).

    Attributes
    ----------
    features : int
        Dimension d of the features.
    samples : int
        Rows T of the fixed design; training-set size n per generation.
    noise : float
        Label noise variance sigma^2.
    weights : tuple of float
        w* (``features`` numbers); empty: drawn per seed from N(0, I/d).
    heldout : int
        Held-out real rows (fresh features) for ``real_nll``.
    self_samples : int
        Fresh rows of the model for ``self_nll``.
    schedule : {"constant", "linear", "geometric"}
    growth : float
    """

    features: int = 10
    samples: int = 1000
    noise: float = 1.0
    weights: tuple = ()
    heldout: int = 5000
    self_samples: int = 2000
    schedule: str = "constant"
    growth: float = 1.0

    UNSWEEPABLE = ("weights",)

    def __post_init__(self):
        d = v.positive_int("regression.features", self.features, MAX_FEATURES)
        v.positive_int("regression.samples", self.samples, MAX_VALUES // d)
        v.positive_int("regression.heldout", self.heldout, MAX_VALUES // d)
        v.positive_int("regression.self_samples", self.self_samples, MAX_SELF_SAMPLES)
        require(v.is_real(self.noise) and MIN_NOISE <= self.noise <= MAX_NOISE,
                f"`regression.noise` (the label noise variance) must be a number in [{MIN_NOISE:g}, {MAX_NOISE:g}], "
                f"got {self.noise!r}")
        v.check_schedule("regression", self.schedule, self.growth)
        object.__setattr__(self, "weights", v.as_tuple(self.weights))
        self.true_weights()

    def true_weights(self):
        """w* as a float64 array ``(features,)``, or None when it is drawn per seed."""
        if not self.weights:
            return None
        w = v.finite_array("regression.weights", self.weights, (None,), MAX_WEIGHT)
        require(w.shape == (self.features,), f"`regression.weights` has {w.shape[0]} entries but "
                f"`regression.features` is {self.features}; give one weight per feature")
        return w

    def check_grid(self, grid):
        """Every generation trains on 1 to ``MAX_VALUES / features`` rows."""
        sizes = [scheduled_size(self.samples, self.schedule, self.growth, g) for g in range(grid.generations)]
        require(min(sizes) >= 1, f"`regression.schedule` {self.schedule} with `regression.growth` {self.growth} "
                f"gives no training rows at generation {int(np.argmin(sizes))}; raise regression.growth or run "
                "fewer generations")
        require(max(sizes) * self.features <= MAX_VALUES, f"`regression.schedule` {self.schedule} with "
                f"`regression.growth` {self.growth} asks for {max(sizes):,} rows of {self.features} features, more "
                f"than {MAX_VALUES:,} values; lower regression.growth or run fewer generations")


@dataclass(frozen=True, eq=False)
class Design:
    """The fixed design of one seed.

    Attributes
    ----------
    X : ndarray, shape (T, d), float64
    gram : ndarray, shape (d, d), float64
        ``X^T X``.
    w_star : ndarray, shape (d,), float64
    """

    X: np.ndarray
    gram: np.ndarray
    w_star: np.ndarray


class Rows:
    """Rows ``(x, y)`` with labels held as residuals ``r = y - x^T w*``; statistics cached.

    Parameters
    ----------
    X : ndarray, shape (N, d), float64
        Feature rows that ``index`` refers to (the seed's design, or fresh features).
    index : ndarray of int64 or None
        Rows of ``X``; None: all of them, in order.
    resid : ndarray, shape (k,), float64
    design : Design or None
        The seed's design when the rows come from it (R, real subsets,
        synthetic rows, subsamples); None for fresh real rows.
    gram : ndarray, shape (d, d), optional
        ``X_S^T X_S`` if already known.
    stats : tuple, optional
        All of :meth:`stats` if already known.
    """

    __slots__ = ("X", "index", "resid", "design", "gram", "_stats")

    def __init__(self, X, index, resid, design, gram=None, stats=None):
        self.X = X
        self.index = index
        self.resid = resid
        self.design = design
        self.gram = gram
        self._stats = stats

    def __len__(self):
        return self.resid.shape[0]

    def stats(self):
        """``(count, X_S^T X_S, X_S^T r, r^T r)``."""
        if self._stats is None:
            d = self.X.shape[1]
            whole = self.index is None
            if self.gram is None and whole and self.design is not None and self.X is self.design.X:
                self.gram = self.design.gram
            known = self.gram is not None
            gram = self.gram if known else np.empty((d, d))
            cross = np.empty(d)
            rr = _k.row_moments(self.X, _ALL if whole else self.index, not whole, self.resid, not known, gram, cross)
            self._stats = (len(self), gram, cross, rr)
        return self._stats

    def features(self):
        """The feature rows, ``(k, d)`` float64."""
        return self.X if self.index is None else self.X[self.index]


def distinct_rows(T, k, rng):
    """``k <= T`` distinct design rows, uniformly: :func:`~hoi_fast.experiments.gaussian.choose` (T, k)
    in random order if ``k <= T/2``, else all rows but ``choose(T, T - k)``, in increasing order."""
    if 2 * k <= T:
        return choose(T, k, rng)
    keep = np.ones(T, dtype=bool)
    keep[choose(T, T - k, rng)] = False
    return np.flatnonzero(keep)


def design_rows(T, k, rng):
    """Design rows of a set of ``k`` rows: None (all T in order) if k == T, else an int64 index array.

    k < T: :func:`distinct_rows` (T, k); k > T: every row ``k // T`` times,
    then ``distinct_rows(T, k % T)``.
    """
    if k == T:
        return None
    repeats, rest = divmod(k, T)
    chosen = distinct_rows(T, rest, rng)
    return np.concatenate([np.tile(np.arange(T), repeats), chosen]) if repeats else chosen


def design_gram(design, k, index):
    """``X_S^T X_S`` of the rows :func:`design_rows` chose for a set of ``k`` rows (their layout known)."""
    T = design.X.shape[0]
    if index is None:
        return design.gram
    repeats, rest = divmod(k, T)
    gram = np.empty_like(design.gram)
    _k.subset_gram(design.X, index[k - rest:], design.gram, gram)
    return gram + repeats * design.gram if repeats else gram


@dataclass(frozen=True, eq=False)
class RegressionModel:
    """Fitted weights.

    Attributes
    ----------
    delta : ndarray, shape (d,)
        ``w_g - w*``.
    design : Design
        Where its synthetic rows lie: the seed's design (see the module docstring).
    rss : float
        Residual sum of squares on the training rows.
    count : int
        Training rows.
    """

    delta: np.ndarray
    design: Design
    rss: float
    count: int



def _seed_design(parts):
    """The seed's :class:`Design` from the first part that carries it (None if all are fresh rows)."""
    return next((p.design for p in parts if p.design is not None), None)


@dataclass(frozen=True)
class RegressionHeldout:
    """Held-out real rows and their moments (residuals about w*: the label noise).

    Attributes
    ----------
    X : ndarray, shape (N, d)
    noise : ndarray, shape (N,)
        ``y - x^T w*``.
    second, cross, mean_sq : ndarray (d, d), ndarray (d,), float
        ``X^T X / N``, ``X^T e / N``, ``e^T e / N``.
    w_star : ndarray, shape (d,)
        The seed's true weights (from R).
    """

    X: np.ndarray
    noise: np.ndarray
    second: np.ndarray
    cross: np.ndarray
    mean_sq: float
    w_star: np.ndarray


def min_norm_delta(gram, cross, rr, w_star):
    """``w - w*`` and RSS of the minimum-norm least-squares fit when ``gram`` is singular.

    ``w = pinv(gram) (cross + gram w*)`` (eigenvalues below ``d eps lambda_max`` dropped).
    """
    lam, V = np.linalg.eigh(gram)
    keep = lam > lam.max() * gram.shape[0] * np.finfo(np.float64).eps
    inv = np.where(keep, 1.0 / np.where(keep, lam, 1.0), 0.0)
    w = V @ (inv * (V.T @ (cross + gram @ w_star)))
    delta = w - w_star
    return delta, max(rr - 2.0 * delta @ cross + delta @ gram @ delta, 0.0)


class RegressionExperiment:
    """The ``regression`` experiment for :func:`hoi_fast.experiment.run_cell` (see the module docstring).

    Parameters
    ----------
    config : RegressionConfig
    """

    name = "regression"
    config_class = RegressionConfig

    def __init__(self, config):
        self.config = config
        self.given_weights = config.true_weights()
        self.sd = math.sqrt(config.noise)
        self.log_norm = 0.5 * (LOG_2PI + math.log(config.noise))
        self.store_weights = config.features <= MAX_STORED_FEATURES

    def train_size(self, generation):
        """Training rows of ``generation``; ValueError below 1."""
        c = self.config
        n = scheduled_size(c.samples, c.schedule, c.growth, generation)
        if n < 1:
            raise ValueError(f"`regression.schedule` = {c.schedule!r} with `regression.growth` = {c.growth} gives "
                             f"no training rows at generation {generation}")
        return n

    def real_pool(self, rng):
        c = self.config
        X = rng.standard_normal((c.samples, c.features))
        w_star = (rng.standard_normal(c.features) / math.sqrt(c.features) if self.given_weights is None
                  else self.given_weights.copy())
        resid = self.sd * rng.standard_normal(c.samples)
        gram = np.empty((c.features, c.features))
        _k.row_moments(X, _ALL, False, resid, True, gram, np.empty(c.features))
        return Rows(X, None, resid, Design(X, gram, w_star))

    def heldout(self, rng, pool):
        c = self.config
        X = rng.standard_normal((c.heldout, c.features))
        noise = self.sd * rng.standard_normal(c.heldout)
        second, cross = np.empty((c.features, c.features)), np.empty(c.features)
        mean_sq = _k.row_moments(X, _ALL, False, noise, True, second, cross)
        return RegressionHeldout(X, noise, second / c.heldout, cross / c.heldout, mean_sq / c.heldout,
                                 pool.design.w_star)

    def real_subset(self, pool, m, rng):
        """``m`` distinct rows of R (``m`` below its size), with their real labels."""
        chosen = choose(len(pool), m, rng)
        return Rows(pool.X, chosen, pool.resid[chosen], pool.design, design_gram(pool.design, m, chosen))

    def fresh_real(self, m, rng):
        """``m`` fresh rows of the population: features N(0, I), then the label noise (not on the design)."""
        X = rng.standard_normal((m, self.config.features))
        return Rows(X, None, self.sd * rng.standard_normal(m), None)

    def sample(self, model, n, rng):
        """``n`` rows of the model on the design (:func:`design_rows`), labels ``x^T w_g + noise``."""
        design = model.design
        T, d = design.X.shape
        index = design_rows(T, n, rng)
        eps = rng.standard_normal(n)
        resid, cross = np.empty(n), np.empty(d)
        rr = _k.residual_labels(design.X, _ALL if index is None else index, index is not None, model.delta, self.sd,
                                eps, resid, cross)
        return Rows(design.X, index, resid, design, stats=(n, design_gram(design, n, index), cross, rr))

    def synthesize(self, model, n, rng, first_model):
        """Plain sampling (no sampling bias or filter): acceptance 1.  ``first_model`` is not used."""
        return self.sample(model, n, rng), 1.0

    def subsample(self, parts, n, rng):
        """``n`` rows drawn without replacement from the union of ``parts``."""
        X = np.concatenate([p.features() for p in parts])
        resid = np.concatenate([p.resid for p in parts])
        chosen = choose(X.shape[0], n, rng)
        return [Rows(X, chosen, resid[chosen], _seed_design(parts))]

    def fit(self, parts, rng):
        if len(parts) == 1:
            count, gram, cross, rr = parts[0].stats()
        else:
            stats = [p.stats() for p in parts]
            count = sum(s[0] for s in stats)
            gram = sum(s[1] for s in stats)
            cross = sum(s[2] for s in stats)
            rr = sum(s[3] for s in stats)
        design = _seed_design(parts)
        if design is None:  # fresh rows alone: they are the design of this model's synthetic rows
            X = np.concatenate([p.features() for p in parts])
            design = Design(X, gram, None)
        delta = np.empty(gram.shape[0])
        ok, rss = _k.least_squares(gram, cross, rr, delta)
        if not ok:
            if design.w_star is None:
                raise ExperimentError("regression: the fresh rows of a generation have a singular X^T X (fewer "
                                      "rows than features); raise regression.samples")
            delta, rss = min_norm_delta(gram, cross, rr, design.w_star)
        return RegressionModel(delta, design, rss, count)

    def metrics(self, model, parts, heldout, rng):
        c = self.config
        mse = _k.quadratic_loss(model.delta, heldout.second, heldout.cross, heldout.mean_sq)
        row = {
            "test_mse": float(model.delta @ model.delta),
            "real_nll": self.log_norm + 0.5 * mse / c.noise,
            "self_nll": self.log_norm + 0.5 * rng.chisquare(c.self_samples) / c.self_samples,
            "train_nll": self.log_norm + 0.5 * model.rss / (c.noise * model.count),
        }
        if not all(math.isfinite(x) for x in row.values()):
            bad = next(k for k, x in row.items() if not math.isfinite(x))
            raise ExperimentError(f"regression: metric {bad} is not finite; check the scales of regression.noise "
                                  "and regression.weights")
        if self.store_weights:
            row["weights"] = heldout.w_star + model.delta
        return row

    def metric_specs(self):
        out = [
            MetricSpec("test_mse", "label^2", "||w_g - w*||^2: excess squared error on a fresh isotropic test point"),
            MetricSpec("real_nll", "nats", "mean negative log-likelihood of held-out real rows (fresh features) "
                       "under N(x^T w_g, noise)", role="real"),
            MetricSpec("self_nll", "nats", "mean negative log-likelihood of fresh rows of the model itself",
                       role="self"),
            MetricSpec("train_nll", "nats", "mean negative log-likelihood of the generation's own training rows"),
        ]
        if self.store_weights:
            out.append(MetricSpec("weights", "1", "fitted weights w_g", ("feature",)))
        return out

    def coords(self):
        return {"feature": np.arange(self.config.features)} if self.store_weights else {}
