"""The ``regression`` experiment: kernels against NumPy/SciPy, the fixed design, closed forms through the loop.

Closed forms are tested conditionally on each seed's design (E[||w_g - w*||^2 | X]
= sigma^2 tr (X^T X)^-1 times a known factor), which is sharp enough to reject an
index off by one, and unconditionally against d / (T - d - 1).
"""

import math

import numpy as np
import pytest
from scipy import stats

from hoi_fast._validate import ConfigError
from hoi_fast.experiment import first_generation, run_cell
from hoi_fast.experiments import regression as xr
from hoi_fast.experiments.regression import RegressionConfig, RegressionExperiment
from hoi_fast.kernels import regression as kr
from hoi_fast.reproductions import closed_forms as theory
from hoi_fast.seeding import CellStreams

KEY = 5  # the registry's stream key of ``regression``


def streams(seed, alpha, root=0):
    return CellStreams(root, KEY, seed, alpha)


def small(**kw):
    base = dict(heldout=4, self_samples=4)
    base.update(kw)
    return RegressionConfig(**base)


def z_score(values, expected):
    values = np.asarray(values)
    return (values.mean(0) - expected) / (values.std(0, ddof=1) / math.sqrt(values.shape[0]))


# -- kernels ---------------------------------------------------------------------------------

def test_row_moments_labels_and_least_squares_match_numpy():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    idx = np.array([1, 5, 5, 39, 0, 12, 7, 8, 20, 30], dtype=np.int64)
    delta, eps = rng.standard_normal(5), rng.standard_normal(10)
    r, c = np.empty(10), np.empty(5)
    rr_labels = kr.residual_labels(X, idx, True, delta, 0.5, eps, r, c)
    np.testing.assert_allclose(r, X[idx] @ delta + 0.5 * eps, rtol=1e-13)
    gram, cross = np.empty((5, 5)), np.empty(5)
    rr = kr.row_moments(X, idx, True, r, True, gram, cross)
    np.testing.assert_allclose(c, cross, rtol=1e-12)
    assert rr_labels == pytest.approx(rr, rel=1e-13)
    np.testing.assert_allclose(gram, X[idx].T @ X[idx], rtol=1e-12)
    np.testing.assert_allclose(cross, X[idx].T @ r, rtol=1e-12)
    assert rr == pytest.approx(r @ r, rel=1e-13)
    out = np.empty(5)
    ok, rss = kr.least_squares(gram, cross, rr, out)
    solution, residual, *_ = np.linalg.lstsq(X[idx], r, rcond=None)
    assert ok
    np.testing.assert_allclose(out, solution, rtol=1e-10)
    assert rss == pytest.approx(residual[0], rel=1e-9)
    second = X.T @ X / 40
    e = rng.standard_normal(40)
    loss = kr.quadratic_loss(delta, second, X.T @ e / 40, e @ e / 40)
    assert loss == pytest.approx(np.mean((e - X @ delta) ** 2), rel=1e-12)


@pytest.mark.parametrize("k", [3, 10, 17, 19, 20, 33, 45])
def test_gram_of_design_rows_matches_numpy_from_either_side(k):
    """subset_gram sums the chosen rows (k <= T/2) or subtracts the others from X^T X; repeats for k > T."""
    rng = np.random.default_rng(k)
    experiment = RegressionExperiment(small(features=4, samples=20))
    design = experiment.real_pool(rng).design
    index = xr.design_rows(20, k, rng)
    rows = design.X if index is None else design.X[index]
    np.testing.assert_allclose(xr.design_gram(design, k, index), rows.T @ rows, rtol=1e-11, atol=1e-12)


def test_rank_deficient_designs_use_the_minimum_norm_solution():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 5))  # 3 rows, 5 features
    w_star, r = rng.standard_normal(5), rng.standard_normal(3)
    gram = X.T @ X
    assert not kr.least_squares(gram, X.T @ r, r @ r, np.empty(5))[0]
    delta, rss = xr.min_norm_delta(gram, X.T @ r, r @ r, w_star)
    y = X @ w_star + r
    np.testing.assert_allclose(w_star + delta, np.linalg.pinv(X) @ y, rtol=1e-8, atol=1e-10)
    assert rss == pytest.approx(0.0, abs=1e-9)
    experiment = RegressionExperiment(small(features=5, samples=3))  # T < d runs every regime
    for regime in ("mix", "fresh", "accumulate", "accumulate-subsample"):
        m = run_cell(experiment, 0.5, 3, regime, streams(0, 0.5))
        assert np.isfinite(m["test_mse"]).all()


def test_metrics_equal_the_scipy_references():
    config = RegressionConfig(features=4, samples=30, noise=0.7, heldout=300, self_samples=50)
    experiment = RegressionExperiment(config)
    cell = streams(3, 0.5)
    first = first_generation(experiment, cell)
    pool, heldout, model = first.pool, first.heldout, first.model
    X, w_star = pool.design.X, pool.design.w_star
    y = X @ w_star + pool.resid  # the real labels
    w = np.linalg.lstsq(X, y, rcond=None)[0]
    sd = math.sqrt(0.7)
    row = first.row
    np.testing.assert_allclose(row["weights"], w, rtol=1e-10)
    assert row["test_mse"] == pytest.approx(np.sum((w - w_star) ** 2), rel=1e-9)
    y_h = heldout.X @ w_star + heldout.noise
    assert row["real_nll"] == pytest.approx(-stats.norm.logpdf(y_h, heldout.X @ w, sd).mean(), rel=1e-12)
    assert row["train_nll"] == pytest.approx(-stats.norm.logpdf(y, X @ w, sd).mean(), rel=1e-12)
    np.testing.assert_array_equal(heldout.w_star, w_star)
    assert model.count == 30


def test_self_nll_has_the_law_of_explicit_model_rows():
    config = RegressionConfig(features=3, samples=20, noise=2.0, self_samples=15)
    experiment = RegressionExperiment(config)
    first = first_generation(experiment, streams(0, 0.0))
    rng = np.random.default_rng(2)
    ours = [experiment.metrics(first.model, [], first.heldout, rng)["self_nll"] for _ in range(2000)]
    ref = []
    for _ in range(2000):  # rows of the model: design rows, labels x^T w + noise, scored by SciPy
        rows = experiment.sample(first.model, 15, rng)
        y = rows.features() @ first.pool.design.w_star + rows.resid
        ref.append(-stats.norm.logpdf(y, rows.features() @ (first.pool.design.w_star + first.model.delta),
                                      math.sqrt(2.0)).mean())
    assert stats.ks_2samp(ours, ref).pvalue > 1e-3
    wrong = 0.5 * math.log(2 * math.pi * 2.0) + 0.5 * rng.chisquare(14, 2000) / 15  # one row short
    assert stats.ks_2samp(wrong, ref).pvalue < 1e-6


# -- the fixed design and the rows -----------------------------------------------------------

def test_design_rows_rule():
    rng = np.random.default_rng(3)
    assert xr.design_rows(10, 10, rng) is None
    fewer = xr.design_rows(10, 6, rng)
    assert len(set(fewer.tolist())) == 6 and fewer.max() < 10
    more = xr.design_rows(10, 23, rng)
    counts = np.bincount(more, minlength=10)
    assert len(more) == 23 and counts.min() == 2 and counts.max() == 3 and (counts == 3).sum() == 3


def test_rows_of_each_regime_relate_to_the_design_as_documented():
    experiment = RegressionExperiment(small(features=3, samples=12))
    first = first_generation(experiment, streams(1, 0.5))
    pool, design = first.pool, first.pool.design
    rng = np.random.default_rng(4)
    sub = experiment.real_subset(pool, 5, rng)  # rows of R with their real labels
    np.testing.assert_array_equal(sub.features(), design.X[sub.index])
    np.testing.assert_array_equal(sub.resid, pool.resid[sub.index])
    syn = experiment.sample(first.model, 12, rng)  # the whole design, relabelled by the model
    assert syn.index is None and syn.X is design.X
    fresh = experiment.fresh_real(7, rng)  # fresh features from the population
    assert fresh.design is None and fresh.X.shape == (7, 3)
    assert not any((fresh.X[0] == row).all() for row in design.X)
    model = experiment.fit([fresh], rng)  # a model of fresh rows alone labels their features
    assert model.design.X.shape == (7, 3) and len(experiment.sample(model, 4, rng)) == 4
    [part] = experiment.subsample([pool, syn, fresh], 20, rng)
    assert len(part) == 20 and part.design is design


@pytest.mark.parametrize("regime", ["mix", "fresh", "accumulate", "accumulate-subsample"])
def test_every_regime_runs_deterministically_with_a_shared_generation_zero(regime):
    experiment = RegressionExperiment(small(features=3, samples=20))
    runs = {a: run_cell(experiment, a, 4, regime, streams(2, a)) for a in (0.0, 0.4, 1.0)}
    again = run_cell(experiment, 0.4, 4, regime, streams(2, 0.4))
    for name, values in runs[0.4].items():
        np.testing.assert_array_equal(values, again[name])
    for a in runs:
        np.testing.assert_array_equal(runs[a]["weights"][0], runs[0.0]["weights"][0])
    if regime == "accumulate":
        np.testing.assert_array_equal(runs[1.0]["train_size"], [20, 40, 60, 80])
        np.testing.assert_array_equal(runs[0.4]["train_size"], [20, 28, 36, 44])
    else:
        np.testing.assert_array_equal(runs[1.0]["train_size"], [20] * 4)
    if regime in ("mix", "accumulate"):  # alpha = 0 refits R
        np.testing.assert_array_equal(runs[0.0]["weights"][1:], runs[0.0]["weights"][:-1])


# -- closed forms through the loop -----------------------------------------------------------

def normalised_errors(regime, T, d, noise, G, seeds):
    """||w_g - w*||^2 / (sigma^2 tr (X^T X)^-1) per seed and generation, alpha = 1, and the raw errors."""
    experiment = RegressionExperiment(small(features=d, samples=T, noise=noise))
    out, raw = np.empty((seeds, G)), np.empty((seeds, G))
    for s in range(seeds):
        cell = streams(s, 1.0, root=7)
        first = first_generation(experiment, cell)
        mse = run_cell(experiment, 1.0, G, regime, cell, first)["test_mse"]
        raw[s] = mse
        out[s] = mse / (noise * np.trace(np.linalg.inv(first.pool.design.gram)))
    return out, raw


def test_replace_error_grows_linearly():
    """mix, alpha = 1: E[||w_g - w*||^2 | X] = (g + 1) sigma^2 tr (X^T X)^-1; g and g + 2 are rejected."""
    T, d, noise, G = 20, 4, 2.0, 6
    ratio, raw = normalised_errors("mix", T, d, noise, G, 800)
    g = np.arange(G)
    assert np.abs(z_score(ratio, g + 1)).max() < 4
    assert np.abs(z_score(ratio, g))[:3].min() > 8
    assert np.abs(z_score(ratio, g + 2))[:3].min() > 8
    assert np.abs(z_score(raw, theory.regression_replace(T, d, noise, g))).max() < 4


def test_accumulate_error_stays_below_pi_squared_over_six_times_the_first():
    """accumulate, alpha = 1: E[... | X] = sigma^2 tr (X^T X)^-1 sum_{i=1..g+1} 1/i^2; an index off by one fails."""
    T, d, noise, G = 20, 4, 0.5, 6
    ratio, raw = normalised_errors("accumulate", T, d, noise, G, 1500)
    g = np.arange(G)
    expected = np.cumsum(1.0 / np.arange(1, G + 1) ** 2)
    assert np.abs(z_score(ratio, expected)).max() < 4
    shifted = np.concatenate([[0.0], expected[:-1]])  # sum up to g
    assert np.abs(z_score(ratio, shifted))[:2].min() > 8
    assert np.abs(z_score(ratio, g + 1))[1:].min() > 8  # the replace formula
    assert np.abs(z_score(raw, theory.regression_accumulate(T, d, noise, g))).max() < 4
    assert raw[:, -1].mean() < math.pi ** 2 / 6 * raw[:, 0].mean()  # bounded, as the paper says


# -- configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize("kw, match", [
    (dict(features=0), "regression.features"),
    (dict(features=5000), "regression.features"),
    (dict(samples=0), "regression.samples"),
    (dict(features=1000, samples=10**6), "regression.samples"),
    (dict(heldout=0), "regression.heldout"),
    (dict(self_samples=0), "regression.self_samples"),
    (dict(noise=0.0), "regression.noise"),
    (dict(noise=math.nan), "regression.noise"),
    (dict(noise=1e60), "regression.noise"),
    (dict(schedule="cubic"), "regression.schedule"),
    (dict(growth=-1.0), "regression.growth"),
    (dict(weights=(1.0, 2.0)), "regression.weights"),
    (dict(features=2, weights=(1.0, math.inf)), "regression.weights"),
    (dict(features=2, weights=(1e30, 0.0)), "regression.weights"),
])
def test_bad_settings_are_one_line_errors_naming_the_key(kw, match):
    with pytest.raises(ConfigError, match=match) as info:
        RegressionConfig(**kw)
    assert "\n" not in str(info.value)


def test_given_weights_are_used_and_metric_set_depends_on_features_only_through_the_limit():
    experiment = RegressionExperiment(small(features=2, samples=10, weights=[0.5, -1.0]))
    first = first_generation(experiment, streams(0, 0.0))
    np.testing.assert_array_equal(first.pool.design.w_star, [0.5, -1.0])
    assert experiment.config.weights == (0.5, -1.0)  # lists become tuples: configs stay hashable
    names16 = [s.name for s in RegressionExperiment(RegressionConfig(features=16)).metric_specs()]
    names17 = [s.name for s in RegressionExperiment(RegressionConfig(features=17)).metric_specs()]
    assert names16 == names17 + ["weights"]
    roles = {s.name: s.role for s in experiment.metric_specs()}
    assert roles["real_nll"] == "real" and roles["self_nll"] == "self"


def test_a_schedule_without_rows_is_refused_up_front():
    from types import SimpleNamespace

    config = RegressionConfig(samples=4, schedule="geometric", growth=0.1)
    with pytest.raises(ConfigError, match="regression.growth"):
        config.check_grid(SimpleNamespace(generations=3))
    with pytest.raises(ValueError, match="regression.schedule"):
        RegressionExperiment(config).train_size(2)


# -- the grid, the store and the report -------------------------------------------------------

class PluginRegression(RegressionExperiment):
    """The experiment under another name, for grids run before ``regression`` is in the registry."""

    name = "regression_plugin"


def grid_word():
    """``(--experiment word, table name)``: the registered name once registered, else the plug-in."""
    from hoi_fast.experiments import BUILTIN

    return (("regression", "regression") if "regression" in BUILTIN
            else ("test_regression:PluginRegression", "regression_plugin"))


def test_grid_runs_every_regime_resumes_and_reports(tmp_path):
    h5py = pytest.importorskip("h5py")
    from hoi_fast import grid, report

    word, table = grid_word()
    toml = tmp_path / "r.toml"
    toml.write_text(f"[{table}]\nfeatures = 3\nsamples = 20\nheldout = 50\nself_samples = 10\n")
    for regime in ("mix", "fresh", "accumulate", "accumulate-subsample"):
        out = tmp_path / f"{regime}.h5"
        argv = ["--experiment", word, "--config", str(toml), "--alphas", "0,0.5,1", "--seeds", "2",
                "--generations", "3", "--regime", regime, "--jobs", "1", "--out", str(out), "--quiet"]
        assert grid.main(argv) == 0
        with h5py.File(out, "r") as f:
            group = f[table]
            assert group["done"][...].all() and group["weights"].shape == (3, 2, 3, 3)
            assert group["real_nll"].attrs["role"] == "real" and group["self_nll"].attrs["role"] == "self"
            before = group["test_mse"][...]
        assert grid.main(argv) == 0
        with h5py.File(out, "r") as f:
            np.testing.assert_array_equal(f[table]["test_mse"][...], before)
    assert report.main([str(out), "--out", str(tmp_path / "report"), "--n-resamples", "200",
                        "--alpha-resamples", "50"]) == 0
    assert (tmp_path / "report" / "summary.md").exists()
