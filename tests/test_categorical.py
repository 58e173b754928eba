"""The categorical experiment: kernels against NumPy/pure-Python references, the loop, and its closed forms.

Closed forms (module docstring of :mod:`hoi_fast.experiments.categorical`)
are checked over many seeds with z-scores of per-seed residuals; each check
also runs a planted bug (an exponent off by one, a real part drawn with
replacement) and requires that it be rejected.
"""

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from hoi_fast._validate import ConfigError
from hoi_fast.experiment import ExperimentError, cell_metric_specs, check_row, real_count, run_cell
from hoi_fast.experiments.categorical import (
    COUNTS_MAX_VOCAB, CategoricalConfig, CategoricalExperiment, SamplingTable, truth_probabilities,
)
from hoi_fast.kernels import categorical as K
from hoi_fast.seeding import CellStreams

STREAM_KEY = 4  # the registry's key for categorical


def streams(root, seed, alpha):
    return CellStreams(root, STREAM_KEY, seed, alpha)


def cell(config, alpha, generations, seed=0, regime="mix", root=0):
    exp = CategoricalExperiment(config)
    return exp, run_cell(exp, alpha, generations, regime, streams(root, seed, alpha))


# -- references -----------------------------------------------------------------

def reference_biased(p, temperature, top_k, top_p):
    """Pure-Python sampling weights after temperature, top-k and top-p (the documented rule)."""
    V = len(p)
    logs = [math.log(x) if x > 0 else -math.inf for x in p]
    top = max(logs)
    w = [math.exp((lg - top) / temperature) if x > 0 else 0.0 for x, lg in zip(p, logs)] \
        if temperature != 1.0 else list(p)
    order = sorted(range(V), key=lambda i: (-p[i], i))
    if 0 < top_k < V:
        for i in order[top_k:]:
            w[i] = 0.0
    if top_p < 1.0:
        total = sum(w)
        acc = 0.0
        for r, i in enumerate(order):
            acc += w[i]
            if acc >= top_p * total:
                for j in order[r + 1:]:
                    w[j] = 0.0
                break
    return np.array(w)


def reference_metrics(counts, p, q, tail, h, p0, own):
    """Every scalar metric with NumPy/SciPy, from the definitions."""
    pos = p > 0
    logp = np.log(np.where(pos, p, 1.0))
    covered = q[pos].sum()
    scored = h[pos].sum()
    tail_scored = h[pos & tail].sum()
    return {
        "real_nll": -(h[pos] * logp[pos]).sum() / scored if scored else 0.0,
        "self_nll": -logp[own].mean(),
        "tail_nll": -(h[pos & tail] * logp[pos & tail]).sum() / tail_scored if tail_scored else np.nan,
        "unseen_events": h[~pos].sum(),
        "kl_support": stats.entropy(q[pos] / covered, p[pos]),
        "missing_mass": q[~pos].sum(),
        "tv": 0.5 * np.abs(p - q).sum(),
        "support": pos.sum(),
        "seen": (counts > 0).sum(),
        "entropy": stats.entropy(p),
        "collision": (p ** 2).sum(),
        "tail_mass": p[tail].sum(),
        "pool_l2": ((p - p0) ** 2).sum(),
        "pool_tv": 0.5 * np.abs(p - p0).sum(),
    }


# -- configuration ----------------------------------------------------------------

@pytest.mark.parametrize("kwargs, key", [
    ({"vocab_size": 1}, "vocab_size"),
    ({"vocab_size": 10**6 + 1}, "vocab_size"),
    ({"vocab_size": 10.0}, "vocab_size"),
    ({"truth": "die"}, "truth"),
    ({"zipf_a": -1.0}, "zipf_a"),
    ({"zipf_a": math.inf}, "zipf_a"),
    ({"zipf_b": -1.0}, "zipf_b"),
    ({"zipf_b": math.nan}, "zipf_b"),
    ({"zipf_a": 400.0}, "zipf_a"),  # q underflows to 0 at V = 1000
    ({"truth": "weights", "vocab_size": 3, "weights": (1.0, 2.0)}, "weights"),
    ({"truth": "weights", "vocab_size": 2, "weights": (1.0, 0.0)}, "weights"),
    ({"truth": "weights", "vocab_size": 2, "weights": (1.0, math.nan)}, "weights"),
    ({"truth": "weights", "vocab_size": 2, "weights": (1e300, 1e-300)}, "weights"),
    ({"truth": "weights", "vocab_size": 2, "weights": "ab"}, "weights"),
    ({"weights": (1.0, 2.0)}, "weights"),  # given, but the truth is zipf
    ({"weights": 3}, "weights"),
    ({"truth": "weights", "vocab_size": 2, "weights": 3}, "weights"),
    ({"smoothing": "kneser-ney"}, "smoothing"),
    ({"k": 0.0}, "k"),
    ({"samples": 0}, "samples"),
    ({"samples": 10**8 + 1}, "samples"),
    ({"heldout": 0}, "heldout"),
    ({"self_samples": 0}, "self_samples"),
    ({"self_samples": 10**7 + 1}, "self_samples"),
    ({"schedule": "cubic"}, "schedule"),
    ({"schedule": "geometric", "growth": 0.0}, "growth"),
    ({"temperature": 0.0}, "temperature"),
    ({"temperature": 2e6}, "temperature"),
    ({"top_k": -1}, "top_k"),
    ({"top_k": 1.5}, "top_k"),
    ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"tail_weight": 0.0}, "tail_weight"),
    ({"tail_weight": 2.0}, "tail_weight"),
])
def test_bad_settings_are_refused_with_one_line_naming_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=rf"`categorical\.{key}`") as info:
        CategoricalConfig(**kwargs)
    assert "\n" not in str(info.value)


def test_check_grid_refuses_a_schedule_beyond_the_draw_cap():
    class Grid:
        generations = 40
    with pytest.raises(ConfigError, match="categorical.schedule"):
        CategoricalConfig(schedule="geometric", growth=1.5).check_grid(Grid())
    CategoricalConfig(schedule="linear", growth=1.0).check_grid(Grid())


def test_grid_accepts_the_table_and_keeps_vocab_size_out_of_sweeps():
    from hoi_fast.config import GridConfig, unsweepable

    assert {"vocab_size", "weights"} <= unsweepable(CategoricalConfig)
    assert "zipf_a" not in unsweepable(CategoricalConfig) and "top_k" not in unsweepable(CategoricalConfig)
    grid = GridConfig(experiment="categorical", alphas=3, seeds=2, generations=3,
                      configs={"categorical": {"truth": "weights", "vocab_size": 3, "weights": [1, 2, 3]}},
                      sweeps=[("categorical.top_k", "0,2"), ("categorical.smoothing", "mle,add-k")])
    assert grid.configs["categorical"].weights == (1, 2, 3)
    assert grid.experiment_config("categorical", {"categorical.top_k": 2}).top_k == 2
    with pytest.raises(ConfigError, match="vocab_size"):
        GridConfig(experiment="categorical", sweeps=[("categorical.vocab_size", "10,20")])
    with pytest.raises(ConfigError, match="categorical.colour"):
        GridConfig(experiment="categorical", configs={"categorical": {"colour": 1}})


# -- truth ------------------------------------------------------------------------

def test_truths_follow_their_definitions():
    q = truth_probabilities(CategoricalConfig(vocab_size=50, zipf_a=1.3, zipf_b=2.7))
    ranks = np.arange(1, 51)
    np.testing.assert_allclose(q, (ranks + 2.7) ** -1.3 / ((ranks + 2.7) ** -1.3).sum(), rtol=1e-13)
    np.testing.assert_array_equal(truth_probabilities(CategoricalConfig(vocab_size=6, truth="uniform")), 1 / 6)
    q = truth_probabilities(CategoricalConfig(vocab_size=3, truth="weights", weights=(1.0, 2.0, 5.0)))
    np.testing.assert_allclose(q, [1 / 8, 2 / 8, 5 / 8], rtol=1e-15)
    # the default: a = 1, b = 2.7, V = 1000
    q = truth_probabilities(CategoricalConfig())
    assert q.shape == (1000,) and abs(q.sum() - 1) < 1e-12 and np.all(np.diff(q) < 0)
    assert q[0] == pytest.approx(1 / (3.7 * (1 / (np.arange(1, 1001) + 2.7)).sum()), rel=1e-12)


def test_a_million_symbols_work():
    config = CategoricalConfig(vocab_size=10**6, samples=2000, heldout=5000, self_samples=100)
    exp, out = cell(config, 0.5, 3)
    assert "counts" not in out and exp.coords() == {}
    assert np.all(out["support"] == 10**6) and np.all(out["seen"] <= 2000)  # add-k: every symbol
    assert np.all(np.isfinite(out["real_nll"])) and np.all(out["real_nll"] > 10)


# -- kernels against references -----------------------------------------------------

def random_weights(rng, V):
    w = rng.random(V) ** 3
    w[rng.random(V) < 0.3] = 0.0
    w[0] = 0.0
    w[-1] = 0.0
    w[rng.integers(1, V - 1)] = 1.0  # at least one positive, not at the ends
    return w


@pytest.mark.parametrize("V", [2, 3, 17, 1000])
def test_draws_are_exact_inversion_of_the_running_sums(V):
    rng = np.random.default_rng(V)
    for _ in range(20):
        w = random_weights(rng, V) if V > 2 else np.array([0.0, 1.0])
        table = SamplingTable.of(w)
        np.testing.assert_allclose(table.cum, np.cumsum(w), rtol=1e-12)
        u = np.concatenate([rng.random(2000), [0.0, np.nextafter(1.0, 0.0)]])
        out = np.empty(u.shape[0], np.int32)
        K.draw(table.cum, table.guide, table.last, u, out)
        expected = np.minimum(np.searchsorted(table.cum, u * table.cum[-1], side="right"), table.last)
        np.testing.assert_array_equal(out, expected)
        assert np.all(w[out] > 0)  # a weight-0 symbol is never drawn


def test_draws_pass_a_chi_square_test_and_keep_the_stream():
    rng = np.random.default_rng(1)
    p = random_weights(rng, 40)
    p /= p.sum()
    table = SamplingTable.of(p)
    counts = table.draw_counts(200_000, np.random.default_rng(2))
    draws = table.draw(200_000, np.random.default_rng(2))
    np.testing.assert_array_equal(np.bincount(draws, minlength=40), counts)  # the same draws
    pos = p > 0
    assert counts[~pos].sum() == 0
    assert stats.chisquare(counts[pos], 200_000 * p[pos]).pvalue > 1e-3
    # one rng.random() per draw, in order, whatever the chunking
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    table.draw(1000, a)
    b.random(1000)
    assert a.random() == b.random()


@pytest.mark.parametrize("k", [0.0, 0.05, 1.0])
def test_fit_matches_numpy(k):
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 3, 300) * rng.integers(0, 6000, 300)  # zeros, and counts beyond the log table
    total = int(counts.sum())
    table = np.log(np.arange(4096) + k) if k else np.concatenate([[-np.inf], np.log(np.arange(1, 4096))])
    probs, logp = np.empty(300), np.empty(300)
    K.fit(counts, total, k, table, probs, logp)
    expected = (counts + k) / (total + k * 300)
    np.testing.assert_allclose(probs, expected, rtol=1e-15)
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(logp, np.log(expected), rtol=1e-13)


def test_biased_weights_match_the_reference_rule_with_ties():
    rng = np.random.default_rng(5)
    for trial in range(300):
        V = int(rng.integers(2, 30))
        counts = rng.integers(0, 4, V)  # many ties
        if counts.sum() == 0:
            counts[0] = 1
        p = counts / counts.sum()
        temperature = float(rng.choice([1.0, 0.5, 2.0, 1e-300, 1e6]))
        top_k = int(rng.integers(0, V + 2))
        top_p = float(rng.choice([1.0, 0.3, 0.5, 0.9, 0.999]))
        out = np.empty(V)
        with np.errstate(divide="ignore"):
            K.biased(p, np.log(p), temperature, top_k, top_p, out)
        np.testing.assert_allclose(out, reference_biased(p, temperature, top_k, top_p), rtol=1e-12, atol=0,
                                   err_msg=f"trial {trial}: t={temperature} k={top_k} p={top_p} p={p}")


def test_tiny_temperature_samples_the_argmax_and_shares_ties():
    p = np.array([0.1, 0.3, 0.05, 0.3, 0.25])
    out = np.empty(5)
    K.biased(p, np.log(p), 5e-324, 0, 1.0, out)
    np.testing.assert_array_equal(out, [0, 1, 0, 1, 0])
    K.biased(p, np.log(p), 1e-300, 1, 1.0, out)  # top_k = 1 keeps the lower index of the tie
    np.testing.assert_array_equal(out, [0, 1, 0, 0, 0])


def test_metrics_kernel_matches_numpy_and_scipy():
    rng = np.random.default_rng(6)
    for smoothing, k in (("mle", 0.0), ("add-k", 0.3)):
        exp = CategoricalExperiment(CategoricalConfig(vocab_size=200, smoothing=smoothing, k=max(k, 0.05),
                                                      self_samples=500, tail_weight=3e-3))
        for _ in range(10):
            draws = exp.truth_table.draw(int(rng.integers(50, 400)), rng)
            model = exp.fit([draws], rng)
            p0 = exp.fit([exp.truth_table.draw(300, rng)], rng).probs
            h = exp.truth_table.draw_counts(5000, rng)
            u = rng.random(500)
            out = np.empty(len(K.METRIC_NAMES))
            t = model.table
            K.metrics(model.counts, model.probs, model.logp, exp.truth, exp.log_truth, exp.tail, h, p0,
                      t.cum, t.guide, t.last, u, out)
            own = np.minimum(np.searchsorted(t.cum, u * t.cum[-1], side="right"), t.last)
            ref = reference_metrics(model.counts, model.probs, exp.truth, exp.tail, h, p0, own)
            for i, name in enumerate(K.METRIC_NAMES):
                np.testing.assert_allclose(out[i], ref[name], rtol=1e-11, atol=1e-14, err_msg=name)


def test_real_nll_is_never_inf_or_nan_when_every_heldout_draw_is_unseen():
    exp = CategoricalExperiment(CategoricalConfig(vocab_size=3, truth="uniform", smoothing="mle", heldout=50))
    model = exp.fit([np.array([2, 2, 2], np.int32)], None)
    heldout = type("H", (), {"counts": np.array([30, 20, 0]), "p0": model.probs})()
    row = exp.metrics(model, [], heldout, np.random.default_rng(0))
    assert row["real_nll"] == 0.0 and row["unseen_events"] == 50 and row["missing_mass"] == pytest.approx(2 / 3)
    assert math.isnan(row["tail_nll"]) and row["kl_support"] == pytest.approx(0.0) and row["self_nll"] == 0.0
    row.update(acceptance=1.0, train_size=3.0)
    check_row(exp, row, cell_metric_specs(exp), 1)  # real_nll must be finite; tail_nll may be NaN


def test_partial_shuffle_draws_uniform_subsets():
    items = np.arange(10, dtype=np.int32)
    shuffled = items.copy()
    K.partial_shuffle(shuffled, np.random.default_rng(7).random(4))
    assert sorted(shuffled.tolist()) == items.tolist()  # a permutation
    rng = np.random.default_rng(8)
    exp = CategoricalExperiment(CategoricalConfig())
    pool = np.arange(5, dtype=np.int32)
    seen = {}
    for _ in range(20000):
        key = tuple(sorted(exp.real_subset(pool, 2, rng).tolist()))
        seen[key] = seen.get(key, 0) + 1
    assert len(seen) == 10 and stats.chisquare(list(seen.values())).pvalue > 1e-3


# -- the experiment in the loop ----------------------------------------------------

SMALL = CategoricalConfig(vocab_size=200, samples=300, heldout=2000, self_samples=200, tail_weight=2e-3)


@pytest.mark.parametrize("smoothing", ["mle", "add-k"])
def test_metrics_have_the_declared_shapes_and_sane_values(smoothing):
    config = replace(SMALL, smoothing=smoothing)
    exp, out = cell(config, 0.7, 5)
    specs = cell_metric_specs(exp)
    assert set(out) == {s.name for s in specs}
    assert {s.name: s.role for s in specs if s.role} == {"real_nll": "real", "self_nll": "self",
                                                         "tail_nll": "tail"}
    for spec in specs:
        assert out[spec.name].shape == (5,) + ((200,) if spec.extra_dims else ())
    np.testing.assert_array_equal(out["counts"].sum(axis=1), 300)
    np.testing.assert_array_equal(exp.coords()["symbol"], np.arange(200))
    assert np.all(out["real_nll"] > 0) and np.all(out["self_nll"] > 0) and np.all(out["tail_nll"] > 0)
    np.testing.assert_array_equal(out["seen"], (out["counts"] > 0).sum(axis=1))
    if smoothing == "mle":
        np.testing.assert_array_equal(out["support"], out["seen"])
        assert np.all(out["unseen_events"] > 0) and np.all(out["missing_mass"] > 0)
    else:
        assert np.all(out["support"] == 200) and np.all(out["unseen_events"] == 0)
        assert np.all(out["missing_mass"] == 0)
    assert out["pool_l2"][0] == 0 and out["pool_tv"][0] == 0 and np.all(out["pool_tv"][1:] > 0)
    assert np.all((0 < out["tv"]) & (out["tv"] < 1)) and np.all(out["collision"] > 1 / 200)


def test_counts_are_stored_only_up_to_the_vocabulary_cap():
    small = CategoricalExperiment(CategoricalConfig(vocab_size=COUNTS_MAX_VOCAB))
    large = CategoricalExperiment(CategoricalConfig(vocab_size=COUNTS_MAX_VOCAB + 1))
    assert "counts" in {s.name for s in small.metric_specs()} and small.coords()["symbol"].shape == (4096,)
    assert "counts" not in {s.name for s in large.metric_specs()} and large.coords() == {}


@pytest.mark.parametrize("regime", ["mix", "fresh", "accumulate", "accumulate-subsample"])
def test_regimes_train_on_the_expected_number_of_draws(regime):
    _, out = cell(SMALL, 0.3, 3, regime=regime)
    n_syn = 300 - real_count(0.3, 300)
    expected = [300, 300 + n_syn, 300 + 2 * n_syn] if regime == "accumulate" else [300] * 3
    np.testing.assert_array_equal(out["counts"].sum(axis=1), expected)
    np.testing.assert_array_equal(out["train_size"], expected)


def test_generation_zero_is_fitted_on_R_and_shared_across_alpha():
    exp = CategoricalExperiment(SMALL)
    R = exp.real_pool(streams(0, 3, 0.0).real())
    _, a = cell(SMALL, 0.0, 2, seed=3)
    _, b = cell(SMALL, 0.9, 2, seed=3)
    _, c = cell(SMALL, 0.0, 2, seed=4)
    np.testing.assert_array_equal(a["counts"][0], np.bincount(R, minlength=200))
    for name in a:
        if name != "acceptance":
            np.testing.assert_array_equal(a[name][0], b[name][0])
    assert a["real_nll"][0] != c["real_nll"][0]
    # alpha = 0 under mix trains on all of R every generation
    np.testing.assert_array_equal(a["counts"][1], a["counts"][0])


def test_same_streams_give_identical_cells():
    config = CategoricalConfig(vocab_size=300, samples=400, heldout=1000, self_samples=100, top_k=50,
                               temperature=0.8, top_p=0.95)
    _, a = cell(config, 0.6, 4, seed=2)
    _, b = cell(config, 0.6, 4, seed=2)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_no_tail_gives_a_note_nan_tail_nll_and_zero_tail_mass():
    exp, out = cell(CategoricalConfig(vocab_size=10, truth="uniform", samples=50, heldout=100, self_samples=10),
                    0.5, 3)
    assert exp.notes() and "tail" in exp.notes()[0]
    assert np.all(np.isnan(out["tail_nll"])) and np.all(out["tail_mass"] == 0)
    assert not CategoricalExperiment(SMALL).notes()


def test_knobs_act_on_synthetic_data_only():
    base = replace(SMALL, smoothing="mle")
    for knobs in ({"top_k": 10}, {"top_p": 0.5}, {"temperature": 1e-300}):
        config = replace(base, **knobs)
        _, out = cell(config, 1.0, 4, seed=5)
        _, ref = cell(base, 1.0, 4, seed=5)
        for name in out:
            if name != "acceptance":
                np.testing.assert_array_equal(out[name][0], ref[name][0])  # generation 0: R only
        assert np.all(out["support"][1:] < ref["support"][1:])
    _, out = cell(replace(base, top_k=10), 1.0, 4, seed=5)
    assert np.all(out["support"][1:] <= 10)
    _, out = cell(replace(base, temperature=1e-300), 1.0, 3, seed=5)
    assert out["support"][1] == np.sum(out["counts"][0] == out["counts"][0].max())  # the argmax (and ties)


def test_top_k_cuts_the_tail_mass_for_good():
    """Dohmatob et al.'s top-k: from generation 1 on, every symbol outside generation 0's
    top k is lost, so the missing mass is at least the truth's mass outside that set."""
    config = CategoricalConfig(vocab_size=500, zipf_a=1.5, samples=2000, heldout=5000, self_samples=100,
                               smoothing="mle", top_k=20)
    exp, out = cell(config, 1.0, 5, seed=1)
    order = sorted(range(500), key=lambda i: (-out["counts"][0][i], i))
    cut = exp.truth[order[20:]].sum()
    assert np.all(out["missing_mass"][1:] >= cut - 1e-12)
    assert np.all(out["support"][1:] <= 20)


def test_bad_model_output_is_caught_by_the_loop():
    exp = CategoricalExperiment(SMALL)
    row = {s.name: 1.0 for s in exp.metric_specs()}
    row.update(counts=np.zeros(200), acceptance=1.0, train_size=1.0, real_nll=np.inf)
    with pytest.raises(ExperimentError, match="real_nll"):
        check_row(exp, row, cell_metric_specs(exp), 1)


# -- closed forms -----------------------------------------------------------------

N_SMALL, V_SMALL, GENS, SEEDS = 20, 8, 8, 1200
CLOSED_FORM = CategoricalConfig(vocab_size=V_SMALL, smoothing="mle", samples=N_SMALL, heldout=10, self_samples=1)


def run_seeds(alpha, root):
    exp = CategoricalExperiment(CLOSED_FORM)
    out = [run_cell(exp, alpha, GENS, "mix", streams(root, s, alpha)) for s in range(SEEDS)]
    return {name: np.stack([o[name] for o in out]) for name in ("collision", "pool_l2", "support", "counts")}


@pytest.fixture(scope="module")
def replace_cells():
    return run_seeds(1.0, root=21)


@pytest.fixture(scope="module")
def mixed_cells():
    return run_seeds(0.5, root=22)


def z_scores(residual):
    """Per-generation z of the mean of per-seed residuals (generations >= 1)."""
    r = residual[:, 1:]
    return r.mean(axis=0) / (r.std(axis=0, ddof=1) / np.sqrt(r.shape[0]))


def test_generation_zero_collision_is_that_of_R(replace_cells):
    p0 = replace_cells["counts"][:, 0] / N_SMALL
    np.testing.assert_allclose(replace_cells["collision"][:, 0], (p0 ** 2).sum(axis=1), rtol=1e-14)


def test_collision_follows_seddik_closed_form_and_rejects_an_off_by_one(replace_cells):
    """MLE, alpha = 1: E[S_g | S_0] = 1 - (1 - 1/n)^g (1 - S_0), S_0 from generation 0 (fitted on R)."""
    S = replace_cells["collision"]

    def z(shift):
        g = np.arange(GENS) + shift
        return z_scores(S - (1 - (1 - 1 / N_SMALL) ** g[None, :] * (1 - S[:, :1])))

    assert np.all(np.abs(z(0)) < 4.5), z(0)
    assert np.max(np.abs(z(+1))) > 8 and np.max(np.abs(z(-1))) > 8  # exponent g + 1 or g - 1


def wright_fisher_support(c0, generations, shift=0):
    """Exact E[support_g | counts c0]: each symbol's count is a Binomial(n, c/n) chain."""
    n = N_SMALL
    states = np.arange(n + 1)
    T = stats.binom.pmf(states[None, :], n, states[:, None] / n)  # T[a, b] = P(b | a)
    out = np.empty((c0.shape[0], generations))
    for g in range(generations):
        Tg = np.linalg.matrix_power(T, g + shift)
        out[:, g] = (1 - Tg[c0.astype(int), 0]).sum(axis=1)
    return out


def test_support_follows_the_exact_wright_fisher_chain_and_rejects_an_off_by_one(replace_cells):
    support, c0 = replace_cells["support"], replace_cells["counts"][:, 0]
    np.testing.assert_array_equal(wright_fisher_support(c0, 1), support[:, :1])  # generation 0: R's support
    assert np.all(np.abs(z_scores(support - wright_fisher_support(c0, GENS))) < 4.5)
    assert np.max(np.abs(z_scores(support - wright_fisher_support(c0, GENS, shift=1)))) > 8


def pool_l2_factor(alpha, generations, with_replacement=False):
    """a_g with E[D_g | R] = a_g (1 - S_0) under mix (module docstring's recursion)."""
    n = N_SMALL
    m = real_count(alpha, n)
    k = n - m
    real = m / n if with_replacement else m * (n - m) / ((n - 1) * n)
    a = np.zeros(generations)
    for g in range(1, generations):
        a[g] = (real * n + k) / n ** 2 + (k * (k - 1) / n ** 2) * a[g - 1]
    return a


@pytest.mark.parametrize("which", ["replace", "mixed"])
def test_distance_to_the_pool_follows_its_recursion(which, replace_cells, mixed_cells):
    """D_g = sum (p_g - p_0)^2 and S_g = S_0 + D_g in expectation, at alpha = 1 and alpha = 0.5;
    planted bugs: a real part drawn with replacement, and an index shifted by one generation."""
    cells, alpha = (replace_cells, 1.0) if which == "replace" else (mixed_cells, 0.5)
    D, S = cells["pool_l2"], cells["collision"]
    one_minus_s0 = 1 - S[:, :1]
    a = pool_l2_factor(alpha, GENS)
    assert np.all(np.abs(z_scores(D - a[None, :] * one_minus_s0)) < 4.5)
    assert np.all(np.abs(z_scores(S - S[:, :1] - a[None, :] * one_minus_s0)) < 4.5)
    shifted = np.concatenate([[0.0], pool_l2_factor(alpha, GENS + 1)[2:]])
    assert np.max(np.abs(z_scores(D - shifted[None, :] * one_minus_s0))) > 8
    if alpha < 1:
        wrong = pool_l2_factor(alpha, GENS, with_replacement=True)
        assert np.max(np.abs(z_scores(D - wrong[None, :] * one_minus_s0))) > 8
        # the deviation settles below the fully synthetic one
        assert D[:, -1].mean() < 0.5 * replace_cells["pool_l2"][:, -1].mean()
