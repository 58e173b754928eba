"""The GMM experiment in the shared loop: closed forms, real collapse, determinism."""

import numpy as np
import pytest
from scipy import stats

import reference_gmm as ref
from hoi_fast.experiments.gmm import GMMConfig
from hoi_fast.experiment import MetricSpec, cell_metric_specs, run_cell
from hoi_fast.experiments.gmm import GMMExperiment
from hoi_fast.experiments import streams

TRUTH_COV = ((2.0, 0.6), (0.6, 1.0))


def one_gaussian(n):
    return GMMConfig(components=1, samples=n, heldout=2, tail_heldout=2, self_samples=2,
                     tail_weight=1.0, reg_covar=0.0, truth_weights=(1.0,),
                     truth_means=((1.0, -2.0),), truth_covariances=(TRUTH_COV,))


def z_score(values, expected):
    return (values.mean() - expected) / (values.std(ddof=1) / np.sqrt(len(values)))


def test_closed_forms_of_recursive_mle_covariance():
    """K = 1, alpha = 1, mix: E[det S_g]/det S = ((n-1)(n-2)/n^2)^(g+1), E[tr S_g]/tr S = ((n-1)/n)^(g+1)."""
    n, G, seeds = 20, 5, 3000
    experiment = GMMExperiment(one_gaussian(n))
    cov = np.array(TRUTH_COV)
    dets, traces = [], []
    for seed in range(seeds):
        c = run_cell(experiment, 1.0, G, "mix", streams("gmm", 3, seed, 1.0))["covariances"][:, 0]
        dets.append(np.linalg.det(c) / np.linalg.det(cov))
        traces.append(np.trace(c, axis1=1, axis2=2) / np.trace(cov))
    dets, traces = np.array(dets), np.array(traces)
    det_factor, tr_factor = (n - 1) * (n - 2) / n**2, (n - 1) / n
    for g in range(G):
        assert abs(z_score(dets[:, g], det_factor ** (g + 1))) < 4
        assert abs(z_score(traces[:, g], tr_factor ** (g + 1))) < 4
    # Per step, E[tr S_g | S_{g-1}] = ((n-1)/n) tr S_{g-1} and det likewise, so
    # step ratios (S_{-1} = truth) have mean equal to the factor with a small
    # spread: a test that rejects a missing or extra shrinkage step (an
    # exponent off by one) by a wide margin.
    for values, factor in ((dets, det_factor), (traces, tr_factor)):
        steps = values / np.hstack([np.ones((seeds, 1)), values[:, :-1]])
        for g in range(G):
            assert abs(z_score(steps[:, g], factor)) < 4
            assert abs(z_score(steps[:, g], 1.0)) > 8
            assert abs(z_score(steps[:, g], factor**2)) > 8


def test_training_only_on_own_samples_worsens_real_and_tail_nll():
    experiment = GMMExperiment(GMMConfig())
    final = {alpha: [] for alpha in (0.0, 0.9)}
    for seed in range(30):
        for alpha in final:
            m = run_cell(experiment, alpha, 11, "mix", streams("gmm", 0, seed, alpha))
            final[alpha].append((m["real_nll"][10], m["tail_nll"][10]))
    base, synthetic = np.array(final[0.0]), np.array(final[0.9])
    for j in range(2):
        assert stats.wilcoxon(synthetic[:, j], base[:, j], alternative="greater").pvalue < 1e-3


def test_a_cell_is_deterministic_and_shaped_by_its_specs():
    config = GMMConfig(samples=300, heldout=500, tail_heldout=100, self_samples=200)
    experiment = GMMExperiment(config)
    cell = streams("gmm", 1, 4, 0.5)
    a = run_cell(experiment, 0.5, 4, "mix", cell)
    b = run_cell(GMMExperiment(config), 0.5, 4, "mix", cell)
    coords = experiment.coords()
    assert list(coords["axis"]) == ["x", "y"] and len(coords["component"]) == config.components
    for spec in cell_metric_specs(experiment):
        assert isinstance(spec, MetricSpec)
        extra = tuple(len(coords[d]) for d in spec.extra_dims)
        assert a[spec.name].shape == (4,) + extra
        assert np.array_equal(a[spec.name], b[spec.name], equal_nan=True)
    assert np.all(np.diff(a["weights"], axis=1) <= 0)  # sorted by descending weight
    np.testing.assert_allclose(a["weights"].sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(a["n_iter"] >= 1) and set(np.unique(a["converged"])) <= {0.0, 1.0}
    for name in ("real_nll", "tail_nll", "self_nll", "kl"):
        assert np.all(np.isfinite(a[name]))


@pytest.mark.parametrize("regime", ["mix", "fresh", "accumulate", "accumulate-subsample"])
def test_generation_zero_is_shared_by_every_alpha_and_regime(regime):
    experiment = GMMExperiment(GMMConfig(samples=200, heldout=300, tail_heldout=50, self_samples=50))
    g0 = [run_cell(experiment, a, 2, regime, streams("gmm", 0, 1, a)) for a in (0.0, 1.0)]
    # gen 0 trains on R (common random numbers) but its own stream depends on alpha
    assert g0[0]["train_size"][0] == g0[1]["train_size"][0] == 200
    tail = experiment.heldout(streams("gmm", 0, 1, 0.3).heldout(), None).tail
    assert np.array_equal(tail, experiment.heldout(streams("gmm", 0, 1, 0.7).heldout(), None).tail)


def test_tail_heldout_comes_only_from_tail_components():
    config = GMMConfig(tail_heldout=4000)
    experiment = GMMExperiment(config)
    tail = experiment.heldout(np.random.default_rng(0), None).tail
    w, mu, _ = config.truth()
    nearest = np.argmin(((tail[:, None] - mu[None]) ** 2).sum(-1), axis=1)
    assert set(np.unique(nearest)) <= set(config.tail_components())
    share = np.mean(nearest == config.tail_components()[0])
    expected = w[config.tail_components()[0]] / w[config.tail_components()].sum()
    assert abs(share - expected) < 4 * np.sqrt(expected * (1 - expected) / len(tail))


def test_kl_estimate_is_zero_for_the_truth_itself_and_positive_after_collapse():
    experiment = GMMExperiment(GMMConfig())
    heldout = experiment.heldout(np.random.default_rng(1), None)
    np.testing.assert_allclose(heldout.real_log_p_true, ref.log_density(heldout.real, *experiment.truth),
                               rtol=1e-13)
    m = run_cell(experiment, 1.0, 6, "mix", streams("gmm", 0, 2, 1.0))
    assert m["kl"][-1] > m["kl"][0] > 0
