"""Sampling from a trained character n-gram model (pure numba).

Exact sampling (:func:`sample`) walks the smoothed model as a mixture and
reads the packed sampling rows; biased sampling (:func:`sample_biased`)
computes the whole next-character distribution per character.  The data
structure and the formulas are described in :mod:`hoi_fast.kernels.ngram`.
These kernels trust their inputs; :mod:`hoi_fast.ngram` validates and coerces.
"""

import numpy as np

from hoi_fast._jit import jit, jit_in_order
from hoi_fast.kernels.ngram import (
    ADD_K,
    KNESER_NEY,
    MLE,
    _advance,
    _child,
    _context_after,
    context_nodes,
)

_NO_STOP = np.int64(2**62)  # a stop for :func:`_walk` that is never reached
_BLOCK = 1024  # uniforms drawn ahead at a time by :func:`sample` (8 KiB: stays in L1)


@jit
def _scan(u, o, rows, cumulative):
    """Entry of row ``o`` where ``u`` runs out, subtracting weights in row order.

    Returns -1 if ``u`` outlasts every entry (the caller's back-off branch).
    With ``cumulative`` rows (:func:`hoi_fast.kernels.ngram.cumulative_rows`:
    the weights' running sums, where every subtraction would be exact) that
    entry is the first whose running sum exceeds ``u``: the last entry
    tells a back-off at once, and a long row is searched by bisection.
    """
    end = rows[o].link
    if not cumulative:
        for e in range(o + 1, end):
            u -= rows[e].weight
            if u < 0:
                return e
        return -1
    if end == o + 1 or u >= rows[end - 1].weight:
        return -1
    lo, hi = o + 1, end - 1  # the entry is in [lo, hi]
    while hi - lo > 8:
        mid = (lo + hi) >> 1
        if rows[mid].weight > u:
            hi = mid
        else:
            lo = mid + 1
    for e in range(lo, hi):
        if u < rows[e].weight:
            return e
    return hi


@jit
def _entry_weight(rows, o, e, cumulative):
    """The sampling weight of entry ``e`` of row ``o`` (exact: see :func:`_scan`)."""
    if cumulative and e > o + 1:
        return rows[e].weight - rows[e - 1].weight
    return rows[e].weight


@jit
def _row_entry(rows, o, c):
    """Entry of symbol ``c`` in row ``o`` (the children of its context), or -1."""
    for e in range(o + 1, rows[o].link):
        if rows[e].symbol == c:
            return np.int64(e)
    return np.int64(-1)


@jit
def _deepest_context(context, order, rows, row_after, sfx):
    """Deepest context (node, depth) after ``context``: its longest suffix of at most ``order - 1``
    characters that occurs in training, found through the rows (as the walk of :func:`sample` does)."""
    h, d = np.int64(0), 0
    for j in range(context.shape[0]):
        c = context[j]
        f = np.int64(-1)
        y, dy = h, d
        while True:
            f = _row_entry(rows, row_after[y], c)
            if f >= 0 or dy == 0:
                break
            y = sfx[y]
            dy -= 1
        if f >= 0:
            h, d = np.int64(rows[rows[f].link].symbol), min(dy + 1, order - 1)
        else:
            h, d = np.int64(0), 0
    return h, d


@jit
def _uniform(source, buf, used, drawn):
    """The next uniform: ``buf[used]`` while the buffer lasts, then ``source.random()``.

    With ``source`` None the caller guarantees the buffer lasts, and numba
    compiles the function without the call (a call site in a hot loop slows
    the whole loop).
    """
    if source is None:
        return buf[used]
    return buf[used] if used < drawn else source.random()


@jit
def _refill(rng, buf, used, drawn, m):
    """Move ``buf[used:drawn]`` to the front and append the next ``m`` uniforms of ``rng``.

    Returns the new ``drawn``.
    """
    left = drawn - used
    for j in range(left):
        buf[j] = buf[used + j]
    for j in range(left, left + m):
        buf[j] = rng.random()
    return left + m


@jit
def sample(context, n, rng, order, vocab_size, smoothing, k, tables, rows, row_after, cumulative, out):
    """Sample ``n`` characters as one continuous stream after ``context``.

    Parameters
    ----------
    context : ndarray, shape (C,), int32
        Characters before the stream (only the last ``order - 1`` matter).
    n : int
    rng : numpy.random.Generator
    order, vocab_size, smoothing : int
    k : float
        The add-k pseudo-count.
    tables : tuple
        As in :func:`hoi_fast.kernels.ngram_score.score`; the index is read under add-k only.
    rows, row_after : ndarray
        From :func:`finalize`.
    cumulative : bool
        The rows hold running sums (see :func:`_scan`).
    out : ndarray, shape (n,), int32
        Output codes.

    Notes
    -----
    The state is the deepest context ``h`` (longest suffix of the history,
    at most ``order - 1`` characters, that occurs in training) with its row
    ``o`` and depth ``d``; the shorter contexts are its suffix chain.  A
    draw walks the mixture from ``h`` down (one uniform per row tried, rows
    scanned in first-occurrence order).  When the character comes from
    ``h``'s own row, the common case, the next row and context are read from
    the entry; only a back-off draw (kneser-ney's lower orders, mle's
    fallback, the uniform component) looks up which deeper contexts continue
    with the character: in their rows, which the walk down has just read
    (``tables``' index is then not read and may be empty), except under
    add-k, whose uniform characters are mostly absent from long rows and are
    looked up in the index.  The first context is found the same way from
    ``context``.

    The uniforms are ``rng.random()`` in order, drawn ahead in blocks (of at
    most ``_BLOCK``) so the walk itself makes no calls: every character
    takes at least one, so drawing as many as there are characters still to
    come never draws more than the stream consumes.  Only the last few
    characters (fewer than the most one character can take, ``order + 1``)
    draw theirs one by one, and ``rng`` ends exactly where one call per
    uniform would leave it.
    """
    h, d = _deepest_context(context, order, rows, row_after, tables[2])
    o = row_after[h]
    kv = k * vocab_size
    need = order + 1
    buf = np.empty(max(_BLOCK, need), np.float64)
    i, used, drawn = 0, 0, 0
    while i < n:
        left = drawn - used
        drawn = _refill(rng, buf, used, drawn, max(min(n - i, buf.shape[0]) - left, 0))
        used = 0
        if drawn < need:
            break
        i, o, h, d, used = _walk(None, buf, used, drawn, drawn - need, i, n, o, h, d, order, vocab_size,
                                 smoothing, kv, tables, rows, row_after, cumulative, out)
    _walk(rng, buf, used, drawn, _NO_STOP, i, n, o, h, d, order, vocab_size, smoothing, kv, tables, rows,
          row_after, cumulative, out)
    return out


@jit
def _walk(source, buf, used, drawn, stop, i, n, o, h, d, order, vocab_size, smoothing, kv, tables, rows,
          row_after, cumulative, out):
    """Characters ``i, i + 1, ...`` of :func:`sample` while ``i < n`` and ``used <= stop``.

    Uniforms come from ``buf[used:drawn]`` (then from ``source``, see
    :func:`_uniform`).  Returns ``(i, o, h, d, used)``.
    """
    index, bits, sfx, cnt, rec = tables
    while i < n and used <= stop:
        # a run of the common case: the character comes from the deepest
        # context's own row (one scan, then the entry names the next row)
        run = i
        while i < n and used <= stop and used < drawn:
            u = buf[used]
            if smoothing == ADD_K:
                if d < order - 1:  # an unseen context: p is uniform
                    break
                t = rows[o].weight
                u *= t + kv
                if u >= t:
                    break
            else:
                u *= rows[o].weight
            e = _scan(u, o, rows, cumulative)
            if e < 0:
                break
            used += 1
            out[i] = rows[e].symbol
            o, d = np.int64(rows[e].link), min(d + 1, order - 1)
            i += 1
        if i > run:
            h = np.int64(rows[o].symbol)  # the row header names its context
        if i == n or used > stop:
            break
        # otherwise one character by the whole mixture walk, from the same uniform
        e = np.int64(-1)
        x, dx = h, d
        if smoothing == ADD_K:
            t = rows[o].weight if d == order - 1 else 0.0
            u = _uniform(source, buf, used, drawn) * (t + kv)
            used += 1
            if u < t:
                e = _scan(u, o, rows, cumulative)
        else:
            # kneser-ney: every row from the deepest down; mle: the first nonempty one
            while True:
                ox = row_after[x]
                t = rows[ox].weight
                if t > 0:
                    e = _scan(_uniform(source, buf, used, drawn) * t, ox, rows, cumulative)
                    used += 1
                    if e >= 0 or smoothing == MLE:
                        break
                if dx == 0:
                    break
                x, dx = sfx[x], dx - 1
        # then the uniform component (kneser-ney, add-k)
        if e >= 0:
            c = np.int64(rows[e].symbol)
            lo = dx + 1  # drawn from a shorter context: a deeper one may continue with c
        else:
            c = min(np.int64(_uniform(source, buf, used, drawn) * vocab_size), vocab_size - 1)
            used += 1
            lo = 0
        # which deeper context continues with c (written out: as a call it
        # passes arrays, whose reference counting costs ~40%)
        g, f = np.int64(-1), np.int64(-1)  # the gram y c, or its entry in y's row
        y, dy = h, d
        while dy >= lo:
            if smoothing == ADD_K:
                # a uniform character, mostly absent from y's long row: the
                # index's filter tells so without reading the row
                g = _child(y, c, vocab_size, index, bits)
                if g >= 0:
                    break
            else:
                # c came from a shorter context's row: the rows of the deeper
                # ones were just scanned, so their entries are at hand
                f = _row_entry(rows, row_after[y], c)
                if f >= 0:
                    break
            if dy == 0:
                break
            y = sfx[y]
            dy -= 1
        if g >= 0:
            h, d = _context_after(g, dy, order, sfx)
        elif f >= 0:
            h, d = np.int64(rows[rows[f].link].symbol), min(dy + 1, order - 1)
        elif e >= 0:
            h, d = np.int64(rows[rows[e].link].symbol), min(dx + 1, order - 1)
        else:
            h, d = np.int64(0), 0
        o = row_after[h]
        out[i] = c
        i += 1
    return i, o, h, d, used


@jit
def _dense_probs(prev, order, vocab_size, smoothing, k, rec, rows, row_after, cumulative, p):
    """Fill ``p`` (shape (V,)) with ``p(. | context)`` read from the sampling rows (the same formulas)."""
    if smoothing == KNESER_NEY:
        p[:] = 1.0 / vocab_size
        for lev in range(1, order + 1):
            h = prev[lev - 1]
            o = row_after[h] if h >= 0 else -1
            if o < 0 or rows[o].weight == 0:
                continue
            p *= rec[h, 1]
            t = rows[o].weight
            for e in range(o + 1, rows[o].link):
                p[rows[e].symbol] += _entry_weight(rows, o, e, cumulative) / t
    elif smoothing == ADD_K:
        h = prev[order - 1]
        o = row_after[h] if h >= 0 else -1
        t = rows[o].weight if o >= 0 else 0.0
        denom = t + k * vocab_size
        p[:] = k / denom
        if o >= 0:
            for e in range(o + 1, rows[o].link):
                p[rows[e].symbol] = (_entry_weight(rows, o, e, cumulative) + k) / denom
    else:
        p[:] = 0.0
        for lev in range(order, 0, -1):
            h = prev[lev - 1]
            o = row_after[h] if h >= 0 else -1
            if o >= 0 and rows[o].weight > 0:
                t = rows[o].weight
                for e in range(o + 1, rows[o].link):
                    p[rows[e].symbol] = _entry_weight(rows, o, e, cumulative) / t
                return


@jit_in_order
def _sum_in_order(q):
    """``q[0] + q[1] + ...`` left to right.

    Compiled without reassociation: as a vectorised reduction the partial
    sums depend on the CPU's vector width and unrolling, and the last bit of
    a total decides which character a uniform lands on (AVX-512 and AVX2
    machines drew different top-p streams).
    """
    total = 0.0
    for c in range(q.shape[0]):
        total += q[c]
    return total


@jit
def _truncate(q, top_k, top_p):
    """Zero all but the ``top_k`` largest entries, then all outside the top-p nucleus.

    Ties are broken by the lower code (stable sort), so the result is deterministic.
    """
    v = q.shape[0]
    if top_k <= 0 and top_p >= 1.0:
        return
    order = np.argsort(-q, kind="mergesort")
    if 0 < top_k < v:
        for i in range(top_k, v):
            q[order[i]] = 0.0
    if top_p < 1.0:
        total = _sum_in_order(q)
        acc = 0.0
        cut = v
        for i in range(v):
            acc += q[order[i]]
            if acc >= top_p * total:
                cut = i + 1
                break
        for i in range(cut, v):
            q[order[i]] = 0.0


@jit
def _temper(q, inv_t):
    """``q ** inv_t`` up to a constant factor, computed in log space (zeros stay zero).

    ``exp(inv_t * (log q - log max q))``: the largest entry becomes 1, so no
    temperature underflows every entry (``q ** 1000`` of a probability below
    0.5 is below 1e-301; the sampler then picked code 0) and the ratios
    between entries are those of ``q ** inv_t``.
    """
    top = 0.0
    for c in range(q.shape[0]):
        top = max(top, q[c])
    log_top = np.log(top)
    for c in range(q.shape[0]):
        if q[c] > 0:
            e = np.log(q[c]) - log_top
            # the largest entries are 1 exactly, even where inv_t * 0 would be NaN (inv_t = inf)
            q[c] = np.exp(inv_t * e) if e < 0 else 1.0
        else:
            q[c] = 0.0


@jit
def sample_biased(context, n, rng, order, vocab_size, smoothing, k, temperature, top_k, top_p,
                  tables, rows, row_after, cumulative, out):
    """Sample ``n`` characters from ``p(c | h) ** (1 / temperature)``, truncated and renormalised.

    Per character: the model's full next-character distribution (as
    :func:`hoi_fast.kernels.ngram_score.next_probs`), raised to ``1 / temperature`` in log space relative
    to its largest entry (:func:`_temper`; skipped at temperature 1, which
    keeps the exact probabilities), truncated to the
    ``top_k`` most likely characters (0 = off) and then to the smallest set
    of most likely characters whose probability reaches ``top_p`` (1 = off),
    renormalised, and sampled by inversion with one uniform draw.  Other
    arguments as in :func:`sample`.
    """
    index, bits, sfx, cnt, rec = tables
    prev = context_nodes(context, order, vocab_size, tables)
    cur = np.full(order + 1, -1, np.int64)
    have = context.shape[0]
    q = np.empty(vocab_size, np.float64)
    inv_t = 1.0 / temperature
    for i in range(n):
        _dense_probs(prev, order, vocab_size, smoothing, k, rec, rows, row_after, cumulative, q)
        if inv_t != 1.0:
            _temper(q, inv_t)
        _truncate(q, top_k, top_p)
        u = rng.random() * _sum_in_order(q)
        c = vocab_size - 1
        while c > 0 and q[c] == 0.0:  # float guard: never pick a zeroed symbol
            c -= 1
        for j in range(vocab_size):
            u -= q[j]
            if u < 0 and q[j] > 0:
                c = j
                break
        out[i] = c
        have += 1
        top = min(order - 1, have)
        _advance(prev, cur, np.int64(c), top, vocab_size, index, bits, sfx)
        for m in range(top + 1, order + 1):
            cur[m] = -1
        prev, cur = cur, prev
    return out
