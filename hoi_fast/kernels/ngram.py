"""Character n-gram kernels: count and smooth (pure numba; scoring is in ``ngram_score``, sampling in ``ngram_sample``).

These kernels trust their inputs; :mod:`hoi_fast.ngram` validates and coerces.

Data structure
--------------
Every k-gram (k = 0 .. N, N the order) that occurs in the training text is a
*node* of a prefix trie.  Node 0 is the empty gram (the root).  A node ``g`` of
depth ``k`` stores

* ``parent[g]``: the node of its first ``k - 1`` characters (its context),
* ``char[g]``: its last character,
* ``sfx[g]``: the node of its last ``k - 1`` characters (suffix link),
* ``cnt[g]``: how often it occurs (raw count ``C(g)``).

Children are found with one open-addressing hash table keyed by
``parent * V + char`` (Fibonacci hashing, linear probing, key and node
interleaved, kept at most half full by doubling), so memory is
bounded by the number of distinct grams (at most ``N * len(text) + 1``), never
by ``V ** N``.  Node ids are given in order of first occurrence, so the
structure is a deterministic function of the text.  After training,
:func:`child_index` appends to the table a filter of 8 bits per slot and the
1-gram node of each symbol, so a look-up of an absent gram (the common case
when add-k sampling backs off to a uniform character) usually touches
neither the table nor memory outside the cache (:func:`_child`).
:class:`hoi_fast.ngram.NGramModel` builds this index on first use only:
exact sampling from kneser-ney and mle finds children in the sampling rows,
and packed scoring in its own table.

When a gram of ``order`` symbols fits in 62 bits as its codes packed side
by side (``ceil(log2 V)`` bits each: V = 96 allows order 8), counting
(:func:`_fill_packed`) and Kneser-Ney scoring
(:func:`hoi_fast.kernels.ngram_score.score_packed`) look
grams up in a second table keyed by the packed gram itself, shifted in from
the text: the look-up of one position then does not wait for the previous
one's answer.  They give the same nodes, numbering, counts and
probabilities as the trie walk; the ``parent * V + char`` index, when a
kernel needs it, is then built from the nodes (:func:`child_index_from_nodes`).

Training text is a set of segments (``starts``, ``ends``); no gram crosses a
segment boundary.  Walking a text left to right, the nodes of the grams
*ending* at the current character are found top-down: the longest one with a
hash look-up (or insertion), the shorter ones by following suffix links.  In a
text that resembles the training text this is about one hash probe per
character.  Counting, ``add-k``/``mle`` scoring and sampling keep only the
*deepest context* (the longest suffix of the history, at most ``N - 1``
characters, that occurs in training) and reach the shorter ones through its
suffix chain when needed; counting increments only the longest gram ending at
each position and adds counts into suffixes afterwards.  Sampling
(:mod:`hoi_fast.kernels.ngram_sample`) reads packed *rows* (below) and
follows a precomputed next row per entry instead of a hash probe.

Derived statistics (:func:`finalize`)
-------------------------------------
* ``cont[g] = N1+(. g)``: number of distinct characters ``x`` such that the
  gram ``x g`` occurs (continuation count) = number of nodes whose suffix link
  is ``g``.
* Kneser-Ney weight of a node of depth ``k``: ``w[g] = C(g)`` if ``k == N``
  else ``cont[g]``.
* For a node ``h`` used as a context: ``tot_raw[h] = sum_c C(h c)``,
  ``tot_kn[h] = sum_c w[h c]`` and ``nfol_kn[h] = #{c : w[h c] > 0}``.
* Per node a record ``rec[g] = (child term, context term)`` of the chosen
  smoothing, so scoring reads one record per order (see :func:`finalize`).
* ``rows``: for every context (node of depth < N) a header record followed
  by one record per child, in order of first occurrence (see
  :func:`finalize`).  A draw reads one header and scans contiguous records,
  and each record names the row to draw the next character from, so a
  sampled character usually costs one cache miss instead of one per array.

Smoothing (``h`` the N - 1 characters before ``c``; ``h_k`` its last ``k - 1``)
------------------------------------------------------------------------------
``kneser-ney`` (interpolated, absolute discount ``0 < D < 1``)::

    p_0(c)       = 1 / V
    p_k(c | h_k) = max(w(h_k c) - D, 0) / tot_kn(h_k)
                   + D * nfol_kn(h_k) / tot_kn(h_k) * p_{k-1}(c | h_{k-1})
    p_k          = p_{k-1}   if h_k never occurs as a context (tot_kn = 0)

and ``p(c | h) = p_N(c | h_N)``.  Because every positive weight is an integer
>= 1 > D, ``sum_c max(w - D, 0) = tot_kn - D * nfol_kn``, so ``p_k`` is a
mixture: the discounted empirical row with probability ``1 - gamma`` and
``p_{k-1}`` with probability ``gamma = D * nfol_kn / tot_kn``.  Sampling walks
this mixture from the top order down.

``add-k``: ``p(c | h) = (C(h c) + k) / (tot_raw(h) + k V)`` (top order only),
a mixture of the empirical row (probability ``T / (T + kV)``) and the uniform
distribution.

``mle``: ``p(c | h) = C(h_k c) / tot_raw(h_k)`` for the longest suffix ``h_k``
of ``h`` that occurs as a context (``tot_raw > 0``); normally ``h`` itself.
The fallback only makes the model a distribution for every context (so a
sampled stream never dead-ends); an event ``C(h_k c) = 0`` has probability 0.
"""

import numpy as np

from hoi_fast._jit import copy_into, jit

KNESER_NEY, ADD_K, MLE = 0, 1, 2
SMOOTHING_IDS = {"kneser-ney": KNESER_NEY, "add-k": ADD_K, "mle": MLE}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)

#: One record of the sampling rows (see :func:`finalize`), 16 bytes: a header
#: ``(context total, end of row, context node)`` or an entry
#: ``(sampling weight, next row, character)``.  Row and node ids are int32
#: (:class:`hoi_fast.ngram.NGramModel` checks the model is small enough).
ROW = np.dtype([("weight", np.float64), ("link", np.int32), ("symbol", np.int32)], align=True)


@jit
def _slot(key, shift):
    """Fibonacci hash of a non-negative int64 key into ``64 - shift`` bits."""
    return np.int64((np.uint64(key) * _GOLDEN) >> np.uint64(shift))


@jit
def _find(table, mask, shift, key):
    """Node stored under ``key`` in the interleaved hash ``table``, or -1."""
    return _probe(table, mask, _slot(key, shift), key)


@jit
def _probe(table, mask, s, key):
    """:func:`_find` from ``key``'s home slot ``s``."""
    return _locate(table, mask, s, key)[0]


@jit
def _locate(table, mask, s, key):
    """``(node, slot)`` of ``key`` from its home slot ``s``: its node and slot, or -1 and the
    empty slot where it would be inserted."""
    while True:
        k = np.int64(table[2 * s])
        if k == key:
            return np.int64(table[2 * s + 1]), s
        if k == -1:
            return np.int64(-1), s
        s = (s + 1) & mask


@jit
def _gram_key(packed, sb, m):
    """Key of the last ``m`` characters of ``packed`` (``sb`` bits each): them, under a marker bit."""
    return (packed & ((np.int64(1) << (sb * m)) - 1)) | (np.int64(1) << (sb * m))


@jit
def _filter_bit(key, bits):
    """Bit of ``key`` in the child filter: its home slot (``bits`` bits) and 3 more hash bits."""
    return np.int64((np.uint64(key) * _GOLDEN) >> np.uint64(61 - bits))


@jit
def _filter_words(index, bits):
    """Words of the filter of an index of ``2 ** bits`` slots: 8 bits per slot, words of ``index``'s dtype."""
    return (np.int64(8) << bits) // (index.itemsize * 8)


@jit
def _filter_set(index, base, f):
    """Set bit ``f`` of the filter starting at ``index[base]``."""
    wb = index.itemsize * 8
    index[base + f // wb] |= np.int64(1) << (f % wb)


@jit
def _filter_has(index, base, f):
    """Bit ``f`` of the filter starting at ``index[base]``."""
    wb = index.itemsize * 8
    return (np.int64(index[base + f // wb]) >> (f % wb)) & 1


@jit
def child_index(table, bits, n_nodes, parent, char, vocab_size):
    """The final hash table (``bits``, see :func:`build`) with two look-up aids appended.

    Returns
    -------
    ndarray, shape (2 * 2 ** bits + 2 ** (bits + 3) / w + vocab_size,), dtype of ``table``
        ``table``, then a filter of ``2 ** (bits + 3)`` bits (8 per slot, in
        words of w = 32 or 64 bits, the table's dtype) where bit
        :func:`_filter_bit` of every stored key is set, so a clear bit
        proves a gram absent without touching the table, then the node of
        the 1-gram of each symbol (-1 if it never occurs).  One array, so
        the look-up (:func:`_child`) takes one array argument and stays
        small enough for LLVM to inline into the per-character loops.
    """
    cap = np.int64(1) << bits
    base = 2 * cap
    words = _filter_words(table, bits)
    index = np.zeros(base + words + vocab_size, table.dtype)
    copy_into(table, index)
    uni = base + words
    index[uni:] = -1
    for g in range(1, n_nodes):
        if parent[g] == 0:
            index[uni + char[g]] = g
        _filter_set(index, base, _filter_bit(np.int64(parent[g]) * vocab_size + char[g], bits))
    return index


@jit
def child_index_from_nodes(n_nodes, order, parent, char, vocab_size, key_type):
    """``(index, bits)`` as :func:`child_index`, with the table built from the nodes themselves.

    For a trie counted by :func:`_fill_packed`, whose hash table is keyed by
    packed grams: every node ``g >= 1`` is inserted under ``parent * V +
    char``.  The slots a key lands in depend on the order of insertion, the
    answers of :func:`_child` do not.  ``key_type`` (shape (0,)) gives the
    dtype: int32 (half the memory) when every key and node id fits.
    """
    bits = 10
    while (np.int64(1) << bits) < 2 * (n_nodes + order):
        bits += 1
    cap = np.int64(1) << bits
    mask = cap - 1
    shift = 64 - bits
    base = 2 * cap
    words = _filter_words(key_type, bits)
    index = np.empty(base + words + vocab_size, key_type.dtype)
    index[:base] = -1
    index[base:base + words] = 0
    uni = base + words
    index[uni:] = -1
    for g in range(1, n_nodes):
        key = np.int64(parent[g]) * vocab_size + char[g]
        if parent[g] == 0:
            index[uni + char[g]] = g
        _filter_set(index, base, _filter_bit(key, bits))
        t = _slot(key, shift)
        while index[2 * t] != -1:
            t = (t + 1) & mask
        index[2 * t] = key
        index[2 * t + 1] = g
    return index, bits


@jit
def _child(y, c, vocab_size, index, bits):
    """Node of the gram ``y c`` (context node ``y``, symbol ``c``), or -1.

    ``index`` is from :func:`child_index`.  A child of the root is read
    from its 1-gram array; otherwise the filter (1/16 the size of the table,
    so it stays in cache) rules out most absent grams before the table is
    probed.  Sampling's look-ups are mostly for absent grams (which deeper
    contexts continue with a back-off character), so this saves a cache
    miss per level.
    """
    cap = np.int64(1) << bits
    if y == 0:
        return np.int64(index[2 * cap + _filter_words(index, bits) + c])
    key = y * vocab_size + c
    f = _filter_bit(key, bits)
    if not _filter_has(index, 2 * cap, f):
        return np.int64(-1)
    return _probe(index, cap - 1, f >> 3, key)


@jit
def _grow(table, bits):
    """The hash ``table`` (``2 ** bits`` slots) re-inserted into twice as many slots.

    Fibonacci hashing keeps the top bits of the product, so a key's home slot
    ``s`` becomes ``2 s`` or ``2 s + 1``: reading the old table in slot order
    writes the new one almost sequentially, and the keys are re-hashed from
    the table itself without touching the per-node arrays.
    """
    cap = np.int64(1) << (bits + 1)
    mask = cap - 1
    shift = 64 - (bits + 1)
    new = np.full(2 * cap, -1, table.dtype)
    for s in range(table.shape[0] // 2):
        key = np.int64(table[2 * s])
        if key == -1:
            continue
        t = _slot(key, shift)
        while new[2 * t] != -1:
            t = (t + 1) & mask
        new[2 * t] = key
        new[2 * t + 1] = table[2 * s + 1]
    return new


@jit
def _grown(a, size):
    """``a`` copied into a new array of ``size`` entries (the rest uninitialised)."""
    b = np.empty(size, a.dtype)
    copy_into(a, b)
    return b


@jit
def _propagate(n_nodes, order, depth, sfx, cnt):
    """Turn "times ``g`` was the longest counted gram ending somewhere" into ``C(g)``.

    A gram ending at a position is either the longest one counted there or
    the suffix of the one a character longer, so ``C(g) = own(g) + sum of
    C(x)`` over the nodes ``x`` whose suffix link is ``g``: add each node's
    count into its suffix, deepest nodes first (a counting sort by depth).
    """
    start = np.zeros(order + 2, np.int64)
    for g in range(1, n_nodes):
        start[depth[g] + 1] += 1
    for m in range(order + 1):
        start[m + 1] += start[m]
    by_depth = np.empty(n_nodes, np.int64)
    for g in range(1, n_nodes):
        m = depth[g]
        by_depth[start[m]] = g
        start[m] += 1
    # start[m] is now the end of depth m's block: walk the blocks deepest first
    for i in range(start[order] - 1, -1, -1):
        g = by_depth[i]
        cnt[sfx[g]] += cnt[g]


@jit
def _fill(codes, starts, ends, order, vocab_size, max_nodes, table, bits, parent, char, depth, sfx, cnt,
          n_nodes, state):
    """The counting loop of :func:`build`, from ``state`` until done or out of room.

    Walks each segment keeping only the deepest context ``h`` (the last
    ``min(order - 1, j - a)`` characters, depth ``d``): all its grams exist
    by construction.  Only the gram of depth ``d + 1`` ending at each
    position is counted; the shorter ones get their counts from it
    afterwards (:func:`_propagate`).  Stops *before* a position that might
    need more than the room left (table kept at most half full, per-node
    arrays not overrun), saving ``(segment, position, h, d)`` in ``state``.

    Returns the new number of nodes.
    """
    cap = np.int64(1) << bits
    mask = cap - 1
    shift = 64 - bits
    room = cap // 2
    if parent.shape[0] < max_nodes:  # else max_nodes bounds every insertion
        room = min(room, parent.shape[0])
    h, d = state[2], state[3]
    j0 = state[1]
    for s in range(state[0], starts.shape[0]):
        a = starts[s]
        if j0 < a:  # a new segment starts at the root
            j0, h, d = a, np.int64(0), np.int64(0)
        for j in range(j0, ends[s]):
            if n_nodes + d + 1 > room:
                state[0], state[1], state[2], state[3] = s, j, h, d
                return n_nodes
            c = np.int64(codes[j])
            # Longest gram ending here that already exists; insert the longer
            # ones, each the suffix link of the one inserted before it.
            y, dy = h, d
            first, last = np.int64(-1), np.int64(-1)
            while True:
                key = y * vocab_size + c
                found, slot = _locate(table, mask, _slot(key, shift), key)
                if found >= 0:
                    if last >= 0:
                        sfx[last] = found
                    else:
                        first = found
                    break
                g = n_nodes
                n_nodes += 1
                table[2 * slot] = key
                table[2 * slot + 1] = g
                parent[g] = y
                char[g] = c
                depth[g] = dy + 1
                if last >= 0:
                    sfx[last] = g
                else:
                    first = g
                last = g
                if dy == 0:
                    sfx[g] = 0
                    break
                y = sfx[y]
                dy -= 1
            cnt[first] += 1
            if d + 1 < order:
                h, d = first, d + 1
            elif order > 1:
                h = sfx[first]
            # order 1: the context is always the root
        j0 = np.int64(-1)
    state[0] = starts.shape[0]
    return n_nodes


@jit
def _fill_packed(codes, starts, ends, order, symbol_bits, max_nodes, table, bits, parent, char, depth, sfx, cnt,
                 n_nodes, state):
    """:func:`_fill` with the table keyed by the grams themselves, packed from the text.

    A gram of ``k`` characters is the integer of its codes, ``symbol_bits``
    each (the last character lowest), tagged with bit ``symbol_bits * k`` so
    that lengths never collide; all of them fit in 63 bits.  The key of the
    gram ending at each position is shifted in from the text, so the
    look-ups of successive positions do not wait for one another (in
    :func:`_fill` each key needs the node the previous look-up found): the
    common case, a top gram seen before, is one independent probe.  An
    absent gram is inserted exactly as :func:`_fill` does (longest first,
    each the suffix link of the one before; its context is the gram one
    shorter ending one position earlier), so the nodes, their numbering and
    the counts are the same.  That context is read from the previous
    position's top gram and its suffix chain, one step per inserted node,
    instead of a second hash look-up.

    ``state`` is ``(segment, position, top gram ending before it, its
    length)`` to resume from.  Returns the new number of nodes.
    """
    cap = np.int64(1) << bits
    mask = cap - 1
    shift = 64 - bits
    room = cap // 2
    if parent.shape[0] < max_nodes:
        room = min(room, parent.shape[0])
    sb = np.int64(symbol_bits)
    full = (np.int64(1) << (sb * order)) - 1
    j0 = state[1]
    prev, prev_len = state[2], state[3]  # the top gram ending at j - 1 (a resumed position's)
    for s in range(state[0], starts.shape[0]):
        a = starts[s]
        if j0 <= a:
            j0 = a
            prev, prev_len = np.int64(0), np.int64(0)
        packed = np.int64(0)
        for i in range(max(a, j0 - order + 1), j0):  # the characters before a resumed position
            packed = ((packed << sb) | codes[i]) & full
        for j in range(j0, ends[s]):
            c = np.int64(codes[j])
            packed = ((packed << sb) | c) & full
            t = min(order, j - a + 1)
            key = _gram_key(packed, sb, t)
            found, slot = _locate(table, mask, _slot(key, shift), key)
            if found >= 0:  # the common case
                cnt[found] += 1
                prev, prev_len = found, t
                continue
            if n_nodes + t > room:
                state[0], state[1], state[2], state[3] = s, j, prev, prev_len
                return n_nodes
            first, last = np.int64(-1), np.int64(-1)
            # the context of the top gram: t - 1 characters ending at j - 1,
            # prev itself or its suffix (prev_len is t - 1 or t)
            ctx = prev if prev_len < t else np.int64(sfx[prev])
            m = t
            while True:
                if m < t:  # look the shorter gram up (the top one was looked up above)
                    key = _gram_key(packed, sb, m)
                    found, slot = _locate(table, mask, _slot(key, shift), key)
                    if found >= 0:
                        sfx[last] = found
                        break
                g = n_nodes
                n_nodes += 1
                table[2 * slot] = key
                table[2 * slot + 1] = g
                parent[g] = ctx  # the gram of m - 1 characters ending one position earlier
                char[g] = c
                depth[g] = m
                if last >= 0:
                    sfx[last] = g
                else:
                    first = g
                last = g
                if m == 1:
                    sfx[g] = 0
                    break
                m -= 1
                ctx = sfx[ctx]
            cnt[first] += 1
            prev, prev_len = first, t
        j0 = np.int64(-1)
    state[0] = starts.shape[0]
    return n_nodes


@jit
def _expected_nodes(starts, ends, order):
    """Initial room for nodes: about what English-like text of this length and order makes.

    Half the number of characters up to order 4 (0.38-0.43 per character at
    order 4 on 30 000 characters, real or mixed with samples), and half more
    per order above (about 2 per character at order 8 on 50 000): a guess
    too small costs a growth step, one too large costs cache.
    """
    total = np.int64(0)
    for s in range(starts.shape[0]):
        total += ends[s] - starts[s]
    return total // 2 * max(1, order - 3) + 1024


@jit
def build(codes, starts, ends, order, vocab_size, max_nodes, key_type, symbol_bits=0):
    """Count every k-gram (k <= order) of the segments of ``codes``.

    Parameters
    ----------
    codes : ndarray, shape (L,), int32
        Symbol codes in ``[0, vocab_size)``.
    starts, ends : ndarray, shape (S,), int64
        Segment ``s`` is ``codes[starts[s]:ends[s]]``.
    order : int
        N >= 1.
    vocab_size : int
        V.
    max_nodes : int
        Upper bound on the number of distinct grams (including the root).
    key_type : ndarray, shape (0,), int32 or int64
        Its dtype is the hash table's: int32 (half the cache footprint) when
        every key ``parent * V + char`` fits, ``max_nodes * V < 2 ** 31``;
        int64 with ``symbol_bits``.
    symbol_bits : int
        0, or bits per symbol (``V - 1`` fits, ``symbol_bits * order < 63``)
        to count with :func:`_fill_packed`: the table is then keyed by packed
        grams, and :func:`child_index_from_nodes` makes the look-up index.

    Returns
    -------
    n_nodes : int
    table : ndarray, shape (2 * 2 ** bits,), dtype of ``key_type``
        Hash table, slot ``s`` = ``(table[2s], table[2s+1])`` =
        ``(parent * V + char, node)``; empty slots hold key -1.  Kept at most
        half full (it doubles as nodes are added), so it stays as small as
        the model: key and node share a cache line.
    bits : int
        log2 of the number of slots.
    parent, char, depth, sfx, cnt : ndarray, shape (>= n_nodes,), int64
        Per-node arrays (only the first ``n_nodes`` entries are valid); sized
        to the text (:func:`_expected_nodes`) and doubled if that is not
        enough, never beyond ``max_nodes``.
    """
    # sized to the text (about half as many distinct grams as characters at
    # the default order), so the common case never grows: growing re-inserts
    # every key and copies every per-node array
    size = min(max_nodes, _expected_nodes(starts, ends, order))
    bits = 10
    while (np.int64(1) << bits) < 2 * (size + order):
        bits += 1
    table = np.full(2 * (np.int64(1) << bits), -1, key_type.dtype)
    parent = np.empty(size, np.int64)
    char = np.empty(size, np.int64)
    depth = np.empty(size, np.int64)
    sfx = np.empty(size, np.int64)
    cnt = np.zeros(size, np.int64)
    parent[0] = -1
    char[0] = -1
    depth[0] = 0
    sfx[0] = -1
    n_nodes = 1
    # (segment, position, deepest context, its depth) to resume from
    state = np.zeros(4, np.int64)
    state[0], state[1] = 0, starts[0] if starts.shape[0] else 0
    while True:
        if symbol_bits > 0:
            n_nodes = _fill_packed(codes, starts, ends, order, symbol_bits, max_nodes, table, bits,
                                   parent, char, depth, sfx, cnt, n_nodes, state)
        else:
            n_nodes = _fill(codes, starts, ends, order, vocab_size, max_nodes, table, bits,
                            parent, char, depth, sfx, cnt, n_nodes, state)
        if state[0] >= starts.shape[0]:
            break
        # out of room: grow outside the hot loop (an array reassigned inside
        # a numba loop makes every access in it several times slower)
        if 2 * (n_nodes + order) > (np.int64(1) << bits):
            table = _grow(table, bits)
            bits += 1
        if n_nodes + order > parent.shape[0] and parent.shape[0] < max_nodes:
            size = min(max_nodes, 2 * parent.shape[0])
            parent, char, depth = _grown(parent, size), _grown(char, size), _grown(depth, size)
            sfx, cnt = _grown(sfx, size), _grown(cnt, size)
            cnt[n_nodes:] = 0
    _propagate(n_nodes, order, depth, sfx, cnt)
    return n_nodes, table, bits, parent, char, depth, sfx, cnt


@jit
def finalize(n_nodes, order, vocab_size, smoothing, k, discount, parent, char, depth, sfx, cnt, cumulative):
    """Smoothing-ready tables of a built trie.

    Parameters
    ----------
    n_nodes, order, vocab_size, smoothing : int
    k, discount : float
    parent, char, depth, sfx, cnt : ndarray, shape (n_nodes,), int64
        From :func:`build`.
    cumulative : bool
        Store each row's running sums of sampling weights instead of the
        weights (:func:`cumulative_rows` says when that is exact).

    Returns
    -------
    cont : ndarray, shape (n_nodes,), int64
        ``N1+(. g)`` (distinct left extensions).
    rec : ndarray, shape (n_nodes, 3), float64
        Per node ``g`` with context (parent) ``h``, ``rec[g, 0]`` is the
        child term and ``rec[g, 1]`` the context term of the smoothing, so
        that a probability reads one record per level:

        * kneser-ney: ``max(w(g) - D, 0) / tot_kn(h)`` (0 if ``tot_kn(h) = 0``)
          and ``D * nfol_kn(g) / tot_kn(g)`` (1 if ``tot_kn(g) = 0``: full back-off);
        * add-k: ``(C(g) + k) / (tot_raw(h) + k V)`` and ``k / (tot_raw(g) + k V)``;
        * mle: ``C(g) / tot_raw(h)`` and ``1.0`` if ``tot_raw(g) > 0`` else ``0.0``.

        ``rec[g, 2]`` is kneser-ney's ``p_k(c | h_k)`` of the gram itself
        (:func:`_interpolate`; 0 for the other smoothings).
    rows : ndarray, shape (R,), :data:`ROW`
        The sampling rows.  Context ``h`` (a node of depth < ``order``) owns
        the records ``row_after[h] .. end - 1``: a header ``(weight, link,
        symbol) = (T(h), end, h)`` with ``T`` the context total used by
        sampling (``tot_kn`` for kneser-ney, else ``tot_raw``), then one
        record per child ``g`` (in order of first occurrence) holding its
        sampling weight (``max(w(g) - D, 0)`` for kneser-ney, else
        ``C(g)``; with ``cumulative``, the sum of the weights of the row's
        entries up to and including it), ``row_after[g]`` and its character.
        ``R = #contexts + n_nodes - 1``.
    row_after : ndarray, shape (n_nodes,), int64
        The row to draw from once gram ``g`` ends the history: ``g``'s own
        row if ``depth(g) < order``, else the row of ``sfx[g]`` (a context
        has at most ``order - 1`` characters).  This is the deepest context
        of the extended history whenever the row drawn from is the deepest
        context's (see :func:`hoi_fast.kernels.ngram_sample.sample`), so the
        sampler follows a record instead of a hash look-up.
    """
    cont = np.zeros(n_nodes, np.int64)
    for g in range(1, n_nodes):
        if depth[g] >= 2:
            cont[sfx[g]] += 1
    # per context: tot_kn (kneser-ney) or tot_raw (the others), and nfol_kn;
    # only the arrays the smoothing reads (a model's memory is its speed)
    kn = smoothing == KNESER_NEY
    total = np.zeros(n_nodes, np.int64)
    nfol = np.zeros(n_nodes if kn else 0, np.int64)
    n_children = np.zeros(n_nodes, np.int64)
    n_contexts = 1  # the root
    for g in range(1, n_nodes):
        if depth[g] < order:
            n_contexts += 1
        p = parent[g]
        if kn:
            wg = cnt[g] if depth[g] == order else cont[g]  # the Kneser-Ney weight
            total[p] += wg
            if wg > 0:
                nfol[p] += 1
        else:
            total[p] += cnt[g]
        n_children[p] += 1
    rec = np.empty((n_nodes, 3), np.float64)
    kv = k * vocab_size
    for g in range(n_nodes):
        p = parent[g]
        if kn:
            a = 0.0
            if g > 0 and total[p] > 0:
                a = max((cnt[g] if depth[g] == order else cont[g]) - discount, 0.0) / total[p]
            rec[g, 0] = a
            rec[g, 1] = discount * nfol[g] / total[g] if total[g] > 0 else 1.0
        elif smoothing == ADD_K:
            rec[g, 0] = (cnt[g] + k) / (total[p] + kv) if g > 0 else 0.0
            rec[g, 1] = k / (total[g] + kv)
        else:
            rec[g, 0] = cnt[g] / total[p] if g > 0 else 0.0
            rec[g, 1] = 1.0 if total[g] > 0 else 0.0
    if kn:
        _interpolate(n_nodes, order, vocab_size, parent, depth, sfx, rec)
    else:
        rec[:, 2] = 0.0
    rows, row_after = _pack_rows(n_nodes, n_contexts, order, smoothing, discount, char, depth, sfx, cnt, cont,
                                 parent, total, n_children, cumulative)
    return cont, rec, rows, row_after


def cumulative_rows(smoothing, discount):
    """True when a row's running sums of sampling weights are exact, so a draw may compare against them.

    Sampling inverts a row by subtracting its weights from ``u`` in row order
    (:func:`hoi_fast.kernels.ngram_sample._scan`).  When every weight is a
    multiple of 2**-8 (counts; kneser-ney's ``max(w - D, 0)`` when ``256 D``
    is an integer, as for the default D = 0.75) and ``u`` and the sums stay
    below 2**44, every subtraction that leaves ``u >= 0`` is exact, so
    ``u`` runs out at the first entry whose running sum exceeds it: the
    same entry, found by comparisons (and a whole row's back-off by one).
    For any other discount the weights are stored as they are and
    subtracted one by one, as always.
    """
    return smoothing != KNESER_NEY or float(discount * 256.0).is_integer()


@jit
def _interpolate(n_nodes, order, vocab_size, parent, depth, sfx, rec):
    """``rec[g, 2] = p_k(c | h_k)`` of every gram ``g = h_k c`` of depth k (Kneser-Ney).

    The recursion of the module docstring with every level present:
    ``rec[g, 2] = rec[g, 0] + rec[h_k, 1] * rec[sfx[g], 2]`` (``1 / V`` below
    depth 1), evaluated shallowest first with the very operations (and
    rounding) of :func:`hoi_fast.kernels.ngram_score._prob`, so scoring reads one record where it used to
    walk every level.
    """
    rec[0, 2] = 1.0 / vocab_size
    # Counting inserts the new grams ending at a position as one run of
    # consecutive nodes, longest first, each the suffix link of the one before
    # and the last linked to an older node: a run read backwards has every
    # suffix ready, in one pass.  Any other numbering: depth by depth.
    g = 1
    while g < n_nodes:
        end = g
        while end + 1 < n_nodes and sfx[end] == end + 1:
            end += 1
        if sfx[end] >= g:
            break
        for x in range(end, g - 1, -1):
            rec[x, 2] = rec[x, 0] + rec[parent[x], 1] * rec[sfx[x], 2]
        g = end + 1
    if g < n_nodes:
        for m in range(1, order + 1):  # sfx[g] is one shallower than g
            for x in range(1, n_nodes):
                if depth[x] == m:
                    rec[x, 2] = rec[x, 0] + rec[parent[x], 1] * rec[sfx[x], 2]


@jit
def _pack_rows(n_nodes, n_contexts, order, smoothing, discount, char, depth, sfx, cnt, cont, parent, total,
               n_children, cumulative):
    """:func:`finalize`'s ``rows`` and ``row_after`` (contexts, the ``n_contexts`` nodes of depth < ``order``,
    in node order; entries hold running sums with ``cumulative``).  ``n_children`` is overwritten (it
    becomes each row's next free record)."""
    row_after = np.empty(n_nodes, np.int64)
    rows = np.empty(n_contexts + n_nodes - 1, ROW)  # a header per context, a record per node but the root
    fill = n_children
    o = 0
    for h in range(n_nodes):  # headers
        if depth[h] < order:
            size = n_children[h]
            row_after[h] = o
            rows[o].weight = total[h]
            rows[o].link = o + 1 + size
            rows[o].symbol = h
            fill[h] = o + 1
            o += 1 + size
    for g in range(1, n_nodes):  # entries (a top gram's row is its suffix's, a context's, set above)
        if depth[g] == order:
            row_after[g] = row_after[sfx[g]]
        p = parent[g]
        e = fill[p]
        fill[p] = e + 1
        if smoothing == KNESER_NEY:
            weight = max((cnt[g] if depth[g] == order else cont[g]) - discount, 0.0)
        else:
            weight = float(cnt[g])
        if cumulative and e > row_after[p] + 1:  # a row's entries are filled in order
            weight += rows[e - 1].weight
        rows[e].weight = weight
        rows[e].link = row_after[g]
        rows[e].symbol = char[g]
    return rows, row_after


@jit
def _advance(prev, cur, c, top, vocab_size, index, bits, sfx):
    """Nodes ``cur[1..top]`` of the grams ending at ``c`` (-1 when unseen).

    ``prev[m]`` holds the node of the m-gram ending just before ``c`` (-1 when
    unseen or not available).
    """
    cur[0] = 0
    m = top
    while m >= 1:
        h = prev[m - 1]
        if h >= 0:
            g = _child(h, c, vocab_size, index, bits)
            if g >= 0:
                cur[m] = g
                break
        cur[m] = -1
        m -= 1
    for q in range(m - 1, 0, -1):
        cur[q] = sfx[cur[q + 1]]


@jit
def _context_after(g, dy, order, sfx):
    """Deepest context (node, depth) once gram ``g`` (of depth ``dy + 1``) ends the history.

    ``g = -1`` (no suffix of the history continues with the character) gives the root.
    """
    if g < 0:
        return np.int64(0), 0
    if dy + 1 == order:
        return sfx[g], order - 1
    return g, dy + 1


@jit
def context_nodes(context, order, vocab_size, tables):
    """Nodes of the grams ending at the last character of ``context``.

    Returns
    -------
    ndarray, shape (order + 1,), int64
        Entry ``m`` is the node of the last ``m`` characters of ``context``;
        -1 if that gram never occurred or ``m > len(context)``.
    """
    index, bits, sfx, cnt, rec = tables
    prev = np.full(order + 1, -1, np.int64)
    cur = np.full(order + 1, -1, np.int64)
    prev[0] = 0
    for j in range(context.shape[0]):
        top = min(order, j + 1)
        _advance(prev, cur, np.int64(context[j]), top, vocab_size, index, bits, sfx)
        for q in range(top + 1, order + 1):
            cur[q] = -1
        prev, cur = cur, prev
    return prev


