"""Bands, paired degradation and the critical alpha, against theory and slow references.

Coverage tests run many independent repetitions as one vectorised cube (one
point per repetition), so a rate is estimated from thousands of intervals in
one call; every random stream is seeded, so the tests are deterministic.
"""

import numpy as np
import pytest
import scipy.stats

from hoi_fast import stats
from hoi_fast.stats import _common

LEVEL = 0.95


def covered(band, truth):
    return (band.low <= truth) & (truth <= band.high)


# -- pointwise coverage --------------------------------------------------------

@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_bootstrap_band_covers_true_mean_at_nominal_rate(method):
    # 3000 repetitions of 60 seeds.  At 30 seeds bootstrap bands of a mean
    # undercover (~93.5%: normal instead of t quantile), hence 60 here.
    rng = np.random.default_rng(11)
    truth = 2.5
    values = truth + 0.7 * rng.standard_normal((3000, 60))
    band = stats.seed_band(values, axis=1, method=method, n_resamples=2000, rng=1)
    rate = covered(band, truth).mean()
    assert 0.93 <= rate <= 0.97
    assert set(band.method.ravel()) == {method}


def test_bootstrap_band_covers_skewed_mean():
    # Exponential data (skewed): BCa still near nominal with 100 seeds.
    rng = np.random.default_rng(12)
    values = rng.exponential(1.0, (2000, 100))
    band = stats.seed_band(values, axis=1, method="bca", n_resamples=2000, rng=2)
    assert 0.93 <= covered(band, 1.0).mean() <= 0.97


def test_t_band_covers_exactly_on_normal_data():
    rng = np.random.default_rng(13)
    values = rng.standard_normal((4000, 30))
    band = stats.seed_band(values, axis=1, method="t")
    assert 0.93 <= covered(band, 0.0).mean() <= 0.97
    # reference: scipy's own t interval, point by point
    ref = scipy.stats.t.interval(LEVEL, 29, loc=values.mean(1), scale=scipy.stats.sem(values, axis=1))
    np.testing.assert_allclose(band.low, ref[0], rtol=1e-12)
    np.testing.assert_allclose(band.high, ref[1], rtol=1e-12)


def test_bootstrap_band_agrees_with_t_interval_on_normal_data():
    rng = np.random.default_rng(14)
    values = 3.0 + rng.standard_normal((200, 100))
    boot = stats.seed_band(values, axis=1, method="bca", n_resamples=9999, rng=3)
    t = stats.seed_band(values, axis=1, method="t")
    np.testing.assert_array_equal(boot.mean, t.mean)
    width = t.high - t.low
    assert np.max(np.abs(boot.low - t.low) / width) < 0.08
    assert np.max(np.abs(boot.high - t.high) / width) < 0.08
    assert abs(np.mean(boot.width / width) - 1) < 0.03


@pytest.mark.parametrize("method, scipy_method", [("percentile", "percentile"), ("bca", "BCa")])
def test_bootstrap_band_matches_scipy_bootstrap(method, scipy_method):
    # Same intervals as scipy.stats.bootstrap (different resamples): ends agree
    # to a few percent of the width on normal and on skewed data (measured
    # <= 0.027).  A BCa without the acceleration is off by 0.22 of the width
    # on the skewed rows, plain percentiles by 0.30: this check catches both.
    rng = np.random.default_rng(26)
    values = np.concatenate([rng.normal(1, 1, (20, 40)), rng.exponential(1.0, (20, 40))])
    ours = stats.seed_band(values, axis=1, method=method, n_resamples=20000, rng=4)
    ref = scipy.stats.bootstrap((values,), np.mean, axis=1, vectorized=True, method=scipy_method,
                                n_resamples=20000, rng=5).confidence_interval
    width = ref.high - ref.low
    assert np.max(np.abs(ours.low - ref.low) / width) < 0.05
    assert np.max(np.abs(ours.high - ref.high) / width) < 0.05
    assert set(ours.method) == {method}


def test_bootstrap_resample_weights_have_the_bootstrap_law():
    # counts of a seed in a resample are Binomial(n, 1/n); resamples have n draws
    w = _common._resample_weights(np.random.default_rng(27), 10, 20000)
    assert np.all(w.sum(axis=1) == 10)
    assert w.mean() == pytest.approx(1.0, abs=0.01)
    assert w.var() == pytest.approx(10 * 0.1 * 0.9, abs=0.02)


# -- simultaneous band ---------------------------------------------------------

def test_simultaneous_band_covers_whole_curve_at_nominal_rate():
    # 1000 repetitions of 50 seeds x 20 generations of a correlated random walk
    rng = np.random.default_rng(15)
    steps = rng.standard_normal((1000, 50, 20))
    curves = np.cumsum(steps, axis=2) / np.sqrt(np.arange(1, 21))
    sim = stats.simultaneous_band(curves, seed_axis=1, curve_axis=2, n_resamples=1000, rng=4)
    whole = covered(sim, 0.0).all(axis=1).mean()
    assert 0.92 <= whole <= 0.975
    point = stats.seed_band(curves, axis=1, method="t")
    assert covered(point, 0.0).all(axis=1).mean() < 0.85  # pointwise bands miss whole curves
    assert np.all(sim.width > point.width)  # and the simultaneous band is wider everywhere
    assert sim.simultaneous and set(sim.method.ravel()) == {"sup-t"}


def test_simultaneous_band_follows_the_axes():
    rng = np.random.default_rng(16)
    values = rng.standard_normal((3, 40, 7))  # (alpha, seed, generation)
    band = stats.simultaneous_band(values, seed_axis=1, curve_axis=2, n_resamples=500, rng=5)
    moved = stats.simultaneous_band(np.transpose(values, (2, 1, 0)), seed_axis=1, curve_axis=0,
                                    n_resamples=500, rng=5)
    assert band.mean.shape == (3, 7) and moved.mean.shape == (7, 3)
    np.testing.assert_allclose(moved.low.T, band.low, rtol=1e-10)
    np.testing.assert_allclose(band.mean, values.mean(axis=1), rtol=1e-12)


# -- degenerate and ragged inputs -----------------------------------------------

@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("method", stats.METHODS)
def test_constant_seeds_give_zero_width_band_without_warnings(method):
    values = np.full((4, 20, 3), 1.25)
    values[1] = 0.0
    values[2, :, 1] = np.linspace(0, 1, 20)  # one ordinary point among degenerate ones
    band = stats.seed_band(values, axis=1, method=method, n_resamples=999, rng=0)
    degenerate = np.ones((4, 3), bool)
    degenerate[2, 1] = False
    assert not np.isnan(band.low).any() and not np.isnan(band.high).any()
    np.testing.assert_array_equal(band.low[degenerate], values[:, 0][degenerate])
    np.testing.assert_array_equal(band.high[degenerate], band.low[degenerate])
    np.testing.assert_array_equal(band.mean[degenerate], band.low[degenerate])
    assert np.all(band.method[degenerate] == "exact")
    assert band.width[2, 1] > 0


@pytest.mark.filterwarnings("error")
def test_paired_degradation_at_alpha_zero_and_generation_zero_is_exact():
    rng = np.random.default_rng(17)
    seeds = rng.normal(3, 0.2, (1, 25, 1))
    values = seeds + np.linspace(0, 0.3, 4)[:, None, None] * np.arange(5) + 0.01 * rng.standard_normal((4, 25, 5))
    values[:, :, 0] = seeds[:, :, 0]  # generation 0 is shared by every alpha
    diff = stats.paired_degradation(values, [0.0, 0.3, 0.6, 1.0])
    band = stats.seed_band(diff, axis=1, n_resamples=999)
    assert np.all(band.width[0] == 0) and np.all(band.width[:, 0] == 0)
    assert np.all(band.low[1:, 1:] > 0)
    sim = stats.simultaneous_band(diff, seed_axis=1, curve_axis=2, n_resamples=300)
    assert np.all(sim.width[0] == 0) and np.all(sim.method[:, 0] == "exact")
    assert not np.isnan(sim.low).any()


@pytest.mark.filterwarnings("error")
def test_nan_seeds_are_left_out_per_point():
    rng = np.random.default_rng(18)
    values = rng.standard_normal((6, 30))
    values[1, 20:] = np.nan  # ragged: 20 seeds
    values[2, ::2] = np.nan  # another pattern: 15 seeds
    values[3, 1:] = np.nan  # one seed: no interval
    values[4] = np.nan  # not started
    band = stats.seed_band(values, axis=1, method="t")
    np.testing.assert_array_equal(band.n, [30, 20, 15, 1, 0, 30])
    for row in (0, 1, 2, 5):
        ref = stats.seed_band(values[row][~np.isnan(values[row])], axis=0, method="t")
        assert band.low[row] == ref.low and band.high[row] == ref.high
    assert band.method[3] == "too few" and np.isnan(band.low[3]) and band.mean[3] == values[3, 0]
    assert np.isnan(band.mean[4])
    boot = stats.seed_band(values, axis=1, n_resamples=999)
    assert np.isfinite(boot.low[[0, 1, 2, 5]]).all()


def test_bands_are_deterministic_and_validated():
    values = np.random.default_rng(19).standard_normal((5, 40))
    a = stats.seed_band(values, axis=1, n_resamples=999, rng=7)
    b = stats.seed_band(values, axis=1, n_resamples=999, rng=7)
    np.testing.assert_array_equal(a.low, b.low)
    with pytest.raises(ValueError, match="`method`"):
        stats.seed_band(values, method="normal")
    with pytest.raises(ValueError, match="`level`"):
        stats.seed_band(values, level=95)
    with pytest.raises(ValueError, match="`axis`"):
        stats.seed_band(values, axis=2)
    with pytest.raises(ValueError, match="`n_resamples`"):
        stats.seed_band(values, n_resamples=0)


# -- paired degradation, gap ---------------------------------------------------

def test_paired_degradation_requires_alpha_zero():
    with pytest.raises(ValueError, match="`alphas` has no 0"):
        stats.paired_degradation(np.zeros((2, 3, 4)), [0.5, 1.0])
    with pytest.raises(ValueError, match="one value per entry"):
        stats.paired_degradation(np.zeros((2, 3, 4)), [0.0])
    values = np.arange(24.0).reshape(2, 3, 4)
    diff = stats.paired_degradation(values, [1.0, 0.0], alpha_axis=0)
    np.testing.assert_array_equal(diff[1], 0)
    np.testing.assert_array_equal(diff[0], -12)


def test_illusion_gap_is_real_minus_self():
    real, self_ = np.array([[3.0, 3.5]]), np.array([[3.0, 3.1]])
    np.testing.assert_allclose(stats.illusion_gap(real, self_), [[0.0, 0.4]])
    with pytest.raises(ValueError, match="same shape"):
        stats.illusion_gap(real, self_[:, :1])


# -- one-sided bound and critical alpha -------------------------------------------

def test_lower_confidence_bound_matches_scipy_ttest():
    rng = np.random.default_rng(20)
    values = rng.normal(1, 2, (5, 33))
    bound = stats.lower_confidence_bound(values, seed_axis=1, level=0.95)
    for row, b in zip(values, bound):
        ref = scipy.stats.ttest_1samp(row, 0, alternative="greater").confidence_interval(0.95).low
        assert b == pytest.approx(ref, rel=1e-12)


def reference_alpha_star(cube, alphas, tolerance=0.01, level=0.95):
    """Slow, obvious alpha* per generation of an (alpha, seed, generation) cube."""
    zero = list(alphas).index(0.0)
    out = []
    for g in range(cube.shape[2]):
        base = cube[zero, :, g]
        star = np.inf
        for a in np.argsort(alphas):
            d = cube[a, :, g] - base
            d = d[~np.isnan(d)]
            if len(d) < 2:
                continue
            lb = d.mean() - scipy.stats.t.ppf(level, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
            if lb > tolerance * abs(np.nanmean(base)):
                star = alphas[a]
                break
        out.append(star)
    return np.array(out)


def planted_cube(rng, alphas, thresholds, seeds=80, noise=0.01):
    """Degradation 5% of the base for alpha >= threshold[g], 0 below; paired seeds."""
    gens = len(thresholds)
    base = rng.normal(3.0, 0.3, (1, seeds, 1))
    effect = (alphas[:, None] >= np.asarray(thresholds)[None, :]) * 0.15
    return base + effect[:, None, :] + noise * rng.standard_normal((len(alphas), seeds, gens))


@pytest.mark.parametrize("rule", ["sequence", "first"])
def test_critical_alpha_recovers_planted_threshold_per_generation(rule):
    rng = np.random.default_rng(21)
    alphas = np.round(np.linspace(0, 1, 21), 10)
    thresholds = [1.5, 0.8, 0.6, 0.45, 0.3, 0.2]  # 1.5: nothing qualifies at generation 0
    cube = planted_cube(rng, alphas, thresholds)
    crit = stats.critical_alpha(cube, alphas, rule=rule, n_resamples=500, rng=8)
    expected = np.array([np.inf, 0.8, 0.6, 0.45, 0.3, 0.2])
    np.testing.assert_array_equal(crit.per_generation, expected)
    np.testing.assert_array_equal(crit.per_generation, reference_alpha_star(cube, alphas))
    assert crit.value == 0.2 and crit.generation == 5 and crit.found
    assert crit.low <= 0.2 <= crit.high
    assert np.isinf(crit.per_generation_low[0]) and crit.found_fraction[0] == 0
    assert crit.n_seeds == 80


def test_critical_alpha_matches_reference_on_noisy_cube_and_ignores_order():
    rng = np.random.default_rng(22)
    alphas = np.linspace(0, 1, 11)
    cube = planted_cube(rng, alphas, [0.55] * 4, seeds=15, noise=0.3)
    cube[3, 5:, :] = np.nan  # a half-done row
    crit = stats.critical_alpha(cube, alphas, rule="first", n_resamples=200, rng=9)
    np.testing.assert_array_equal(crit.per_generation, reference_alpha_star(cube, alphas))
    perm = rng.permutation(len(alphas))
    shuffled = stats.critical_alpha(cube[perm], alphas[perm], rule="first", n_resamples=200, rng=9)
    np.testing.assert_array_equal(shuffled.per_generation, crit.per_generation)


def test_critical_alpha_interval_covers_planted_threshold_under_noise():
    # Near the threshold the test is noisy: the interval widens but holds the truth.
    rng = np.random.default_rng(23)
    alphas = np.round(np.linspace(0, 1, 11), 10)
    cube = planted_cube(rng, alphas, [0.5, 0.5], seeds=20, noise=0.25)
    crit = stats.critical_alpha(cube, alphas, generation=1, n_resamples=1000, rng=10)
    assert crit.low <= 0.5 <= crit.high
    assert crit.high - crit.low > 0


def test_critical_alpha_none_qualifies_is_inf_and_sweeps_are_batch_axes():
    rng = np.random.default_rng(24)
    alphas = np.array([0.0, 0.5, 1.0])
    base = rng.normal(3, 0.3, (1, 1, 30, 1))  # paired: the seed's level is shared by every alpha
    flat = base + rng.normal(0, 0.003, (3, 2, 30, 4))  # (alpha, sweep, seed, generation)
    flat[:, 1] += np.array([0.0, 0.5, 0.5])[:, None, None]  # sweep 1 degrades from alpha 0.5
    crit = stats.critical_alpha(flat, alphas, alpha_axis=0, seed_axis=2, generation_axis=3,
                                n_resamples=300, rng=11)
    assert crit.rule == "sequence"
    assert crit.per_generation.shape == (4, 2)
    assert np.all(np.isinf(crit.per_generation[:, 0])) and not crit.found[0]
    assert np.all(crit.per_generation[:, 1] == 0.5) and crit.found[1]


def test_critical_alpha_validation():
    cube = np.zeros((2, 5, 3))
    with pytest.raises(ValueError, match="`alphas` has no 0"):
        stats.critical_alpha(cube, [0.5, 1.0])
    with pytest.raises(ValueError, match="`generation`"):
        stats.critical_alpha(cube, [0.0, 1.0], generation=3)
    with pytest.raises(ValueError, match="`tolerance`"):
        stats.critical_alpha(cube, [0.0, 1.0], tolerance=-1)
    with pytest.raises(ValueError, match="three different axes"):
        stats.critical_alpha(cube, [0.0, 1.0], seed_axis=0)


def test_resampled_moments_match_explicit_resamples():
    # The multinomial-count shortcut equals gathering the resampled seeds.
    rng = np.random.default_rng(25)
    data = rng.standard_normal((12, 5))
    data[3, 2] = np.nan
    z, v, centre = _common._centre(data)
    idx = rng.integers(0, 12, (4, 12))
    w = np.stack([np.bincount(i, minlength=12) for i in idx]).astype(float)
    mean, var, n = _common._weighted_moments(w, z, v, centre)
    for k, i in enumerate(idx):
        sample = data[i]
        np.testing.assert_allclose(mean[k], np.nanmean(sample, axis=0), rtol=1e-12)
        np.testing.assert_allclose(var[k], np.nanvar(sample, axis=0, ddof=1), rtol=1e-10)


# -- xarray ----------------------------------------------------------------------

def test_every_function_takes_an_xarray_dataarray_by_dimension_name():
    xr = pytest.importorskip("xarray")
    rng = np.random.default_rng(28)
    alphas = np.array([0.0, 0.5, 1.0])
    cube = 3 + rng.normal(0, 0.2, (1, 12, 1)) + 0.05 * alphas[:, None, None] * np.arange(5) \
        + 0.01 * rng.standard_normal((3, 12, 5))
    cube[:, :, 0] = cube[0, :, 0]
    da = xr.DataArray(cube, dims=("alpha", "seed", "generation"), coords={"alpha": alphas})
    # dimensions in another order: found by name, α from the coordinate
    moved = da.transpose("generation", "seed", "alpha")
    crit = stats.critical_alpha(moved, n_resamples=100, rng=1)
    ref = stats.critical_alpha(cube, alphas, n_resamples=100, rng=1)
    np.testing.assert_array_equal(crit.per_generation, ref.per_generation)
    np.testing.assert_array_equal(crit.per_generation_low, ref.per_generation_low)
    iso = stats.isotonic_threshold(moved, n_resamples=100, rng=1)
    np.testing.assert_array_equal(iso.per_generation,
                                  stats.isotonic_threshold(cube, alphas, n_resamples=100, rng=1).per_generation)
    np.testing.assert_array_equal(stats.paired_degradation(moved), stats.paired_degradation(cube, alphas).transpose(2, 1, 0))
    band = stats.seed_band(moved, method="t")  # seed dimension by default
    np.testing.assert_allclose(band.mean, cube.mean(axis=1).T)
    np.testing.assert_allclose(stats.lower_confidence_bound(moved), stats.lower_confidence_bound(cube, seed_axis=1).T)
    sim = stats.simultaneous_band(moved, n_resamples=100)
    assert sim.mean.shape == (5, 3)
    surv = stats.time_to_collapse(moved)
    np.testing.assert_array_equal(surv.survival, stats.time_to_collapse(cube, alphas).survival)
    rate = stats.degradation_rate(moved, n_resamples=50, rng=2)
    np.testing.assert_allclose(rate.slope.mean, stats.degradation_rate(cube, alphas, n_resamples=50, rng=2).slope.mean)
    # a file's group read with xarray works the same way (sweep dims are batch dims)
    swept = da.expand_dims(strength=[1.0, 2.0], axis=1)
    crit2 = stats.critical_alpha(swept, n_resamples=50, rng=1)
    assert crit2.per_generation.shape == (5, 2)
    with pytest.raises(ValueError, match="`seed_axis` 'replicate' is not a dimension"):
        stats.critical_alpha(da, seed_axis="replicate")
    with pytest.raises(ValueError, match="is a dimension name; pass an xarray DataArray"):
        stats.critical_alpha(cube, alphas, seed_axis="seed")
