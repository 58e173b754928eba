"""n-gram kernels against the pure-Python reference, invariants and exact sampling."""

import hashlib
import json
import math
import pathlib

import numpy as np
import pytest
from scipy import stats

from hoi_fast import ngram
from hoi_fast.corpus import load_corpus
from hoi_fast.kernels import ngram as kernels
from hoi_fast.kernels import ngram_sample as sampler
from hoi_fast.kernels import ngram_score as scorer
from reference_ngram import Reference, continuation, counts

SMOOTHINGS = ("kneser-ney", "add-k", "mle")


def skewed_text(rng, size, vocab_size):
    """Zipf-like i.i.d. text with a few repeated phrases, so contexts recur."""
    p = 1.0 / np.arange(1, vocab_size + 1) ** 1.2
    text = rng.choice(vocab_size, size=size, p=p / p.sum())
    phrase = rng.integers(0, vocab_size, 6)
    for start in rng.integers(0, size - 6, size // 40):
        text[start:start + 6] = phrase
    return text.astype(np.int32)


@pytest.fixture(scope="module")
def real_codes():
    c = load_corpus()
    return c.train[5000:8000].copy(), c.heldout[:1500].copy(), c.vocab_size


def as_dict(grams, values):
    return {tuple(int(x) for x in g): int(v) for g, v in zip(grams, values)}


@pytest.mark.parametrize("order", [1, 2, 3, 5, 8])
def test_counts_match_counter_and_never_cross_segments(order):
    rng = np.random.default_rng(order)
    parts = [skewed_text(rng, n, 7) for n in (300, 1, order, 57)]
    model = ngram.train(parts, order, vocab_size=7)
    for length in range(1, order + 1):
        grams, cnt = model.ngram_counts(length)
        assert as_dict(grams, cnt) == dict(counts(parts, length))
        # counts sum to the number of positions where the gram fits in its segment
        assert cnt.sum() == sum(max(len(p) - length + 1, 0) for p in parts)
    for length in range(1, order):
        grams, cont = model.continuation_counts(length)
        ref = continuation(parts, length)
        assert {g: v for g, v in as_dict(grams, cont).items() if v} == dict(ref)
    assert model.support == len(counts(parts, order))
    np.testing.assert_array_equal(model.symbol_counts(), np.bincount(np.concatenate(parts), minlength=7))


def test_counts_on_real_text_with_large_vocabulary(real_codes):
    train, _, vocab = real_codes
    model = ngram.train(train, 10, vocab_size=vocab)
    for length in (1, 4, 10):
        grams, cnt = model.ngram_counts(length)
        assert as_dict(grams, cnt) == dict(counts(train, length))


@pytest.mark.parametrize("smoothing", ["add-k", "mle"])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_add_k_and_mle_log_probs_match_reference_exactly(smoothing, order, real_codes):
    train, heldout, vocab = real_codes
    parts = [train[:2000], train[2000:]]
    model = ngram.train(parts, order, smoothing, vocab_size=vocab, k=0.3)
    ref = Reference(parts, order, smoothing, vocab, k=0.3)
    text = heldout[:400]
    ours = model.log_probs(text)
    theirs = np.array(ref.log_probs(text))
    assert ours.shape == (len(text) - order + 1,)
    np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(theirs))
    finite = np.isfinite(theirs)
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=0, atol=1e-12)
    got = model.bits_per_char(text)
    seen = theirs[finite]
    assert got.positions == len(theirs) and got.unseen == int((~finite).sum())
    assert got.bits_per_char == pytest.approx(-seen.mean() / math.log(2), abs=1e-12)
    if smoothing == "add-k":
        assert got.unseen == 0


@pytest.mark.parametrize("order", [1, 2, 3, 5])
@pytest.mark.parametrize("discount", [0.1, 0.75, 0.95])
def test_kneser_ney_matches_reference(order, discount, real_codes):
    train, heldout, vocab = real_codes
    parts = [train[:1500], train[1500:2500]]
    model = ngram.train(parts, order, "kneser-ney", vocab_size=vocab, discount=discount)
    ref = Reference(parts, order, "kneser-ney", vocab, discount=discount)
    text = np.concatenate([heldout[:150], train[100:200]])  # unseen and seen contexts
    np.testing.assert_allclose(model.log_probs(text), ref.log_probs(text), rtol=0, atol=1e-12)


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
@pytest.mark.parametrize("order", [1, 2, 3, 6])
def test_next_probs_sum_to_one_and_match_scoring(smoothing, order):
    rng = np.random.default_rng(10 + order)
    text = skewed_text(rng, 800, 9)
    model = ngram.train([text[:500], text[500:]], order, smoothing, vocab_size=10)  # symbol 9 unused
    ref = Reference([text[:500], text[500:]], order, smoothing, 10)
    contexts = [text[i:i + order - 1] for i in rng.integers(0, 790, 40)]
    contexts += [rng.integers(0, 10, order - 1).astype(np.int32) for _ in range(20)]  # mostly unseen
    for ctx in contexts:
        p = model.next_probs(ctx)
        assert p.shape == (10,) and np.all(p >= 0)
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(p, [ref.prob(c, tuple(ctx)) for c in range(10)], rtol=0, atol=1e-12)
        # scoring reads the same distribution
        lp = model.log_probs(np.append(ctx, 3).astype(np.int32))
        assert lp[-1] == pytest.approx(math.log(p[3]) if p[3] > 0 else -math.inf, abs=1e-12)


def chi2_pvalue(observed, probs):
    """Goodness of fit, pooling categories with expected count < 5."""
    n = observed.sum()
    expected = probs * n
    small = expected < 5
    obs = np.append(observed[~small], observed[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    if exp[-1] == 0:
        assert obs[-1] == 0, "sampled an event of probability 0"
        obs, exp = obs[:-1], exp[:-1]
    if obs.size < 2:
        return 1.0
    return stats.chisquare(obs, exp * n / exp.sum()).pvalue


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
def test_sampled_continuations_follow_the_model(smoothing, real_codes):
    train, _, vocab = real_codes
    order = 3
    model = ngram.train(train, order, smoothing, vocab_size=vocab, k=0.05)
    rng = np.random.default_rng(123)
    contexts = [train[10:12], train[777:779], train[2000:2002], np.array([vocab - 1, 0], np.int32)]
    draws = 6000
    for ctx in contexts:
        probs = model.next_probs(ctx)
        seen = np.array([model.sample(1, rng, context=ctx)[0] for _ in range(draws)])
        observed = np.bincount(seen, minlength=vocab)
        assert chi2_pvalue(observed, probs) > 1e-3


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
def test_stream_transitions_follow_the_model(smoothing):
    """In one long stream, the character after each visit of a context has law p(. | context)."""
    rng = np.random.default_rng(5)
    text = skewed_text(rng, 3000, 6)
    model = ngram.train(text, 2, smoothing, vocab_size=6, k=0.5)
    stream = model.sample(60000, np.random.default_rng(6), context=text[:1])
    for ctx in range(6):
        follow = stream[1:][stream[:-1] == ctx]
        if follow.size < 200:
            continue
        assert chi2_pvalue(np.bincount(follow, minlength=6), model.next_probs([ctx])) > 1e-3


def test_mle_never_samples_unseen_events():
    rng = np.random.default_rng(8)
    text = skewed_text(rng, 2000, 12)
    for order in (2, 4, 6):
        model = ngram.train([text[:1000], text[1000:]], order, "mle", vocab_size=12)
        ctx = model.random_context(rng)
        out = model.sample(5000, rng, context=ctx)
        scored = model.bits_per_char(np.concatenate([ctx, out]))
        assert scored.unseen == 0 and np.isfinite(scored.bits_per_char)


def test_sampling_and_scoring_are_deterministic(real_codes):
    train, heldout, vocab = real_codes
    a = ngram.train(train, 4, vocab_size=vocab)
    b = ngram.train(train.copy(), 4, vocab_size=vocab)
    np.testing.assert_array_equal(a.log_probs(heldout), b.log_probs(heldout))
    np.testing.assert_array_equal(a.sample(500, 42), b.sample(500, 42))
    assert not np.array_equal(a.sample(500, 42), a.sample(500, 43))
    # the kernel advances the caller's generator exactly like NumPy would
    g1, g2 = np.random.default_rng(1), np.random.default_rng(1)
    a.sample(100, g1, context=train[:3])
    b.sample(100, g2, context=train[:3])
    assert g1.random() == g2.random()


def reference_stream(parts, order, smoothing, vocab, k, discount, context, n, rng):
    """The documented sampler, transcribed: walk the mixture from the top order down,
    one uniform per row tried, rows inverted in order of first occurrence."""
    ref = Reference(parts, order, smoothing, vocab, k=k, discount=discount)
    first = {}  # gram -> (position, -length): the order nodes are created in
    pos = 0
    for seg in [tuple(int(c) for c in p) for p in parts]:
        for i in range(len(seg)):
            for m in range(min(order, i + 1), 0, -1):
                first.setdefault(seg[i - m + 1:i + 1], (pos, -m))
            pos += 1

    def row(ctx, weights):
        items = sorted((first[ctx + (c,)], c, w) for c, w in ref._row(ctx, weights).items())
        return [(c, w) for _, c, w in items]

    def draw(ctx_row, t, u):
        for c, w in ctx_row:
            u -= w
            if u < 0:
                return c
        return -1

    hist = [int(c) for c in context]
    out = []
    for _ in range(n):
        c = -1
        levels = range(min(order, len(hist) + 1), 0, -1)
        if smoothing == "kneser-ney":
            for lev in levels:
                ctx = tuple(hist[len(hist) - lev + 1:]) if lev > 1 else ()
                if lev > 1 and ctx not in first:
                    continue
                weights = ref._kn_weights(lev)
                full = [(cc, max(w - discount, 0.0)) for cc, w in row(ctx, weights)]
                t = float(sum(w for _, w in row(ctx, weights)))
                if t == 0:
                    continue
                c = draw(full, t, rng.random() * t)
                if c >= 0:
                    break
        elif smoothing == "add-k":
            ctx = tuple(hist[len(hist) - order + 1:]) if order > 1 else ()
            r = row(ctx, ref.raw[order]) if len(hist) >= order - 1 else []
            t = float(sum(w for _, w in r))
            u = rng.random() * (t + k * vocab)
            if u < t:
                c = draw(r, t, u)
        else:
            for lev in levels:
                ctx = tuple(hist[len(hist) - lev + 1:]) if lev > 1 else ()
                r = row(ctx, ref.raw[lev])
                t = float(sum(w for _, w in r))
                if t > 0:
                    c = draw(r, t, rng.random() * t)
                    break
        if c < 0:
            c = min(int(rng.random() * vocab), vocab - 1)
        out.append(c)
        hist.append(c)
    return out


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
@pytest.mark.parametrize("order", [1, 2, 4])
def test_sampled_stream_equals_the_documented_sampler_draw_for_draw(smoothing, order):
    """The fast sampler (deepest-context state, precomputed transitions) consumes the
    generator exactly like the transcribed mixture walk and returns the same stream."""
    rng = np.random.default_rng(40 + order)
    text = skewed_text(rng, 600, 8)
    parts = [text[:350], text[350:]]
    model = ngram.train(parts, order, smoothing, vocab_size=9, k=0.7, discount=0.6)  # symbol 8 unused
    for ctx in (text[:order - 1], np.array([8, 8, 8], np.int32)[:order - 1], text[:0]):
        ours = model.sample(300, np.random.default_rng(7), context=ctx)
        theirs = reference_stream(parts, order, smoothing, 9, 0.7, 0.6, ctx, 300, np.random.default_rng(7))
        np.testing.assert_array_equal(ours, theirs)



@pytest.mark.parametrize("smoothing", SMOOTHINGS)
def test_exact_sampling_and_kneser_ney_scoring_never_build_the_child_index(smoothing, real_codes):
    """Exact sampling from kneser-ney and mle looks deeper contexts up in the rows, packed
    kneser-ney scoring in its own table: the hash index is built only when add-k samples,
    add-k or mle scores, or a next-character law is asked for; a model that built it
    first samples and scores the same."""
    train, held, vocab = real_codes
    model = ngram.train(train, 4, smoothing, vocab_size=vocab)
    stream = model.sample(2000, np.random.default_rng(3), context=held[:3])
    assert (model._index is None) == (smoothing != "add-k")
    logp = model.log_probs(held)
    assert (model._index is None) == (smoothing == "kneser-ney")
    fresh = ngram.train(train, 4, smoothing, vocab_size=vocab)
    fresh.next_probs(held[:3])  # builds the index first
    assert fresh._index is not None
    np.testing.assert_array_equal(fresh.sample(2000, np.random.default_rng(3), context=held[:3]), stream)
    np.testing.assert_array_equal(fresh.log_probs(held), logp)

def test_biased_sampler_totals_are_summed_left_to_right():
    """The top-p total and the inversion total are plain left-to-right sums (as Python's
    ``sum``), not vectorised reductions whose rounding depends on the CPU's vector width."""
    rng = np.random.default_rng(12)
    for n in list(range(1, 70)) + [95, 96, 97, 255, 1000]:
        q = rng.random(n) * 10.0 ** rng.integers(-8, 8, n)
        assert sampler._sum_in_order(q) == sum(q.tolist())

@pytest.mark.parametrize("smoothing", SMOOTHINGS)
@pytest.mark.parametrize("order, n", [(5, 2500), (3, 2500), (5, 4), (3, 1), (2, 0)])
def test_block_drawn_uniforms_leave_the_generator_where_one_call_each_would(smoothing, order, n):
    """Uniforms are drawn ahead in blocks (several refills in a long stream, one by one
    in the last characters): the stream and the generator's next draw equal the
    transcribed sampler's, which calls ``rng.random()`` once per uniform."""
    rng = np.random.default_rng(60 + order)
    text = skewed_text(rng, 900, 8)
    parts = [text[:500], text[500:]]
    model = ngram.train(parts, order, smoothing, vocab_size=9, k=0.7, discount=0.6)
    ctx = text[:order - 1]
    ours_rng, ref_rng = np.random.default_rng(8), np.random.default_rng(8)
    ours = model.sample(n, ours_rng, context=ctx)
    theirs = reference_stream(parts, order, smoothing, 9, 0.7, 0.6, ctx, n, ref_rng)
    np.testing.assert_array_equal(ours, theirs)
    assert ours_rng.random() == ref_rng.random()


def test_child_look_up_through_filter_and_unigram_array_equals_the_reference_grams():
    """``_child`` (filter, then table; 1-grams from their array) finds exactly the
    grams the reference counted, for every context and symbol, and its filter
    answers most absent grams without a table probe."""
    rng = np.random.default_rng(13)
    parts = [skewed_text(rng, 3000, 12), skewed_text(rng, 500, 12)]
    order, vocab = 4, 13  # symbol 12 never occurs
    model = ngram.train(parts, order, vocab_size=vocab)
    index, bits = model._tables[:2]
    present = {g for m in range(1, order + 1) for g in counts(parts, m)}
    nodes = {(): 0}
    for m in range(1, order + 1):
        grams, _ = model.ngram_counts(m)
        for g, node in zip(map(tuple, grams.tolist()), np.flatnonzero(model._depth == m)):
            nodes[g] = node
    cap = 1 << bits
    filtered = absent = 0
    for ctx, y in nodes.items():
        if len(ctx) == order:
            continue
        for c in range(vocab):
            gram = ctx + (c,)
            assert kernels._child(y, c, vocab, index, bits) == (nodes[gram] if gram in present else -1)
            if gram not in present and ctx:
                absent += 1
                f = kernels._filter_bit(y * vocab + c, bits)
                filtered += not kernels._filter_has(index, 2 * cap, f)
    assert absent > 1000 and filtered > 0.8 * absent


def test_counts_survive_table_and_array_growth_across_many_segments():
    """Enough distinct grams to grow the hash table and the per-node arrays several
    times, with growth stops falling inside segments and at their starts."""
    rng = np.random.default_rng(9)
    parts = [rng.integers(0, 40, n).astype(np.int32) for n in rng.integers(1, 400, 60)]
    model = ngram.train(parts, 4, vocab_size=40)
    # more nodes than the room the text is given at the start: the table and arrays grew
    assert model._n_nodes > kernels._expected_nodes(model._starts, model._ends, 4) and model._tables[1] > 13
    for length in (1, 2, 4):
        grams, cnt = model.ngram_counts(length)
        assert as_dict(grams, cnt) == dict(counts(parts, length))
    grams, cont = model.continuation_counts(3)
    assert {g: v for g, v in as_dict(grams, cont).items() if v} == dict(continuation(parts, 3))



@pytest.mark.parametrize("order", [1, 2, 4, 7])
def test_packed_counting_and_scoring_equal_the_trie_walk(order):
    """Counting by packed grams (``_fill_packed``) builds the very nodes, numbering and
    counts of the trie walk (``_fill``), across segments and growth; Kneser-Ney
    scoring by packed keys returns the same log-probabilities and top counts."""
    rng = np.random.default_rng(order)
    vocab = 23
    parts = [skewed_text(rng, n, vocab) for n in (5000, 1, order, 700)] + \
        [rng.integers(0, vocab, 3000).astype(np.int32)]
    codes, starts, ends = ngram._join(parts)
    max_nodes = ngram._max_nodes(ends - starts, order, vocab)
    walk = kernels.build(codes, starts, ends, order, vocab, max_nodes, np.empty(0, np.int64), 0)
    packed = kernels.build(codes, starts, ends, order, vocab, max_nodes, np.empty(0, np.int64),
                           ngram._symbol_bits(vocab, order))
    n = walk[0]
    assert packed[0] == n
    for a, b in zip(walk[3:], packed[3:]):
        np.testing.assert_array_equal(a[:n], b[:n])
    model = ngram.NGramModel(codes, starts, ends, order, "kneser-ney", vocab, 0.5, 0.7)
    assert model._packed is not None
    text = np.concatenate([skewed_text(rng, 2000, vocab), rng.integers(0, vocab, 500).astype(np.int32)])
    ts, te = np.array([0, 900], np.int64), np.array([900, text.shape[0]], np.int64)
    size = text.shape[0] - 2 * (order - 1)
    got = np.empty(size), np.empty(size, np.int64)
    want = np.empty(size), np.empty(size, np.int64)
    scorer.score_packed(text, ts, te, order, vocab, *model._packed, model._tables, *got)
    scorer.score(text, ts, te, order, vocab, kernels.KNESER_NEY, model._tables, *want)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])

@pytest.mark.parametrize("smoothing", SMOOTHINGS)
@pytest.mark.parametrize("order", [1, 2, 4, 7, 10])
def test_scoring_distinct_grams_equals_scoring_every_position(order, smoothing):
    """Each distinct gram scored once (by packed keys for kneser-ney, as windows of its own
    otherwise) and spread over its positions gives every position's log-probability and
    top count to the bit, across segments, back-offs and symbols never seen in training."""
    rng = np.random.default_rng(10 * order + len(smoothing))
    vocab = 23 if order < 10 else 97  # order 10 of 97 symbols does not pack into 62 bits
    train = [skewed_text(rng, 4000, vocab - 2), skewed_text(rng, 300, vocab - 1)]
    model = ngram.train(train, order, smoothing, vocab_size=vocab, k=0.3, discount=0.7)
    text = [np.concatenate([skewed_text(rng, 1500, vocab - 2), rng.integers(0, vocab, 400)]).astype(np.int32),
            skewed_text(rng, order, vocab), skewed_text(rng, max(order - 1, 1), vocab), skewed_text(rng, 50, vocab)]
    text.append(text[0][100:400].copy())  # grams repeated at any order
    grams = ngram.distinct_grams(text, order, vocab)
    assert (grams.keys is None) == (ngram._symbol_bits(vocab, order) == 0)
    assert grams.windows[1].shape[0] < grams.inverse.shape[0]  # the text repeats grams
    got = model._score_distinct(grams)
    want = model._score(*ngram._join(text))
    np.testing.assert_array_equal(got[0][grams.inverse].view(np.int64), want[0].view(np.int64))
    np.testing.assert_array_equal(got[1][grams.inverse], want[1])
    np.testing.assert_array_equal(grams.counts, np.bincount(grams.inverse))
    if smoothing == "kneser-ney" and grams.keys is not None:  # the key kernel, not the windows
        logp, top = np.empty(grams.keys.shape[0]), np.empty(grams.keys.shape[0], np.int64)
        scorer.score_packed_grams(grams.keys, order, vocab, *model._packed, model._tables, logp, top)
        np.testing.assert_array_equal(logp[grams.inverse], want[0])


def test_log_probs_of_a_texts_distinct_grams_are_its_log_probs(real_codes):
    train, heldout, vocab = real_codes
    model = ngram.train(train, 5, vocab_size=vocab)
    grams = ngram.distinct_grams(heldout, 5, vocab)
    np.testing.assert_array_equal(model.log_probs(grams), model.log_probs(heldout))
    assert model.bits_per_char(grams) == model.bits_per_char(heldout)


def test_distinct_grams_refuse_a_model_of_another_order():
    model = ngram.train(np.arange(50) % 7, 3, vocab_size=7)
    with pytest.raises(ValueError, match="order 2 over 7 symbols; the model is of order 3"):
        model.log_probs(ngram.distinct_grams(np.arange(20) % 7, 2, 7))


# -- bit-identity with the engine before the speed work (commit 7a4877d) ----------

def _one_row(weights, cumulative):
    """A rows array holding one row (header, then entries) of ``weights``."""
    from hoi_fast.kernels.ngram import ROW
    rows = np.zeros(len(weights) + 1, ROW)
    rows[0]["weight"], rows[0]["link"] = weights.sum() + 1.0, len(weights) + 1
    rows["symbol"][1:] = np.arange(len(weights))
    rows["weight"][1:] = np.cumsum(weights) if cumulative else weights
    return rows


@pytest.mark.parametrize("length", [0, 1, 3, 9, 10, 40, 96])
def test_cumulative_scan_finds_the_entry_sequential_subtraction_finds(length):
    """Weights that are multiples of 2**-8 (zeros too): comparing u with the running sums (linear or by
    bisection) gives the entry, or the back-off (-1), that subtracting the weights one by one gives."""
    from hoi_fast.kernels.ngram_sample import _scan
    rng = np.random.default_rng(length)
    for trial in range(60):
        weights = rng.integers(0, 4 * 257, length) * 0.25 * (rng.random(length) < 0.8)
        weights[rng.random(length) < 0.3] -= 0.75  # kneser-ney's w - D
        weights = np.maximum(weights, 0.0) * (1.0 if trial % 2 else 1 / 64)
        seq, cum = _one_row(weights, False), _one_row(weights, True)
        total = weights.sum()
        edges = np.concatenate([np.cumsum(weights), [0.0, total]])
        us = np.concatenate([rng.random(50) * (total + 1.0), edges, np.nextafter(edges, -1.0).clip(0.0)])
        for u in us:
            assert _scan(u, 0, cum, True) == _scan(u, 0, seq, False), (u, weights)


def test_cumulative_rows_only_where_every_partial_sum_is_exact():
    kn, addk, mle = kernels.KNESER_NEY, kernels.ADD_K, kernels.MLE
    assert kernels.cumulative_rows(kn, 0.75) and kernels.cumulative_rows(kn, 0.5)
    assert kernels.cumulative_rows(kn, 3 / 256) and not kernels.cumulative_rows(kn, 1 / 512)
    assert not kernels.cumulative_rows(kn, 0.6) and not kernels.cumulative_rows(kn, 0.1)
    assert kernels.cumulative_rows(addk, 0.6) and kernels.cumulative_rows(mle, 0.1)


@pytest.mark.parametrize("smoothing,discount", [("kneser-ney", 0.75), ("kneser-ney", 0.5),
                                                ("kneser-ney", 0.875), ("add-k", 0.75), ("mle", 0.75)])
def test_cumulative_rows_sample_the_very_streams_of_weight_rows(smoothing, discount, real_codes, monkeypatch):
    """The same model with running sums and with plain weights (the other discounts' form) draws the
    same exact and biased streams and leaves the generator in the same state."""
    train, _, vocab = real_codes
    codes, starts, ends = ngram._join([train[:2000], train[2100:3000]])
    fast = ngram.NGramModel(codes, starts, ends, 4, smoothing, vocab, 0.3, discount)
    monkeypatch.setattr(kernels, "cumulative_rows", lambda smoothing, discount: False)
    plain = ngram.NGramModel(codes, starts, ends, 4, smoothing, vocab, 0.3, discount)
    assert fast._cumulative and not plain._cumulative
    assert not np.array_equal(fast._rows["weight"], plain._rows["weight"])
    for bias in ({}, dict(top_k=5), dict(top_p=0.8), dict(temperature=0.7)):
        ra, rb = np.random.default_rng(11), np.random.default_rng(11)
        ctx = train[:3]
        np.testing.assert_array_equal(fast._sample(3000, ra, ctx, **bias), plain._sample(3000, rb, ctx, **bias))
        assert ra.bit_generator.state == rb.bit_generator.state


GOLDEN = pathlib.Path(__file__).with_name("data") / "ngram_golden.json"


def _digest(*arrays):
    """SHA-256 of arrays' dtypes, shapes and bytes (bit-exact identity, compact to store)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:32]


def _state_digest(rng):
    return hashlib.sha256(repr(rng.bit_generator.state).encode()).hexdigest()[:32]


def golden_cases():
    """(name, training parts, order, smoothing, k, discount, vocab, held-out text) of the golden file.

    Every order 1-10 and smoothing on real text in segments, small-vocabulary
    skewed text, and the experiment's default size (order 4, Kneser-Ney,
    30 000 characters).
    """
    c = load_corpus()
    real = [c.train[1000:4000].copy(), c.train[9000:9500].copy(), c.train[12000:12003].copy()]
    held = c.heldout[300:2300].copy()
    rng = np.random.default_rng(77)
    skew = skewed_text(rng, 4000, 11)
    cases = []
    for order in range(1, ngram.MAX_ORDER + 1):
        for smoothing in SMOOTHINGS:
            cases.append((f"real-{order}-{smoothing}", real, order, smoothing, 0.05, 0.75, c.vocab_size, held))
    for order in (1, 2, 3, 5):
        for smoothing in SMOOTHINGS:
            cases.append((f"skew-{order}-{smoothing}", [skew[:2500], skew[2500:3500]], order, smoothing, 0.5, 0.6,
                          12, skew[3500:]))
    default = [c.train[40000:70000].copy()]
    cases.append(("default-4-kneser-ney", default, 4, "kneser-ney", 0.05, 0.75, c.vocab_size,
                  c.heldout[:10000].copy()))
    return cases


def golden_outputs(name, parts, order, smoothing, k, discount, vocab, held):
    """Digests of everything observable: counts, scores, next-character laws, streams, generator states."""
    codes, starts, ends = ngram._join(parts)
    model = ngram.NGramModel(codes, starts, ends, order, smoothing, vocab, k, discount)
    out = {}
    for length in range(1, order + 1):
        out[f"counts{length}"] = _digest(*model.ngram_counts(length))
    for length in range(1, order):
        out[f"cont{length}"] = _digest(*model.continuation_counts(length))
    out["support"] = model.support
    out["symbols"] = _digest(model.symbol_counts())
    cut = held.shape[0] // 3
    hs, he = np.array([0, cut], np.int64), np.array([cut, held.shape[0]], np.int64)
    out["score"] = _digest(*model._score(held, hs, he))
    out["next"] = _digest(*[model.next_probs(held[i:i + order - 1]) for i in (0, 50, 400)])
    for label, bias in (("exact", {}), ("top_k", dict(top_k=3)), ("top_p", dict(top_p=0.7)),
                        ("both", dict(top_k=6, top_p=0.9))):
        rng = np.random.default_rng(len(name))
        ctx = model.random_context(rng)
        stream = model._sample(2500, rng, ctx, **bias)
        out[f"sample-{label}"] = _digest(ctx, stream)
        out[f"state-{label}"] = _state_digest(rng)
    own = np.concatenate([ctx, model._sample(300, np.random.default_rng(1), ctx)])
    out["self-score"] = _digest(*model._score(own, np.zeros(1, np.int64), np.full(1, own.shape[0], np.int64)))
    return out


def write_golden():
    """Regenerate the golden file (run against the old engine: see the module's __main__)."""
    data = {case[0]: golden_outputs(*case) for case in golden_cases()}
    GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


@pytest.mark.parametrize("case", golden_cases(), ids=lambda case: case[0])
def test_bit_identical_to_the_engine_before_the_speed_work(case):
    """Counts, log-probabilities, next-character laws, exact and top-k/top-p streams
    and the generator's state afterwards are bit for bit those of commit 7a4877d
    (``tests/data/ngram_golden.json``, written by that commit's engine with
    ``PYTHONPATH=<checkout of 7a4877d> python tests/test_ngram_kernels.py``, run
    from outside the repository).  A per-CPU-family promise (FMA): see the README.
    Ten ``sample-both``/``sample-top_p`` digests were re-recorded on 2026-12-01,
    when the biased sampler's totals became left-to-right sums: as vectorised sums
    they differed between AVX2 (where they were recorded) and AVX-512 machines."""
    expected = json.loads(GOLDEN.read_text())[case[0]]
    got = golden_outputs(*case)
    assert {key: got[key] for key in expected if got[key] != expected[key]} == {}


if __name__ == "__main__":
    write_golden()
    print(f"wrote {GOLDEN}")
