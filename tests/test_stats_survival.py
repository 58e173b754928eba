"""Generations to collapse: first exceedance per seed, Kaplan-Meier curves, median and its interval."""

import numpy as np
import pytest

from hoi_fast import stats

pytestmark = pytest.mark.filterwarnings("error")

LEVEL = 0.95


def mc_bounds(rate, reps, k=3.0):
    se = np.sqrt(rate * (1 - rate) / reps)
    return rate - k * se, rate + k * se


def cube_from_times(times, gens, base=1.0, jump=1.0):
    """An (alpha = [0, 1], rep, seed, generation) cube whose α = 1 seeds collapse at ``times``.

    ``times`` is (rep, seed); the degradation is 0 before and ``jump`` from
    that generation on, so the first exceedance is exactly the planted time.
    """
    g = np.arange(gens)
    step = (g[None, None, :] >= times[:, :, None]) * jump
    zero = np.full(step.shape, base)
    return np.stack([zero, base + step])


# -- references -------------------------------------------------------------------

def reference_times(cube, alphas, tolerance):
    """First exceedance per (alpha, seed) of an (alpha, seed, generation) cube, by loops."""
    zero = list(alphas).index(0.0)
    n_alpha, seeds, gens = cube.shape
    time = np.full((n_alpha, seeds), np.nan)
    event = np.zeros((n_alpha, seeds), bool)
    threshold = [tolerance * abs(np.nanmean(cube[zero, :, g])) for g in range(gens)]
    for a in range(n_alpha):
        for s in range(seeds):
            d = cube[a, s] - cube[zero, s]
            if np.isnan(d[0]):
                continue
            time[a, s] = gens - 1
            for g in range(1, gens):
                if np.isnan(d[g]):
                    time[a, s] = g - 1
                    break
                if d[g] > threshold[g]:
                    time[a, s], event[a, s] = g, True
                    break
    return time, event


def reference_km(time, event, gens):
    """Product-limit estimate S(g) = prod over event times t <= g of (1 - d_t / n_t)."""
    ok = ~np.isnan(time)
    time, event = time[ok], event[ok]
    s, out = 1.0, []
    for g in range(gens):
        at_risk = np.sum(time >= g)
        deaths = np.sum((time == g) & event)
        if at_risk:
            s *= 1 - deaths / at_risk
        out.append(s)
    return np.array(out)


# -- collapse times and the curve ---------------------------------------------------

def test_collapse_times_and_curves_match_loop_references():
    rng = np.random.default_rng(1)
    alphas = np.array([0.0, 0.3, 0.6, 1.0])
    seeds, gens = 25, 8
    level = rng.normal(2.0, 0.2, (1, seeds, 1))
    cube = level + 0.03 * rng.standard_normal((4, seeds, gens)) + 0.02 * alphas[:, None, None] * np.arange(gens)
    cube[:, :, 0] = level[:, :, 0]
    cube[2, 3, 5:] = np.nan  # a NaN inside a done cell: censored at generation 4 unless collapsed before
    cube[3, 7:9] = np.nan  # seeds not done
    ct = stats.collapse_times(cube, alphas, tolerance=0.01)
    time, event = reference_times(cube, alphas, 0.01)
    np.testing.assert_array_equal(ct.time, time)
    np.testing.assert_array_equal(ct.event, event)
    assert ct.horizon == gens - 1 and ct.threshold.shape == (gens,)
    assert 0 < event.mean() < 1  # both events and censoring
    surv = stats.time_to_collapse(cube, alphas, tolerance=0.01)
    for a in range(4):
        np.testing.assert_allclose(surv.survival[a], reference_km(time[a], event[a], gens), rtol=1e-12)
    np.testing.assert_array_equal(surv.n, [25, 25, 25, 23])
    np.testing.assert_array_equal(surv.events, event.sum(axis=1))
    assert np.all(surv.survival[0] == 1)  # α = 0 never degrades against itself
    assert np.all((surv.low <= surv.survival) & (surv.survival <= surv.high))


def test_median_and_never_share_follow_the_curve():
    times = np.array([[1, 2, 2, 3, 3, 3, 9, 9, 9, 9]])  # 9 = beyond a horizon of 5
    cube = cube_from_times(times, 6)
    surv = stats.time_to_collapse(cube, [0.0, 1.0], seed_axis=2, generation_axis=3)
    np.testing.assert_allclose(surv.survival[1, 0], [1, 0.9, 0.7, 0.4, 0.4, 0.4])
    assert surv.median[1, 0] == 3  # first generation with S <= 0.5
    assert surv.never[1, 0] == pytest.approx(0.4)
    assert surv.events[1, 0] == 6 and surv.n[1, 0] == 10
    assert surv.median_low[1, 0] <= 3 <= surv.median_high[1, 0]
    assert np.isinf(surv.median[0, 0]) and surv.never[0, 0] == 1


# -- coverage ---------------------------------------------------------------------------

def median_coverage(p, seeds, gens, reps, seed, band="log-log"):
    rng = np.random.default_rng(seed)
    times = rng.geometric(p, (reps, seeds))  # generation of collapse, >= 1
    surv = stats.time_to_collapse(cube_from_times(times, gens), [0.0, 1.0], seed_axis=2,
                                  generation_axis=3, band=band)
    g = np.arange(gens)
    true_s = (1 - p) ** g
    median = g[np.argmax(true_s <= 0.5)]
    never = true_s[-1]
    cover_median = np.mean((surv.median_low[1] <= median) & (median <= surv.median_high[1]))
    cover_never = np.mean((surv.never_low[1] <= never) & (never <= surv.never_high[1]))
    return cover_median, cover_never


@pytest.mark.slow
def test_km_median_interval_covers_at_nominal_level_on_fine_generations():
    # 160 generations: nearly continuous times, where the band inversion is at its level
    reps = 500
    median, _ = median_coverage(p=0.025, seeds=100, gens=160, reps=reps, seed=0)
    print(f"\nKM median interval (160 generations, 100 seeds): coverage {median:.3f} ({reps} repetitions)")
    low, high = mc_bounds(LEVEL, reps)
    assert low <= median <= high


@pytest.mark.slow
def test_km_intervals_on_the_grid_generations():
    # 20 generations (the default grid): discrete times make the median's
    # interval conservative; the never-collapse share S(19) = 0.3 is at level
    reps = 600
    median, never = median_coverage(p=0.0614, seeds=100, gens=20, reps=reps, seed=1)
    print(f"\nKM on 20 generations, 100 seeds: median interval coverage {median:.3f}, "
          f"never-collapse share {never:.3f} ({reps} repetitions)")
    low, high = mc_bounds(LEVEL, reps)
    assert median >= low
    assert low <= never <= high


# -- degenerate inputs -------------------------------------------------------------------

def test_every_seed_collapsed_at_generation_one():
    times = np.ones((1, 20), int)
    surv = stats.time_to_collapse(cube_from_times(times, 6), [0.0, 1.0], seed_axis=2, generation_axis=3)
    np.testing.assert_array_equal(surv.survival[1, 0], [1, 0, 0, 0, 0, 0])
    assert surv.median[1, 0] == 1 and surv.median_low[1, 0] == 1 and surv.median_high[1, 0] == 1
    assert surv.never[1, 0] == 0 and surv.never_low[1, 0] == 0
    # exact binomial upper end for 0 of 20: 1 - 0.025 ** (1 / 20)
    assert surv.never_high[1, 0] == pytest.approx(1 - 0.025 ** (1 / 20))
    for a in (surv.low, surv.high, surv.median_low, surv.median_high):
        assert not np.isnan(a).any()


def test_no_seed_collapsed_and_all_seeds_equal():
    for cube in (np.full((2, 20, 6), 3.0), cube_from_times(np.full((1, 20), 99), 6)):
        surv = stats.time_to_collapse(cube, [0.0, 1.0], seed_axis=1 if cube.ndim == 3 else 2,
                                      generation_axis=-1)
        assert np.all(surv.survival == 1) and np.all(np.isinf(surv.median))
        assert np.all(np.isinf(surv.median_high))
        assert np.all(surv.never == 1)
        np.testing.assert_allclose(surv.never_low, 0.025 ** (1 / 20))  # exact binomial, 20 of 20
        assert np.all(surv.low[..., 0] == 1)  # nobody collapses at generation 0
        assert not np.isnan(surv.low).any()


def test_survival_validation():
    with pytest.raises(ValueError, match="`band` must be one of"):
        stats.time_to_collapse(np.zeros((2, 3, 4)), [0.0, 1.0], band="greenwood")
    with pytest.raises(ValueError, match="`tolerance`"):
        stats.collapse_times(np.zeros((2, 3, 4)), [0.0, 1.0], tolerance=-0.1)
