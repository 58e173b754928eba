"""Numba kernels of the categorical experiment: fit, biased distributions, sampling, metrics.

Every kernel is serial, takes arrays and scalars, trusts its inputs (the
experiment validates them once) and costs one or two passes over the ``V``
symbols plus one step per draw.  Random numbers come in as arrays of uniforms
drawn by NumPy (``Generator.random``): handing a ``Generator`` to a jitted
function costs about 20 µs of unboxing per call on this machine, more than a
whole generation of a V = 1000 model.

Sampling is inversion through a *guide table* (indexed search, Chen & Asau
1974): ``cum`` holds the running sums of the (unnormalised) weights, total
``T = cum[V - 1]``; ``[0, T)`` is cut into V equal buckets and ``guide[b]`` is
the last symbol whose interval starts before bucket ``b``.  A uniform ``u``
in [0, 1) maps to ``x = u T`` and to the symbol
``min(searchsorted(cum, x, side="right"), last)``, where ``last`` is the last
symbol of positive weight; the guide only gives the search a start about one
step before the answer (the search walks both ways, so rounding in the bucket
boundaries cannot change the result).  A symbol of weight 0 is never drawn:
its running sum equals its predecessor's.  Resolution: with a 53-bit uniform
every symbol's probability is reproduced to within about ``2^-53``
(absolute), far below any Monte-Carlo error.
"""

from __future__ import annotations

import math

import numpy as np

from hoi_fast._jit import jit

#: Order of the scalars returned by :func:`metrics`.
METRIC_NAMES = ("real_nll", "self_nll", "tail_nll", "unseen_events", "kl_support", "missing_mass", "tv",
                "support", "seen", "entropy", "collision", "tail_mass", "pool_l2", "pool_tv")


@jit
def build_table(weights, cum, guide):
    """Running sums and guide table of non-negative ``weights`` (not necessarily normalised).

    Parameters
    ----------
    weights : ndarray, shape (V,), float64
        Non-negative, at least one positive.
    cum : ndarray, shape (V,), float64
        Output: ``cum[i] = weights[0] + ... + weights[i]`` (summed in order).
    guide : ndarray, shape (V,), int32
        Output: ``guide[b]`` = the last symbol whose interval starts in a
        bucket before ``b`` (0 if none), bucket ``b`` being
        ``[b, b + 1) * cum[V - 1] / V``: a start for the search at or just
        before the symbol of every point of the bucket.

    Returns
    -------
    last : int
        The last index of positive weight.
    """
    v = weights.shape[0]
    acc = 0.0
    last = 0
    for i in range(v):
        w = weights[i]
        acc += w
        cum[i] = acc
        if w > 0.0:
            last = i
    # Symbols' start buckets are non-decreasing, so "the last symbol starting before bucket b"
    # is (number of symbols starting before b) - 1: a histogram and a running sum, no search.
    for b in range(v):
        guide[b] = 0
    scale = v / acc
    start = 0.0
    for i in range(v):
        guide[min(int(start * scale), v - 1)] += 1
        start = cum[i]
    before = 0
    for b in range(v):
        here = guide[b]
        guide[b] = max(before - 1, 0)
        before += here
    return last


@jit
def _locate(cum, guide, last, u):
    """The symbol of one uniform ``u``: ``min(searchsorted(cum, u * cum[-1], "right"), last)``."""
    v = cum.shape[0]
    x = u * cum[v - 1]
    i = min(guide[min(int(u * v), v - 1)], last)
    while i > 0 and cum[i - 1] > x:  # rounding of the bucket bounds put the start too far right
        i -= 1
    while i < last and cum[i] <= x:
        i += 1
    return i


@jit
def draw(cum, guide, last, u, out):
    """Inverse-CDF draws through the guide table of :func:`build_table`.

    Parameters
    ----------
    cum : ndarray, shape (V,), float64
    guide : ndarray, shape (V,), int32
    last : int
        Last index of positive weight.
    u : ndarray, shape (k,), float64
        Uniforms in [0, 1).
    out : ndarray, shape (k,), int32
        Output: ``out[j] = min(searchsorted(cum, u[j] * cum[-1], "right"), last)``.
    """
    for j in range(u.shape[0]):
        out[j] = _locate(cum, guide, last, u[j])


@jit
def fit(counts, total, k, log_table, probs, logp):
    """Probabilities of the count model: MLE ``c / N`` (``k = 0``) or add-k ``(c + k) / (N + k V)``.

    Parameters
    ----------
    counts : ndarray, shape (V,), int64
    total : int
        ``N = counts.sum()`` (> 0).
    k : float
        Pseudo-count, 0 for MLE.
    log_table : ndarray, shape (L,), float64
        ``log(c + k)`` for ``c < L`` (``-inf`` for ``c + k = 0``): a look-up
        instead of a logarithm for the common small counts.
    probs, logp : ndarray, shape (V,), float64
        Output: the probabilities and their logs (``-inf`` where 0), the logs
        as ``log(c + k) - log(N + k V)``.
    """
    v = counts.shape[0]
    denom = total + k * v
    log_denom = math.log(denom)
    size = log_table.shape[0]
    for i in range(v):
        c = counts[i]
        probs[i] = (c + k) / denom
        logp[i] = (log_table[c] if c < size else math.log(c + k)) - log_denom


@jit
def fit_model(items, more, vocab_size, k, log_table):
    """Count ``items`` and ``more`` and fit the model with its sampling table, in one call.

    Two arrays rather than one so that the common training set of two parts
    (real and synthetic) needs no concatenation.

    Parameters
    ----------
    items, more : ndarray, shape (N1,) and (N2,), int32
        Symbol draws in ``[0, vocab_size)``, N1 + N2 > 0.
    vocab_size : int
    k, log_table
        As in :func:`fit`.

    Returns
    -------
    counts : ndarray, shape (V,), int64
    probs, logp : ndarray, shape (V,), float64
    cum : ndarray, shape (V,), float64
    guide : ndarray, shape (V,), int32
    last : int
        See :func:`fit` and :func:`build_table`.
    """
    counts = np.zeros(vocab_size, np.int64)
    for j in range(items.shape[0]):
        counts[items[j]] += 1
    for j in range(more.shape[0]):
        counts[more[j]] += 1
    probs = np.empty(vocab_size)
    logp = np.empty(vocab_size)
    fit(counts, items.shape[0] + more.shape[0], k, log_table, probs, logp)
    cum = np.empty(vocab_size)
    guide = np.empty(vocab_size, np.int32)
    last = build_table(probs, cum, guide)
    return counts, probs, logp, cum, guide, last


@jit
def biased(probs, logp, temperature, top_k, top_p, out):
    """Unnormalised sampling weights after temperature, top-k and top-p.

    ``out_i ∝ p_i^(1/temperature)``, computed as ``exp((log p_i - log p_max) /
    temperature)`` so that every positive temperature is exact in the limit
    (a tiny temperature gives 1 on every symbol tied at the maximum, 0
    elsewhere).  Then only the ``top_k`` symbols of highest ``p`` are kept
    (``0`` = off), then the smallest set of the highest-``p`` kept symbols
    whose weight reaches ``top_p`` of the kept total (``1`` = off).  Symbols
    are ranked by the model's ``p``, ties to the lower index.

    Parameters
    ----------
    probs, logp : ndarray, shape (V,), float64
    temperature : float
    top_k : int
    top_p : float
    out : ndarray, shape (V,), float64
        Output weights (not normalised; the maximum is 1 if ``temperature != 1``).
    """
    v = probs.shape[0]
    if temperature == 1.0:
        for i in range(v):
            out[i] = probs[i]
    else:
        top = -np.inf
        for i in range(v):
            top = max(top, logp[i])
        for i in range(v):
            if probs[i] == 0.0:
                out[i] = 0.0
            elif logp[i] == top:  # the maximum explicitly: fastmath may turn x / t into x * (1 / t),
                out[i] = 1.0      # and 0 * inf is NaN once 1 / t overflows (t < 5.6e-309)
            else:
                out[i] = math.exp((logp[i] - top) / temperature)
    if top_k <= 0 and top_p >= 1.0:
        return
    order = np.argsort(-probs, kind="mergesort")  # stable: ties to the lower index
    if 0 < top_k < v:
        for r in range(top_k, v):
            out[order[r]] = 0.0
    if top_p < 1.0:
        total = 0.0
        for i in range(v):
            total += out[i]
        goal = top_p * total
        acc = 0.0
        cut = v
        for r in range(v):
            acc += out[order[r]]
            if acc >= goal:
                cut = r + 1
                break
        for r in range(cut, v):
            out[order[r]] = 0.0


@jit
def metrics(counts, probs, logp, q, logq, tail, heldout, p0, cum, guide, last, u_self, out):
    """Every scalar metric of one generation in one pass over the symbols.

    Parameters
    ----------
    counts : ndarray, shape (V,), int64
        Training counts of the generation.
    probs, logp : ndarray, shape (V,), float64
        The fitted model and its logs.
    q, logq : ndarray, shape (V,), float64
        The truth (all positive) and its logs.
    tail : ndarray, shape (V,), bool
        The truth's tail symbols.
    heldout : ndarray, shape (V,), int64
        Held-out real counts.
    p0 : ndarray, shape (V,), float64
        Generation 0's model (fitted on R).
    cum, guide, last
        The model's sampling table (:func:`build_table` of ``probs``).
    u_self : ndarray, shape (S,), float64
        Uniforms for the model's own sample (``self_nll``); S > 0.
    out : ndarray, shape (len(METRIC_NAMES),), float64
        Output, in the order of :data:`METRIC_NAMES`.
    """
    v = probs.shape[0]
    real_sum = 0.0
    real_n = 0
    tail_sum = 0.0
    tail_n = 0
    unseen = 0
    kl = 0.0
    covered = 0.0
    missing = 0.0
    tv = 0.0
    support = 0
    seen = 0
    entropy = 0.0
    collision = 0.0
    tail_mass = 0.0
    pool_l2 = 0.0
    pool_tv = 0.0
    for i in range(v):  # selects, not branches: the loop vectorises
        p = probs[i]
        qi = q[i]
        h = heldout[i]
        pos = p > 0.0
        lp = logp[i] if pos else 0.0  # never -inf * 0
        hp = h if pos else 0
        ht = hp if tail[i] else 0
        qp = qi if pos else 0.0
        support += pos
        seen += counts[i] > 0
        entropy -= p * lp
        real_sum -= hp * lp
        real_n += hp
        unseen += h - hp
        tail_sum -= ht * lp
        tail_n += ht
        kl += qp * (logq[i] - lp)
        covered += qp
        missing += qi - qp
        tail_mass += p if tail[i] else 0.0
        collision += p * p
        tv += abs(p - qi)
        d = p - p0[i]
        pool_l2 += d * d
        pool_tv += abs(d)
    self_sum = 0.0
    for j in range(u_self.shape[0]):  # the draws of :func:`draw`, scored as they are made
        self_sum -= logp[_locate(cum, guide, last, u_self[j])]
    out[0] = real_sum / real_n if real_n > 0 else 0.0
    out[1] = self_sum / u_self.shape[0]
    out[2] = tail_sum / tail_n if tail_n > 0 else np.nan
    out[3] = unseen
    out[4] = kl / covered - math.log(covered)
    out[5] = missing
    out[6] = 0.5 * tv
    out[7] = support
    out[8] = seen
    out[9] = entropy
    out[10] = collision
    out[11] = tail_mass
    out[12] = pool_l2
    out[13] = 0.5 * pool_tv


@jit
def partial_shuffle(items, u):
    """The first ``m = len(u)`` steps of a Fisher–Yates shuffle, in place.

    Step ``i`` swaps ``items[i]`` with ``items[j]``, ``j = i + floor(u[i] (n - i))``.
    A 53-bit uniform makes each ``j`` equally likely up to a relative
    error of ``n 2^-53`` (the resolution of every inversion draw here).

    Parameters
    ----------
    items : ndarray, shape (n,), int32
        Shuffled in place; ``items[:m]`` is then a random ``m``-subset in
        random order.
    u : ndarray, shape (m,), float64
        Uniforms in [0, 1), ``m <= n``.
    """
    n = items.shape[0]
    for i in range(u.shape[0]):
        j = i + min(int(u[i] * (n - i)), n - i - 1)
        items[i], items[j] = items[j], items[i]
