"""Slow, obvious pure-Python references for the n-gram kernels.

Counts come from :class:`collections.Counter` over explicit tuples; the
probabilities transcribe the formulas of :mod:`hoi_fast.kernels.ngram`
literally (recursion over orders, no precomputed tables).
"""

import math
from collections import Counter


def segments(parts):
    """List of tuples of ints (a single sequence is one segment)."""
    if isinstance(parts, (list, tuple)) and parts and hasattr(parts[0], "__len__"):
        return [tuple(int(c) for c in p) for p in parts]
    return [tuple(int(c) for c in parts)]


def counts(parts, length):
    """Counter of every gram of ``length`` characters inside one segment."""
    out = Counter()
    for seg in segments(parts):
        for i in range(len(seg) - length + 1):
            out[seg[i:i + length]] += 1
    return out


def continuation(parts, length):
    """N1+(. g) for every gram g of ``length`` (distinct left extensions)."""
    out = Counter()
    for gram in counts(parts, length + 1):
        out[gram[1:]] += 1
    return out


class Reference:
    """Reference model with the documented formulas."""

    def __init__(self, parts, order, smoothing, vocab_size, k=0.5, discount=0.75):
        self.order, self.smoothing, self.V, self.k, self.D = order, smoothing, vocab_size, k, discount
        self.raw = {m: counts(parts, m) for m in range(1, order + 1)}
        self.cont = {m: continuation(parts, m) for m in range(1, order)}

    def _row(self, context, weights):
        """{c: weight} of the grams ``context + (c,)`` (positive weights only)."""
        n = len(context)
        return {g[-1]: w for g, w in weights.items() if g[:n] == context and w > 0}

    def _kn_weights(self, level):
        return self.raw[level] if level == self.order else self.cont.get(level, Counter())

    def kn(self, c, context):
        """p_k(c | context) with k = len(context) + 1, recursively."""
        if context is None:
            return 1.0 / self.V
        level = len(context) + 1
        lower = self.kn(c, context[1:]) if context else self.kn(c, None)
        row = self._row(context, self._kn_weights(level))
        t = sum(row.values())
        if t == 0:
            return lower
        a = max(row.get(c, 0) - self.D, 0.0)
        return a / t + self.D * len(row) / t * lower

    def prob(self, c, context):
        """p(c | context) with ``context`` the order - 1 preceding characters."""
        context = tuple(context)[len(context) - (self.order - 1):] if self.order > 1 else ()
        if self.smoothing == "kneser-ney":
            return self.kn(c, context)
        if self.smoothing == "add-k":
            row = self._row(context, self.raw[self.order])
            return (row.get(c, 0) + self.k) / (sum(row.values()) + self.k * self.V)
        for cut in range(len(context) + 1):  # mle: longest context with a continuation
            ctx = context[cut:]
            row = self._row(ctx, self.raw[len(ctx) + 1])
            t = sum(row.values())
            if t > 0:
                return row.get(c, 0) / t
        raise AssertionError("empty model")

    def log_probs(self, text):
        """Natural-log probability of every position with a full context."""
        text = tuple(int(c) for c in text)
        out = []
        for j in range(self.order - 1, len(text)):
            p = self.prob(text[j], text[j - self.order + 1:j])
            out.append(math.log(p) if p > 0 else -math.inf)
        return out
