"""A user's own experiment: a kernel density estimator refitted on its own samples.

This module is a complete plug-in.  Nothing in ``hoi_fast`` names it; the grid
imports it by its import string::

    PYTHONPATH=examples python -m hoi_fast.grid --experiment kde_experiment:KDEExperiment \
        --alphas 0,0.5,0.9,1 --seeds 20 --generations 10 --sweep kde.bandwidth=0.2,0.5 --out kde.h5
    python -m hoi_fast.report kde.h5

Truth: a 2-D mixture, 95% N(0, I) and a rare, far component, 5% N((6, 6), 0.5 I)
(the tail).  Model: a Gaussian kernel density estimate with a fixed bandwidth h
(the knob Kazdan, Schaeffer et al. 2024 vary): p(x) = mean_i N(x | x_i, h^2 I)
over the n training points.  Sampling from it is exact: pick a training point
uniformly, add N(0, h^2 I).  So every generation smooths the data by h while
losing points at random — the variance grows by h^2 per generation when the
model trains on itself only, and the rare component thins out.

Metrics (nats per point; ``role`` tells the report what to draw):
``real_nll`` (held-out truth points, role ``real``), ``self_nll`` (fresh
samples of the model itself, role ``self``), ``tail_nll`` (held-out points of
the rare component, role ``tail``) and ``spread`` (trace of the training
set's covariance; no role).
"""

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from hoi_fast._validate import positive_float, positive_int, require
from hoi_fast.experiment import ArrayExperiment, MetricSpec

TAIL_WEIGHT = 0.05
TAIL_MEAN = np.array([6.0, 6.0])
TAIL_STD = np.sqrt(0.5)


@dataclass(frozen=True)
class KDEConfig:
    """Settings of the KDE experiment (TOML table ``[kde]``; every field sweepable).

    Attributes
    ----------
    samples : int
        Training points n per generation.
    heldout, tail_heldout, self_samples : int
        Sizes of the held-out real set, the held-out tail set and the model's own sample.
    bandwidth : float
        Kernel standard deviation h, in data units.
    """

    samples: int = 500
    heldout: int = 1000
    tail_heldout: int = 200
    self_samples: int = 500
    bandwidth: float = 0.3

    def __post_init__(self):
        for name in ("samples", "heldout", "tail_heldout", "self_samples"):
            positive_int(f"kde.{name}", getattr(self, name), 10**6)
        require(self.samples >= 2, f"`kde.samples` must be at least 2 (a spread needs two points), got {self.samples}")
        positive_float("kde.bandwidth", self.bandwidth, 1e3)


def truth_sample(n, rng, tail_only=False):
    """``n`` points of the truth (or of its rare component only), shape (n, 2)."""
    tail = np.ones(n, bool) if tail_only else rng.random(n) < TAIL_WEIGHT
    z = rng.standard_normal((n, 2))
    return np.where(tail[:, None], TAIL_MEAN + TAIL_STD * z, z)


def kde_log_density(centres, h, X):
    """log of mean_i N(x | centres_i, h^2 I) at every row of ``X``, shape (len(X),)."""
    d2 = ((X[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    return logsumexp(-0.5 * d2 / h**2, axis=1) - np.log(len(centres)) - np.log(2 * np.pi * h**2)


class KDEExperiment(ArrayExperiment):
    """Kernel density estimation in the shared loop (items are rows of an (n, 2) array)."""

    name = "kde"
    config_class = KDEConfig

    def real_pool(self, rng):
        return truth_sample(self.config.samples, rng)

    def heldout(self, rng, pool):
        return truth_sample(self.config.heldout, rng), truth_sample(self.config.tail_heldout, rng, tail_only=True)

    def fresh_real(self, m, rng):
        return truth_sample(m, rng)

    def fit(self, parts, rng):
        return np.concatenate(parts)  # a KDE is its training points (and the bandwidth)

    def sample(self, model, n, rng):
        picks = model[rng.integers(0, len(model), size=n)]
        return picks + self.config.bandwidth * rng.standard_normal((n, 2))

    def metrics(self, model, parts, heldout, rng):
        real, tail = heldout
        h = self.config.bandwidth
        own = self.sample(model, self.config.self_samples, rng)
        return {
            "real_nll": -kde_log_density(model, h, real).mean(),
            "self_nll": -kde_log_density(model, h, own).mean(),
            "tail_nll": -kde_log_density(model, h, tail).mean(),
            "spread": float(np.trace(np.cov(model.T))),
        }

    def metric_specs(self):
        return [
            MetricSpec("real_nll", "nats", "mean negative log-likelihood of held-out real points", role="real"),
            MetricSpec("self_nll", "nats", "mean negative log-likelihood of the model's own samples", role="self"),
            MetricSpec("tail_nll", "nats", "mean negative log-likelihood of held-out points of the rare component",
                       role="tail"),
            MetricSpec("spread", "1", "trace of the covariance of the training points"),
        ]


if __name__ == "__main__":  # python examples/kde_experiment.py: a few cells by hand, as the grid runs them
    from hoi_fast.experiment import run_cell
    from hoi_fast.experiments import streams

    experiment = KDEExperiment(KDEConfig())
    print("alpha  generation  real_nll  self_nll  tail_nll  spread   (mean of 5 seeds)")
    for alpha in (0.0, 0.5, 1.0):
        cells = [run_cell(experiment, alpha, 6, "mix", streams("kde_experiment:KDEExperiment", 0, s, alpha))
                 for s in range(5)]
        for g in range(6):
            row = [np.mean([c[m][g] for c in cells]) for m in ("real_nll", "self_nll", "tail_nll", "spread")]
            print(f"{alpha:5.2f}  {g:10d}  " + "  ".join(f"{v:8.3f}" for v in row))
