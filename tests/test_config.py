"""Every configuration check raises ConfigError naming the argument."""

import numpy as np
import pytest

from hoi_fast.config import ConfigError, GMMConfig, GridConfig, NGramConfig, alpha_grid, as_dict


def test_defaults_are_valid_and_have_a_far_rare_tail():
    config = GridConfig()
    w, mu, cov = config.gmm.truth()
    assert len(w) >= 4
    tail = config.gmm.tail_components()
    assert len(tail) >= 1 and np.all(w[tail] <= 0.03)
    bulk_centre = np.average(mu, axis=0, weights=w)
    bulk_spread = np.sqrt(np.max([np.trace(c) for c in cov]))
    for j in tail:
        assert np.linalg.norm(mu[j] - bulk_centre) > 4 * bulk_spread


def test_alpha_grid_count_and_list():
    assert alpha_grid(3) == (0.0, 0.5, 1.0)
    assert alpha_grid([0.9, 0, 0.5]) == (0.0, 0.5, 0.9)
    assert len(alpha_grid(50)) == 50 and alpha_grid(50)[-1] == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alphas=[0.5, 1.5]), r"`alphas` values must lie in \[0, 1\]"),
        (dict(alphas=[0.5, 0.5]), "`alphas` values must be distinct"),
        (dict(alphas=0), "`alphas` count must be at least 1"),
        (dict(seeds=0), "`seeds` must be a positive integer"),
        (dict(generations=-1), "`generations` must be a positive integer"),
        (dict(regime="recycle"), "`regime` must be one of"),
        (dict(experiment="vae"), "`experiment` must be gmm, ngram or both"),
        (dict(root_seed=-3), "`root_seed` must be a non-negative integer"),
    ],
)
def test_grid_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GridConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(components=0), "`gmm.components` must be a positive integer"),
        (dict(components=20, samples=10), r"`gmm.components` \(20\) must not exceed `gmm.samples`"),
        (dict(tol=0.0), "`gmm.tol` must be a positive finite number"),
        (dict(reg_covar=-1.0), "`gmm.reg_covar` must be >= 0"),
        (dict(truth_weights=(0.5, 0.6), truth_means=((0, 0), (1, 1)),
              truth_covariances=(((1, 0), (0, 1)),) * 2), "`gmm.truth.weights` must sum to 1"),
        (dict(truth_weights=(0.5, -0.5, 1.0), truth_means=((0, 0),) * 3,
              truth_covariances=(((1, 0), (0, 1)),) * 3), "`gmm.truth.weights` must all be positive"),
        (dict(truth_weights=(0.97, 0.03), truth_means=((0, 0), (8, 8)),
              truth_covariances=(((1, 2), (2, 1)), ((1, 0), (0, 1)))),
         r"`gmm.truth.covariances\[0\]` must be positive definite"),
        (dict(truth_weights=(0.97, 0.03), truth_means=((0, 0), (8, 8)),
              truth_covariances=(((1, 0.5), (0.2, 1)), ((1, 0), (0, 1)))),
         r"`gmm.truth.covariances\[0\]` must be symmetric"),
        (dict(truth_weights=(0.97, 0.03), truth_means=((0, 0),),
              truth_covariances=(((1, 0), (0, 1)),) * 2), r"`gmm.truth.means` must have shape \(2, 2\)"),
        (dict(tail_weight=0.001), "`gmm.tail_weight` .* selects no truth component"),
    ],
)
def test_gmm_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GMMConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(order=0), "`ngram.order` must be a positive integer"),
        (dict(order=11), "`ngram.order` must be at most 10"),
        (dict(smoothing="witten-bell"), "`ngram.smoothing` must be one of"),
        (dict(k=0), "`ngram.k` must be a positive finite number"),
        (dict(discount=1.0), "`ngram.discount` must be below 1"),
        (dict(train_chars=2, order=3), "`ngram.train_chars` must exceed `ngram.order`"),
    ],
)
def test_ngram_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        NGramConfig(**kwargs)


def test_shrinking_gmm_schedule_is_refused_up_front():
    with pytest.raises(ConfigError, match="`gmm.schedule` geometric .* fewer than `gmm.components`"):
        GridConfig(generations=10, gmm=GMMConfig(samples=100, schedule="geometric", growth=0.5))
    GridConfig(generations=3, gmm=GMMConfig(samples=100, schedule="geometric", growth=0.5))  # 100, 50, 25


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sample_temperature=0), "`gmm.sample_temperature` must be a positive finite number"),
        (dict(sample_truncation=1.0), r"`gmm.sample_truncation` must be in \[0, 1\)"),
        (dict(filter="oracle"), "`gmm.filter` must be one of none, quality, verifier"),
        (dict(verifier_noise=-1), "`gmm.verifier_noise` must be a finite number >= 0"),
        (dict(schedule="cubic"), "`gmm.schedule` must be one of"),
        (dict(schedule="geometric", growth=0), r"`gmm.growth` must be a finite number >= 0 \(> 0 for a geometric"),
    ],
)
def test_gmm_knob_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GMMConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(temperature=-1), "`ngram.temperature` must be a positive finite number"),
        (dict(top_k=-2), "`ngram.top_k` must be an integer >= 0"),
        (dict(top_p=1.5), r"`ngram.top_p` must be in \(0, 1\]"),
        (dict(filter="verifier"), "`ngram.filter` must be one of none, quality"),
        (dict(filter_chunk=0), "`ngram.filter_chunk` must be a positive integer"),
    ],
)
def test_ngram_knob_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        NGramConfig(**kwargs)


@pytest.mark.parametrize(
    "sweep, match",
    [
        (("gmm.nonsense", "1,2"), "`--sweep gmm.nonsense` names no parameter"),
        (("gmm.corpus", "a"), "names no parameter"),
        (("ngram.corpus", "a,b"), "corpus cannot be swept"),
        (("gmm.samples", "100,abc"), "`gmm.samples` sweep values must be int numbers"),
        (("gmm.samples", "100,100"), "values must be distinct"),
        (("gmm.samples", "2,100"), r"`--sweep gmm.samples=2`: `gmm.components` \(5\) must not exceed"),
    ],
)
def test_sweep_errors(sweep, match):
    with pytest.raises(ConfigError, match=match):
        GridConfig(sweeps=[sweep])


def test_sweep_needs_its_experiment():
    with pytest.raises(ConfigError, match="needs `experiment` ngram or both"):
        GridConfig(experiment="gmm", sweeps=[("ngram.order", "2,3")])


def test_as_dict_round_trips_to_json():
    import json

    d = as_dict(GridConfig(alphas=[0, 0.5]))
    assert json.loads(json.dumps(d)) == d
    assert d["alphas"] == [0.0, 0.5] and d["gmm"]["components"] == 5
