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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hoi_fast import gmm as _gmm
from hoi_fast.experiment import MetricSpec, scheduled_size
from hoi_fast.kernels import gmm as _k


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
    config : hoi_fast.config.GMMConfig
    """

    name = "gmm"

    def __init__(self, config):
        self.config = config
        self.truth = config.truth()
        tail = config.tail_components()
        w, mu, cov = self.truth
        self.tail_truth = (w[tail] / w[tail].sum(), mu[tail].copy(), cov[tail].copy())

    def train_size(self, generation):
        c = self.config
        return scheduled_size(c.samples, c.schedule, c.growth, generation)

    def real_pool(self, rng):
        return _gmm._sample(*self.truth, self.config.samples, rng)[0]

    def heldout(self, rng):
        real = _gmm._sample(*self.truth, self.config.heldout, rng)[0]
        tail = _gmm._sample(*self.tail_truth, self.config.tail_heldout, rng)[0]
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
        """Plain sampling: this experiment has no sampling bias or filter yet (acceptance 1)."""
        return self.sample(model, n, rng), 1.0

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
            "tail_nll": -_k.log_density(heldout.tail, w, mu, cov).mean(),
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
        return [
            MetricSpec("real_nll", "nats", "mean negative log-likelihood of held-out real points"),
            MetricSpec("tail_nll", "nats", "mean negative log-likelihood of held-out tail-component points"),
            MetricSpec("self_nll", "nats", "mean negative log-likelihood of fresh samples from the model itself"),
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
