"""Public GMM API: parity with scikit-learn, closed forms, validation, determinism."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import reference_gmm as ref
from hoi_fast import gmm

TRUTH = gmm.GMMParams([0.6, 0.4], [[0.0, 0.0], [4.0, 3.0]], [np.eye(2), [[1.0, 0.5], [0.5, 2.0]]])


def random_start(rng, K):
    w = rng.dirichlet(np.full(K, 3.0))
    mu = rng.uniform(-6, 6, size=(K, 2))
    A = rng.normal(size=(K, 2, 2))
    cov = A @ A.transpose(0, 2, 1) + 0.3 * np.eye(2)
    return gmm.GMMParams(w, mu, cov)


@pytest.mark.parametrize("problem", range(40))
def test_parity_with_sklearn_from_the_same_initial_parameters(problem):
    rng = np.random.default_rng(1000 + problem)
    K = int(rng.integers(1, 9))
    n = int(rng.integers(max(K, 50), 1500))
    X = gmm.sample(random_start(rng, K), n, rng)
    init = random_start(rng, K)  # a different mixture: EM has to move
    tol = [1e-3, 1e-5][problem % 2]
    ours = gmm.fit(X, K, init=init, max_iter=200, tol=tol, reg_covar=1e-6)
    sk = GaussianMixture(K, weights_init=init.weights, means_init=init.means,
                         precisions_init=np.linalg.inv(init.covariances),
                         max_iter=200, tol=tol, reg_covar=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X)
    assert ours.n_resets == 0
    assert (ours.n_iter, ours.converged) == (sk.n_iter_, sk.converged_)
    assert ours.lower_bound == pytest.approx(sk.lower_bound_, rel=1e-8)
    assert ours.log_likelihood == pytest.approx(sk.score(X), rel=1e-8)
    np.testing.assert_allclose(ours.log_likelihood_trace, sk.lower_bounds_, rtol=1e-8)
    np.testing.assert_allclose(ours.weights, sk.weights_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.means, sk.means_, rtol=1e-6, atol=1e-7)


def test_one_component_fit_is_the_mle():
    X = gmm.sample(TRUTH, 500, np.random.default_rng(3))
    result = gmm.fit(X, 1, seed=0, reg_covar=0.0)
    np.testing.assert_allclose(result.means[0], X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result.covariances[0], np.cov(X.T, bias=True), rtol=1e-10)
    assert result.weights[0] == 1.0 and result.converged and result.n_iter == 2
    assert result.log_likelihood == pytest.approx(
        ref.log_density(X, result.weights, result.means, result.covariances).mean(), rel=1e-13)


def test_kmeans_start_recovers_a_well_separated_truth():
    X = gmm.sample(TRUTH, 4000, np.random.default_rng(8))
    result = gmm.fit(X, 2, seed=np.random.default_rng(1))
    order = np.argsort(-result.weights)
    np.testing.assert_allclose(result.weights[order], TRUTH.weights, atol=0.03)
    np.testing.assert_allclose(result.means[order], TRUTH.means, atol=0.1)
    assert result.converged and result.n_resets == 0
    assert np.all(np.diff(result.log_likelihood_trace) >= -1e-12)


def test_fit_is_deterministic_given_the_seed():
    X = gmm.sample(TRUTH, 1000, 5)
    a, b = gmm.fit(X, 3, seed=11), gmm.fit(X, 3, seed=np.random.default_rng(11))
    for name in ("weights", "means", "covariances", "log_likelihood_trace"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert a.log_likelihood == b.log_likelihood


def test_sample_and_log_density_take_params_or_tuples():
    X, labels = gmm.sample(TRUTH, 1000, np.random.default_rng(2), return_labels=True)
    assert X.shape == (1000, 2) and X.dtype == np.float64 and labels.dtype == np.int64
    assert set(np.unique(labels)) == {0, 1}
    np.testing.assert_array_equal(X, gmm.sample(tuple(vars(TRUTH).values()), 1000, 2))
    np.testing.assert_allclose(gmm.log_density(TRUTH, X), ref.log_density(X, *vars(TRUTH).values()),
                               rtol=1e-13)
    assert gmm.sample(TRUTH, 0, 1).shape == (0, 2)


def test_fit_result_params_round_trip():
    result = gmm.fit(gmm.sample(TRUTH, 300, 1), 2, seed=0)
    assert isinstance(result.params, gmm.GMMParams) and result.params.n_components == 2
    assert not result.params.weights.flags.writeable


X_OK = gmm.sample(TRUTH, 20, 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(X=np.zeros((5, 3))), r"`X` must have shape \(n_points, 2\)"),
        (dict(X=np.zeros(10)), r"`X` must have shape \(n_points, 2\)"),
        (dict(X=np.array([[0.0, np.nan]] * 5)), r"`X` must not contain NaN or inf"),
        (dict(X=np.array([[0.0, np.inf]] * 5)), r"`X` must not contain NaN or inf"),
        (dict(X=[["a", "b"]]), r"`X` must be a numeric array"),
        (dict(n_components=0), r"`n_components` must be an integer >= 1"),
        (dict(n_components=2.5), r"`n_components` must be an integer >= 1"),
        (dict(n_components=21), r"`n_components` \(21\) must not exceed the number of points in `X` \(20\)"),
        (dict(max_iter=0), r"`max_iter` must be an integer >= 1"),
        (dict(tol=0.0), r"`tol` must be a positive finite number"),
        (dict(tol=-1e-3), r"`tol` must be a positive finite number"),
        (dict(tol=np.nan), r"`tol` must be a positive finite number"),
        (dict(reg_covar=-1e-6), r"`reg_covar` must be a finite number >= 0"),
        (dict(seed="x"), r"`seed` must be a numpy Generator"),
        (dict(init=(1, 2)), r"`init` must be a GMMParams"),
        (dict(init=([0.5, 0.6], [[0, 0], [1, 1]], [np.eye(2)] * 2)), r"`init.weights` must sum to 1"),
        (dict(init=([1.0], [[0, 0]], [np.eye(2)])), r"`init` has 1 components but `n_components` is 2"),
        (dict(init=([0.5, 0.5], [[0, 0], [1, 1]], [np.eye(2), -np.eye(2)])),
         r"`init.covariances\[1\]` must be positive definite"),
    ],
)
def test_fit_rejects_bad_input(kwargs, match):
    args = dict(X=X_OK, n_components=2)
    args.update(kwargs)
    X, K = args.pop("X"), args.pop("n_components")
    with pytest.raises(ValueError, match=match):
        gmm.fit(X, K, **args)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: gmm.sample(TRUTH, -1, 0), r"`n` must be an integer >= 0"),
        (lambda: gmm.sample(TRUTH, 5, "seed"), r"`rng` must be a numpy Generator"),
        (lambda: gmm.sample(([1.0], [[0, 0]], [[[1, 2], [0, 1]]]), 5, 0), r"`params.covariances\[0\]` must be symmetric"),
        (lambda: gmm.sample(([-0.5, 1.5], [[0, 0], [1, 1]], [np.eye(2)] * 2), 5, 0), r"`params.weights` must all be positive"),
        (lambda: gmm.log_density(TRUTH, np.zeros((3, 1))), r"`X` must have shape \(n_points, 2\)"),
        (lambda: gmm.log_density(([1.0], [[0, 0, 0]], [np.eye(2)]), np.zeros((3, 2))), r"`params.means` must have shape \(1, 2\)"),
        (lambda: gmm.GMMParams([1.0], [[0, np.nan]], [np.eye(2)]), r"`params.means` must be finite"),
    ],
)
def test_sample_log_density_and_params_reject_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
