"""Public n-gram API: validation, results, biased sampling, agreement with NLTK."""

import math

import numpy as np
import pytest

from hoi_fast import ngram
from hoi_fast.corpus import load_corpus
from test_ngram_kernels import chi2_pvalue


@pytest.fixture(scope="module")
def text():
    c = load_corpus()
    return c.train[20000:23000].copy(), c.vocab_size


@pytest.mark.parametrize("kwargs, match", [
    (dict(order=0), r"`order` must be an integer in \[1, 10\]"),
    (dict(order=11), r"`order` must be an integer in \[1, 10\]"),
    (dict(smoothing="witten-bell"), r"`smoothing` must be one of kneser-ney, add-k, mle"),
    (dict(k=0.0), r"`k` must be a finite number in \(0.0, inf\)"),
    (dict(discount=1.0), r"`discount` must be a finite number in \(0.0, 1.0\)"),
    (dict(vocab_size=0), r"`vocab_size` must be an integer in \[1,"),
    (dict(vocab_size=2**24 + 1), r"`vocab_size` must be an integer in \[1, 16777216\]"),
    (dict(codes_or_parts=np.array([0.5, 1.5])), r"`codes_or_parts` must hold integer symbol codes"),
    (dict(codes_or_parts=np.array([[1, 2]])), r"`codes_or_parts` must be a 1-D array"),
    (dict(codes_or_parts=np.array([1, 9])), r"`codes_or_parts` codes must lie in \[0, vocab_size=5\)"),
    (dict(codes_or_parts=[np.zeros(0, np.int32)]), r"`codes_or_parts` holds no characters"),
])
def test_train_validates_every_argument(kwargs, match):
    args = dict(codes_or_parts=np.array([0, 1, 2, 3, 1]), order=2, smoothing="kneser-ney", vocab_size=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ngram.train(args.pop("codes_or_parts"), args.pop("order"), args.pop("smoothing"), **args)


def test_sample_and_score_validate():
    model = ngram.train(np.array([0, 1, 2, 3, 1]), 2, vocab_size=5)
    with pytest.raises(ValueError, match="`n` must be an integer >= 0"):
        model.sample(-1, 0)
    with pytest.raises(ValueError, match="`rng` must be a numpy.random.Generator or an integer seed"):
        model.sample(3, "seed")
    with pytest.raises(ValueError, match=r"`top_p` must be a finite number in \(0.0, 1.0\]"):
        model.sample(3, 0, top_p=1.5)
    with pytest.raises(ValueError, match="`context` codes must lie in"):
        model.sample(3, 0, context=[7])
    with pytest.raises(ValueError, match="`codes` must hold integer symbol codes"):
        model.log_probs(np.array([0.0, 1.0]))


def test_bits_per_char_result_and_mle_unseen_are_finite(text):
    train, vocab = text
    model = ngram.train(train[:1000], 4, "mle", vocab_size=vocab)
    result = model.bits_per_char(train[1000:2000])
    assert result.positions == 997 and result.unseen > 0
    assert np.isfinite(result.bits_per_char) and result.perplexity == 2 ** result.bits_per_char
    lp = model.log_probs(train[1000:2000])
    assert np.isneginf(lp).sum() == result.unseen and not np.isnan(lp).any()
    # segments: the first order - 1 characters of each are context only
    assert model.bits_per_char([train[1000:1500], train[1500:2000]]).positions == 2 * 497
    assert model.bits_per_char(train[:2]).positions == 0  # shorter than a context: no position


@pytest.mark.parametrize("smoothing", ["kneser-ney", "add-k", "mle"])
@pytest.mark.parametrize("bias", [dict(temperature=0.5), dict(temperature=1.7, top_k=5), dict(top_p=0.8),
                                  dict(temperature=1.0, top_k=1)])
def test_biased_sampling_follows_the_transformed_distribution(smoothing, bias, text):
    train, vocab = text
    model = ngram.train(train, 3, smoothing, vocab_size=vocab, k=0.05)
    ctx = train[100:102]
    p = model.next_probs(ctx) ** (1.0 / bias.get("temperature", 1.0))
    order = np.argsort(-p, kind="mergesort")
    if bias.get("top_k"):
        p[order[bias["top_k"]:]] = 0
    if bias.get("top_p"):
        cut = np.searchsorted(np.cumsum(p[order]) / p.sum(), bias["top_p"]) + 1
        p[order[cut:]] = 0
    p /= p.sum()
    rng = np.random.default_rng(3)
    draws = np.array([model.sample(1, rng, context=ctx, **bias)[0] for _ in range(3000)])
    assert np.all(p[draws] > 0)
    assert chi2_pvalue(np.bincount(draws, minlength=vocab), p) > 1e-3


def test_random_context_is_real_text(text):
    train, vocab = text
    model = ngram.train([train[:50], train[50:53]], 6, vocab_size=vocab)
    rng = np.random.default_rng(0)
    for _ in range(20):
        ctx = model.random_context(rng)
        assert ctx.shape == (5,)
        assert any(np.array_equal(train[i:i + 5], ctx) for i in range(46))  # never spans segments


# -- agreement with NLTK ---------------------------------------------------------

def nltk_model(cls, chars, order, **kwargs):
    """NLTK model on exactly our n-grams: every k-gram of the text, no padding."""
    from nltk.lm import Vocabulary
    from nltk.util import everygrams

    lm = cls(order=order, vocabulary=Vocabulary(chars, unk_cutoff=1), **kwargs)
    lm.fit([list(everygrams(chars, max_len=order))])
    return lm


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("which", ["MLE", "Laplace"])
def test_mle_and_laplace_log_probs_equal_nltk(order, which, text):
    nltk_lm = pytest.importorskip("nltk.lm")
    train, vocab = text
    symbols, codes = np.unique(train[:1500], return_inverse=True)
    chars = [chr(0x41 + int(c)) for c in codes]
    lm = nltk_model(getattr(nltk_lm, which), chars, order)
    # NLTK's vocabulary adds <UNK>: our V is the same number of symbols
    v = len(lm.vocab)
    assert v == symbols.size + 1
    smoothing, k = ("mle", 0.5) if which == "MLE" else ("add-k", 1.0)
    ours = ngram.train(codes.astype(np.int32), order, smoothing, vocab_size=v, k=k)
    text_ = codes[:600].astype(np.int32)  # seen text: MLE is finite everywhere
    theirs = [math.log(lm.score(chars[j], chars[j - order + 1:j])) for j in range(order - 1, 600)]
    np.testing.assert_allclose(ours.log_probs(text_), theirs, rtol=1e-10, atol=0)


def test_kneser_ney_differs_from_nltk_only_where_documented(text):
    """NLTK 3.x's KneserNeyInterpolated: (a) its lowest order is the plain continuation
    frequency N1+(. c) / N1+(. .), not interpolated with 1/V; (b) gamma counts the raw
    followers of h, not those with a positive continuation count.  Rebuilding NLTK's
    formula from our continuation counts reproduces NLTK; ours differs from it.
    """
    nltk_lm = pytest.importorskip("nltk.lm")
    train, _ = text
    _, codes = np.unique(train[:800], return_inverse=True)
    chars = [chr(0x41 + int(c)) for c in codes]
    lm = nltk_model(nltk_lm.KneserNeyInterpolated, chars, 2, discount=0.75)
    v = len(lm.vocab)
    ours = ngram.train(codes.astype(np.int32), 2, "kneser-ney", vocab_size=v, discount=0.75)
    grams, cont = ours.continuation_counts(1)
    n1 = dict(zip(grams[:, 0].tolist(), cont.tolist()))
    big, big_cnt = ours.ngram_counts(2)
    rows = {}
    for (h, c), n in zip(big.tolist(), big_cnt.tolist()):
        rows.setdefault(h, {})[c] = n
    total = sum(n1.values())
    for h, c in [(codes[i], codes[i + 1]) for i in range(0, 300, 7)]:
        row = rows[h]
        t = sum(row.values())
        nltk_formula = max(row.get(c, 0) - 0.75, 0) / t + 0.75 * len(row) / t * n1.get(c, 0) / total
        theirs = lm.score(chr(0x41 + int(c)), [chr(0x41 + int(h))])
        assert theirs == pytest.approx(nltk_formula, rel=1e-12)
        mine = ours.next_probs([int(h)])[int(c)]
        assert mine != pytest.approx(theirs, rel=1e-9)


# -- temperature in log space (issue 16, item 10) --------------------------------

def tempered(p, temperature):
    """The tempered law, in float64 log space (NumPy): exp((log p - log max p) / T), renormalised."""
    out = np.zeros_like(p)
    seen = p > 0
    out[seen] = np.exp((np.log(p[seen]) - np.log(p.max())) / temperature)
    return out / out.sum()


@pytest.mark.parametrize("smoothing", ["kneser-ney", "mle"])
@pytest.mark.parametrize("temperature", [1e-3, 5e-3, 1e-300])
def test_small_temperatures_sample_the_argmax(smoothing, temperature, text):
    """At small temperatures every character of a stream is the most likely next
    character wherever that one dominates the tempered law (q ** 1000 underflowed
    to 0 before: 40 spaces, code 0, at T = 1e-3)."""
    train, vocab = text
    order = 3
    model = ngram.train(train, order, smoothing, vocab_size=vocab)
    ctx = train[500:502]
    stream = model.sample(400, np.random.default_rng(2), context=ctx, temperature=temperature)
    full = np.concatenate([ctx, stream])
    dominant = 0
    for i in range(400):
        p = model.next_probs(full[i:i + order - 1])
        law = tempered(p, temperature)
        assert law[full[i + order - 1]] > 0
        if law.max() > 1 - 1e-12:
            dominant += 1
            assert full[i + order - 1] == np.argmax(p)
    assert dominant > 300
    assert len(set(stream.tolist())) > 5  # real text, not one repeated code


@pytest.mark.parametrize("temperature", [0.25, 0.6, 3.0, 1e6])
def test_moderate_and_large_temperatures_follow_the_tempered_law(temperature, text):
    train, vocab = text
    model = ngram.train(train, 3, "kneser-ney", vocab_size=vocab)
    ctx = train[100:102]
    law = tempered(model.next_probs(ctx), temperature)
    rng = np.random.default_rng(4)
    draws = np.array([model.sample(1, rng, context=ctx, temperature=temperature)[0] for _ in range(3000)])
    assert chi2_pvalue(np.bincount(draws, minlength=vocab), law) > 1e-3
