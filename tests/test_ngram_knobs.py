"""N-gram knobs of issue 8: temperature, top-k / top-p, quality filter, schedules, accumulate-subsample.

Each knob is checked for its exact semantics through the experiment's own
``synthesize`` (against a slow NumPy transcription of the module docstring of
:mod:`hoi_fast.experiments.ngram`), for its expected direction on small cells
(paired over seeds: generation 0 and everything before the first synthetic
draw are common random numbers across the knob's values), and for its
recording (``acceptance``, ``train_size``).  Every test would fail if its knob
were ignored.
"""

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from hoi_fast import ngram
from hoi_fast._validate import ConfigError
from hoi_fast.experiments.ngram import NGramConfig
from hoi_fast.experiment import real_count, run_cell
from hoi_fast.experiments.ngram import NGramExperiment, Segments
from hoi_fast.experiments import streams

# Small sizes for the direction tests (about 5 ms per 4-generation cell).
SMALL = NGramConfig(order=3, train_chars=3000, heldout_chars=2000, self_chars=300)


def cells(config, alpha, generations, seeds, regime="mix", root=0):
    """Every metric of ``seeds`` cells of one configuration."""
    experiment = NGramExperiment(config)
    return [run_cell(experiment, alpha, generations, regime, streams("ngram", root, s, alpha))
            for s in range(seeds)]


def entropy(counts):
    """Entropy (nats) of the unigram distribution of ``counts`` along the last axis."""
    p = counts / counts.sum(axis=-1, keepdims=True)
    return -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=-1)


def per_seed(runs, metric):
    """Per seed, ``metric`` averaged over generations 1..G-1 (generation 0 is shared)."""
    if metric == "entropy":
        return np.array([entropy(r["char_counts"])[1:].mean() for r in runs])
    return np.array([r[metric][1:].mean() for r in runs])


def models(config):
    """(experiment, model, first_model): a model of 1500 real characters and one of R (3000)."""
    experiment = NGramExperiment(config)
    train = experiment.corpus.train
    v = experiment.corpus.vocab_size
    model = ngram.train(train[50_000:51_500], config.order, config.smoothing, vocab_size=v,
                        k=config.k, discount=config.discount)
    first = ngram.train(train[:3000], config.order, config.smoothing, vocab_size=v,
                        k=config.k, discount=config.discount)
    return experiment, model, first


# ---------------------------------------------------------------- exact semantics, one step


def reference_law(p, temperature, top_k, top_p):
    """The documented next-character law: p ** (1 / tau), top-k, then top-p nucleus, renormalised.

    Ties are ranked by the lower code (a stable sort of -p).
    """
    q = p ** (1.0 / temperature)
    rank = np.argsort(-q, kind="mergesort")
    if top_k:
        q[rank[top_k:]] = 0.0
    if top_p < 1:
        mass = np.cumsum(q[rank]) / q.sum()
        cut = int(np.argmax(mass >= top_p)) + 1  # smallest set reaching top_p
        q[rank[cut:]] = 0.0
    return q / q.sum()


def laws_along(model, context, stream, **bias):
    """Reference law of every character of ``stream`` given the text before it, shape (n, V)."""
    text = np.concatenate([context, stream])
    width = model.order - 1
    return np.array([reference_law(model.next_probs(text[i:i + width]), **bias)
                     for i in range(stream.shape[0])])


def max_martingale_z(stream, laws):
    """Largest |z| over symbols of sum_i (1[c_i = c] - q_i(c)), scaled by its predictable sd.

    Each increment has conditional mean 0 given the past when c_i ~ q_i, so
    every per-symbol sum is a martingale (CLT); symbols with little expected
    mass are skipped.
    """
    onehot = np.zeros_like(laws)
    onehot[np.arange(stream.shape[0]), stream] = 1.0
    var = (laws * (1 - laws)).sum(axis=0)
    used = var > 50  # enough expected count for the normal approximation
    return np.max(np.abs((onehot - laws).sum(axis=0)[used]) / np.sqrt(var[used]))


BIASES = [
    dict(temperature=0.6, top_k=0, top_p=1.0),
    dict(temperature=1.6, top_k=0, top_p=1.0),
    dict(temperature=1.0, top_k=3, top_p=1.0),
    dict(temperature=1.0, top_k=0, top_p=0.6),
    dict(temperature=0.8, top_k=6, top_p=0.8),
]


@pytest.mark.parametrize("bias", BIASES, ids=lambda b: "tau{temperature}-k{top_k}-p{top_p}".format(**b))
def test_synthesize_draws_every_character_from_the_biased_law(bias):
    """A continuous 12000-character stream from ``synthesize`` follows the documented law step by step."""
    experiment, model, first = models(replace(SMALL, **bias))
    n = 12000
    stream, acceptance = experiment.synthesize(model, n, np.random.default_rng(1), first)
    assert acceptance == 1.0 and stream.shape == (n,)
    context = experiment._context(np.random.default_rng(1))  # the first draw of synthesize
    laws = laws_along(model, context, stream, **bias)
    plain = laws_along(model, context, stream, temperature=1.0, top_k=0, top_p=1.0)
    assert np.all(laws[np.arange(n), stream] > 0)  # never outside the truncated set
    # measured max |z| 1.3-3.9 over 4 streams per case (~50 symbols each); plain sampling gives 10-24
    assert max_martingale_z(stream, laws) < 5
    # the knob is not ignored: plain sampling is rejected by the same statistic
    assert max_martingale_z(stream, plain) > 7


@pytest.mark.parametrize("k", [1, 3])
def test_top_k_keeps_only_the_k_most_likely_next_characters(k):
    experiment, model, first = models(replace(SMALL, top_k=k))
    stream, _ = experiment.synthesize(model, 3000, np.random.default_rng(2), first)
    context = experiment._context(np.random.default_rng(2))
    text = np.concatenate([context, stream])
    width = model.order - 1

    def ranks(chars):
        out = []
        for i, c in enumerate(chars):
            p = model.next_probs(text[i:i + width])
            # rank among the stable order of -p (ties: lower code first), as documented
            out.append(int(np.flatnonzero(np.argsort(-p, kind="mergesort") == c)[0]))
        return np.array(out)

    assert ranks(stream).max() < k
    # without top-k, the same model often samples outside its k most likely characters
    plain = NGramExperiment(SMALL).synthesize(model, 3000, np.random.default_rng(2), first)[0]
    assert np.mean(ranks(plain) >= k) > 0.2


def test_default_knobs_are_plain_sampling_bit_for_bit():
    experiment, model, first = models(SMALL)
    stream, acceptance = experiment.synthesize(model, 2000, np.random.default_rng(3), first)
    assert acceptance == 1.0
    np.testing.assert_array_equal(stream, experiment.sample(model, 2000, np.random.default_rng(3)))


def reference_quality_filter(experiment, model, first, n, rng):
    """The module docstring's quality filter, written out slowly.

    One continuous biased stream after a random real context is cut into
    chunks; a chunk is kept if its bits/char under ``first`` (scored with the
    ``order - 1`` characters before it) is at most the threshold; chunks are
    judged until ``n`` characters are kept (the last cut to fit).
    """
    c = experiment.config
    width, chunk = c.order - 1, c.filter_chunk
    context = experiment._context(rng)
    stream = model.sample(400 * chunk, rng, context, temperature=c.temperature, top_k=c.top_k, top_p=c.top_p)
    text = np.concatenate([context, stream])
    kept, have, judged = [], 0, 0
    for j in range(400):
        judged += 1
        logp = first.log_probs(text[j * chunk:(j + 1) * chunk + width])
        assert logp.shape == (chunk,)
        if -logp.sum() / (chunk * np.log(2.0)) <= c.filter_threshold:
            take = min(chunk, n - have)
            kept.append(stream[j * chunk:j * chunk + take])
            have += take
            if have == n:
                return kept, len(kept) / judged
    raise AssertionError("reference stream too short")


@pytest.mark.parametrize("knobs", [
    # thresholds near the median chunk cost of each case, so about half the chunks pass
    dict(filter_threshold=3.9, filter_chunk=50),
    dict(filter_threshold=4.7, filter_chunk=37, temperature=1.2),
    dict(filter_threshold=6.58, filter_chunk=80, top_p=0.95, smoothing="add-k"),
])
def test_quality_filter_matches_the_documented_semantics(knobs):
    experiment, model, first = models(replace(SMALL, filter="quality", **knobs))
    n = 1234
    part, acceptance = experiment.synthesize(model, n, np.random.default_rng(4), first)
    kept, acceptance_ref = reference_quality_filter(experiment, model, first, n, np.random.default_rng(4))
    assert isinstance(part, Segments) and len(part) == n
    assert len(part.arrays) == len(kept)
    for got, want in zip(part.arrays, kept):
        np.testing.assert_array_equal(got, want)
    assert acceptance == acceptance_ref
    assert 0.1 < acceptance < 0.95  # a controlled case where the filter bites but passes most chunks
    # every kept full chunk is cheap under the real-pool model; the filter is not a no-op
    threshold = experiment.config.filter_threshold
    plain = experiment.sample(model, 50 * experiment.config.filter_chunk, np.random.default_rng(4))
    chunk = experiment.config.filter_chunk
    costs = [first.bits_per_char(plain[i:i + chunk]).bits_per_char for i in range(0, plain.shape[0], chunk)]
    assert max(costs) > threshold


# ---------------------------------------------------------------- directions on small cells


def test_temperature_moves_the_unigram_entropy_and_the_tail():
    """alpha = 1: tau < 1 concentrates the symbol distribution, tau > 1 spreads it toward uniform.

    Measured over roots 0-2 with 16 seeds (medians, paired against tau = 1):
    tau = 0.7: entropy -0.35 nats, tail_bpc +0.7; tau = 1.3: entropy +0.6 nats.
    Every seed agrees, so each one-sided Wilcoxon p is 2**-16 = 1.5e-5.
    """
    seeds, G = 16, 4
    runs = {t: cells(replace(SMALL, temperature=t), 1.0, G, seeds) for t in (0.7, 1.0, 1.3)}
    h = {t: per_seed(r, "entropy") for t, r in runs.items()}
    assert stats.wilcoxon(h[0.7], h[1.0], alternative="less").pvalue < 1e-3
    assert stats.wilcoxon(h[1.3], h[1.0], alternative="greater").pvalue < 1e-3
    assert np.median(h[0.7] - h[1.0]) < -0.15 and np.median(h[1.3] - h[1.0]) > 0.3
    log_v = np.log(NGramExperiment(SMALL).corpus.vocab_size)
    assert np.all(h[1.3] < log_v)  # toward uniform, not past it
    # the loss compounds across generations: the last generation is further below tau = 1 than the first
    last = [entropy(a["char_counts"][-1]) - entropy(b["char_counts"][-1]) for a, b in zip(runs[0.7], runs[1.0])]
    first = [entropy(a["char_counts"][1]) - entropy(b["char_counts"][1]) for a, b in zip(runs[0.7], runs[1.0])]
    assert stats.wilcoxon(last, first, alternative="less").pvalue < 1e-3
    tail = {t: per_seed(runs[t], "tail_bpc") for t in (0.7, 1.0)}
    assert stats.wilcoxon(tail[0.7], tail[1.0], alternative="greater").pvalue < 1e-3
    assert np.median(tail[0.7] - tail[1.0]) > 0.2


@pytest.mark.parametrize("knobs", [dict(top_k=5), dict(top_p=0.9)], ids=["top_k=5", "top_p=0.9"])
def test_truncation_shrinks_the_support_and_costs_the_tail(knobs):
    """alpha = 1: measured medians vs no truncation: support -750 (top_k = 5) / -630 (top_p = 0.9)."""
    seeds, G = 16, 4
    plain = cells(SMALL, 1.0, G, seeds)
    truncated = cells(replace(SMALL, **knobs), 1.0, G, seeds)
    support = per_seed(truncated, "support") - per_seed(plain, "support")
    tail = per_seed(truncated, "tail_bpc") - per_seed(plain, "tail_bpc")
    assert stats.wilcoxon(support, alternative="less").pvalue < 1e-3 and np.median(support) < -300
    assert stats.wilcoxon(tail, alternative="greater").pvalue < 1e-3 and np.median(tail) > 0.2
    assert np.all([r["acceptance"][1:] == 1.0 for r in truncated])  # sampling bias, not a filter


QUALITY = replace(SMALL, filter="quality", filter_threshold=2.8, filter_chunk=50)


def test_quality_filter_trades_the_tail_for_typicality_at_alpha_0_9():
    """Measured over roots 0-5 with 40 seeds (paired medians, one-sided Wilcoxon):
    tail_bpc +0.11 to +0.16 (p 8e-11 to 3e-7), self_bpc -0.41 to -0.49 (p 9e-13, every seed).
    """
    seeds, G = 40, 6
    plain = cells(SMALL, 0.9, G, seeds)
    filtered = cells(QUALITY, 0.9, G, seeds)
    tail = per_seed(filtered, "tail_bpc") - per_seed(plain, "tail_bpc")
    own = per_seed(filtered, "self_bpc") - per_seed(plain, "self_bpc")
    assert stats.wilcoxon(tail, alternative="greater").pvalue < 1e-4 and np.median(tail) > 0.05
    assert stats.wilcoxon(own, alternative="less").pvalue < 1e-8 and np.median(own) < -0.25


@pytest.mark.parametrize("regime", ["mix", "accumulate-subsample"])
def test_quality_filter_records_acceptance_and_keeps_the_training_size(regime):
    (out,) = cells(QUALITY, 0.9, 4, 1, regime=regime)
    acceptance = out["acceptance"]
    assert np.isnan(acceptance[0])
    assert np.all((0 < acceptance[1:]) & (acceptance[1:] < 1))
    assert len(set(acceptance[1:])) > 1  # measured per generation, not a constant
    np.testing.assert_array_equal(out["train_size"], 3000)
    np.testing.assert_array_equal(out["char_counts"].sum(axis=1), 3000)


# ---------------------------------------------------------------- schedules and accumulate-subsample


@pytest.mark.parametrize("schedule, growth, sizes", [
    ("linear", 0.5, [1000, 1500, 2000, 2500]),
    ("geometric", 1.5, [1000, 1500, 2250, 3375]),
    ("geometric", 0.8, [1000, 800, 640, 512]),
])
@pytest.mark.parametrize("regime", ["mix", "fresh", "accumulate-subsample"])
def test_schedule_sets_the_training_size(schedule, growth, sizes, regime):
    config = NGramConfig(order=2, train_chars=1000, heldout_chars=500, self_chars=100,
                         schedule=schedule, growth=growth)
    assert [NGramExperiment(config).train_size(g) for g in range(4)] == sizes
    (out,) = cells(config, 0.5, 4, 1, regime=regime)
    if regime == "accumulate-subsample":
        # the pool grows by the synthetic share of n_g; it trains on min(pool, n_g) characters
        pool = np.cumsum([1000] + [real_count(0.5, s) for s in sizes[1:]])
        sizes = np.minimum(pool, sizes)
    np.testing.assert_array_equal(out["train_size"], sizes)
    np.testing.assert_array_equal(out["char_counts"].sum(axis=1), sizes)


def test_accumulate_subsample_trains_on_the_whole_pool_until_it_exceeds_n():
    """Linear growth 1, alpha = 0.5: n = 1000, 2000, 3000, 4000; pool 1000, 2000, 3500, 5500.

    Generation 1's pool equals n (not longer), so it trains on the whole pool,
    bit-identical to ``accumulate``; from generation 2 the pool is longer and
    is subsampled to n.
    """
    config = NGramConfig(order=3, train_chars=1000, heldout_chars=1000, self_chars=200,
                         schedule="linear", growth=1.0)
    (sub,) = cells(config, 0.5, 4, 1, regime="accumulate-subsample")
    (acc,) = cells(config, 0.5, 4, 1, regime="accumulate")
    np.testing.assert_array_equal(acc["train_size"], [1000, 2000, 3500, 5500])
    np.testing.assert_array_equal(sub["train_size"], [1000, 2000, 3000, 4000])
    for name in ("real_bpc", "support", "char_counts"):
        np.testing.assert_array_equal(sub[name][:2], acc[name][:2])
        assert not np.array_equal(sub[name][2], acc[name][2])


def test_accumulate_subsample_keeps_a_constant_size_and_draws_from_the_pool():
    config = replace(SMALL, train_chars=2000)
    (sub,) = cells(config, 0.9, 5, 1, regime="accumulate-subsample")
    (acc,) = cells(config, 0.9, 5, 1, regime="accumulate")
    np.testing.assert_array_equal(sub["train_size"], 2000)
    np.testing.assert_array_equal(acc["train_size"], 2000 + 1800 * np.arange(5))
    # generation 1 sees the same pool in both regimes (same stream, same model 0): a subsample of
    # it never has more of a symbol or more distinct n-grams than the whole pool
    assert np.all(sub["char_counts"][1] <= acc["char_counts"][1])
    assert sub["support"][1] < acc["support"][1]
    assert np.sum(sub["char_counts"][1] < acc["char_counts"][1]) > 10


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("field, value", [
    ("temperature", 0.0), ("temperature", -1.0), ("temperature", float("inf")), ("temperature", float("nan")),
    ("top_k", -1), ("top_k", 2.5), ("top_k", True),
    ("top_p", 0.0), ("top_p", 1.5), ("top_p", float("nan")),
    ("filter", "verifier"), ("filter_chunk", 0), ("filter_threshold", 0.0), ("filter_threshold", float("inf")),
    ("schedule", "cubic"), ("growth", -0.5),
])
def test_bad_knob_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"`ngram.{field}`"):
        NGramConfig(**{field: value})


def test_geometric_growth_zero_names_growth():
    with pytest.raises(ConfigError, match="`ngram.growth`"):
        NGramConfig(schedule="geometric", growth=0.0)


# ---------------------------------------------------------------- measured directions (README table)


def direction_table(seeds=40, generations=6, root=0):
    """Paired median differences vs the knob off, per seed averaged over generations 1..G-1.

    Run ``python tests/test_ngram_knobs.py`` to print the README table.
    """
    rows = [
        ("temperature = 0.7", dict(temperature=0.7), 1.0, "mix"),
        ("temperature = 1.3", dict(temperature=1.3), 1.0, "mix"),
        ("top_k = 5", dict(top_k=5), 1.0, "mix"),
        ("top_p = 0.9", dict(top_p=0.9), 1.0, "mix"),
        ("filter = quality (2.8 bits, chunk 50)", dict(filter="quality", filter_threshold=2.8, filter_chunk=50),
         0.9, "mix"),
        ("schedule = linear, growth 0.5", dict(schedule="linear", growth=0.5), 1.0, "mix"),
        ("regime accumulate-subsample (vs mix)", {}, 0.9, "accumulate-subsample"),
    ]
    metrics = ("entropy", "support", "real_bpc", "tail_bpc", "self_bpc")
    lines = ["| knob (alpha) | " + " | ".join(f"Δ {m}" for m in metrics) + " | acceptance | p (tail_bpc) |",
             "|---" * (len(metrics) + 3) + "|"]
    for label, knobs, alpha, regime in rows:
        base = cells(SMALL, alpha, generations, seeds, root=root)
        runs = cells(replace(SMALL, **knobs), alpha, generations, seeds, regime=regime, root=root)
        deltas = {m: per_seed(runs, m) - per_seed(base, m) for m in metrics}
        acceptance = np.median(per_seed(runs, "acceptance"))
        p = stats.wilcoxon(deltas["tail_bpc"]).pvalue
        lines.append(f"| {label} ({alpha:g}) | " + " | ".join(f"{np.median(deltas[m]):+.3g}" for m in metrics)
                     + f" | {acceptance:.2f} | {p:.1e} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(direction_table(root=int(sys.argv[1]) if len(sys.argv) > 1 else 0))
