"""Rates: the slope of the paired degradation per generation, its plateau and half-life."""

import numpy as np
import pytest

from hoi_fast import stats

pytestmark = pytest.mark.filterwarnings("error")

LEVEL = 0.95


def mc_bounds(rate, reps, k=3.0):
    se = np.sqrt(rate * (1 - rate) / reps)
    return rate - k * se, rate + k * se


def paired_cube(mu, reps, seeds, rng, sigma=0.1, plateau_spread=False):
    """(alpha = [0, 1], rep, seed, generation): α = 1 degrades by ``mu`` plus random-walk noise.

    With ``plateau_spread`` each seed's curve is ``P_s mu`` with ``P_s`` skewed
    (gamma) of mean 1, so the mean curve is still ``mu``.
    """
    gens = len(mu)
    scale = rng.gamma(4.0, 0.25, (reps, seeds, 1)) if plateau_spread else 1.0
    walk = np.cumsum(sigma * rng.standard_normal((reps, seeds, gens)), axis=2) / 2
    walk[..., 0] = 0
    level = rng.normal(3, 0.3, (reps, seeds, 1))
    base = level + 0.05 * rng.standard_normal((reps, seeds, gens))
    base[..., 0] = level[..., 0]
    return np.stack([base, base + scale * mu + walk])


def test_seed_slopes_match_polyfit():
    rng = np.random.default_rng(1)
    cube = rng.normal(0, 1, (3, 7, 9)).cumsum(axis=2)
    cube[:, :, 0] = cube[0, :, 0]
    cube[2, 4, 6] = np.nan  # left out of that seed's fit
    rate = stats.degradation_rate(cube, [0.0, 0.5, 1.0], n_resamples=20)
    diff = cube - cube[:1]
    for a in range(3):
        slopes = []
        for s in range(7):
            ok = ~np.isnan(diff[a, s])
            slopes.append(np.polyfit(np.arange(9)[ok], diff[a, s][ok], 1)[0])
        assert rate.slope.mean[a] == pytest.approx(np.mean(slopes), abs=1e-12)
    assert np.all(rate.slope.mean[0] == 0) and rate.slope.method[0] == "exact"
    assert rate.slope.n[2] == 7 and rate.horizon == 8


@pytest.mark.slow
def test_slope_interval_covers_the_slope_of_the_mean_curve():
    # curved mean, correlated (random-walk) noise: the target is the least-squares
    # slope of the true mean curve over the generations
    reps = 1000
    rng = np.random.default_rng(2)
    g = np.arange(20)
    mu = 0.05 * g + 0.002 * g ** 2
    rate = stats.degradation_rate(paired_cube(mu, reps, 50, rng), [0.0, 1.0], seed_axis=2,
                                  generation_axis=3, n_resamples=10)
    gc = g - g.mean()
    truth = (gc * mu).sum() / (gc * gc).sum()
    cover = np.mean((rate.slope.low[1] <= truth) & (truth <= rate.slope.high[1]))
    print(f"\nslope interval: coverage {cover:.3f} of {reps} (50 seeds, true slope {truth:.4f} per generation)")
    low, high = mc_bounds(LEVEL, reps)
    assert low <= cover <= high
    assert not rate.saturated[1].any()  # still rising at the horizon


@pytest.mark.slow
def test_plateau_and_half_life_intervals_cover_a_saturating_curve():
    reps = 400
    rng = np.random.default_rng(3)
    g = np.arange(20)
    plateau, half_life = 0.5, 3.0
    mu = plateau * (1 - 2.0 ** (-g / half_life))
    rate = stats.degradation_rate(paired_cube(mu, reps, 50, rng, plateau_spread=True), [0.0, 1.0],
                                  seed_axis=2, generation_axis=3, n_resamples=400, rng=1)
    cover_p = np.mean((rate.plateau_low[1] <= plateau) & (plateau <= rate.plateau_high[1]))
    cover_h = np.mean((rate.half_life_low[1] <= half_life) & (half_life <= rate.half_life_high[1]))
    print(f"\nsaturating curve (P = {plateau}, h = {half_life}): plateau interval coverage {cover_p:.3f}, "
          f"half-life {cover_h:.3f} ({reps} repetitions, 50 seeds); saturated in {rate.saturated[1].mean():.3f}")
    low, high = mc_bounds(LEVEL, reps)
    assert low <= cover_p <= high and low <= cover_h <= high
    assert rate.saturated[1].mean() > 0.95
    assert np.median(rate.plateau[1]) == pytest.approx(plateau, rel=0.02)
    assert np.median(rate.half_life[1]) == pytest.approx(half_life, rel=0.05)


def test_degenerate_rates_are_defined():
    flat = np.full((2, 10, 6), 2.0)
    step = flat.copy()
    step[1, :, 1:] = 3.0  # every seed jumps by 1 at generation 1 and stays
    for cube, slope in ((flat, 0.0), (step, None)):
        rate = stats.degradation_rate(cube, [0.0, 1.0], n_resamples=50)
        for name in ("plateau", "plateau_low", "plateau_high", "half_life", "half_life_low", "half_life_high"):
            assert np.isfinite(getattr(rate, name)).all(), name
        assert not np.isnan(rate.slope.low).any()
        if slope is not None:
            assert np.all(rate.slope.mean == slope) and not rate.saturated.any()
    assert rate.plateau[1] == pytest.approx(1.0, abs=1e-5) and rate.saturated[1]
    assert rate.half_life_high[1] <= 0.1


def test_rate_validation():
    with pytest.raises(ValueError, match="`method`"):
        stats.degradation_rate(np.zeros((2, 3, 4)), [0.0, 1.0], method="normal")
