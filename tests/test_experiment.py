"""The shared loop: regimes, sizes and stream keying, checked with a toy experiment.

The toy's items are integers: real items are drawn from a pool of positive ids,
synthetic items are negative, so every training set can be audited exactly.
"""

import numpy as np
import pytest

from hoi_fast.experiment import MetricSpec, real_count, run_cell, scheduled_size, synthetic_count
from hoi_fast.seeding import CellStreams, value_key


class TaggedToy:
    name = "gmm"

    def __init__(self, n=10, grow=0):
        self.n, self.grow = n, grow
        self.trained = []

    def train_size(self, generation):
        return self.n + self.grow * generation

    def real_pool(self, rng):
        return rng.integers(1, 10**9, size=self.n)

    def heldout(self, rng, pool):
        return rng.integers(1, 10**9, size=3)

    def real_subset(self, pool, m, rng):
        return rng.choice(pool, size=m, replace=False)

    def fresh_real(self, m, rng):
        return rng.integers(10**9, 2 * 10**9, size=m)

    def fit(self, parts, rng):
        self.trained.append([np.array(p) for p in parts])
        return len(self.trained)

    def sample(self, model, n, rng):
        return -np.full(n, model)

    def synthesize(self, model, n, rng, first_model):
        assert first_model == 1  # generation 0's model
        return self.sample(model, n, rng), 0.5

    def subsample(self, parts, n, rng):
        return [rng.choice(np.concatenate(parts), size=n, replace=False)]

    def metrics(self, model, parts, heldout, rng):
        data = np.concatenate(parts)
        return {"n_real": float((data > 0).sum()), "n_syn": float((data < 0).sum()),
                "first_heldout": float(heldout[0])}

    def metric_specs(self):
        return [MetricSpec("n_real", "1", "real items"), MetricSpec("n_syn", "1", "synthetic items"),
                MetricSpec("first_heldout", "1", "first held-out id")]

    def coords(self):
        return {}


def streams(alpha, seed=0):
    return CellStreams(7, 1, seed, alpha)


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_mix_builds_real_subset_plus_previous_generation_samples(alpha):
    toy = TaggedToy(n=10)
    out = run_cell(toy, alpha, 4, "mix", streams(alpha))
    m = real_count(alpha, 10)
    assert out["n_real"][0] == 10 and out["n_syn"][0] == 0
    np.testing.assert_array_equal(out["n_real"][1:], m)
    np.testing.assert_array_equal(out["n_syn"][1:], 10 - m)
    pool = toy.trained[0][0]
    for g in range(1, 4):
        data = np.concatenate(toy.trained[g])
        real = data[data > 0]
        assert set(real) <= set(pool) and len(set(real)) == len(real)  # without replacement
        # synthetic items come from the model of the previous generation (model id = g)
        assert np.all(data[data < 0] == -g)


def test_fresh_draws_new_real_items_shared_across_alpha():
    a, b = TaggedToy(), TaggedToy()
    run_cell(a, 0.3, 3, "fresh", streams(0.3))
    run_cell(b, 0.6, 3, "fresh", streams(0.6))
    fresh_a = np.concatenate(a.trained[2])
    fresh_b = np.concatenate(b.trained[2])
    assert np.all(fresh_a[fresh_a > 0] >= 10**9)
    # common random numbers: the fresh stream of generation g does not depend on alpha
    np.testing.assert_array_equal(fresh_a[fresh_a > 0][:4], fresh_b[fresh_b > 0][:4])


def test_accumulate_keeps_pool_and_every_synthetic_set():
    toy = TaggedToy(n=10)
    out = run_cell(toy, 0.4, 4, "accumulate", streams(0.4))
    np.testing.assert_array_equal(out["n_real"], 10)
    np.testing.assert_array_equal(out["n_syn"], [0, 4, 8, 12])
    np.testing.assert_array_equal(out["train_size"], [10, 14, 18, 22])
    last = toy.trained[3]
    assert [p[0] for p in last[1:]] == [-1, -2, -3]


def test_accumulate_subsample_keeps_size_constant_and_draws_from_everything():
    toy = TaggedToy(n=10)
    out = run_cell(toy, 0.5, 6, "accumulate-subsample", streams(0.5))
    np.testing.assert_array_equal(out["train_size"], 10)
    pool = set(toy.trained[0][0])
    for g in range(1, 6):
        data = np.concatenate(toy.trained[g])
        assert set(data[data > 0]) <= pool
        # synthetic items can only come from models 1..g (each generation adds its own)
        assert set(-data[data < 0]) <= set(range(1, g + 1))
    last = np.concatenate(toy.trained[5])
    assert (last < 0).any() and (last > 0).any()  # the pool mixes real and synthetic items


def test_acceptance_is_recorded_after_generation_0():
    out = run_cell(TaggedToy(), 0.5, 3, "mix", streams(0.5))
    assert np.isnan(out["acceptance"][0])
    np.testing.assert_array_equal(out["acceptance"][1:], 0.5)
    out = run_cell(TaggedToy(), 0.0, 3, "mix", streams(0.0))
    assert np.all(np.isnan(out["acceptance"]))  # nothing synthetic was drawn


def test_real_pool_and_heldout_depend_on_seed_only():
    a, b, c = TaggedToy(), TaggedToy(), TaggedToy()
    out_a = run_cell(a, 0.1, 1, "mix", streams(0.1, seed=3))
    out_b = run_cell(b, 0.8, 1, "mix", streams(0.8, seed=3))
    run_cell(c, 0.1, 1, "mix", streams(0.1, seed=4))
    np.testing.assert_array_equal(a.trained[0][0], b.trained[0][0])
    assert out_a["first_heldout"][0] == out_b["first_heldout"][0]
    assert not np.array_equal(a.trained[0][0], c.trained[0][0])


def test_growing_sizes_follow_train_size():
    toy = TaggedToy(n=10, grow=5)
    out = run_cell(toy, 0.5, 3, "mix", streams(0.5))
    np.testing.assert_array_equal(out["n_real"] + out["n_syn"], [10, 15, 20])
    np.testing.assert_array_equal(out["train_size"], [10, 15, 20])


def test_mix_needing_more_real_items_than_the_pool_reuses_all_of_it():
    toy = TaggedToy(n=10, grow=15)
    run_cell(toy, 0.0, 3, "mix", streams(0.0))
    pool = toy.trained[0][0]
    data = np.concatenate(toy.trained[2])  # 40 real items from a pool of 10: R four times
    values, counts = np.unique(data, return_counts=True)
    assert set(values) == set(pool) and np.all(counts == 4)
    data = np.concatenate(toy.trained[1])  # 25 = R twice + 5 distinct items
    values, counts = np.unique(data, return_counts=True)
    assert set(values) == set(pool) and sorted(counts)[-5:] == [3] * 5 and counts.sum() == 25


def test_scheduled_sizes():
    assert [scheduled_size(100, "constant", 0.5, g) for g in range(3)] == [100, 100, 100]
    assert [scheduled_size(100, "linear", 0.5, g) for g in range(3)] == [100, 150, 200]
    assert [scheduled_size(100, "geometric", 2.0, g) for g in range(3)] == [100, 200, 400]
    with pytest.raises(ValueError, match="`schedule`"):
        scheduled_size(100, "cubic", 1.0, 1)


def test_counts_round_half_up_and_sum_to_n():
    assert real_count(0.5, 3) == 2 and synthetic_count(0.5, 3) == 1
    assert real_count(0.0, 7) == 7 and real_count(1.0, 7) == 0
    for alpha in np.linspace(0, 1, 41):
        assert real_count(alpha, 1000) + synthetic_count(alpha, 1000) == 1000


def test_unknown_regime_is_rejected():
    with pytest.raises(ValueError, match="`regime`"):
        run_cell(TaggedToy(), 0.5, 2, "recycle", streams(0.5))


def test_generation_stream_is_keyed_by_value_not_position():
    s = CellStreams(1, 2, 2, 0.25)
    again = CellStreams(1, 2, 2, 0.25)
    assert s.generation(3).random() == again.generation(3).random()
    assert s.generation(3).random() != CellStreams(1, 2, 2, 0.5).generation(3).random()
    assert s.generation(3).random() != s.generation(4).random()
    assert value_key(-0.0) == value_key(0.0)
    # generation 0 trains on R alone: its stream is shared by every alpha
    assert s.generation(0).random() == CellStreams(1, 2, 2, 0.5).generation(0).random()
    assert s.generation(0).random() != CellStreams(1, 2, 3, 0.25).generation(0).random()
    assert s.generation(0).random() == CellStreams(1, 2, 2, 0.25, (7.0,)).generation(0).random()
    assert s.generation(1).random() != CellStreams(1, 2, 2, 0.25, (7.0,)).generation(1).random()
