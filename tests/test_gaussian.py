"""The ``gaussian`` experiment: kernels against NumPy/SciPy, exact sampling, closed forms through the shared loop.

Every closed-form test also shows that a plausible wrong formula (an exponent
off by one, the wrong ddof, the float rounding of the real count) is rejected
by the same data.  Monte Carlo runs whole cells through
:func:`hoi_fast.experiment.run_cell`, so the loop and its regimes are part of
what is proved.
"""

import math

import numpy as np
import pytest
import scipy.linalg
from scipy import stats

from hoi_fast._validate import ConfigError
from hoi_fast.experiment import ExperimentError, first_generation, real_count, run_cell
from hoi_fast.experiments import gaussian as xg
from hoi_fast.experiments.gaussian import GaussianConfig, GaussianExperiment
from hoi_fast.kernels import gaussian as kg
from hoi_fast.reproductions import closed_forms as theory
from hoi_fast.seeding import CellStreams

KEY = 3  # the registry's stream key of ``gaussian``
COV3 = ((2.0, 0.6, 0.0), (0.6, 1.0, 0.3), (0.0, 0.3, 0.5))
MEAN3 = (1.0, -2.0, 0.5)


def streams(seed, alpha, root=0):
    return CellStreams(root, KEY, seed, alpha)


def small(**kw):
    """A small configuration for Monte Carlo: tiny held-out sets (their metrics are not used)."""
    base = dict(heldout=4, tail_heldout=4, self_samples=4)
    base.update(kw)
    return GaussianConfig(**base)


def over_seeds(config, alpha, generations, regime, seeds, root=0):
    """Every metric of ``seeds`` cells, stacked: name -> (seeds, generations, ...)."""
    experiment = GaussianExperiment(config)
    runs = [run_cell(experiment, alpha, generations, regime, streams(s, alpha, root)) for s in range(seeds)]
    return {k: np.array([r[k] for r in runs]) for k in runs[0]}


def z_score(values, expected):
    """z of the mean of ``values`` (over axis 0) against ``expected``."""
    values = np.asarray(values)
    return (values.mean(0) - expected) / (values.std(0, ddof=1) / math.sqrt(values.shape[0]))


def steps(values, first=1.0):
    """Ratios of consecutive generations (generation 0 over ``first``)."""
    values = np.asarray(values)
    return values / np.hstack([np.full((values.shape[0], 1), first), values[:, :-1]])


# -- kernels against NumPy / SciPy ------------------------------------------------------------

def spd(d, rng):
    A = rng.standard_normal((d, d))
    return A @ A.T + d * np.eye(d)


@pytest.mark.parametrize("d", [1, 3, 10, 40])
def test_cholesky_matches_numpy_and_flags_non_positive_definite(d):
    rng = np.random.default_rng(d)
    A = spd(d, rng)
    L = np.empty((d, d))
    assert kg.cholesky(A, L)
    np.testing.assert_allclose(L, np.linalg.cholesky(A), rtol=1e-12, atol=1e-12)
    B = A.copy()
    B[d - 1, d - 1] = -1.0
    assert not kg.cholesky(B, L)
    if d > 1:
        v = rng.standard_normal((d, 1))
        assert not kg.cholesky(v @ v.T, L)  # rank one


def test_row_statistics_and_pooled_fit_match_numpy():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4)) * [1.0, 2.0, 0.5, 3.0] + [5.0, -1.0, 0.0, 2.0]
    idx = np.array([3, 7, 7, 0, 49, 20], dtype=np.int64)
    mean, scatter = np.empty(4), np.empty((4, 4))
    kg.row_statistics(X, idx, True, mean, scatter)
    np.testing.assert_allclose(mean, X[idx].mean(0), rtol=1e-13)
    np.testing.assert_allclose(scatter, np.cov(X[idx].T, ddof=0) * len(idx), rtol=1e-12)
    parts = [X[:10], X[10:35], X[35:]]
    stats_ = [(len(p), p.mean(0), np.cov(p.T, ddof=0) * len(p)) for p in parts]
    for ddof in (0, 1):
        m, c = np.empty(4), np.empty((4, 4))
        kg.pooled_fit(np.array([s[0] for s in stats_], float), np.array([s[1] for s in stats_]),
                      np.array([s[2] for s in stats_]), ddof, m, c)
        np.testing.assert_allclose(m, X.mean(0), rtol=1e-13)
        np.testing.assert_allclose(c, np.cov(X.T, ddof=ddof), rtol=1e-12)


def test_choose_draws_uniform_ordered_samples_without_replacement():
    rng = np.random.default_rng(1)
    n, m, reps = 7, 3, 21000
    seen = {}
    for _ in range(reps):
        idx = xg.choose(n, m, rng)
        assert len(set(idx.tolist())) == m and idx.min() >= 0 and idx.max() < n
        seen[tuple(idx)] = seen.get(tuple(idx), 0) + 1
    assert len(seen) == n * (n - 1) * (n - 2)  # every ordered triple occurs
    counts = np.array(list(seen.values()))
    assert stats.chisquare(counts).pvalue > 1e-3
    assert sorted(xg.choose(n, n, rng).tolist()) == list(range(n))


def test_orthonormal_frame_is_the_q_of_numpy_qr_with_positive_diagonal():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((30, 5))
    Q = W.copy()
    assert kg.orthonormal_frame(Q)
    Wc = W - W.mean(0)
    q, r = np.linalg.qr(Wc)
    np.testing.assert_allclose(Q, q * np.sign(np.diag(r)), atol=1e-12)
    np.testing.assert_allclose(Q.T @ Q, np.eye(5), atol=1e-13)
    np.testing.assert_allclose(Q.sum(0), 0.0, atol=1e-13)


def reference_metrics(mean, cov, experiment, heldout):
    """Each metric the slow obvious way (SciPy densities on the points, scipy.linalg.sqrtm)."""
    mu0, S0 = experiment.truth_mean, experiment.truth_cov
    model = stats.multivariate_normal(mean, cov)
    P = np.linalg.inv(cov)
    delta = mean - mu0
    root = scipy.linalg.sqrtm(S0)
    return {
        "real_nll": -model.logpdf(heldout.real).mean(),
        "tail_nll": -model.logpdf(heldout.tail).mean(),
        "kl": 0.5 * (np.trace(P @ S0) + delta @ P @ delta - len(mean) + np.linalg.slogdet(cov)[1]
                     - np.linalg.slogdet(S0)[1]),
        "w2": delta @ delta + np.trace(cov) + np.trace(S0) - 2 * np.trace(scipy.linalg.sqrtm(root @ cov @ root)).real,
        "mean_error": delta @ delta,
        "log_det_ratio": np.linalg.slogdet(cov)[1] - np.linalg.slogdet(S0)[1],
        "trace_ratio": np.trace(cov) / np.trace(S0),
    }


@pytest.mark.parametrize("d", [1, 3, 12])
def test_metrics_equal_the_scipy_references(d):
    rng = np.random.default_rng(10 + d)
    config = GaussianConfig(dim=d, heldout=300, tail_heldout=200, mean=tuple(rng.standard_normal(d)),
                            covariance=tuple(map(tuple, spd(d, rng) / d)))
    experiment = GaussianExperiment(config)
    heldout = experiment.heldout(rng, None)
    mean, cov = rng.standard_normal(d), spd(d, rng) / (2 * d)
    model = xg.model_of(mean, cov, 100)
    row = experiment.metrics(model, [], heldout, rng)
    for name, expected in reference_metrics(mean, cov, experiment, heldout).items():
        np.testing.assert_allclose(row[name], expected, rtol=1e-9, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(row["mean"], mean)
    np.testing.assert_array_equal(row["covariance"], cov)
    truth = xg.model_of(experiment.truth_mean, experiment.truth_cov, 100)
    at_truth = experiment.metrics(truth, [], heldout, rng)
    assert abs(at_truth["kl"]) < 1e-12 and abs(at_truth["w2"]) < 1e-9 and at_truth["mean_error"] == 0


def test_a_singular_fit_gives_documented_infinities_never_nan():
    experiment = GaussianExperiment(GaussianConfig(dim=3, samples=3, heldout=20, tail_heldout=20))
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3, 3))
    model = experiment.fit([xg.Points(X)], rng)  # 3 points in 3-D: rank 2
    assert not model.regular
    row = experiment.metrics(model, [], experiment.heldout(rng, None), rng)
    assert row["real_nll"] == row["tail_nll"] == row["kl"] == math.inf
    assert row["self_nll"] == row["log_det_ratio"] == -math.inf
    assert all(np.isfinite(row[k]) for k in ("w2", "mean_error", "trace_ratio"))
    np.testing.assert_allclose(model.factor @ model.factor.T, model.covariance, atol=1e-12)
    m = run_cell(experiment, 1.0, 3, "mix", streams(0, 1.0))  # the loop accepts them (nan_ok) ...
    assert np.all(m["real_nll"] == math.inf) and not np.isnan(m["self_nll"]).any()
    assert experiment.notes()  # ... and the grid says so once


def test_self_nll_has_the_law_of_explicit_model_points():
    """self_nll draws one chi-square; the reference scores self_samples explicit points with SciPy."""
    d, m, reps = 3, 20, 1500
    experiment = GaussianExperiment(GaussianConfig(dim=d, self_samples=m, heldout=5, tail_heldout=5))
    rng = np.random.default_rng(4)
    heldout = experiment.heldout(rng, None)
    cov = np.array(COV3)
    model = xg.model_of(np.array(MEAN3), cov, 100)
    ours = [experiment.metrics(model, [], heldout, rng)["self_nll"] for _ in range(reps)]
    dist = stats.multivariate_normal(MEAN3, cov)
    ref = [-dist.logpdf(dist.rvs(m, random_state=rng)).mean() for _ in range(reps)]
    assert stats.ks_2samp(ours, ref).pvalue > 1e-3
    # a planted bug (the radius of m - 1 points) is visible to the same test
    wrong = (0.5 * (d * math.log(2 * math.pi) + np.linalg.slogdet(cov)[1])
             + 0.5 * rng.chisquare((m - 1) * d, reps) / m)
    assert stats.ks_2samp(wrong, ref).pvalue < 1e-6


def test_tail_points_are_the_truth_conditioned_on_its_tail():
    config = GaussianConfig(dim=3, mean=MEAN3, covariance=COV3, tail_quantile=0.9)
    experiment = GaussianExperiment(config)
    rng = np.random.default_rng(5)
    ours = experiment.tail_points(3000, rng)
    P = np.linalg.inv(np.array(COV3))
    radius2 = np.einsum("ij,jk,ik->i", ours - MEAN3, P, ours - MEAN3)
    assert radius2.min() > experiment.tail_threshold == pytest.approx(stats.chi2.ppf(0.9, 3))
    truth = rng.multivariate_normal(MEAN3, COV3, 60000)  # rejection sampling: the slow obvious reference
    ref = truth[np.einsum("ij,jk,ik->i", truth - MEAN3, P, truth - MEAN3) > experiment.tail_threshold]
    for axis in range(3):
        assert stats.ks_2samp(ours[:, axis], ref[:, axis]).pvalue > 1e-3
    assert stats.ks_2samp(radius2, np.einsum("ij,jk,ik->i", ref - MEAN3, P, ref - MEAN3)).pvalue > 1e-3


# -- exact sampling of sufficient statistics --------------------------------------------------

def explicit_stats(center, factor, m, rng):
    X = center + rng.standard_normal((m, len(center))) @ factor.T
    return X.mean(0), np.cov(X.T, ddof=0).reshape(len(center), len(center)) * m


def test_statistics_draws_have_the_law_of_explicit_points():
    """Bartlett draws vs the statistics of explicit points (KS on several functionals); a df off by one fails."""
    d, m, reps = 3, 6, 3000
    rng = np.random.default_rng(6)
    center, factor = np.array(MEAN3), np.linalg.cholesky(np.array(COV3))

    def functionals(pairs):
        return np.array([(mu[0], S[0, 0], S[1, 2], np.linalg.det(S)) for mu, S in pairs]).T

    ours = functionals([xg.gaussian_part(center, factor, m, rng).stats()[1:] for _ in range(reps)])
    ref = functionals([explicit_stats(center, factor, m, rng) for _ in range(reps)])
    for a, b in zip(ours, ref):
        assert stats.ks_2samp(a, b).pvalue > 1e-3

    def planted():  # Wishart with m degrees of freedom instead of m - 1
        n_normals, n_chi = kg.statistics_draw_sizes(d)
        mean, root, S = np.empty(d), np.empty((d, d)), np.empty((d, d))
        kg.draw_statistics(center, factor, m, rng.standard_normal(n_normals), rng.chisquare(m - d + 1, n_chi),
                           mean, root, S)
        return mean, S

    wrong = functionals([planted() for _ in range(reps)])
    assert stats.ks_2samp(wrong[3], ref[3]).pvalue < 1e-6


def test_materialised_points_have_the_draws_statistics_and_the_conditional_law():
    d, m, reps = 3, 8, 3000
    rng = np.random.default_rng(7)
    center, factor = np.array(MEAN3), np.linalg.cholesky(np.array(COV3))
    draw = xg.gaussian_part(center, factor, m, rng)
    X = draw.points(rng)
    assert X.shape == (m, d) and draw.points(rng) is X  # drawn once, then kept
    np.testing.assert_allclose(X.mean(0), draw.mean, rtol=1e-12)
    np.testing.assert_allclose(np.cov(X.T, ddof=0) * m, draw.scatter, rtol=1e-11)
    # Each materialised point is N(center, Sigma), and 4 of them have a Wishart(3) scatter, as explicit points do.
    first, sub, ref_first, ref_sub = [], [], [], []
    for _ in range(reps):
        Y = xg.gaussian_part(center, factor, m, rng).points(rng)
        first.append(Y[0, 1])
        sub.append(np.trace(np.cov(Y[:4].T, ddof=0)))
        Z = center + rng.standard_normal((m, d)) @ factor.T
        ref_first.append(Z[0, 1])
        ref_sub.append(np.trace(np.cov(Z[:4].T, ddof=0)))
    assert stats.ks_2samp(first, ref_first).pvalue > 1e-3
    assert stats.ks_2samp(sub, ref_sub).pvalue > 1e-3


# -- closed forms through the loop ------------------------------------------------------------

def test_replace_closed_forms_mle():
    """mix, alpha = 1, ddof 0: E Sigma_g = r^(g+1) Sigma0, E det ratio = [prod (n-i)/n]^(g+1),
    E ||mu_g - mu0||^2 = tr Sigma0 (1 - r^(g+1)); index convention g + 1 verified, g and g + 2 rejected."""
    n, G, seeds = 8, 5, 1500
    m = over_seeds(small(dim=3, samples=n, mean=MEAN3, covariance=COV3), 1.0, G, "mix", seeds)
    g = np.arange(G)
    cov0 = np.array(COV3)
    r, det_step = (n - 1) / n, np.prod([(n - i) / n for i in (1, 2, 3)])
    z_cov = z_score(m["covariance"], theory.replace_trace(n, g)[:, None, None] * cov0)
    assert np.abs(z_cov).max() < 4.5
    det = np.exp(m["log_det_ratio"])
    assert np.abs(z_score(det, theory.replace_det(n, 3, g))).max() < 4
    assert np.abs(z_score(m["trace_ratio"], theory.replace_trace(n, g))).max() < 4
    assert np.abs(z_score(m["mean_error"], np.trace(cov0) * theory.replace_mean_error(n, g))).max() < 4
    # Per step E[tr S_g | S_{g-1}] = r tr S_{g-1} (and det likewise): step ratios are sharp enough
    # to reject a missing or extra refit (exponent off by one) by a wide margin.
    for values, factor, margin in ((m["trace_ratio"], r, 6), (det, det_step, 5)):  # det ratios: heavier tails
        z = z_score(steps(values), factor)
        assert np.abs(z).max() < 4
        assert np.abs(z_score(steps(values), 1.0)).min() > margin
        assert np.abs(z_score(steps(values), factor ** 2)).min() > margin
    # The wrong ddof (unbiased factor 1) at generation 0 is rejected too.
    assert abs(z_score(m["trace_ratio"][:, 0], 1.0)) > 8
    # mean error: the increment given the previous covariance is tr Sigma_{g-1} / n; exponents off by one fail
    prev_trace = np.hstack([np.ones((seeds, 1)), m["trace_ratio"][:, :-1]]) * np.trace(cov0)
    increments = np.diff(np.hstack([np.zeros((seeds, 1)), m["mean_error"]]), axis=1)
    assert np.abs(z_score(increments - prev_trace / n, 0.0)).max() < 4
    for wrong in (g, g + 2):
        assert np.abs(z_score(m["mean_error"], np.trace(cov0) * (1 - r ** wrong)))[:3].min() > 8


def test_replace_unbiased_variance_is_a_martingale_while_sigma_shrinks():
    """d = 1, ddof 1, alpha = 1: E sigma_g^2 = sigma0^2, E sigma_g = sigma0 c(n)^(g+1)."""
    n, G, seeds, var0 = 4, 5, 1500, 2.0
    m = over_seeds(small(dim=1, samples=n, ddof=1, spectrum=(var0,)), 1.0, G, "mix", seeds)
    var = m["covariance"][:, :, 0, 0]
    sd = np.sqrt(var)
    g = np.arange(G)
    c = theory.chi_moment(n, 1.0, ddof=1)
    assert c == pytest.approx(np.mean(np.sqrt(stats.chi2.rvs(n - 1, size=400000, random_state=0) / (n - 1))),
                              abs=2e-3)
    assert np.abs(z_score(var, var0)).max() < 4
    assert np.abs(z_score(sd, math.sqrt(var0) * c ** (g + 1))).max() < 4
    assert np.abs(z_score(steps(sd, math.sqrt(var0)), c)).max() < 4
    # planted: an exponent off by one, the MLE's shrinking variance
    assert np.abs(z_score(steps(sd, math.sqrt(var0)), 1.0)).min() > 6
    assert np.abs(z_score(steps(sd, math.sqrt(var0)), c * c)).min() > 6
    assert abs(z_score(var[:, -1], var0 * theory.replace_trace(n, G - 1, ddof=0))) > 6
    # mean: a random walk of steps sigma_{g-1}^2 / n
    assert np.abs(z_score(m["mean"][:, :, 0] ** 2, var0 / n * (g + 1))).max() < 4


@pytest.mark.parametrize("alpha, ddof", [(0.9, 0), (0.5, 1)])
def test_fresh_follows_its_exact_affine_recursion(alpha, ddof):
    """fresh: E tr Sigma_g and E ||mu_g - mu0||^2 follow fresh_recursion with m = real_count(alpha, n)."""
    n, G, seeds = 25, 7, 1000
    spectrum = (2.0, 0.5)
    m = over_seeds(small(dim=2, samples=n, ddof=ddof, spectrum=spectrum), alpha, G, "fresh", seeds, root=1)
    tr0 = sum(spectrum)
    s, e = theory.fresh_recursion(alpha, [n] * G, ddof, tr0)
    traces = m["trace_ratio"] * tr0
    assert np.abs(z_score(traces, s)).max() < 4
    assert np.abs(z_score(m["mean_error"], e)).max() < 4
    # planted: the float rounding of the real count (alpha = 0.9, n = 25 gives 2 instead of 3) or no real data
    wrong_m = math.floor((1 - alpha) * n + 0.5)
    if wrong_m != real_count(alpha, n):
        k = n - wrong_m
        den = n * (n - ddof)
        M, b = np.array([[(n - 1) * k / den, wrong_m * k / den], [k / n**2, k**2 / n**2]]), \
            np.array([(n - 1) * wrong_m / den, wrong_m / n**2]) * tr0
        x = np.array([s[0], e[0]])
        wrong = [x]
        for _ in range(G - 1):
            x = M @ x + b
            wrong.append(x)
        assert abs(z_score(m["mean_error"][:, -1], np.array(wrong)[-1, 1])) > 4.5
    s1, e1 = theory.fresh_recursion(1.0, [n] * G, ddof, tr0)
    assert abs(z_score(m["mean_error"][:, -1], e1[-1])) > 8


def test_fresh_recursion_contracts_toward_the_truth_for_every_alpha_below_one():
    """Spectral radius below 1 whenever a generation holds a real point; the moments then settle at a
    bounded fixed point (sigma0^2 = 1): s* <= 2, e* <= 1, and O(1/n) close to the truth for large n."""
    for n in (2, 3, 10, 25, 1000):
        for ddof in (0, 1):
            for alpha in np.linspace(0.0, 1.0, 101):
                fixed, rate = theory.fresh_fixed_point(n, alpha, ddof)
                if real_count(alpha, n) == 0:  # no real point in the set: pure replacement, no contraction
                    assert rate >= 1.0
                    continue
                assert rate < 1.0
                assert 0.0 < fixed[0] <= 2.0 + 1e-9 and 0.0 < fixed[1] <= 1.0 + 1e-9
            for alpha in (0.1, 0.5, 0.9):  # the recursion itself reaches the fixed point
                if real_count(alpha, n) == 0:
                    continue
                s, e = theory.fresh_recursion(alpha, [n] * 2000, ddof)
                np.testing.assert_allclose([s[-1], e[-1]], theory.fresh_fixed_point(n, alpha, ddof)[0], rtol=1e-6)
    # Bertrand et al.'s sufficient condition lambda = alpha / (1 - alpha) < 1 is not necessary: alpha = 0.9
    fixed, rate = theory.fresh_fixed_point(1000, 0.9)
    assert rate < 1 and fixed[0] == pytest.approx(1.0, abs=0.02) and fixed[1] < 0.02


def test_temperature_scales_the_covariance_each_synthetic_generation():
    """alpha = 1, ddof 0: E tr Sigma_g / tr Sigma0 = r^(g+1) tau^g."""
    n, G, seeds, tau = 20, 4, 600, 0.8
    m = over_seeds(small(dim=2, samples=n, sample_temperature=tau), 1.0, G, "mix", seeds)
    g = np.arange(G)
    assert np.abs(z_score(m["trace_ratio"], ((n - 1) / n) ** (g + 1) * tau ** g)).max() < 4
    assert np.abs(z_score(steps(m["trace_ratio"])[:, 1:], (n - 1) / n * tau)).max() < 4
    assert np.abs(z_score(steps(m["trace_ratio"])[:, 1:], (n - 1) / n)).min() > 8


def test_truncation_keeps_the_points_of_highest_model_density():
    experiment = GaussianExperiment(small(dim=2, samples=40, sample_truncation=0.5))
    model = xg.model_of(np.zeros(2), np.eye(2), 100)
    rng = np.random.default_rng(8)
    part, acceptance = experiment.synthesize(model, 40, rng, None)
    assert acceptance == 1.0 and len(part) == 40
    # the same draws, kept by hand: the 40 of 80 with the smallest radius, in draw order
    z = np.random.default_rng(8).standard_normal((80, 2))
    keep = np.sort(np.argsort(np.einsum("ij,ij->i", z, z), kind="stable")[:40])
    np.testing.assert_allclose(part.points(), z[keep], rtol=1e-15)
    m = over_seeds(small(dim=2, samples=40, sample_truncation=0.2), 1.0, 4, "mix", 30)
    assert m["trace_ratio"][:, -1].mean() < 0.5 * ((39 / 40) ** 4)


# -- the loop and its regimes -----------------------------------------------------------------

@pytest.mark.parametrize("regime", ["mix", "fresh", "accumulate", "accumulate-subsample"])
def test_every_regime_runs_deterministically_with_a_shared_generation_zero(regime):
    experiment = GaussianExperiment(small(dim=4, samples=30))
    runs = {a: run_cell(experiment, a, 4, regime, streams(2, a)) for a in (0.0, 0.3, 1.0)}
    again = run_cell(experiment, 0.3, 4, regime, streams(2, 0.3))
    for name, values in runs[0.3].items():
        np.testing.assert_array_equal(values, again[name])  # bit-identical
    for a in runs:
        for name in ("real_nll", "covariance", "mean"):
            np.testing.assert_array_equal(runs[a][name][0], runs[0.0][name][0])
    sizes = runs[1.0]["train_size"]
    if regime == "accumulate":
        np.testing.assert_array_equal(sizes, [30, 60, 90, 120])
        np.testing.assert_array_equal(runs[0.3]["train_size"], [30, 39, 48, 57])
    else:
        np.testing.assert_array_equal(sizes, [30] * 4)
    if regime in ("mix", "accumulate"):  # alpha = 0 refits R
        np.testing.assert_array_equal(runs[0.0]["covariance"][1:], runs[0.0]["covariance"][:-1])


def test_generation_zero_of_the_loop_is_the_fit_of_the_real_pool():
    config = small(dim=3, samples=40, mean=MEAN3, covariance=COV3, ddof=1)
    experiment = GaussianExperiment(config)
    first = first_generation(experiment, streams(4, 0.5))
    R = first.pool.points()
    np.testing.assert_allclose(first.row["mean"], R.mean(0), rtol=1e-13)
    np.testing.assert_allclose(first.row["covariance"], np.cov(R.T, ddof=1), rtol=1e-12)
    fresh = experiment.fresh_real(2, np.random.default_rng(0))  # at most dim points: explicit
    assert isinstance(fresh, xg.Points) and len(fresh) == 2


def test_accumulate_subsample_draws_rows_of_the_pool():
    experiment = GaussianExperiment(small(dim=2, samples=20))
    rng = np.random.default_rng(9)
    pool = experiment.real_pool(rng)
    syn = experiment.sample(xg.model_of(np.ones(2), np.eye(2), 20), 20, rng)
    [part] = experiment.subsample([pool, syn], 20, rng)
    rows = part.points()
    every = np.concatenate([pool.points(), syn.points(rng)])
    assert all(any(np.array_equal(r, e) for e in every) for r in rows)
    assert len({tuple(r) for r in rows}) == 20


# -- configuration ------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, match", [
    (dict(dim=0), "gaussian.dim"),
    (dict(dim=257), "gaussian.dim"),
    (dict(ddof=2), "gaussian.ddof"),
    (dict(samples=1), "gaussian.samples"),
    (dict(dim=256, samples=10**6), "gaussian.samples"),
    (dict(heldout=0), "gaussian.heldout"),
    (dict(tail_heldout=0), "gaussian.tail_heldout"),
    (dict(self_samples=0), "gaussian.self_samples"),
    (dict(sample_temperature=0.0), "gaussian.sample_temperature"),
    (dict(sample_temperature=math.inf), "gaussian.sample_temperature"),
    (dict(sample_truncation=1.0), "gaussian.sample_truncation"),
    (dict(sample_truncation=0.999999, samples=10**6), "gaussian.sample_truncation"),
    (dict(tail_quantile=1.0), "gaussian.tail_quantile"),
    (dict(schedule="cubic"), "gaussian.schedule"),
    (dict(growth=-1.0), "gaussian.growth"),
    (dict(mean=(1.0, 2.0)), "gaussian.mean"),
    (dict(dim=2, mean=(1.0, math.nan)), "gaussian.mean"),
    (dict(dim=2, mean=(1e9, 0.0)), "gaussian.mean"),
    (dict(dim=2, covariance=((1.0, 0.0), (0.0, 1.0)), spectrum=(1.0, 1.0)), "not both"),
    (dict(dim=2, covariance=((1.0, 0.5), (0.4, 1.0))), "symmetric"),
    (dict(dim=2, covariance=((1.0, 2.0), (2.0, 1.0))), "positive definite"),
    (dict(dim=2, covariance=((1.0, 0.0, 0.0),)), "gaussian.covariance"),
    (dict(dim=2, spectrum=(1.0, 1e-13)), "condition number"),
    (dict(dim=2, spectrum=(1e60, 1e60)), "gaussian.spectrum"),
    (dict(dim=2, spectrum=(1.0,)), "gaussian.spectrum"),
    (dict(dim=2, spectrum=(1.0, -1.0)), "positive definite"),
    (dict(store_parameters="yes"), "gaussian.store_parameters"),
])
def test_bad_settings_are_one_line_errors_naming_the_key(kw, match):
    with pytest.raises(ConfigError, match=match) as info:
        GaussianConfig(**kw)
    assert "\n" not in str(info.value)


def test_a_schedule_that_shrinks_below_two_points_is_refused_up_front():
    from types import SimpleNamespace

    config = GaussianConfig(samples=8, schedule="geometric", growth=0.5)
    with pytest.raises(ConfigError, match="gaussian.growth"):
        config.check_grid(SimpleNamespace(generations=5))
    with pytest.raises(ValueError, match="gaussian.schedule"):
        GaussianExperiment(config).train_size(4)


def test_metric_set_and_coordinates_depend_on_dim_only_through_the_parameter_limit():
    small_dim = GaussianExperiment(GaussianConfig(dim=16))
    large_dim = GaussianExperiment(GaussianConfig(dim=17))
    names = [s.name for s in small_dim.metric_specs()]
    assert names[-2:] == ["mean", "covariance"] and [s.name for s in large_dim.metric_specs()] == names[:-2]
    assert len(small_dim.coords()["axis"]) == 16 and large_dim.coords() == {}
    lean = GaussianExperiment(GaussianConfig(dim=3, store_parameters=False))
    assert [s.name for s in lean.metric_specs()] == names[:-2] and lean.coords() == {}
    assert "mean" not in lean.metrics(xg.model_of(np.zeros(3), np.eye(3), 50), [],
                                      lean.heldout(np.random.default_rng(0), None), np.random.default_rng(0))
    roles = {s.name: s.role for s in small_dim.metric_specs()}
    assert roles["real_nll"] == "real" and roles["self_nll"] == "self" and roles["tail_nll"] == "tail"


def test_a_nan_metric_stops_the_cell():
    experiment = GaussianExperiment(GaussianConfig(dim=2))
    heldout = experiment.heldout(np.random.default_rng(0), None)
    bad = xg.GaussianModel(np.array([np.nan, 0.0]), np.eye(2), np.eye(2), True, 10)
    with pytest.raises(ExperimentError, match="NaN"):
        experiment.metrics(bad, [], heldout, np.random.default_rng(0))


# -- the grid, the store and the report -------------------------------------------------------

class PluginGaussian(GaussianExperiment):
    """The experiment under another name, for grids run before ``gaussian`` is in the registry."""

    name = "gaussian_plugin"


def grid_word():
    """``(--experiment word, table name)``: the registered name once registered, else the plug-in."""
    from hoi_fast.experiments import BUILTIN

    return ("gaussian", "gaussian") if "gaussian" in BUILTIN else ("test_gaussian:PluginGaussian", "gaussian_plugin")


def test_grid_runs_resumes_and_reports(tmp_path):
    h5py = pytest.importorskip("h5py")
    from hoi_fast import grid, report

    word, table = grid_word()
    toml = tmp_path / "g.toml"
    toml.write_text(f"[{table}]\ndim = 2\nsamples = 30\nheldout = 50\ntail_heldout = 20\nself_samples = 10\n")
    out = tmp_path / "g.h5"
    argv = ["--experiment", word, "--config", str(toml), "--alphas", "0,0.5,1", "--seeds", "3",
            "--generations", "4", "--jobs", "1", "--out", str(out), "--quiet"]
    assert grid.main(argv) == 0
    with h5py.File(out, "r") as f:
        group = f[table]
        assert group["done"][...].all()
        assert group["real_nll"].shape == (3, 3, 4) and group["covariance"].shape == (3, 3, 4, 2, 2)
        assert group["real_nll"].attrs["role"] == "real" and group["tail_nll"].attrs["role"] == "tail"
        first = group["trace_ratio"][...]
    assert grid.main(argv) == 0  # resume: nothing to do, same results
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f[table]["trace_ratio"][...], first)
    assert report.main([str(out), "--out", str(tmp_path / "report"), "--n-resamples", "200",
                        "--alpha-resamples", "50"]) == 0
    assert (tmp_path / "report" / "summary.md").exists()
