"""Character n-gram language models: train, score, sample.

A thin validated layer over the kernels :mod:`hoi_fast.kernels.ngram` (counting
and smoothing; see its docstring for the data structure and the exact
smoothing formulas), :mod:`hoi_fast.kernels.ngram_score` and
:mod:`hoi_fast.kernels.ngram_sample`.

Quick start::

    from hoi_fast import corpus, ngram
    c = corpus.load_corpus("builtin")
    model = ngram.train(c.train[:100_000], order=5, vocab_size=c.vocab_size)
    model.bits_per_char(c.heldout[:20_000]).bits_per_char   # ~2.3 bits/char
    text = corpus.decode(model.sample(200, rng=0), c)

Conventions
-----------
* Text is an int array of symbol codes in ``[0, vocab_size)`` (see
  :func:`hoi_fast.corpus.encode`), or a list of such arrays (*segments*); no
  n-gram ever spans two segments.
* A position is scored when its whole context (the ``order - 1`` characters
  before it) lies inside its segment: the first ``order - 1`` characters of
  each segment are context only.
* ``log_probs`` are natural logarithms; ``bits_per_char`` is
  ``-mean(log2 p)``.  With ``mle`` a position whose n-gram never occurred has
  probability 0: it is *counted* (``unseen``) and left out of the mean, so the
  result is always finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hoi_fast.kernels import ngram as _k
from hoi_fast.kernels import ngram_sample as _sampler
from hoi_fast.kernels import ngram_score as _scorer

SMOOTHINGS = ("kneser-ney", "add-k", "mle")
MAX_ORDER = 10
MAX_VOCAB = 2**24  # symbols; every Unicode code point fits
_NO_INDEX = np.empty(0, np.int32)  # the index slot of tables that are read without it


@dataclass(frozen=True)
class BitsPerChar:
    """Bits per character of a text under a model.

    Attributes
    ----------
    bits_per_char : float
        ``-mean(log2 p)`` over the scored positions with ``p > 0``; NaN only
        if there is no such position.
    positions : int
        Number of scored positions (those whose full context lies in the text).
    unseen : int
        Positions with ``p = 0`` (only possible with ``mle``), not in the mean.
    """

    bits_per_char: float
    positions: int
    unseen: int

    @property
    def perplexity(self):
        """``2 ** bits_per_char`` over the seen positions."""
        return 2.0 ** self.bits_per_char


def _as_segments(codes_or_parts, vocab_size, name):
    """Concatenated int32 codes and int64 segment bounds; validates symbol range."""
    if isinstance(codes_or_parts, (list, tuple)) and codes_or_parts and np.ndim(codes_or_parts[0]) > 0:
        parts = [np.asarray(p) for p in codes_or_parts]
    else:
        parts = [np.asarray(codes_or_parts)]
    for p in parts:
        if p.ndim != 1:
            raise ValueError(f"`{name}` must be a 1-D array of symbol codes (or a list of them), got shape {p.shape}")
        if p.size and p.dtype.kind not in "iu":
            raise ValueError(f"`{name}` must hold integer symbol codes, got dtype {p.dtype}; encode text with hoi_fast.corpus.encode")
        if p.size and (p.min() < 0 or p.max() >= vocab_size):
            raise ValueError(f"`{name}` codes must lie in [0, vocab_size={vocab_size}), got [{p.min()}, {p.max()}]")
    return _join(parts)


def _join(parts):
    """Trusted: concatenate 1-D code arrays into (int32 codes, starts, ends)."""
    lengths = np.fromiter((p.shape[0] for p in parts), np.int64, len(parts))
    ends = np.cumsum(lengths)
    starts = ends - lengths
    # always a fresh, writable int32 array: the model keeps it, and numba would
    # compile a second specialisation for read-only views
    if len(parts) == 1:
        codes = np.array(parts[0], dtype=np.int32)
    else:
        codes = np.concatenate(parts).astype(np.int32, copy=False) if parts else np.zeros(0, np.int32)
    return codes, starts, ends


def _check_int(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or (hi is not None and value > hi):
        bound = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
        raise ValueError(f"`{name}` must be {bound}, got {value!r}")
    return int(value)


def _check_float(name, value, lo, hi, hi_open=False):
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and value > lo and (value < hi if hi_open else value <= hi)
    if not ok:
        raise ValueError(f"`{name}` must be a finite number in ({lo}, {hi}{')' if hi_open else ']'}, got {value!r}")
    return float(value)


def _rng(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"`rng` must be a numpy.random.Generator or an integer seed, got {type(rng).__name__}")


class NGramModel:
    """A trained character n-gram model (use :func:`train`).

    Attributes
    ----------
    order : int
    smoothing : {"kneser-ney", "add-k", "mle"}
    vocab_size : int
    k, discount : float
    n_chars : int
        Number of training characters.
    """

    def __init__(self, codes, starts, ends, order, smoothing, vocab_size, k, discount):
        self.order, self.smoothing, self.vocab_size = order, smoothing, vocab_size
        self.k, self.discount = k, discount
        self._sid = _k.SMOOTHING_IDS[smoothing]
        self._codes, self._starts, self._ends = codes, starts, ends
        self.n_chars = int(codes.shape[0])
        max_nodes = _max_nodes(ends - starts, order, vocab_size)
        symbol_bits = _symbol_bits(vocab_size, order)
        if symbol_bits:  # grams packed from the text key the counting table (see kernels._fill_packed)
            key_type = _slot_type(max(2 ** (symbol_bits * order + 1), max_nodes))  # tagged keys, node ids
        else:
            key_type = _slot_type(max_nodes * vocab_size)  # keys parent * V + char
        n, table, bits, parent, char, depth, sfx, cnt = _k.build(
            codes, starts, ends, order, vocab_size, max_nodes, key_type, symbol_bits)
        if n >= 2**30:  # the sampling rows (2 n records at most) index with int32
            raise ValueError(f"the training text has {n} distinct n-grams of order <= {order}; "
                             "at most 2**30 are supported: train on less text or a lower order")
        parent, char, depth, sfx, cnt = (a[:n] for a in (parent, char, depth, sfx, cnt))
        self._cumulative = _k.cumulative_rows(self._sid, discount)
        cont, rec, rows, row_after = _k.finalize(n, order, vocab_size, self._sid, k, discount,
                                                 parent, char, depth, sfx, cnt, self._cumulative)
        self._n_nodes = n
        self._parent, self._char, self._depth, self._cont, self._cnt = parent, char, depth, cont, cnt
        # the counting table, keyed by packed grams, scores kneser-ney (kernels.ngram_score.score_packed)
        self._packed = (symbol_bits, table, bits) if symbol_bits else None
        # otherwise the counting table, keyed by parent * V + char, becomes the index (see _tables)
        self._counting_table = None if symbol_bits else (table, bits)
        self._sfx, self._rec = sfx, rec
        self._index = None  # the child look-up index, built on first use (see _tables)
        # what packed scoring and exact sampling from kneser-ney or mle read: no index
        self._tables_without_index = (_NO_INDEX, 0, sfx, cnt, rec)
        self._rows, self._row_after = rows, row_after

    @property
    def _tables(self):
        """``(index, index_bits, sfx, cnt, rec)`` for the kernels that look children up by hash.

        The index (:func:`kernels.child_index`) is built on first use: exact
        sampling from a kneser-ney or mle model reads the rows instead and
        packed scoring its own table, so a model trained, sampled and scored
        on the defaults never builds it.
        """
        if self._index is None:
            n, order, v = self._n_nodes, self.order, self.vocab_size
            if self._packed is not None:
                self._index = _k.child_index_from_nodes(n, order, self._parent, self._char, v, _slot_type(n * v))
            else:
                table, bits = self._counting_table
                self._index = _k.child_index(table, bits, n, self._parent, self._char, v), bits
                self._counting_table = None  # copied into the index
        return (*self._index, self._sfx, self._cnt, self._rec)

    # -- counts -------------------------------------------------------------

    def ngram_counts(self, length=None):
        """Every distinct gram of ``length`` characters and its training count.

        Parameters
        ----------
        length : int, optional
            1 to ``order``; default ``order``.

        Returns
        -------
        grams : ndarray, shape (M, length), int32
            In order of first occurrence in the training text.
        counts : ndarray, shape (M,), int64
            Raw counts ``C(g)``.
        """
        length = self.order if length is None else _check_int("length", length, 1, self.order)
        nodes = np.flatnonzero(self._depth == length)
        grams = np.empty((nodes.size, length), np.int32)
        walk = nodes
        for col in range(length - 1, -1, -1):
            grams[:, col] = self._char[walk]
            walk = self._parent[walk]
        return grams, self._cnt[nodes].astype(np.int64)

    def continuation_counts(self, length):
        """``N1+(. g)`` (distinct left extensions) of every gram of ``length`` < order.

        Returns ``(grams, counts)`` as :meth:`ngram_counts`.
        """
        length = _check_int("length", length, 1, max(1, self.order - 1))
        grams, _ = self.ngram_counts(length)
        return grams, self._cont[np.flatnonzero(self._depth == length)].copy()

    @property
    def support(self):
        """Number of distinct top-order n-grams in the training text."""
        # a node is a context (depth < order) or a top-order gram, and the rows
        # hold a header per context and an entry per node but the root
        contexts = self._rows.shape[0] - (self._n_nodes - 1)
        return self._n_nodes - contexts

    def symbol_counts(self):
        """How often each symbol occurs in the training text, shape (V,), int64."""
        out = np.zeros(self.vocab_size, np.int64)
        nodes = np.flatnonzero(self._depth == 1)
        out[self._char[nodes]] = self._cnt[nodes]
        return out

    # -- scoring ------------------------------------------------------------

    def _score(self, codes, starts, ends):
        """Trusted: (log p, top-order training count) of every scored position."""
        n_pos = int(np.maximum(ends - starts - (self.order - 1), 0).sum())
        logp = np.empty(n_pos, np.float64)
        top = np.empty(n_pos, np.int64)
        if self._packed is not None and self._sid == _k.KNESER_NEY:
            _scorer.score_packed(codes, starts, ends, self.order, self.vocab_size, *self._packed,
                                 self._tables_without_index, logp, top)
        else:
            _scorer.score(codes, starts, ends, self.order, self.vocab_size, self._sid, self._tables, logp, top)
        return logp, top

    def _score_distinct(self, grams):
        """Trusted: (log p, top-order training count) of every distinct gram of ``grams`` (a
        :class:`DistinctGrams`); ``values[grams.inverse]`` is :meth:`_score` of its text."""
        if (grams.order, grams.vocab_size) != (self.order, self.vocab_size):
            raise ValueError(f"the grams are of order {grams.order} over {grams.vocab_size} symbols; the model "
                             f"is of order {self.order} over {self.vocab_size}")
        if self._packed is not None and self._sid == _k.KNESER_NEY:
            size = grams.keys.shape[0]
            logp, top = np.empty(size, np.float64), np.empty(size, np.int64)
            _scorer.score_packed_grams(grams.keys, self.order, self.vocab_size, *self._packed,
                                       self._tables_without_index, logp, top)
        else:
            logp, top = self._score(*grams.windows)
        return logp, top

    def log_probs(self, codes):
        """Natural-log probability of every scored position.

        Parameters
        ----------
        codes : array_like of int, shape (L,), or list of such arrays, or DistinctGrams
            A text, or its :func:`distinct_grams` (the same result, each
            distinct n-gram scored once: for a text scored by many models).

        Returns
        -------
        ndarray, shape (P,), float64
            ``P = sum(max(len(segment) - order + 1, 0))``; entry ``i`` of a
            single array is ``log p(codes[i + order - 1] | preceding order - 1)``.
            ``-inf`` for a probability-0 event (``mle`` only).
        """
        if isinstance(codes, DistinctGrams):
            return self._score_distinct(codes)[0].take(codes.inverse)
        return self._score(*_as_segments(codes, self.vocab_size, "codes"))[0]

    def bits_per_char(self, codes):
        """Bits per character of ``codes`` (a text or its :func:`distinct_grams`; see :class:`BitsPerChar`)."""
        return summarize(self.log_probs(codes))

    def next_probs(self, context):
        """``p(c | context)`` for every symbol, shape (V,), float64.

        Only the last ``order - 1`` characters of ``context`` matter; a shorter
        context is treated as unseen beyond its length (the model backs off).
        """
        ctx, _, _ = _as_segments(context, self.vocab_size, "context")
        return _scorer.next_probs(ctx, self.order, self.vocab_size, self._sid, self._tables)

    # -- sampling -----------------------------------------------------------

    def random_context(self, rng):
        """``order - 1`` consecutive training characters at a uniformly random position.

        Shorter (the longest segment) if no segment is that long.
        """
        rng = _rng(rng)
        width = self.order - 1
        lengths = self._ends - self._starts
        width = min(width, int(lengths.max()))
        windows = np.maximum(lengths - width + 1, 0)
        r = int(rng.integers(0, windows.sum()))
        seg = int(np.searchsorted(np.cumsum(windows), r, side="right"))
        start = self._starts[seg] + r - (np.cumsum(windows)[seg] - windows[seg])
        return self._codes[start:start + width].copy()

    def sample(self, n, rng, context=None, *, temperature=1.0, top_k=0, top_p=1.0):
        """``n`` characters sampled from the smoothed model.

        Parameters
        ----------
        n : int
            Number of characters, >= 0.
        rng : numpy.random.Generator or int
        context : array_like of int, optional
            Characters before the stream; only its last ``order - 1`` matter.
            Default: :meth:`random_context` (drawn from ``rng`` first).
        temperature : float
            Sample from ``p(c | h) ** (1 / temperature)``, renormalised (> 0).
            Computed in log space relative to the most likely character, so
            every temperature samples the right law (a small one tends to the
            most likely character, never underflows to code 0).
        top_k : int
            Keep only the ``top_k`` most likely next characters (0 = off).
        top_p : float
            Keep the smallest set of most likely characters whose probability
            reaches ``top_p``, in (0, 1] (1 = off).  Applied after ``top_k``.

        Returns
        -------
        ndarray, shape (n,), int32
            One continuous stream; the context is not included.

        Notes
        -----
        Without bias (the defaults) each character is drawn exactly from the
        model by walking its mixture (see :mod:`hoi_fast.kernels.ngram_sample`), in
        tens of nanoseconds.  With a bias the whole next-character
        distribution is computed per character (about ``V`` times slower).
        """
        n = _check_int("n", n, 0)
        rng = _rng(rng)
        temperature = _check_float("temperature", temperature, 0.0, math.inf, hi_open=True)
        top_k = _check_int("top_k", top_k, 0)
        top_p = _check_float("top_p", top_p, 0.0, 1.0)
        if context is None:
            ctx = self.random_context(rng)
        else:
            ctx = _as_segments(context, self.vocab_size, "context")[0]
        return self._sample(n, rng, ctx, temperature, top_k, top_p)

    def _sample(self, n, rng, ctx, temperature=1.0, top_k=0, top_p=1.0):
        out = np.empty(n, np.int32)
        if temperature == 1.0 and top_k == 0 and top_p == 1.0:
            # add-k draws uniform characters, whose look-ups the index answers from cache
            tables = self._tables if self._sid == _k.ADD_K else self._tables_without_index
            _sampler.sample(ctx, n, rng, self.order, self.vocab_size, self._sid, self.k, tables,
                            self._rows, self._row_after, self._cumulative, out)
        else:
            _sampler.sample_biased(ctx, n, rng, self.order, self.vocab_size, self._sid, self.k,
                                   temperature, top_k, top_p, self._tables, self._rows, self._row_after,
                                   self._cumulative, out)
        return out

    def __repr__(self):
        return (f"NGramModel(order={self.order}, smoothing={self.smoothing!r}, "
                f"vocab_size={self.vocab_size}, n_chars={self.n_chars}, support={self.support})")


class DistinctGrams:
    """The scored positions of a text grouped by their n-gram, to score each distinct gram once.

    A scored position's log-probability and top-order training count depend
    on its n-gram alone (the ``order`` characters ending at it), so scoring
    every distinct gram once and spreading the results over its positions
    gives what scoring every position gives, to the bit.  Worth it for a text
    scored by many models: the held-out text of a cell, scored by every
    generation (10 000 positions of English hold ~3 600 distinct 4-grams).
    Build it with :func:`distinct_grams`; :meth:`NGramModel._score_distinct`
    scores the distinct grams, and ``values[inverse]`` spreads them over the
    positions.

    Attributes
    ----------
    order, vocab_size : int
    windows : tuple of ndarray
        ``(codes, starts, ends)``: every distinct gram as a segment of its own.
    keys : ndarray, shape (U,), int64, or None
        The distinct grams packed side by side, ``ceil(log2 V)`` bits per
        symbol, the first in the high bits (the packed counting table's keys
        without their length marker); None when ``order`` symbols do not fit
        in 62 bits.
    inverse : ndarray, shape (P,), int64
        The distinct gram of every scored position, in scoring order.
    counts : ndarray, shape (U,), int64
        Positions of every distinct gram.
    """

    def __init__(self, order, vocab_size, windows, keys, inverse):
        self.order, self.vocab_size = order, vocab_size
        self.windows, self.keys, self.inverse = windows, keys, inverse
        self.counts = np.bincount(inverse, minlength=windows[1].shape[0])


def distinct_grams(codes_or_parts, order, vocab_size):
    """The :class:`DistinctGrams` of a text's scored positions.

    Parameters
    ----------
    codes_or_parts : array_like of int, shape (L,), or list of such arrays
        As for :meth:`NGramModel.log_probs`.
    order : int
    vocab_size : int

    Returns
    -------
    DistinctGrams
    """
    order = _check_int("order", order, 1, MAX_ORDER)
    vocab_size = _check_int("vocab_size", vocab_size, 1, MAX_VOCAB)
    codes, starts, ends = _as_segments(codes_or_parts, vocab_size, "codes")
    grams = np.concatenate([np.lib.stride_tricks.sliding_window_view(codes[a:b], order)
                            for a, b in zip(starts.tolist(), ends.tolist()) if b - a >= order]
                           or [np.empty((0, order), np.int32)])
    bits = _symbol_bits(vocab_size, order)
    keys = None
    if bits:
        packed = np.zeros(grams.shape[0], np.int64)
        for col in range(order):
            packed = (packed << bits) | grams[:, col]
        keys, first, inverse = np.unique(packed, return_index=True, return_inverse=True)
    else:  # the rows' bytes identify them
        rows = np.ascontiguousarray(grams).view(np.dtype((np.void, 4 * order))).ravel()
        _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    size = first.shape[0]
    windows = (np.ascontiguousarray(grams[first]).ravel(), np.arange(size, dtype=np.int64) * order,
               np.arange(1, size + 1, dtype=np.int64) * order)
    return DistinctGrams(order, vocab_size, windows, keys, inverse.astype(np.int64, copy=False))


def summarize(logp):
    """:class:`BitsPerChar` of natural-log probabilities (``-inf`` = unseen)."""
    total = float(logp.sum())
    if math.isfinite(total):  # every position seen (always so but for mle): no mask, the same sum
        n = int(logp.shape[0])
        return BitsPerChar(-total / (n * math.log(2.0)) if n else float("nan"), n, 0)
    seen = np.isfinite(logp)
    n_seen = int(seen.sum())
    bpc = -float(logp[seen].sum()) / (n_seen * math.log(2.0)) if n_seen else float("nan")
    return BitsPerChar(bpc, int(logp.shape[0]), int(logp.shape[0] - n_seen))


def _symbol_bits(vocab_size, order):
    """Bits per symbol for counting by packed grams, or 0 if a tagged gram of ``order`` symbols exceeds 62 bits."""
    bits = max(1, (vocab_size - 1).bit_length())
    return bits if bits * order <= 62 else 0


def _slot_type(bound):
    """Empty array whose dtype the hash tables use for slots holding values below ``bound``: int32
    while they fit (half the cache footprint), else int64."""
    return np.empty(0, np.int32 if bound <= 2**31 else np.int64)


def _max_nodes(lengths, order, vocab_size):
    """Upper bound on distinct grams (root included) of segments with ``lengths``.

    Plain Python on the few segment lengths: it runs once per model, and
    NumPy calls on tiny arrays cost more than the arithmetic.
    """
    lengths = lengths.tolist()
    total = 1
    for m in range(1, order + 1):
        total += min(vocab_size ** m, sum(n - m + 1 for n in lengths if n >= m))
    return total


def train(codes_or_parts, order, smoothing="kneser-ney", *, vocab_size, k=0.5, discount=0.75):
    """Train a character n-gram model.

    Parameters
    ----------
    codes_or_parts : array_like of int, shape (L,), or list of such arrays
        Symbol codes in ``[0, vocab_size)``; a list holds separate segments
        (no n-gram spans two).  At least one character in total.
    order : int
        1 to 10.
    smoothing : {"kneser-ney", "add-k", "mle"}
    vocab_size : int
        V, the number of symbols, 1 to 2**24 (every Unicode code point fits; the
        model keeps one array of V entries).
    k : float
        ``add-k`` pseudo-count, > 0.
    discount : float
        Kneser-Ney absolute discount D, in (0, 1).

    Returns
    -------
    NGramModel
    """
    vocab_size = _check_int("vocab_size", vocab_size, 1, MAX_VOCAB)
    order = _check_int("order", order, 1, MAX_ORDER)
    if smoothing not in SMOOTHINGS:
        raise ValueError(f"`smoothing` must be one of {', '.join(SMOOTHINGS)}; got {smoothing!r}")
    k = _check_float("k", k, 0.0, math.inf, hi_open=True)
    discount = _check_float("discount", discount, 0.0, 1.0, hi_open=True)
    codes, starts, ends = _as_segments(codes_or_parts, vocab_size, "codes_or_parts")
    if codes.shape[0] == 0:
        raise ValueError("`codes_or_parts` holds no characters; train on at least one")
    return NGramModel(codes, starts, ends, order, smoothing, vocab_size, k, discount)
