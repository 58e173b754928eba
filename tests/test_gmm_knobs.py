"""GMM knobs of issue 8: sampling bias, filters, schedules, accumulate-subsample.

Each knob is checked three ways: its exact semantics against a slow reference
or a closed form, its expected direction on small grids (paired over seeds
through common random numbers, with margins far from the observed p-values),
and its recording (acceptance, train_size).  Every test would fail if its knob
were ignored.
"""

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

import reference_gmm as ref
from hoi_fast import gmm
from hoi_fast._validate import ConfigError
from hoi_fast.experiments.gmm import GMMConfig
from hoi_fast.experiment import run_cell
from hoi_fast.experiments import gmm as xg
from hoi_fast.experiments.gmm import FilterExhaustedError, GMMExperiment
from hoi_fast.experiments import streams

TRUTH_COV = ((2.0, 0.6), (0.6, 1.0))
# Small sizes of the default five-component truth for the direction tests.
SMALL = GMMConfig(samples=500, heldout=1000, tail_heldout=500, self_samples=100)


def one_gaussian(n, **knobs):
    return GMMConfig(components=1, samples=n, heldout=2, tail_heldout=2, self_samples=2,
                     tail_weight=1.0, reg_covar=0.0, truth_weights=(1.0,),
                     truth_means=((1.0, -2.0),), truth_covariances=(TRUTH_COV,), **knobs)


def z_score(values, expected):
    return (values.mean() - expected) / (values.std(ddof=1) / np.sqrt(len(values)))


def traces_over_seeds(config, generations, seeds):
    """tr S_g / tr S_true per seed (rows) and generation (columns), K = 1, alpha = 1, mix."""
    experiment = GMMExperiment(config)
    out = np.empty((seeds, generations))
    for seed in range(seeds):
        cov = run_cell(experiment, 1.0, generations, "mix", streams("gmm", 5, seed, 1.0))["covariances"]
        out[seed] = np.trace(cov[:, 0], axis1=1, axis2=2) / np.trace(TRUTH_COV)
    return out


def paired(config, metric, generations, seeds, alpha=0.9, regime="mix", root=0):
    """Per seed, ``metric`` averaged over generations 1..G-1 (generation 0 is shared)."""
    experiment = GMMExperiment(config)
    return np.array([
        run_cell(experiment, alpha, generations, regime, streams("gmm", root, s, alpha))[metric][1:].mean()
        for s in range(seeds)
    ])


def two_component(**knobs):
    """Truth 0.8 N((0,0), S) + 0.2 N((14,0), S2): well separated, labels by nearest mean."""
    return GMMConfig(components=2, samples=200, tail_weight=0.2, truth_weights=(0.8, 0.2),
                     truth_means=((0.0, 0.0), (14.0, 0.0)),
                     truth_covariances=(TRUTH_COV, ((1.0, 0.3), (0.3, 0.5))), **knobs)


def nearest(X, means):
    return np.argmin(((X[:, None, :] - np.asarray(means)[None]) ** 2).sum(-1), axis=1)


# ---------------------------------------------------------------- reference


def reference_synthesize(config, truth, model, n, rng, accept):
    """The module docstring's semantics written out slowly (scipy densities, Python loops).

    ``accept(X, log_true, log_model, rng)`` -> bool list: the filter.
    """
    w, mu, cov = model.weights, model.means, model.covariances
    tau, q = config.sample_temperature, config.sample_truncation
    kept, judged, batch = [], 0, n
    while True:
        draws = math.ceil(round(batch / (1 - q), 9))
        X = gmm.sample((w, mu, cov * tau), draws, rng)
        if q > 0:
            log_p = ref.log_density(X, w, mu, cov)  # temperature 1
            order = sorted(range(draws), key=lambda i: (-log_p[i], i))  # ties: earlier draw first
            X = X[sorted(order[:batch])]
        decisions = accept(X, ref.log_density(X, *truth), ref.log_density(X, w, mu, cov), rng)
        for i in range(batch):
            judged += 1
            if decisions[i]:
                kept.append(X[i])
                if len(kept) == n:
                    return np.array(kept), n / judged
        batch = math.ceil(1.1 * (n - len(kept)) * judged / max(len(kept), 1))


def reference_verifier(c, sigma):
    def accept(X, log_true, log_model, rng):
        Z = rng.standard_normal(len(X)) if sigma > 0 else np.zeros(len(X))
        U = rng.random(len(X))
        return [U[i] < min(1.0, math.exp(log_true[i] + sigma * Z[i]) / (c * math.exp(log_model[i])))
                for i in range(len(X))]
    return accept


def off_model():
    """A model that misses the truth of :func:`two_component` (weights, a mean, a covariance)."""
    return gmm.GMMParams([0.6, 0.4], [[0.3, -0.2], [13.5, 0.4]], [np.array(TRUTH_COV) * 1.5, np.eye(2)])


@pytest.mark.parametrize("knobs", [
    dict(filter="verifier", verifier_c=2.0),
    dict(filter="verifier", verifier_c=3.0, verifier_noise=0.4, sample_temperature=0.9, sample_truncation=0.1),
    dict(filter="quality", quality_quantile=0.3, sample_temperature=1.2),
])
def test_synthesize_matches_the_documented_semantics(knobs):
    config = two_component(**knobs)
    experiment = GMMExperiment(config)
    model = off_model()
    if config.filter == "quality":
        def accept(X, log_true, log_model, rng):
            return [v >= experiment.quality_threshold for v in log_true]
    else:
        accept = reference_verifier(config.verifier_c, config.verifier_noise)
    X, acceptance = experiment.synthesize(model, 300, np.random.default_rng(7), None)
    X_ref, acceptance_ref = reference_synthesize(config, experiment.truth, model, 300,
                                                 np.random.default_rng(7), accept)
    np.testing.assert_allclose(X, X_ref, rtol=1e-13)
    assert acceptance == pytest.approx(acceptance_ref, rel=1e-14)
    assert X.shape == (300, 2) and 0 < acceptance < 1


def test_default_knobs_are_plain_sampling_bit_for_bit():
    experiment = GMMExperiment(SMALL)
    model = off_model()
    X, acceptance = experiment.synthesize(model, 500, np.random.default_rng(3), None)
    assert acceptance == 1.0 and experiment.quality_threshold is None
    assert np.array_equal(X, gmm.sample(model, 500, np.random.default_rng(3)))
    assert np.array_equal(X, GMMExperiment(SMALL).synthesize(model, 500, np.random.default_rng(3), None)[0])


# ---------------------------------------------------------------- temperature


@pytest.mark.parametrize("tau", [0.5, 2.0])
def test_temperature_scales_every_component_covariance_exactly(tau):
    model = off_model()
    X = GMMExperiment(two_component(sample_temperature=tau)).synthesize(model, 200_000,
                                                                        np.random.default_rng(1), None)[0]
    w, mu, cov = model.weights, model.means, model.covariances
    mean, mixture_cov = ref.sample_moments(w, mu, cov * tau)
    _, untempered_cov = ref.sample_moments(w, mu, cov)
    d = X - mean
    for i, j in ((0, 0), (0, 1), (1, 1)):
        products = d[:, i] * d[:, j]
        assert abs(z_score(products, mixture_cov[i, j])) < 4
        assert abs(z_score(products, untempered_cov[i, j])) > 20
    # weights untouched: the share of points nearest each mean is as sampled plainly
    share = np.mean(nearest(X, mu) == 1)
    assert abs(share - w[1]) < 4 * np.sqrt(w[1] * w[0] / len(X)) + 0.01


@pytest.mark.parametrize("tau", [0.7, 1.3])
def test_temperature_closed_form_of_recursive_covariance(tau):
    """K = 1, alpha = 1: E[tr S_g] / tr S = ((n-1)/n)^(g+1) tau^g; per step E[ratio] = tau (n-1)/n."""
    n, G, seeds = 20, 4, 1000
    traces = traces_over_seeds(one_gaussian(n, sample_temperature=tau), G, seeds)
    factor = (n - 1) / n
    for g in range(G):
        assert abs(z_score(traces[:, g], factor ** (g + 1) * tau ** g)) < 4
    steps = traces[:, 1:] / traces[:, :-1]
    for g in range(G - 1):
        assert abs(z_score(steps[:, g], tau * factor)) < 4
        assert abs(z_score(steps[:, g], factor)) > 8  # the knob is not ignored


def test_temperature_below_one_loses_entropy_and_tail_above_one_inflates():
    seeds, G = 24, 4
    self_nll = {t: paired(replace(SMALL, sample_temperature=t), "self_nll", G, seeds, alpha=1.0)
                for t in (0.7, 1.0, 1.3)}
    tail = {t: paired(replace(SMALL, sample_temperature=t), "tail_nll", G, seeds, alpha=1.0) for t in (0.7, 1.0)}
    # self_nll estimates the model's entropy: it falls with tau < 1 and rises with tau > 1
    assert stats.wilcoxon(self_nll[0.7], self_nll[1.0], alternative="less").pvalue < 1e-4
    assert stats.wilcoxon(self_nll[1.3], self_nll[1.0], alternative="greater").pvalue < 1e-4
    assert stats.wilcoxon(tail[0.7], tail[1.0], alternative="greater").pvalue < 1e-4


# ---------------------------------------------------------------- truncation


def test_truncation_draw_count_is_the_rounded_ceiling():
    assert xg.truncation_draws(100, 0.2) == 125
    assert xg.truncation_draws(7, 0.5) == 14
    assert xg.truncation_draws(10, 0.3) == 15
    assert xg.truncation_draws(1000, 0.9) == 10000


@pytest.mark.parametrize("tau", [1.0, 0.8])
def test_truncation_keeps_exactly_the_most_likely_draws(tau):
    config = two_component(sample_truncation=0.3, sample_temperature=tau)
    model = off_model()
    n = 700
    X, acceptance = GMMExperiment(config).synthesize(model, n, np.random.default_rng(11), None)
    raw = gmm.sample((model.weights, model.means, model.covariances * tau), 1000, np.random.default_rng(11))
    log_p = ref.log_density(raw, model.weights, model.means, model.covariances)  # temperature 1
    keep = np.zeros(len(raw), bool)
    keep[np.argsort(-log_p)[:n]] = True
    np.testing.assert_array_equal(X, raw[keep])  # the top n, in draw order
    assert log_p[keep].min() >= log_p[~keep].max()
    assert acceptance == 1.0  # truncation is sampling bias, not a filter


def test_truncation_worsens_tail_nll_at_alpha_0_9():
    seeds, G = 24, 5
    none = paired(SMALL, "tail_nll", G, seeds)
    truncated = paired(replace(SMALL, sample_truncation=0.2), "tail_nll", G, seeds)
    assert stats.wilcoxon(truncated, none, alternative="greater").pvalue < 1e-4
    assert np.median(truncated - none) > 5  # nats: measured ~ +70


# ---------------------------------------------------------------- filters


def test_quality_threshold_is_the_truth_quantile_and_deterministic():
    config = replace(SMALL, filter="quality", quality_quantile=0.1)
    threshold = GMMExperiment(config).quality_threshold
    assert threshold == GMMExperiment(config).quality_threshold
    Y = gmm.sample(config.truth(), 400_000, np.random.default_rng(99))  # an independent sample
    share_below = np.mean(ref.log_density(Y, *config.truth()) < threshold)
    assert abs(share_below - 0.1) < 4 * np.sqrt(0.1 * 0.9 * (1 / len(Y) + 1 / xg.QUALITY_REFERENCE_SIZE))


def test_quality_filter_on_the_truth_accepts_one_minus_the_quantile():
    config = replace(SMALL, filter="quality", quality_quantile=0.2)
    experiment = GMMExperiment(config)
    truth = gmm.GMMParams(*config.truth())
    X, acceptance = experiment.synthesize(truth, 20_000, np.random.default_rng(4), None)
    assert np.all(ref.log_density(X, *config.truth()) >= experiment.quality_threshold)
    judged = 20_000 / acceptance
    assert abs(acceptance - 0.8) < 4 * np.sqrt(0.8 * 0.2 / judged) + 4 * np.sqrt(0.16 / xg.QUALITY_REFERENCE_SIZE)


@pytest.mark.parametrize("c", [3.2, 5.0])
def test_verifier_with_a_dominating_envelope_samples_the_truth_at_rate_one_over_c(c):
    """p_true / p_model <= max_k (w_true/w_model)_k * sqrt(det 2S / det S) = 1.6 * 2 = 3.2 <= c."""
    config = two_component(filter="verifier", verifier_c=c)
    w, mu, cov = config.truth()
    model = gmm.GMMParams([0.5, 0.5], mu, cov * 2.0)
    X, acceptance = GMMExperiment(config).synthesize(model, 20_000, np.random.default_rng(5), None)
    judged = len(X) / acceptance
    assert abs(acceptance - 1 / c) < 4 * np.sqrt((1 / c) * (1 - 1 / c) / judged)
    labels = nearest(X, mu)
    counts = np.bincount(labels, minlength=2)
    assert stats.chisquare(counts, w * len(X)).pvalue > 1e-3
    assert stats.chisquare(counts, np.array([0.5, 0.5]) * len(X)).pvalue < 1e-30  # not the model's
    for k in range(2):
        d = X[labels == k] - mu[k]
        for i, j in ((0, 0), (0, 1), (1, 1)):
            products = d[:, i] * d[:, j]
            assert abs(z_score(products, cov[k][i, j])) < 4
        assert abs(z_score(d[:, 0] ** 2, 2 * cov[k][0, 0])) > 10


def test_at_alpha_0_9_the_verifier_protects_the_tail_and_the_quality_filter_erodes_it():
    seeds, G = 48, 6
    none = paired(SMALL, "tail_nll", G, seeds)
    verifier = paired(replace(SMALL, filter="verifier", verifier_c=20.0), "tail_nll", G, seeds)
    quality = paired(replace(SMALL, filter="quality"), "tail_nll", G, seeds)
    # measured p ~ 3e-7 (verifier, worst of 6 root seeds 2e-5) and ~ 1e-14 (quality)
    assert stats.wilcoxon(verifier, none, alternative="less").pvalue < 1e-3
    assert stats.wilcoxon(quality, none, alternative="greater").pvalue < 1e-6


def test_filter_that_rejects_almost_everything_raises_instead_of_looping():
    experiment = GMMExperiment(replace(SMALL, filter="verifier", verifier_c=1e9))
    model = gmm.GMMParams(*SMALL.truth())
    with pytest.raises(FilterExhaustedError, match="gmm.filter.*relax") as info:
        experiment.synthesize(model, 5, np.random.default_rng(0), None)
    assert isinstance(info.value, RuntimeError)


# ---------------------------------------------------------------- acceptance recording


@pytest.mark.parametrize("knobs, filtered", [
    ({}, False), (dict(sample_temperature=0.8), False), (dict(sample_truncation=0.1), False),
    (dict(filter="quality"), True), (dict(filter="verifier", verifier_c=2.0), True),
])
@pytest.mark.parametrize("regime", ["mix", "accumulate"])
def test_acceptance_is_recorded_per_generation(knobs, filtered, regime):
    config = replace(SMALL, samples=300, **knobs)
    m = run_cell(GMMExperiment(config), 0.5, 4, regime, streams("gmm", 2, 0, 0.5))
    assert np.isnan(m["acceptance"][0])
    if filtered:
        assert np.all((m["acceptance"][1:] > 0) & (m["acceptance"][1:] < 1))
        assert len(set(m["acceptance"][1:])) > 1  # measured per generation, not a constant
    else:
        assert np.all(m["acceptance"][1:] == 1.0)


def test_verifier_acceptance_in_a_cell_tracks_one_over_c():
    m = run_cell(GMMExperiment(replace(SMALL, filter="verifier", verifier_c=10.0)), 0.9, 4, "mix",
                 streams("gmm", 0, 1, 0.9))
    # the model is close to the truth, so the ratio rarely exceeds c: acceptance ~ 1/c
    assert np.all(np.abs(m["acceptance"][1:] - 0.1) < 0.02)


# ---------------------------------------------------------------- schedules


@pytest.mark.parametrize("schedule, growth, n0, G", [("linear", 1.0, 10, 5), ("geometric", 2.0, 8, 4)])
def test_growing_sizes_slow_the_variance_shrinkage_as_predicted(schedule, growth, n0, G):
    """K = 1, alpha = 1: E[tr S_g] / tr S = prod_{i<=g} (n_i - 1)/n_i, generation 0 fitted on R (n_0)."""
    config = one_gaussian(n0, schedule=schedule, growth=growth)
    experiment = GMMExperiment(config)
    sizes = np.array([experiment.train_size(g) for g in range(G)])
    assert sizes[0] == n0 and np.all(np.diff(sizes) > 0)
    traces = traces_over_seeds(config, G, 1500)
    predicted = np.cumprod((sizes - 1) / sizes)
    constant = ((n0 - 1) / n0) ** np.arange(1, G + 1)
    for g in range(G):
        assert abs(z_score(traces[:, g], predicted[g])) < 4
    for g in range(2, G):
        assert abs(z_score(traces[:, g], constant[g])) > 8
    m = run_cell(experiment, 1.0, G, "mix", streams("gmm", 5, 0, 1.0))
    np.testing.assert_array_equal(m["train_size"], sizes)


def test_a_schedule_that_shrinks_below_the_components_is_an_error():
    config = GMMConfig(components=5, samples=20, heldout=50, tail_heldout=20, self_samples=20,
                       schedule="geometric", growth=0.5)
    experiment = GMMExperiment(config)
    assert experiment.train_size(2) == 5
    with pytest.raises(ValueError, match=r"`gmm.schedule`.*`gmm.growth`.*generation 3.*`gmm.components`"):
        experiment.train_size(3)
    with pytest.raises(ValueError, match="gmm.growth"):
        run_cell(experiment, 0.5, 5, "mix", streams("gmm", 0, 0, 0.5))


def test_accumulate_subsample_trains_on_the_whole_pool_while_it_is_short():
    config = replace(SMALL, samples=100, schedule="geometric", growth=3.0)  # sizes 100, 300, 900
    out = run_cell(GMMExperiment(config), 0.2, 3, "accumulate-subsample", streams("gmm", 0, 0, 0.2))
    # pool: R (100) + 0.2 * 300 = 160 < 300, then + 0.2 * 900 = 340 < 900
    np.testing.assert_array_equal(out["train_size"], [100, 160, 340])


# ---------------------------------------------------------------- accumulate-subsample


def test_accumulate_subsample_keeps_the_size_and_draws_from_the_pool():
    experiment = GMMExperiment(replace(SMALL, samples=300))
    sub = run_cell(experiment, 0.9, 5, "accumulate-subsample", streams("gmm", 0, 0, 0.9))
    acc = run_cell(experiment, 0.9, 5, "accumulate", streams("gmm", 0, 0, 0.9))
    assert np.all(sub["train_size"] == 300)
    np.testing.assert_array_equal(acc["train_size"], 300 + 270 * np.arange(5))
    parts = [np.arange(10.0).reshape(5, 2), np.arange(10.0, 30.0).reshape(10, 2)]
    (X,) = experiment.subsample(parts, 8, np.random.default_rng(0))
    pool = {tuple(r) for p in parts for r in p}
    assert len(X) == 8 and len({tuple(r) for r in X}) == 8 and {tuple(r) for r in X} <= pool


def test_accumulate_subsample_degrades_real_nll_less_than_mix():
    seeds, G = 48, 6
    mix = paired(SMALL, "real_nll", G, seeds)
    sub = paired(SMALL, "real_nll", G, seeds, regime="accumulate-subsample")
    # measured p between 3e-10 and 7e-6 over 6 root seeds
    assert stats.wilcoxon(sub, mix, alternative="less").pvalue < 1e-3


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("field, value", [
    ("sample_temperature", 0.0), ("sample_temperature", float("inf")), ("sample_truncation", 1.0),
    ("sample_truncation", -0.1), ("filter", "oracle"), ("quality_quantile", 1.0),
    ("verifier_c", 0.0), ("verifier_noise", -1.0), ("schedule", "cubic"),
])
def test_bad_knob_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"`gmm.{field}`"):
        GMMConfig(**{field: value})


def test_geometric_growth_zero_names_growth():
    with pytest.raises(ConfigError, match="`gmm.growth`"):
        GMMConfig(schedule="geometric", growth=0.0)
