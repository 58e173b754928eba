"""Scoring text under a trained character n-gram model (pure numba).

The model's data structure (the trie of nodes, the hash tables, the per-node
records ``rec`` of the smoothing) and the smoothing formulas are described in
:mod:`hoi_fast.kernels.ngram`, which builds them; sampling is in
:mod:`hoi_fast.kernels.ngram_sample`.  These kernels trust their inputs;
:class:`hoi_fast.ngram.NGramModel` validates and picks the kernel.

* :func:`score`: log-probability and top-order count of every position of a
  set of segments, walking the trie (every smoothing).
* :func:`score_packed`: the same for Kneser-Ney when a gram packs into 62
  bits, each position's gram looked up by its packed key shifted in from the
  text, so a look-up does not wait for the previous position's answer.
* :func:`score_packed_grams`: the same for a set of distinct packed grams
  (a held-out text scored once per distinct gram, see
  :func:`hoi_fast.ngram.distinct_grams`).
* :func:`next_probs`: the whole next-character law after a context.

Kneser-Ney's back-off product is compiled without reassociation
(:data:`hoi_fast._jit.jit_in_order`): every scorer multiplies a position's
back-off weights in the order of the level-by-level recursion, so the three
give the same bits.
"""

import numpy as np

from hoi_fast._jit import jit, jit_in_order
from hoi_fast.kernels.ngram import (
    ADD_K,
    KNESER_NEY,
    _advance,
    _child,
    _context_after,
    _find,
    _gram_key,
    context_nodes,
)


@jit
def _prob(prev, cur, order, vocab_size, smoothing, rec):
    """Smoothed ``p(c | context)`` from context nodes ``prev`` and gram nodes ``cur``."""
    if smoothing == KNESER_NEY:
        p = 1.0 / vocab_size
        for lev in range(1, order + 1):
            h = prev[lev - 1]
            if h < 0:
                continue
            g = cur[lev]
            a = rec[g, 0] if g >= 0 else 0.0
            p = a + rec[h, 1] * p
        return p
    if smoothing == ADD_K:
        g = cur[order]
        if g >= 0:
            return rec[g, 0]
        h = prev[order - 1]
        return rec[h, 1] if h >= 0 else 1.0 / vocab_size
    # mle: the longest context that was followed by something
    for lev in range(order, 0, -1):
        h = prev[lev - 1]
        if h >= 0 and rec[h, 1] > 0:
            g = cur[lev]
            return rec[g, 0] if g >= 0 else 0.0
    return 0.0  # empty model; the API never trains on an empty text


@jit
def _first_child(h, d, c, lo, vocab_size, index, bits, sfx):
    """First gram ``y c`` that exists, for ``y`` on the suffix chain of ``h``.

    ``h`` has depth ``d``; the chain is walked deepest first down to depth
    ``lo`` (inclusive).  Returns ``(node of y c, depth of y)`` or ``(-1, -1)``.
    """
    y, dy = h, d
    while dy >= lo:
        g = _child(y, c, vocab_size, index, bits)
        if g >= 0:
            return g, dy
        if dy == 0:
            break
        y = sfx[y]
        dy -= 1
    return np.int64(-1), -1


@jit
def _score_chain(codes, starts, ends, order, vocab_size, smoothing, tables, logp, top_count):
    """:func:`score` for ``add-k`` and ``mle``, which need one or two levels only.

    Walks the text keeping only the *deepest context* ``h`` (the longest
    suffix of the history, at most ``order - 1`` characters, that occurs in
    training) and its depth ``d``: one hash probe per character when the
    history's continuation was seen, and no walk over every level.
    """
    index, bits, sfx, cnt, rec = tables
    uniform = 1.0 / vocab_size
    out = 0
    for s in range(starts.shape[0]):
        a = starts[s]
        h, d = np.int64(0), 0
        for j in range(a, ends[s]):
            c = np.int64(codes[j])
            g, dy = _first_child(h, d, c, 0, vocab_size, index, bits, sfx)
            if j - a >= order - 1:
                top = g if (d == order - 1 and dy == d) else np.int64(-1)
                if smoothing == ADD_K:
                    if top >= 0:
                        p = rec[top, 0]
                    else:
                        p = rec[h, 1] if d == order - 1 else uniform
                else:
                    # mle: the longest context that was followed by something;
                    # deeper ones have no children, so y c was not found above it
                    x, dx = h, d
                    while rec[x, 1] == 0.0 and dx > 0:
                        x = sfx[x]
                        dx -= 1
                    p = rec[g, 0] if (g >= 0 and dy == dx and rec[x, 1] > 0.0) else 0.0
                logp[out] = np.log(p) if p > 0 else -np.inf
                top_count[out] = cnt[top] if top >= 0 else 0
                out += 1
            h, d = _context_after(g, dy, order, sfx)
    return out


@jit
def score(codes, starts, ends, order, vocab_size, smoothing, tables, logp, top_count):
    """Natural-log probability of every position whose full context lies in its segment.

    Parameters
    ----------
    codes : ndarray, shape (L,), int32
    starts, ends : ndarray, shape (S,), int64
        Segments of ``codes``; position ``j`` of segment ``[a, b)`` is scored
        when ``j - a >= order - 1``.
    order, vocab_size, smoothing : int
    tables : tuple
        ``(index, bits, sfx, cnt, rec)`` from :func:`build`,
        :func:`child_index` and :func:`finalize`.
    logp : ndarray, shape (P,), float64
        Output, in scoring order (segment by segment); ``-inf`` for a
        probability-0 event (``mle`` only).
    top_count : ndarray, shape (P,), int64
        Output: training count of the position's top-order n-gram.

    Returns
    -------
    int
        Number of positions written, P.
    """
    if smoothing != KNESER_NEY:
        return _score_chain(codes, starts, ends, order, vocab_size, smoothing, tables, logp, top_count)
    return _score_kn(codes, starts, ends, order, vocab_size, tables, logp, top_count)


@jit_in_order
def _back_off(p, chain, lo, hi, rec):
    """``p`` times the back-off weights ``rec[chain[m], 1]``, ``m = lo .. hi - 1`` in that order.

    Compiled without reassociation: as a product loop LLVM would otherwise
    regroup the factors (a legal reduction under ``reassoc``) and change the
    last bit against the level-by-level recursion of :func:`_prob`.
    """
    for m in range(lo, hi):
        p = rec[chain[m], 1] * p
    return p


@jit
def _backed_off(p, x, d, m, chain, sfx, rec):
    """``p`` times the back-off weights of the contexts of depths ``d, d - 1, .., m``: ``x`` (of depth
    ``d``) and its suffix chain, multiplied shallowest first (:func:`_back_off`); ``chain`` is scratch."""
    for q in range(d, m - 1, -1):
        chain[q] = x
        x = sfx[x]
    return _back_off(p, chain, m, d + 1, rec)


@jit
def _longest_gram(table, mask, shift, packed, sb, longest, shortest):
    """The longest gram ending ``packed`` of ``longest`` down to ``shortest`` characters in the packed
    table: ``(node, length)``, or ``(-1, shortest - 1)`` if none is."""
    m = longest
    while m >= shortest:
        g = _find(table, mask, shift, _gram_key(packed, sb, m))
        if g >= 0:
            return g, m
        m -= 1
    return np.int64(-1), m


@jit
def _score_kn(codes, starts, ends, order, vocab_size, tables, logp, top_count):
    """:func:`score` for kneser-ney: every order of a position in one walk.

    The deepest context ``h`` (depth ``d``) is kept as in :func:`_score_chain`.
    The deepest gram ``y c`` that occurs (``y`` of depth ``dy`` on ``h``'s
    suffix chain; usually ``h c`` itself, one probe) carries the interpolated
    probability of all its levels (``rec[., 2]``, see :func:`_interpolate`);
    the deeper contexts ``dy + 1 .. d``, which never saw ``c``, multiply
    their back-off weights, shallowest first as the recursion does.
    """
    index, bits, sfx, cnt, rec = tables
    uniform = 1.0 / vocab_size
    chain = np.empty(order, np.int64)
    out = 0
    for s in range(starts.shape[0]):
        a = starts[s]
        h, d = np.int64(0), 0
        for j in range(a, ends[s]):
            c = np.int64(codes[j])
            g, dy = _first_child(h, d, c, 0, vocab_size, index, bits, sfx)
            if j - a >= order - 1:
                p = rec[g, 2] if g >= 0 else uniform
                if dy < d:
                    p = _backed_off(p, h, d, dy + 1, chain, sfx, rec)
                logp[out] = np.log(p) if p > 0 else -np.inf
                top_count[out] = cnt[g] if dy == order - 1 else 0
                out += 1
            h, d = _context_after(g, dy, order, sfx)
    return out


@jit
def score_packed(codes, starts, ends, order, vocab_size, symbol_bits, table, table_bits, tables, logp,
                 top_count):
    """:func:`score` for kneser-ney, looking grams up by their packed keys (:func:`_fill_packed`'s table).

    The same outputs as :func:`_score_kn`: the deepest gram ending at a
    position is the longest of at most ``order`` characters that occurs (its
    context then occurs too, so it is never longer than the deepest
    context's depth plus one), found by packed keys shifted in from the
    text.  The top look-up of a position therefore does not wait for the
    previous position's answer, and the processor overlaps the cache misses
    of successive positions; only a back-off walks the previous position's
    suffix chain for the contexts' weights.
    """
    index, bits, sfx, cnt, rec = tables
    uniform = 1.0 / vocab_size
    chain = np.empty(order, np.int64)
    mask = (np.int64(1) << table_bits) - 1
    shift = 64 - table_bits
    sb = np.int64(symbol_bits)
    full = (np.int64(1) << (sb * order)) - 1
    out = 0
    for s in range(starts.shape[0]):
        a = starts[s]
        packed = np.int64(0)
        prev, prev_len = np.int64(0), 0  # deepest gram ending before j and its length
        for j in range(a, ends[s]):
            c = np.int64(codes[j])
            packed = ((packed << sb) | c) & full
            g, m = _longest_gram(table, mask, shift, packed, sb, min(order, j - a + 1), 1)
            if j - a >= order - 1:
                p = rec[g, 2] if g >= 0 else uniform
                # the deepest context: the previous deepest gram, cut to order - 1 characters
                d = min(prev_len, order - 1)
                if m - 1 < d:
                    p = _backed_off(p, prev if prev_len < order else np.int64(sfx[prev]), d, m, chain, sfx, rec)
                logp[out] = np.log(p) if p > 0 else -np.inf
                top_count[out] = cnt[g] if m == order else 0
                out += 1
            prev, prev_len = (g, m) if g >= 0 else (np.int64(0), 0)
    return out


@jit
def score_packed_grams(keys, order, vocab_size, symbol_bits, table, table_bits, tables, logp, top_count):
    """:func:`score_packed` of isolated grams: one position per packed key.

    ``keys`` (shape (P,), int64) are grams of ``order`` characters packed as
    :func:`_fill_packed` packs them (the first character in the high bits,
    no marker bit).  A position's outputs depend on its gram alone: its
    deepest gram is found from the gram's packed key, and its deepest
    context, which :func:`score_packed` carries over from the position
    before, is looked up from the context's key, and only when the gram is
    not in the table at full length (otherwise the context is the gram's).
    Outputs equal :func:`score_packed`'s at every position with that gram,
    to the bit: the same records, multiplied in the same order.
    """
    index, bits, sfx, cnt, rec = tables
    uniform = 1.0 / vocab_size
    chain = np.empty(order, np.int64)
    mask = (np.int64(1) << table_bits) - 1
    shift = 64 - table_bits
    sb = np.int64(symbol_bits)
    for i in range(keys.shape[0]):
        g, m = _longest_gram(table, mask, shift, keys[i], sb, order, 1)
        p = rec[g, 2] if g >= 0 else uniform
        if m < order:
            # the deepest context: the longest occurring suffix of the order - 1
            # characters before; a gram of m characters occurs, so its context
            # of m - 1 does, and only the depths above it can back off
            x, d = _longest_gram(table, mask, shift, keys[i] >> sb, sb, order - 1, max(m, 1))
            if m - 1 < d:
                p = _backed_off(p, x if d > 0 else np.int64(0), d, m, chain, sfx, rec)  # depth 0: the root
        logp[i] = np.log(p) if p > 0 else -np.inf
        top_count[i] = cnt[g] if m == order else 0
    return keys.shape[0]


@jit
def next_probs(context, order, vocab_size, smoothing, tables):
    """``p(c | context)`` for every symbol c, shape (V,), float64.

    Only the last ``order - 1`` characters of ``context`` matter; a shorter
    context backs off as if the missing characters were unseen.
    """
    index, bits, sfx, cnt, rec = tables
    prev = context_nodes(context, order, vocab_size, tables)
    # a context longer than order - 1 keeps only its last order - 1 characters
    prev[order] = -1
    cur = np.empty(order + 1, np.int64)
    out = np.empty(vocab_size, np.float64)
    top = min(order, context.shape[0] + 1)
    for c in range(vocab_size):
        _advance(prev, cur, np.int64(c), top, vocab_size, index, bits, sfx)
        for q in range(top + 1, order + 1):
            cur[q] = -1
        out[c] = _prob(prev, cur, order, vocab_size, smoothing, rec)
    return out
