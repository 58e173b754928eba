"""Speed of the ``gaussian`` experiment (d = 10, n = 1000): one generation step against a NumPy/SciPy peer.

Run with::

    python -m pytest bench/bench_gaussian.py --benchmark-enable -p no:cacheprovider -s

* ``test_generation_step[...]``: the experiment's share of one generation, as
  :func:`hoi_fast.experiment.run_cell` calls it: build the training set
  (real rows of R, synthetic points), fit, every metric.  Goal: <= 100 us.
* ``test_peer_step``: the same generation written straight in NumPy/SciPy
  (points drawn with ``Generator.multivariate_normal``, ``np.cov``,
  ``scipy.stats.multivariate_normal.logpdf`` on the held-out points and on
  ``self_samples`` drawn points, ``scipy.linalg.sqrtm`` for W2).  Its time and
  the ratio peer / ours go to ``extra_info`` of the ``mix-0.9`` case.
* ``test_run_cell_generation[...]``: a whole cell of 21 generations through
  ``run_cell`` minus a 1-generation cell, per generation: the above plus the
  loop's own bookkeeping (a random stream per generation, checks of every
  metric row).

Everything runs on one BLAS thread (threadpoolctl).
"""

# first: it limits BLAS to one thread before NumPy loads it
from _step_bench import CASES, _enabled, setting, time_generation_step, time_peer, time_run_cell_generation  # noqa: F401

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.linalg  # noqa: E402
from scipy import stats  # noqa: E402

from hoi_fast.experiment import real_count  # noqa: E402
from hoi_fast.experiments.gaussian import GaussianConfig, GaussianExperiment  # noqa: E402

KEY = 3
EXPERIMENT = GaussianExperiment(GaussianConfig())  # d = 10, n = 1000, held-out 5000 + 1000, self 2000
_OURS = {}


@pytest.mark.parametrize("case", list(CASES))
def test_generation_step(benchmark, case):
    time_generation_step(benchmark, "gaussian", EXPERIMENT, KEY, case, _OURS, dim=10, samples=1000)


def peer_step(pool, heldout, tail, mean, cov, rng, alpha, self_samples, truth_mean, truth_cov):
    """One generation in straight NumPy/SciPy: the obvious code."""
    n, d = pool.shape
    m = real_count(alpha, n)
    real = pool[rng.choice(n, m, replace=False)]
    synthetic = rng.multivariate_normal(mean, cov, n - m)
    X = np.concatenate([real, synthetic])
    mu, sigma = X.mean(axis=0), np.cov(X.T, ddof=0)
    model = stats.multivariate_normal(mu, sigma)
    own = model.rvs(self_samples, random_state=rng)
    precision = np.linalg.inv(sigma)
    delta = mu - truth_mean
    logdet, logdet0 = np.linalg.slogdet(sigma)[1], np.linalg.slogdet(truth_cov)[1]
    root = scipy.linalg.sqrtm(truth_cov)
    return {
        "real_nll": -model.logpdf(heldout).mean(),
        "tail_nll": -model.logpdf(tail).mean(),
        "self_nll": -model.logpdf(own).mean(),
        "kl": 0.5 * (np.trace(precision @ truth_cov) + delta @ precision @ delta - d + logdet - logdet0),
        "w2": delta @ delta + np.trace(sigma) + np.trace(truth_cov)
        - 2 * np.trace(scipy.linalg.sqrtm(root @ sigma @ root)).real,
        "mean_error": delta @ delta,
        "log_det_ratio": logdet - logdet0,
        "trace_ratio": np.trace(sigma) / np.trace(truth_cov),
    }


def test_peer_step(benchmark):
    experiment, streams, first = setting(EXPERIMENT, KEY)
    c = experiment.config
    rng = np.random.default_rng(2)
    pool = first.pool.points()
    args = (pool, first.heldout.real, first.heldout.tail, first.model.mean, first.model.covariance, rng, 0.9,
            c.self_samples, experiment.truth_mean, experiment.truth_cov)
    ours = experiment.metrics(first.model, [], first.heldout, rng)
    peer = peer_step(*args)
    assert math.isclose(peer["trace_ratio"], ours["trace_ratio"], rel_tol=0.2)  # same problem
    time_peer(benchmark, lambda: peer_step(*args), experiment, streams, first, rng, _OURS, rounds=30,
              dim=10, samples=1000)


@pytest.mark.parametrize("case", ["mix-0.9", "mix-1.0"])
def test_run_cell_generation(benchmark, case):
    time_run_cell_generation(benchmark, EXPERIMENT, KEY, case)
