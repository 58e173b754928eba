"""The n-gram experiment in the shared loop: regimes, metrics, theory, real-text sanity."""

import numpy as np
import pytest
from scipy import stats

from hoi_fast._validate import ConfigError
from hoi_fast.experiments.ngram import NGramConfig
from hoi_fast.experiment import cell_metric_specs, real_count, run_cell
from hoi_fast.experiments.ngram import NGramExperiment, Segments
from hoi_fast.experiments import streams


def cell(config, alpha, generations, seed=0, regime="mix"):
    exp = NGramExperiment(config)
    return exp, run_cell(exp, alpha, generations, regime, streams("ngram", 0, seed, alpha))


SMALL = NGramConfig(order=3, train_chars=3000, heldout_chars=2000, self_chars=500)


@pytest.mark.parametrize("smoothing", ["kneser-ney", "add-k", "mle"])
def test_metrics_have_the_declared_shapes_and_sane_values(smoothing):
    config = NGramConfig(order=3, smoothing=smoothing, train_chars=3000, heldout_chars=2000, self_chars=500)
    exp, out = cell(config, 0.5, 4)
    specs = cell_metric_specs(exp)
    assert set(out) == {s.name for s in specs}
    assert smoothing == "mle" or np.all(out["unseen_events"] == 0)
    symbols = exp.coords()["symbol"]
    assert symbols.shape == (exp.corpus.vocab_size,) and symbols[-1] == "\ufffd"
    for spec in specs:
        extra = tuple(len(exp.coords()[d]) for d in spec.extra_dims)
        assert out[spec.name].shape == (4,) + extra
    np.testing.assert_array_equal(out["char_counts"].sum(axis=1), 3000)
    for name in ("real_bpc", "tail_bpc", "self_bpc"):
        assert np.all(np.isfinite(out[name])) and np.all(out[name] > 0)
    assert np.all(out["tail_bpc"] > out["real_bpc"])  # rare contexts are harder
    assert np.all((0 <= out["unseen_rate"]) & (out["unseen_rate"] < 1))
    assert np.all(out["support"] > 100)


def test_generation_zero_trains_on_R_and_is_shared_across_alpha():
    _, a = cell(SMALL, 0.0, 1, seed=3)
    _, b = cell(SMALL, 0.8, 1, seed=3)
    _, c = cell(SMALL, 0.0, 1, seed=4)
    for name in ("real_bpc", "support", "unseen_rate", "char_counts"):
        np.testing.assert_array_equal(a[name], b[name])
    assert a["real_bpc"][0] != c["real_bpc"][0]


def test_mix_real_part_is_a_wrapping_segment_of_R():
    exp = NGramExperiment(SMALL)
    rng = np.random.default_rng(0)
    pool = np.arange(100, dtype=np.int32)
    for _ in range(50):
        part = exp.real_subset(pool, 70, rng)
        assert len(part) == 70
        segs = part.arrays if isinstance(part, Segments) else [part]
        joined = np.concatenate(segs)
        assert joined.shape == (70,)
        assert np.all(np.diff(joined) % 100 == 1)  # consecutive in R, modulo the wrap
        assert len(segs) == 2 or joined[-1] < 100
        if len(segs) == 2:
            assert segs[0][-1] == 99 and segs[1][0] == 0  # the join is a segment boundary


@pytest.mark.parametrize("regime", ["mix", "fresh", "accumulate", "accumulate-subsample"])
def test_regimes_train_on_the_expected_number_of_characters(regime):
    _, out = cell(SMALL, 0.3, 3, regime=regime)
    n_train = out["char_counts"].sum(axis=1)
    expected = [3000, 3000 + real_count(0.7, 3000), 3000 + 2 * real_count(0.7, 3000)] \
        if regime == "accumulate" else [3000] * 3
    np.testing.assert_array_equal(n_train, expected)
    np.testing.assert_array_equal(out["train_size"], expected)


def test_subsample_draws_whole_chunks_without_replacement():
    exp = NGramExperiment(SMALL)
    parts = [np.arange(1000, dtype=np.int32), np.arange(1000, 1450, dtype=np.int32)]
    (got,) = exp.subsample(parts, 900, np.random.default_rng(0))
    values = np.concatenate(got.arrays)
    assert values.shape == (900,) and np.unique(values).size == 900
    for a in got.arrays:  # each chunk is consecutive and inside one part
        assert np.all(np.diff(a) == 1) and (a[0] < 1000) == (a[-1] < 1000)


def test_growing_schedule_sets_the_training_size():
    config = NGramConfig(order=2, train_chars=2000, heldout_chars=500, self_chars=100,
                         schedule="linear", growth=0.5)
    _, out = cell(config, 0.5, 3)
    np.testing.assert_array_equal(out["train_size"], [2000, 3000, 4000])


def test_low_temperature_concentrates_the_unigram_distribution():
    """tau < 1 sharpens every next-character law, so the symbol entropy falls over generations."""
    def entropy(counts):
        p = counts / counts.sum(axis=-1, keepdims=True)
        return -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)).sum(axis=-1)

    runs = {}
    for tau in (0.5, 1.0):
        config = NGramConfig(order=2, train_chars=3000, heldout_chars=500, self_chars=100, temperature=tau)
        runs[tau] = np.mean([entropy(cell(config, 1.0, 4, seed=s)[1]["char_counts"])[-1] for s in range(4)])
    assert runs[0.5] < runs[1.0] - 0.2


def test_quality_filter_keeps_likely_chunks_and_reports_acceptance():
    base = dict(order=3, train_chars=3000, heldout_chars=1000, self_chars=100, filter_chunk=50)
    strict = NGramConfig(filter="quality", filter_threshold=3.0, **base)
    _, out = cell(strict, 0.9, 3)
    assert np.isnan(out["acceptance"][0]) and np.all((0 < out["acceptance"][1:]) & (out["acceptance"][1:] < 1))
    np.testing.assert_array_equal(out["train_size"], 3000)
    _, loose = cell(NGramConfig(filter="quality", filter_threshold=50.0, **base), 0.9, 3)
    np.testing.assert_array_equal(loose["acceptance"][1:], 1.0)
    # kept chunks are the likely ones: the model's own text gets cheaper than without the filter
    _, plain = cell(NGramConfig(**base), 0.9, 3)
    assert out["self_bpc"][-1] < plain["self_bpc"][-1]


def test_impossible_filter_threshold_is_a_config_error():
    config = NGramConfig(order=3, train_chars=3000, heldout_chars=1000, self_chars=100,
                         filter="quality", filter_threshold=0.01, filter_chunk=50)
    with pytest.raises(ConfigError, match="`ngram.filter_threshold` = 0.01 kept 0 of"):
        cell(config, 0.5, 2)


def test_cells_are_deterministic():
    _, a = cell(SMALL, 0.6, 3, seed=2)
    _, b = cell(SMALL, 0.6, 3, seed=2)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_wright_fisher_closed_form_for_order_one_mle():
    """Order 1, mle, alpha = 1: generation g is n i.i.d. draws from generation g - 1's frequencies.

    So E[S_{g+1} | S_g] = (1 - 1/n) S_g + 1/n for S = sum p^2 (multinomial
    resampling), i.e. E[S_g | S_0] = 1 - (1 - 1/n)^g (1 - S_0), where S_0 comes
    from generation 0's counts (the real pool R).  Per seed the residual
    S_g - f_g(S_0) has mean 0; the same residual against f_{g-1} or f_{g+1}
    (an off-by-one) must be rejected.
    """
    n, generations, seeds = 24, 9, 1500
    config = NGramConfig(order=1, smoothing="mle", train_chars=n, heldout_chars=5, self_chars=5)
    exp = NGramExperiment(config)
    s = np.empty((seeds, generations))
    for seed in range(seeds):
        out = run_cell(exp, 1.0, generations, "mix", streams("ngram", 11, seed, 1.0))
        p = out["char_counts"] / n
        s[seed] = (p ** 2).sum(axis=1)

    def z_score(shift):
        g = np.arange(generations) + shift
        predicted = 1 - (1 - 1 / n) ** g[None, :] * (1 - s[:, :1])
        resid = s[:, 3:] - predicted[:, 3:]
        return resid.mean(axis=0) / (resid.std(axis=0, ddof=1) / np.sqrt(seeds))

    assert np.all(np.abs(z_score(0)) < 4), z_score(0)
    assert np.all(np.abs(z_score(+1)) > 4) and np.all(np.abs(z_score(-1)) > 4)


def test_recursion_on_real_text_hurts_real_bpc():
    """On the built-in corpus, 10 generations at alpha = 0.9 are worse than alpha = 0 (paired)."""
    config = NGramConfig(order=3, train_chars=4000, heldout_chars=3000, self_chars=200)
    exp = NGramExperiment(config)
    last = {}
    for alpha in (0.0, 0.9):
        last[alpha] = np.array([
            run_cell(exp, alpha, 10, "mix", streams("ngram", 5, seed, alpha))["real_bpc"][-1]
            for seed in range(30)
        ])
    diff = last[0.9] - last[0.0]
    assert stats.ttest_rel(last[0.9], last[0.0], alternative="greater").pvalue < 1e-3
    assert diff.mean() > 0.05
