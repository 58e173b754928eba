"""Every configuration check raises ConfigError naming the argument."""

import numpy as np
import pytest

from hoi_fast._validate import ConfigError
from hoi_fast._validate import ConfigError
from hoi_fast.config import GridConfig, alpha_grid, as_dict, settings_from_toml
from hoi_fast.experiments.gmm import GMMConfig
from hoi_fast.experiments.ngram import NGramConfig


def test_defaults_are_valid_and_have_a_far_rare_tail():
    config = GridConfig()
    w, mu, cov = config.configs["gmm"].truth()
    assert len(w) >= 4
    tail = config.configs["gmm"].tail_components()
    assert len(tail) >= 1 and np.all(w[tail] <= 0.03)
    bulk_centre = np.average(mu, axis=0, weights=w)
    bulk_spread = np.sqrt(np.max([np.trace(c) for c in cov]))
    for j in tail:
        assert np.linalg.norm(mu[j] - bulk_centre) > 4 * bulk_spread


def test_library_and_cli_share_one_set_of_defaults():
    from hoi_fast import grid

    config = GridConfig()
    assert len(config.alphas) == 50 and config.seeds == 100 and config.generations == 20
    assert grid.config_from_args(grid.build_parser().parse_args([])) == config


def test_alpha_grid_count_and_list():
    assert alpha_grid(3) == (0.0, 0.5, 1.0)
    assert alpha_grid([0.9, 0, 0.5]) == (0.0, 0.5, 0.9)
    assert len(alpha_grid(50)) == 50 and alpha_grid(50)[-1] == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alphas=[0.5, 1.5]), r"`alphas` values must lie in \[0, 1\]"),
        (dict(alphas=[0.5, 0.5]), "`alphas` values must be distinct"),
        (dict(alphas=0), "`alphas` count must be between 1 and"),
        (dict(seeds=0), "`seeds` must be a positive integer"),
        (dict(generations=-1), "`generations` must be a positive integer"),
        (dict(regime="recycle"), "`regime` must be one of"),
        (dict(experiment="vae"), "`--experiment` 'vae' names no experiment"),
        (dict(experiment="gmm,,ngram"), "`--experiment` must name experiments separated by commas"),
        (dict(root_seed=-3), r"`root_seed` must be an integer in \[0, 2\*\*63\)"),
        (dict(root_seed=2**64), r"`root_seed` must be an integer in \[0, 2\*\*63\)"),
        (dict(configs={"vae": {}}), r"`\[vae\]` names no experiment that runs"),
        (dict(configs={"gmm": {"compnents": 3}}), "`gmm.compnents` is not a known setting"),
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
        (dict(reg_covar=-1.0), "`gmm.reg_covar` must be a finite number >= 0"),
        (dict(reg_covar=True), "`gmm.reg_covar` must be a finite number >= 0"),
        (dict(reg_covar=1e308), r"`gmm.reg_covar` must be a finite number >= 0 \(at most 1e\+100\)"),
        (dict(sample_temperature=1e300), r"`gmm.sample_temperature` must be a positive finite number \(at most"),
        (dict(truth_weights=(1.0,), truth_means=((1e300, 0),), truth_covariances=(((1, 0), (0, 1)),)),
         "`gmm.truth.means` must have coordinates of magnitude at most 1e\\+50"),
        (dict(truth_weights=(1.0,), truth_means=((0, 0),), truth_covariances=(((1e300, 0), (0, 1)),)),
         "`gmm.truth.covariances` must have entries of magnitude at most"),
        (dict(sample_truncation=0.9999999999), "`gmm.sample_truncation` must be at most 0.999999"),
        (dict(samples=10**12), r"`gmm.samples` must be a positive integer \(at most 100,000,000\)"),
        (dict(max_iter=10**20), "`gmm.max_iter` must be a positive integer"),
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
        GridConfig(generations=10, configs={"gmm": GMMConfig(samples=100, schedule="geometric", growth=0.5)})
    GridConfig(generations=3, configs={"gmm": GMMConfig(samples=100, schedule="geometric", growth=0.5)})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sample_temperature=0), "`gmm.sample_temperature` must be a positive finite number"),
        (dict(sample_truncation=1.0), r"`gmm.sample_truncation` must be in \[0, 1\)"),
        (dict(filter="oracle"), "`gmm.filter` must be one of none, quality, verifier"),
        (dict(verifier_noise=-1), "`gmm.verifier_noise` must be a finite number >= 0"),
        (dict(schedule="cubic"), "`gmm.schedule` must be one of"),
        (dict(schedule="geometric", growth=0), r"`gmm.growth` must be a finite number in \[0, 1e6\] \(> 0 for a geometric"),
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
        (("gmm.nonsense", "1,2"), r"`--sweep gmm.nonsense` names no parameter of \[gmm\]"),
        (("gmm.corpus", "a"), "names no parameter"),
        (("ngram.corpus", "a,b"), "corpus cannot be swept"),
        (("gmm.truth_means", "1"), "truth_means cannot be swept"),
        (("gmm.samples", "100,abc"), "`gmm.samples` sweep values must be integers"),
        (("gmm.samples", "100,inf"), "`gmm.samples` sweep values must be integers"),
        (("gmm.tol", "1e-3,nan"), "`gmm.tol` sweep values must be finite numbers"),
        (("gmm.samples", "100,,200"), "`--sweep gmm.samples` has an empty value"),
        (("gmm.samples", "100,100"), "values must be distinct"),
        (("gmm.samples", "2,100"), r"`--sweep gmm.samples=2`: `gmm.components` \(5\) must not exceed"),
    ],
)
def test_sweep_errors(sweep, match):
    with pytest.raises(ConfigError, match=match):
        GridConfig(sweeps=[sweep])


def test_sweep_needs_its_experiment():
    with pytest.raises(ConfigError, match="needs `experiment` ngram among the experiments run"):
        GridConfig(experiment="gmm", sweeps=[("ngram.order", "2,3")])


def test_identity_round_trips_to_json_and_back():
    import json

    config = GridConfig(experiment="both", alphas=[0, 0.5], sweeps=[("gmm.samples", "100,200")])
    d = config.identity()
    assert json.loads(json.dumps(d)) == d
    assert d["alphas"] == [0.0, 0.5] and d["gmm"]["components"] == 5
    assert GridConfig.from_identity(d) == config
    assert as_dict(config.configs["ngram"])["order"] == 4


def test_selection_words_aliases_and_order():
    assert GridConfig().experiments == GridConfig(experiment="all").experiments
    assert GridConfig(experiment="both").experiments == ("gmm", "ngram")
    assert GridConfig(experiment="ngram,gmm").experiments == ("ngram", "gmm")
    assert GridConfig(experiment=["gmm", "gmm"]).experiments == ("gmm",)
    assert GridConfig(experiment="both").identity() == GridConfig(experiment="gmm,ngram").identity()


def test_an_old_identity_with_both_and_missing_fields_still_describes_the_run():
    config = GridConfig(experiment="both", alphas=[0, 1])
    old = config.identity()
    old["experiment"] = "both"
    del old["gmm"]["verifier_noise"]  # a field an older version did not have
    assert GridConfig.from_identity(old).identity() == config.identity()


def test_toml_tables_and_sweeps_for_any_registered_experiment():
    settings = settings_from_toml({
        "grid": {"experiment": "both", "alphas": [0, 1], "seeds": 2},
        "gmm": {"components": 2, "truth": {"weights": [1.0], "means": [[0, 0]], "covariances": [[[1, 0], [0, 1]]]}},
        "ngram": {"order": 3},
        "sweep": {"gmm.samples": [100, 200], "ngram": {"smoothing": ["mle", "add-k"]}},
    })
    config = GridConfig(**settings)
    assert config.configs["gmm"].components == 2 and config.configs["gmm"].truth_weights == (1.0,)
    assert config.configs["ngram"].order == 3
    assert [s.name for s in config.sweeps] == ["gmm.samples", "ngram.smoothing"]
    assert config.experiment_config("ngram", {"ngram.smoothing": "mle"}).smoothing == "mle"


def test_tables_of_experiments_that_do_not_run_are_still_checked():
    GridConfig(experiment="gmm", configs={"ngram": {"order": 3}})
    with pytest.raises(ConfigError, match="`ngram.order` must be at most 10"):
        GridConfig(experiment="gmm", configs={"ngram": {"order": 30}})
