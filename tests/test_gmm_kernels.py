"""GMM kernels against the slow references in tests/reference_gmm.py, plus invariants."""

import numpy as np
import pytest
from scipy import stats

import reference_gmm as ref
from hoi_fast._jit import copy_into, jit
from hoi_fast.kernels import gmm as kg


@jit(cache=False)
def _exp_all(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = kg._exp_nonpos(x[i])
    return out


@jit(cache=False)
def _log_all(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = kg._log_pos(x[i])
    return out


def random_problem(rng, K, n, spread=6.0):
    """Random well-posed mixture and n points drawn from it."""
    w = rng.dirichlet(np.full(K, 3.0))
    mu = rng.uniform(-spread, spread, size=(K, 2))
    A = rng.normal(size=(K, 2, 2))
    cov = A @ A.transpose(0, 2, 1) + 0.2 * np.eye(2)
    X = np.empty((n, 2))
    kg.sample(w, mu, cov, n, rng, X, np.empty(n, np.int64))
    return w, mu, cov, X


def test_copy_into_fills_the_front_of_the_destination_and_leaves_the_rest():
    src, dst = np.arange(5, dtype=np.int64), np.full(8, -1, np.int64)
    copy_into(src, dst)
    np.testing.assert_array_equal(dst, [0, 1, 2, 3, 4, -1, -1, -1])
    x = np.random.default_rng(0).normal(size=7)
    y = np.empty(7)
    copy_into(x, y)
    np.testing.assert_array_equal(x, y)


def test_polynomial_exp_matches_numpy_to_one_ulp():
    x = -np.concatenate([np.random.default_rng(0).uniform(0, 745, 20000),
                         np.random.default_rng(1).uniform(0, 1, 2000), [0.0]])
    ours, exact = _exp_all(x), np.exp(x)
    normal = exact > np.finfo(float).tiny * 4
    assert np.max(np.abs(ours[normal] / exact[normal] - 1)) < 5e-16
    assert np.all(ours[x < -708] == 0.0) and np.all(ours >= 0)
    assert _exp_all(np.array([-np.inf]))[0] == 0.0


def test_polynomial_log_matches_numpy():
    rng = np.random.default_rng(2)
    x = np.concatenate([np.exp(rng.uniform(-700, 700, 20000)), 1 + rng.uniform(-1e-6, 1e-6, 1000),
                        rng.uniform(1, 10, 2000), [1.0, 2.0, 0.5]])
    assert np.max(np.abs(_log_all(x) - np.log(x)) / np.maximum(np.abs(np.log(x)), 1e-300)) < 5e-16


@pytest.mark.parametrize("K, n", [(1, 7), (3, 300), (5, 1000), (8, 513)])
def test_log_density_matches_scipy(K, n):
    w, mu, cov, X = random_problem(np.random.default_rng(K), K, n)
    np.testing.assert_allclose(kg.log_density(X, w, mu, cov), ref.log_density(X, w, mu, cov), rtol=1e-13)


@pytest.mark.parametrize("K, n", [(1, 5), (4, 700), (6, 1000)])
def test_e_step_matches_reference_and_rows_sum_to_one(K, n):
    w, mu, cov, X = random_problem(np.random.default_rng(10 + K), K, n)
    consts = np.empty((K, 6))
    kg.prepare(w, mu, cov, consts)
    resp, lse = kg.e_step(*kg.split_columns(X), consts)
    ref_resp, ref_ll = ref.e_step(X, w, mu, cov)
    np.testing.assert_allclose(resp, ref_resp, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-14)
    assert lse.mean() == pytest.approx(ref_ll, rel=1e-14)


@pytest.mark.parametrize("K, n", [(1, 9), (3, 257), (5, 1000)])
@pytest.mark.parametrize("reg_covar", [0.0, 1e-3])
def test_one_fused_em_iteration_equals_reference_e_then_m_step(K, n, reg_covar):
    w, mu, cov, X = random_problem(np.random.default_rng(20 + K), K, n)
    W, M, C = w.copy(), mu.copy(), cov.copy()
    trace = np.empty(1)
    n_iter, _, lower, resets, _ = kg.em(X, W, M, C, 1, 1e-3, reg_covar, trace, False)
    ref_resp, ref_ll = ref.e_step(X, w, mu, cov)
    rw, rmu, rcov = ref.m_step(X, ref_resp, reg_covar)
    assert (n_iter, resets) == (1, 0)
    assert lower == pytest.approx(ref_ll, rel=1e-14)
    np.testing.assert_allclose(W, rw, rtol=1e-12)
    np.testing.assert_allclose(M, rmu, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(C, rcov, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_em_log_likelihood_never_decreases_and_matches_reference_em(seed):
    rng = np.random.default_rng(100 + seed)
    K = int(rng.integers(2, 7))
    w, mu, cov, X = random_problem(rng, K, 400)
    # start from a perturbed truth so that EM has work to do
    w0 = np.full(K, 1.0 / K)
    mu0 = mu + rng.normal(scale=1.5, size=mu.shape)
    cov0 = np.repeat(np.eye(2)[None] * 2.0, K, axis=0)
    W, M, C = w0.copy(), mu0.copy(), cov0.copy()
    trace = np.empty(60)
    n_iter, converged, lower, resets, final = kg.em(X, W, M, C, 60, 1e-6, 1e-6, trace, True)
    assert resets == 0
    assert np.all(np.diff(trace[:n_iter]) >= -1e-12)
    assert final >= lower - 1e-12
    (rw, rmu, rcov), r_iter, r_conv, r_trace = ref.em(X, w0, mu0, cov0, 60, 1e-6, 1e-6)
    assert (n_iter, converged) == (r_iter, r_conv)
    np.testing.assert_allclose(trace[:n_iter], r_trace, rtol=1e-12)
    np.testing.assert_allclose(M, rmu, rtol=1e-8, atol=1e-9)
    assert final == pytest.approx(ref.log_density(X, W, M, C).mean(), rel=1e-13)


def test_sampling_component_frequencies_pass_chi_square_and_moments_match():
    w = np.array([0.5, 0.3, 0.15, 0.05])
    mu = np.array([[0.0, 0.0], [4.0, 1.0], [-3.0, 2.0], [8.0, -6.0]])
    cov = np.array([[[1.0, 0.3], [0.3, 0.8]], [[0.5, -0.2], [-0.2, 1.2]],
                    [[0.9, 0.0], [0.0, 0.4]], [[0.3, 0.1], [0.1, 0.4]]])
    n = 200_000
    X, labels = np.empty((n, 2)), np.empty(n, np.int64)
    kg.sample(w, mu, cov, n, np.random.default_rng(5), X, labels)
    counts = np.bincount(labels, minlength=4)
    assert stats.chisquare(counts, n * w).pvalue > 1e-3
    # within each component: mean and covariance of the Gaussian (z-tests, 5 sigma)
    for k in range(4):
        Xk = X[labels == k]
        se = np.sqrt(np.diag(cov[k]) / len(Xk))
        assert np.all(np.abs(Xk.mean(axis=0) - mu[k]) < 5 * se)
        np.testing.assert_allclose(np.cov(Xk.T), cov[k], atol=6 * np.sqrt(2 / len(Xk)) * cov[k].max())
    mean, covariance = ref.sample_moments(w, mu, cov)
    np.testing.assert_allclose(X.mean(axis=0), mean, atol=0.03)
    np.testing.assert_allclose(np.cov(X.T), covariance, rtol=0.02)


def test_sampling_is_a_pure_function_of_the_generator_state():
    w, mu, cov, _ = random_problem(np.random.default_rng(3), 3, 1)
    a, b = np.empty((50, 2)), np.empty((50, 2))
    la, lb = np.empty(50, np.int64), np.empty(50, np.int64)
    kg.sample(w, mu, cov, 50, np.random.default_rng(9), a, la)
    kg.sample(w, mu, cov, 50, np.random.default_rng(9), b, lb)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    # the documented draw order: u, z0, z1 per point
    rng = np.random.default_rng(9)
    u, z0, z1 = rng.random(), rng.standard_normal(), rng.standard_normal()
    k = int(np.searchsorted(np.cumsum(w) / w.sum(), u, side="right"))
    L = np.linalg.cholesky(cov[k])
    assert la[0] == k
    np.testing.assert_allclose(a[0], mu[k] + L @ [z0, z1], rtol=1e-14)


def test_kmeans_plusplus_picks_data_points_and_lloyd_labels_are_nearest_centres():
    _, _, _, X = random_problem(np.random.default_rng(4), 4, 500)
    x0, x1 = kg.split_columns(X)
    centres = kg.kmeans_plusplus(x0, x1, 4, np.random.default_rng(1))
    assert all(np.any(np.all(X == c, axis=1)) for c in centres)
    assert np.array_equal(centres, kg.kmeans_plusplus(x0, x1, 4, np.random.default_rng(1)))
    labels = np.empty(500, np.int64)
    kg.lloyd(x0, x1, centres, 100, labels)
    d = ((X[:, None, :] - centres[None]) ** 2).sum(-1)
    assert np.array_equal(labels, d.argmin(axis=1))
    for k in range(4):
        np.testing.assert_allclose(centres[k], X[labels == k].mean(axis=0), rtol=1e-12)


def test_kmeans_init_is_one_m_step_on_hard_labels():
    _, _, _, X = random_problem(np.random.default_rng(6), 3, 300)
    w, mu, cov, resets = kg.kmeans_init(X, 3, np.random.default_rng(2), 1e-6, 100)
    x0, x1 = kg.split_columns(X)
    centres = kg.kmeans_plusplus(x0, x1, 3, np.random.default_rng(2))
    labels = np.empty(300, np.int64)
    kg.lloyd(x0, x1, centres, 100, labels)
    rw, rmu, rcov = ref.m_step(X, np.eye(3)[labels], 1e-6)
    assert resets == 0
    np.testing.assert_allclose(w, rw, rtol=1e-12)
    np.testing.assert_allclose(mu, rmu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cov, rcov, rtol=1e-10)


def test_an_empty_component_is_reseeded_at_the_worst_point_with_the_pooled_covariance():
    w, mu, cov, X = random_problem(np.random.default_rng(7), 2, 300)
    w0 = np.array([0.5, 0.5, 1e-12])
    w0 /= w0.sum()
    mu0 = np.vstack([mu, [[1e3, 1e3]]])  # far away: it gets no responsibility
    cov0 = np.concatenate([cov, np.eye(2)[None]])
    W, M, C = w0.copy(), mu0.copy(), cov0.copy()
    n_iter, converged, lower, resets, final = kg.em(X, W, M, C, 1, 1e-3, 1e-6, np.empty(1), True)
    assert resets == 1 and np.isfinite(final)
    worst = np.argmin(ref.log_density(X, w0, mu0, cov0))
    np.testing.assert_array_equal(M[2], X[worst])
    pooled = np.cov(X.T, bias=True) + 1e-6 * np.eye(2)
    np.testing.assert_allclose(C[2], pooled, rtol=1e-12)
    assert W[2] == pytest.approx(kg.RESEED_NK / (X.shape[0] + kg.RESEED_NK), rel=1e-9)


def test_singular_covariances_never_give_nan_and_are_counted():
    # three distinct points repeated: with reg_covar = 0 a component on a
    # single location has a singular covariance
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 0.0]]), 10, axis=0)
    w, mu, cov, resets = kg.kmeans_init(X, 3, np.random.default_rng(0), 0.0, 20)
    trace = np.empty(20)
    n_iter, converged, lower, more, final = kg.em(X, w, mu, cov, 20, 1e-3, 0.0, trace, True)
    assert resets + more > 0
    for arr in (w, mu, cov, trace[:n_iter], np.array([final, lower])):
        assert np.all(np.isfinite(arr))
