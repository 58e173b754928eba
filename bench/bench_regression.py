"""Speed of the ``regression`` experiment (d = 10, T = 1000): one generation step against a NumPy/SciPy peer.

Run with::

    python -m pytest bench/bench_regression.py --benchmark-enable -p no:cacheprovider -s

* ``test_generation_step[...]``: the experiment's share of one generation, as
  :func:`hoi_fast.experiment.run_cell` calls it: build the training set (real
  rows of R, synthetic labels on the design), least squares, every metric.
  Goal: <= 100 us.
* ``test_peer_step``: the same generation written straight in NumPy/SciPy
  (labels ``X w + noise`` on the design rows, ``np.linalg.lstsq`` on the
  stacked rows, ``scipy.stats.norm.logpdf`` on the held-out rows, on
  ``self_samples`` drawn rows and on the training rows).  Its time and the
  ratio peer / ours go to ``extra_info``.
* ``test_run_cell_generation[...]``: per generation of a 21-generation cell
  through ``run_cell`` (loop bookkeeping included).

Everything runs on one BLAS thread (threadpoolctl).
"""

# first: it limits BLAS to one thread before NumPy loads it
from _step_bench import CASES, _enabled, setting, time_generation_step, time_peer, time_run_cell_generation  # noqa: F401

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from hoi_fast.experiment import real_count  # noqa: E402
from hoi_fast.experiments.regression import RegressionConfig, RegressionExperiment  # noqa: E402

KEY = 5
EXPERIMENT = RegressionExperiment(RegressionConfig())  # d = 10, T = 1000, held-out 5000, self 2000
_OURS = {}


@pytest.mark.parametrize("case", list(CASES))
def test_generation_step(benchmark, case):
    time_generation_step(benchmark, "regression", EXPERIMENT, KEY, case, _OURS, features=10, samples=1000)


def peer_step(X, y, w_star, w_prev, heldout_X, heldout_y, rng, alpha, noise, self_samples):
    """One generation in straight NumPy/SciPy: the obvious code."""
    T = X.shape[0]
    sd = math.sqrt(noise)
    m = real_count(alpha, T)
    real = rng.choice(T, m, replace=False)
    rows = rng.choice(T, T - m, replace=False)
    X_train = np.concatenate([X[real], X[rows]])
    y_train = np.concatenate([y[real], X[rows] @ w_prev + sd * rng.standard_normal(T - m)])
    w = np.linalg.lstsq(X_train, y_train, rcond=None)[0]
    own_rows = rng.choice(T, self_samples)
    own_y = X[own_rows] @ w + sd * rng.standard_normal(self_samples)
    return {
        "test_mse": np.sum((w - w_star) ** 2),
        "real_nll": -stats.norm.logpdf(heldout_y, heldout_X @ w, sd).mean(),
        "self_nll": -stats.norm.logpdf(own_y, X[own_rows] @ w, sd).mean(),
        "train_nll": -stats.norm.logpdf(y_train, X_train @ w, sd).mean(),
        "weights": w,
    }


def test_peer_step(benchmark):
    experiment, streams, first = setting(EXPERIMENT, KEY)
    c = experiment.config
    rng = np.random.default_rng(2)
    design = first.pool.design
    y = design.X @ design.w_star + first.pool.resid
    heldout_y = first.heldout.X @ design.w_star + first.heldout.noise
    w_prev = design.w_star + first.model.delta
    args = (design.X, y, design.w_star, w_prev, first.heldout.X, heldout_y, rng, 0.9, c.noise, c.self_samples)
    peer = peer_step(*args)
    assert peer["test_mse"] < 10 * first.row["test_mse"] + 0.1  # the same problem
    time_peer(benchmark, lambda: peer_step(*args), experiment, streams, first, rng, _OURS, rounds=50,
              features=10, samples=1000)


@pytest.mark.parametrize("case", ["mix-0.9", "mix-1.0"])
def test_run_cell_generation(benchmark, case):
    time_run_cell_generation(benchmark, EXPERIMENT, KEY, case)
