"""The Gaussian-mixture experiment: a 2-D mixture refitted on its own samples.

Data items are ``(n, 2)`` float64 arrays of points.  Per generation the model
is a :class:`hoi_fast.gmm.FitResult` fitted by EM from a k-means++ start drawn
from the generation's stream, and the metrics are:

==============  ======  =====================================================
metric          units   meaning
==============  ======  =====================================================
``real_nll``    nats    mean NLL of the held-out real set (drawn from the truth)
``tail_nll``    nats    mean NLL of held-out points of the tail components only
``self_nll``    nats    mean NLL of fresh samples from the model itself
``kl``          nats    Monte-Carlo KL(truth || model) on the held-out real set
``weights``     1       fitted weights, ``(component,)``
``means``       1       fitted means, ``(component, axis)``
``covariances`` 1       fitted covariances, ``(component, axis, axis2)``
``n_iter``      1       EM iterations
``converged``   1       1 if EM converged, else 0
``n_resets``    1       degenerate components re-seeded during the fit
==============  ======  =====================================================

Label switching: EM's component order is arbitrary and changes between
generations, so the stored parameters are sorted by descending weight (ties
keep EM's order); ``component`` 0 is always the heaviest.

The held-out sets depend only on the seed's held-out stream: ``heldout`` real
points from the truth, then ``tail_heldout`` points from the tail components
(truth components with weight <= ``tail_weight``, weights renormalised).

Synthetic data: sampling bias, then filters
-------------------------------------------
:meth:`GMMExperiment.synthesize` turns the previous generation's model
``p_model`` (weights ``w_k``, means ``mu_k``, covariances ``S_k``) into the
synthetic training points, in two stages.

1. *Sampling bias* makes candidates.  ``sample_temperature`` = tau: points are
   drawn from ``sum_k w_k N(mu_k, tau S_k)`` (component by the weights as
   usual, covariance scaled).  ``sample_truncation`` = q > 0: to make ``m``
   candidates, ``M = ceil(m / (1 - q))`` points are drawn as above and the
   ``m`` with the highest ``log p_model`` are kept (``p_model`` at temperature
   1, i.e. the fitted model itself; ties keep the earlier draw; kept points
   stay in draw order), so the least likely fraction ``(M - m) / M ~ q`` is
   dropped.
2. *Filter* judges each candidate.  ``"quality"``: keep x iff
   ``log p_true(x) >= t``, where t is the ``quality_quantile``-quantile of
   ``log p_true(Y)`` for Y from the truth (``QUALITY_REFERENCE_SIZE`` points
   drawn once per experiment with the fixed seed ``QUALITY_REFERENCE_SEED``,
   ``numpy.quantile``'s default linear interpolation): the share of the
   truth's mass kept is ``1 - quality_quantile``.  ``"verifier"``: accept x
   with probability ``min(1, p~_true(x) / (c p_model(x)))`` with ``c =
   verifier_c``, ``p~_true = p_true exp(sigma Z)``, ``sigma =
   verifier_noise``, ``Z ~ N(0, 1)`` drawn per candidate; ``p_model`` is the
   fitted model at temperature 1.  When ``c p_model >= p_true`` everywhere
   and there is no sampling bias or noise, this is rejection sampling: the
   accepted points are draws from the truth and the acceptance rate is
   ``1 / c``.  A ratio ``0 / 0`` (both densities underflow) rejects.
   Choosing c: without noise the accepted density is proportional to
   ``min(p_model, p_true / c)``, so with c = 1 the thinner of the two tails
   wins and the verifier *erodes* the tail; it corrects toward the truth only
   once ``c p_model >= p_true`` over most of the truth's mass (c of about 10
   or more for the default truth; acceptance is then about ``1 / c``).

The synthetic count is kept at its target n: candidates are made and judged
in batches (the first of n, each next one
``ceil(1.1 * need * judged / max(accepted, 1))`` with ``need`` the points
still missing, at most ``MAX_DRAWS (1 - q)`` and at most the candidates left
under the cap) until n are accepted; the first n accepted in draw order are
kept.  ``acceptance = n / judged``, with ``judged`` the candidates up to and
including the n-th accepted one (truncation's discarded draws are part of
the sampling bias and do not count).  At most ``MAX_CANDIDATES_PER_POINT * n``
candidates are judged; if fewer than n were accepted by then,
:class:`FilterExhaustedError` (a ``RuntimeError``) is raised naming the knobs
to relax.  Random draws, all from the generation's stream, per batch: the
candidates (component ``u``, then two normals per point, see
:func:`hoi_fast.kernels.gmm.sample`), then for the verifier ``Z`` for the
whole batch (only if ``sigma > 0``) and ``U`` for the whole batch, accepting
iff ``log U < log p_true + sigma Z - log c - log p_model``.  Without any knob
(tau = 1, q = 0, no filter) the synthetic set is plain sampling, bit for bit,
and acceptance is 1; with sampling bias only, acceptance is 1.

Sample-size schedules: :meth:`GMMExperiment.train_size` raises ``ValueError``
naming ``gmm.schedule``/``gmm.growth`` when a generation's size falls below
``gmm.components`` (EM needs at least K points), and ``accumulate-subsample``
raises when the accumulated pool is smaller than the size it must draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from hoi_fast import _validate as v
from hoi_fast import gmm as _gmm
from hoi_fast._validate import require
from hoi_fast.experiment import ExperimentError, MetricSpec, scheduled_size
from hoi_fast.kernels import gmm as _k

QUALITY_REFERENCE_SIZE = 1 << 18
QUALITY_REFERENCE_SEED = 20240808
MAX_CANDIDATES_PER_POINT = 1000
MAX_DRAWS = 1 << 20  # raw draws per batch of candidates: bounds memory (~50 MB of temporaries)
GMM_FILTERS = ("none", "quality", "verifier")
MAX_POINTS = 10**8  # per set (training, held-out, self): 1.6 GB of float64 points
MAX_TEMPERATURE = 1e6

# The built-in truth: a bulk of three overlapping components and a long tail of
# two rare (3% and 2%), far-away components.  Collapse erodes the tail first.
DEFAULT_TRUTH_WEIGHTS = (0.45, 0.30, 0.20, 0.03, 0.02)
DEFAULT_TRUTH_MEANS = ((0.0, 0.0), (3.0, 1.0), (-1.5, 2.5), (9.0, -6.0), (-8.0, -7.0))
DEFAULT_TRUTH_COVARIANCES = (
    ((1.0, 0.3), (0.3, 0.8)),
    ((0.6, -0.2), (-0.2, 1.2)),
    ((0.9, 0.0), (0.0, 0.5)),
    ((0.5, 0.1), (0.1, 0.4)),
    ((0.4, -0.1), (-0.1, 0.6)),
)
_TRUTH_KEYS = {"weights": "truth_weights", "means": "truth_means", "covariances": "truth_covariances"}


class FilterExhaustedError(ExperimentError, RuntimeError):
    """The filter accepted fewer than the target count within the candidate cap.

    An :class:`ExperimentError` (the CLI prints its one line, exit 2) and a
    ``RuntimeError`` (what library callers caught before the registry).
    """


@dataclass(frozen=True)
class GMMConfig:
    """Parameters of the Gaussian-mixture experiment (TOML table ``[gmm]``, truth in ``[gmm.truth]``).

    Attributes
    ----------
    components : int
        Number of components K fitted by EM.
    samples : int
        Training-set size n per generation.
    heldout : int
        Size of the held-out real set drawn from the truth (``real_nll``, ``kl``).
    tail_heldout : int
        Size of the held-out set drawn from the tail components only (``tail_nll``).
    self_samples : int
        Size of the fresh sample from the model itself (``self_nll``).
    tail_weight : float
        Truth components with weight <= this form the long tail.  A truth
        with no such component (e.g. one Gaussian) has no tail: ``tail_nll``
        is NaN and the grid says so once.
    reg_covar, tol, max_iter : float, float, int
        EM settings (scikit-learn's conventions).
    truth_weights, truth_means, truth_covariances : tuple
        The true mixture (default: the built-in five-component truth).
    schedule : {"constant", "linear", "geometric"}
        Training-set size per generation: n, n (1 + growth g) or n growth^g.
    growth : float
        Rate of the ``linear`` schedule or factor of the ``geometric`` one.
    sample_temperature : float
        Synthetic points are drawn from N(mu_k, temperature * Sigma_k), at most 1e6.
    sample_truncation : float
        Likelihood truncation in [0, 1): the least likely fraction of candidate
        samples (under the model) is dropped, i.e. synthetic data come from the
        model's high-density region.
    filter : {"none", "quality", "verifier"}
        Filtering of synthetic points before they train (see README).
    quality_quantile : float
        ``quality`` keeps a point when its true density is at least this
        quantile of the true density under the truth itself.
    verifier_c : float
        ``verifier`` accepts x with probability min(1, p_true(x) / (c p_model(x))).
        The accepted density is proportional to min(p_model, p_true / c): with
        c near 1 the thinner tail wins and the verifier erodes the tail; it
        corrects toward the truth once c p_model >= p_true (c >~ 10 on the
        default truth).
    verifier_noise : float
        Standard deviation of the log-normal noise on p_true seen by the verifier.
    """

    components: int = 5
    samples: int = 1000
    heldout: int = 5000
    tail_heldout: int = 1000
    self_samples: int = 2000
    tail_weight: float = 0.03
    reg_covar: float = 1e-6
    tol: float = 1e-3
    max_iter: int = 100
    truth_weights: tuple = DEFAULT_TRUTH_WEIGHTS
    truth_means: tuple = DEFAULT_TRUTH_MEANS
    truth_covariances: tuple = DEFAULT_TRUTH_COVARIANCES
    schedule: str = "constant"
    growth: float = 1.0
    sample_temperature: float = 1.0
    sample_truncation: float = 0.0
    filter: str = "none"
    quality_quantile: float = 0.05
    verifier_c: float = 10.0
    verifier_noise: float = 0.0

    UNSWEEPABLE = ("truth_weights", "truth_means", "truth_covariances")

    def __post_init__(self):
        v.check_schedule("gmm", self.schedule, self.growth)
        v.positive_float("gmm.sample_temperature", self.sample_temperature, MAX_TEMPERATURE)
        v.fraction("gmm.sample_truncation", self.sample_truncation)
        require(self.sample_truncation <= 1 - 1e-6,
                f"`gmm.sample_truncation` must be at most 0.999999 (it draws 1 / (1 - q) candidates per point), "
                f"got {self.sample_truncation!r}")
        v.one_of("gmm.filter", self.filter, GMM_FILTERS)
        v.fraction("gmm.quality_quantile", self.quality_quantile)
        v.positive_float("gmm.verifier_c", self.verifier_c, 1e12)
        v.non_negative_float("gmm.verifier_noise", self.verifier_noise, 1e3)
        for name in ("components", "samples", "heldout", "tail_heldout", "self_samples"):
            v.positive_int(f"gmm.{name}", getattr(self, name), MAX_POINTS)
        v.positive_int("gmm.max_iter", self.max_iter, 10**6)
        v.non_negative_float("gmm.reg_covar", self.reg_covar, _gmm.MAX_COORDINATE ** 2)
        v.positive_float("gmm.tol", self.tol)
        v.positive_float("gmm.tail_weight", self.tail_weight, 1.0)
        require(self.components <= self.samples,
                f"`gmm.components` ({self.components}) must not exceed `gmm.samples` ({self.samples})")
        _gmm.validate_truth(self.truth_weights, self.truth_means, self.truth_covariances)

    @classmethod
    def from_table(cls, table):
        """The configuration of a TOML ``[gmm]`` table, its truth in the sub-table ``[gmm.truth]``."""
        table = dict(table)
        truth = table.pop("truth", None)
        v.check_keys(table, set(cls.__dataclass_fields__) - set(_TRUTH_KEYS.values()), "gmm.")
        config = cls(**{k: v.as_tuple(x) for k, x in table.items()})
        if truth is None:
            return config
        require(isinstance(truth, dict), "`gmm.truth` must be a table with weights, means and covariances")
        v.check_keys(truth, set(_TRUTH_KEYS), "gmm.truth.")
        missing = set(_TRUTH_KEYS) - set(truth)
        require(not missing, f"`gmm.truth` needs weights, means and covariances; missing {', '.join(sorted(missing))}")
        return replace(config, **{_TRUTH_KEYS[k]: v.as_tuple(x) for k, x in truth.items()})

    def check_grid(self, grid):
        """Every generation of the grid has at least K training points."""
        sizes = [scheduled_size(self.samples, self.schedule, self.growth, g) for g in range(grid.generations)]
        smallest = int(np.argmin(sizes))
        require(sizes[smallest] >= self.components,
                f"`gmm.schedule` {self.schedule} with `gmm.growth` {self.growth} gives {sizes[smallest]} training "
                f"points at generation {smallest}, fewer than `gmm.components` ({self.components}); "
                "raise gmm.growth or run fewer generations")
        largest = max(sizes)
        require(largest <= MAX_POINTS, f"`gmm.schedule` {self.schedule} with `gmm.growth` {self.growth} asks for "
                f"{largest:,} training points, more than {MAX_POINTS:,}; lower gmm.growth or run fewer generations")

    def truth(self):
        """The truth as ``(weights, means, covariances)`` float64 arrays."""
        return _gmm.validate_truth(self.truth_weights, self.truth_means, self.truth_covariances)

    def tail_components(self):
        """Indices of the truth's tail components (possibly none), int64 array."""
        return np.flatnonzero(np.asarray(self.truth_weights) <= self.tail_weight)


@dataclass(frozen=True)
class GMMHeldout:
    """Held-out evaluation sets of one seed.

    Attributes
    ----------
    real : ndarray, shape (heldout, 2)
    tail : ndarray, shape (tail_heldout, 2)
    real_log_p_true : ndarray, shape (heldout,)
        Truth log-density of ``real`` (for the KL estimate), computed once.
    """

    real: np.ndarray
    tail: np.ndarray
    real_log_p_true: np.ndarray


class GMMExperiment:
    """The GMM experiment for :func:`hoi_fast.experiment.run_cell`.

    Parameters
    ----------
    config : GMMConfig
    """

    name = "gmm"
    config_class = GMMConfig

    def __init__(self, config):
        self.config = config
        self.truth = config.truth()
        tail = config.tail_components()
        w, mu, cov = self.truth
        # a truth without a tail component (e.g. a single Gaussian) has no tail_nll
        self.tail_truth = (w[tail] / w[tail].sum(), mu[tail].copy(), cov[tail].copy()) if tail.size else None
        # Computed only when used, so the default configuration costs nothing.
        self.quality_threshold = quality_threshold(self.truth, config.quality_quantile) \
            if config.filter == "quality" else None

    def train_size(self, generation):
        """Training-set size of ``generation``; ValueError if it is below ``gmm.components``."""
        c = self.config
        n = scheduled_size(c.samples, c.schedule, c.growth, generation)
        if n < c.components:
            raise ValueError(
                f"`gmm.schedule` = {c.schedule!r} with `gmm.growth` = {c.growth} gives {n} training "
                f"points at generation {generation}, fewer than `gmm.components` ({c.components}); "
                "raise gmm.growth (or gmm.samples) or run fewer generations"
            )
        return n

    def real_pool(self, rng):
        return _gmm._sample(*self.truth, self.config.samples, rng)[0]

    def notes(self):
        """One-line remarks the grid prints once before running."""
        if self.tail_truth is not None:
            return []
        return [f"gmm: no truth component has weight <= gmm.tail_weight ({self.config.tail_weight}), "
                "so the truth has no tail: tail_nll is not computed (stored as NaN)"]

    def heldout(self, rng, pool):
        real = _gmm._sample(*self.truth, self.config.heldout, rng)[0]
        tail = (_gmm._sample(*self.tail_truth, self.config.tail_heldout, rng)[0] if self.tail_truth is not None
                else np.empty((0, 2)))
        return GMMHeldout(real, tail, _k.log_density(real, *self.truth))

    def real_subset(self, pool, m, rng):
        return pool[rng.choice(pool.shape[0], size=m, replace=False)]

    def fresh_real(self, m, rng):
        return _gmm._sample(*self.truth, m, rng)[0]

    def fit(self, parts, rng):
        X = parts[0] if len(parts) == 1 else np.concatenate(parts)
        c = self.config
        return _gmm._fit(X, c.components, rng, None, c.max_iter, c.tol, c.reg_covar, final_score=False)

    def sample(self, model, n, rng):
        return _gmm._sample(model.weights, model.means, model.covariances, n, rng)[0]

    def synthesize(self, model, n, rng, first_model):
        """``n`` synthetic points from ``model`` after sampling bias and filter.

        Semantics (temperature, truncation, ``quality`` and ``verifier``
        filters, batching, the candidate cap and the order of random draws)
        are documented in the module docstring.  ``first_model`` is not used:
        both filters judge by the true density.

        Parameters
        ----------
        model : FitResult or GMMParams
            The previous generation's model (``weights``, ``means``,
            ``covariances`` attributes).
        n : int
            Number of synthetic points (>= 0).
        rng : numpy.random.Generator
            The generation's stream.
        first_model : object
            Generation 0's model (unused).

        Returns
        -------
        data : ndarray, shape (n, 2), float64
        acceptance : float
            ``n / judged`` with a filter, 1.0 without (NaN if ``n == 0``).

        Raises
        ------
        FilterExhaustedError
            If the filter accepts fewer than ``n`` of
            ``MAX_CANDIDATES_PER_POINT * n`` candidates.
        """
        c = self.config
        if n == 0:
            return np.empty((0, 2)), np.nan
        if c.filter == "none":
            if c.sample_temperature == 1.0 and c.sample_truncation == 0.0:
                return self.sample(model, n, rng), 1.0  # the default path: plain sampling
            return self.candidates(model, n, rng), 1.0
        return self._filtered(model, n, rng)

    def candidates(self, model, m, rng):
        """``m`` candidate points after the sampling bias (temperature, truncation).

        Returns
        -------
        ndarray, shape (m, 2), float64
        """
        c = self.config
        w, mu, cov = model.weights, model.means, model.covariances
        tempered = cov * c.sample_temperature if c.sample_temperature != 1.0 else cov
        if c.sample_truncation == 0.0:
            return _gmm._sample(w, mu, tempered, m, rng)[0]
        X = _gmm._sample(w, mu, tempered, truncation_draws(m, c.sample_truncation), rng)[0]
        return X[top_indices(_k.log_density(X, w, mu, cov), m)]

    def _filtered(self, model, n, rng):
        """Draw and judge candidates in batches until ``n`` are accepted (module docstring)."""
        cap = MAX_CANDIDATES_PER_POINT * n
        max_batch = max(1, int(MAX_DRAWS * (1.0 - self.config.sample_truncation)))
        kept, accepted, judged, batch = [], 0, 0, n
        while True:
            X = self.candidates(model, batch, rng)
            hits = np.flatnonzero(self.judge(model, X, rng))
            need = n - accepted
            if hits.size >= need:
                kept.append(X[hits[:need]])
                judged += int(hits[need - 1]) + 1
                break
            kept.append(X[hits])
            accepted += hits.size
            judged += batch
            need = n - accepted
            batch = min(math.ceil(1.1 * need * judged / max(accepted, 1)), cap - judged, max_batch)
            if batch <= 0:
                raise FilterExhaustedError(
                    f"the `gmm.filter` {self.config.filter!r} accepted only {accepted} of {judged} "
                    f"candidates, short of the {n} synthetic points needed (cap "
                    f"{MAX_CANDIDATES_PER_POINT} candidates per point); relax the filter "
                    "(lower gmm.quality_quantile or gmm.verifier_c) or the sampling bias"
                )
        X = kept[0] if len(kept) == 1 else np.concatenate(kept)
        return X, n / judged

    def judge(self, model, X, rng):
        """Filter decisions for candidates ``X`` (m, 2): bool array (m,), True = accept.

        ``quality`` draws nothing; ``verifier`` draws ``Z`` (m,) if
        ``verifier_noise > 0`` and then ``U`` (m,) from ``rng``.
        """
        c = self.config
        log_true = _k.log_density(X, *self.truth)
        if c.filter == "quality":
            return log_true >= self.quality_threshold
        log_model = _k.log_density(X, model.weights, model.means, model.covariances)
        log_ratio = log_true - log_model - math.log(c.verifier_c)
        if c.verifier_noise > 0.0:
            log_ratio += c.verifier_noise * rng.standard_normal(X.shape[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(rng.random(X.shape[0])) < log_ratio  # NaN (0/0) compares False: reject

    def subsample(self, parts, n, rng):
        X = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return [X[rng.choice(X.shape[0], size=n, replace=False)]]

    def metrics(self, model, parts, heldout, rng):
        w, mu, cov = model.weights, model.means, model.covariances
        own = _gmm._sample(w, mu, cov, self.config.self_samples, rng)[0]
        log_p_real = _k.log_density(heldout.real, w, mu, cov)
        order = np.argsort(-w, kind="stable")
        return {
            "real_nll": -log_p_real.mean(),
            "tail_nll": -_k.log_density(heldout.tail, w, mu, cov).mean() if heldout.tail.size else np.nan,
            "self_nll": -_k.log_density(own, w, mu, cov).mean(),
            "kl": float(np.mean(heldout.real_log_p_true - log_p_real)),
            "weights": w[order],
            "means": mu[order],
            "covariances": cov[order],
            "n_iter": float(model.n_iter),
            "converged": float(model.converged),
            "n_resets": float(model.n_resets),
        }

    def metric_specs(self):
        no_tail = self.tail_truth is None
        return [
            MetricSpec("real_nll", "nats", "mean negative log-likelihood of held-out real points", role="real"),
            MetricSpec("tail_nll", "nats", "mean negative log-likelihood of held-out tail-component points"
                       + (" (NaN: the truth has no component with weight <= tail_weight)" if no_tail else ""),
                       role="tail", nan_ok=no_tail),
            MetricSpec("self_nll", "nats", "mean negative log-likelihood of fresh samples from the model itself",
                       role="self"),
            MetricSpec("kl", "nats", "Monte-Carlo KL(truth || model) on the held-out real points"),
            MetricSpec("weights", "1", "fitted weights, sorted by descending weight", ("component",)),
            MetricSpec("means", "1", "fitted means, components sorted by descending weight",
                       ("component", "axis")),
            MetricSpec("covariances", "1", "fitted covariances, components sorted by descending weight",
                       ("component", "axis", "axis2")),
            MetricSpec("n_iter", "1", "EM iterations"),
            MetricSpec("converged", "1", "1 if EM converged within max_iter, else 0"),
            MetricSpec("n_resets", "1", "degenerate components re-seeded during the fit"),
        ]

    def coords(self):
        return {
            "component": np.arange(self.config.components),
            "axis": np.array(["x", "y"]),
            "axis2": np.array(["x", "y"]),
        }


def truncation_draws(m, q):
    """Raw draws ``M = ceil(m / (1 - q))`` that likelihood truncation ``q`` reduces to ``m``.

    The quotient is rounded to 9 decimals first so that e.g. ``100 / (1 - 0.2)``
    gives 125, not 126 from the float ``124.99999999999999`` or ``125.00000000000001``.
    """
    return int(math.ceil(round(m / (1.0 - q), 9)))


def top_indices(log_p, m):
    """Indices of the ``m`` largest ``log_p``, in ascending index order.

    Ties keep the lower index (stable sort), so the choice is deterministic.
    """
    return np.sort(np.argsort(-log_p, kind="stable")[:m])


def quality_threshold(truth, quantile):
    """The ``quantile``-quantile of ``log p_true(Y)``, Y drawn from the truth.

    ``QUALITY_REFERENCE_SIZE`` points from a generator seeded with
    ``QUALITY_REFERENCE_SEED`` (the same for every cell: a property of the
    truth); ``numpy.quantile`` with its default linear interpolation.
    """
    rng = np.random.default_rng(QUALITY_REFERENCE_SEED)
    Y = _gmm._sample(*truth, QUALITY_REFERENCE_SIZE, rng)[0]
    return float(np.quantile(_k.log_density(Y, *truth), quantile))
