"""The character n-gram experiment plugged into the shared loop.

One cell (α, seed) of the grid retrains a character n-gram model, generation
after generation, on real text mixed with text sampled from its previous self
(:func:`hoi_fast.experiment.run_cell` owns the loop and the regimes).

Data
----
* The corpus (:mod:`hoi_fast.corpus`) is loaded once per process; its
  vocabulary and its training/held-out split are fixed for the run.
* Real pool R: ``train_chars`` consecutive characters of the training part at
  an offset drawn from the seed's real stream (the same R for every α).
* Held-out text: ``heldout_chars`` consecutive characters of the held-out part
  (seed's held-out stream).
* ``mix``: the real part of a generation is ``m`` consecutive characters of R
  starting at a uniform offset ``o`` in ``[0, n)``, wrapping around the end of
  R.  A wrapped segment is kept as *two* segments (``R[o:]`` and
  ``R[:o + m - n]``, held in one :class:`Segments` part) so no n-gram spans
  the artificial join.
* ``fresh``: ``m`` consecutive characters of the corpus training part at a
  uniform offset (fresh stream of the generation).
* Synthetic text is one continuous stream sampled exactly from the model,
  started after a random real context: ``order - 1`` consecutive characters of
  the corpus training part at a uniform offset (drawn from the generation
  stream).  The context itself is not part of the synthetic text.
  (The shared :class:`~hoi_fast.experiment.Experiment` protocol gives
  ``sample`` no access to R, hence the whole training part.)
* Sampling bias (``temperature``, ``top_k``, ``top_p``): synthetic text is
  drawn from ``p(c | h) ** (1 / temperature)``, truncated to the ``top_k``
  most likely characters, then to the top-p nucleus, renormalised
  (:meth:`hoi_fast.ngram.NGramModel.sample`).  ``self_bpc`` always samples the
  model itself, without bias.
* Quality filter (``filter = "quality"``): the synthetic stream is cut into
  chunks of ``filter_chunk`` characters; a chunk is kept if its bits per
  character under generation 0's model (trained on R alone), scored with the
  ``order - 1`` characters before it as context, is at most
  ``filter_threshold`` (a chunk with a probability-0 event under ``mle`` is
  rejected).  Chunks are drawn until ``n - m`` characters are kept (the last
  kept chunk is cut to fit); kept chunks are separate segments.  The
  acceptance rate is kept / judged chunks.  If fewer than 1 in
  ``MAX_REJECTIONS`` chunks pass, an :class:`~hoi_fast.experiment.ExperimentError`
  asks for a higher threshold.
* ``accumulate-subsample``: the accumulated parts are cut into chunks of
  ``SUBSAMPLE_CHUNK`` characters (never across a part), chunks are drawn
  without replacement until ``n`` characters (the last cut to fit); each
  chunk is a segment.
* Sample-size schedule: generation ``g`` trains on
  :func:`hoi_fast.experiment.scheduled_size` characters.

Metrics per generation
----------------------
``real_bpc``
    Bits/char on the held-out text (positions whose full context lies in it).
    With ``mle``, NaN if every held-out position has probability 0.
``tail_bpc``
    The same over held-out positions whose top-order n-gram occurs at most
    twice in R (unseen in R included).  The mask is computed once per cell,
    with the held-out text, from the counts of R.  NaN if no position
    qualifies (e.g. order 1 with a large R).
``self_bpc``
    Bits/char of ``self_chars`` characters sampled from the model (after a
    random real context, every sampled character scored).
``support``
    Distinct top-order n-grams in the generation's training text.
``unseen_rate``
    Share of held-out positions whose top-order n-gram is absent from the
    generation's training text.
``char_counts`` (dimension ``symbol``)
    Occurrences of each symbol in the generation's training text.
``unseen_events``
    Held-out positions of probability 0 (only ``mle`` has any); they are
    left out of ``real_bpc`` and ``tail_bpc``.  Recorded for every smoothing
    so a sweep over ``smoothing`` has one set of metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hoi_fast import _validate as v
from hoi_fast._validate import require
from hoi_fast.corpus import load_corpus
from hoi_fast.experiment import ExperimentError, MetricSpec, scheduled_size
from hoi_fast.ngram import MAX_ORDER, SMOOTHINGS, NGramModel, _join, distinct_grams, summarize

TAIL_MAX_COUNT = 2
SUBSAMPLE_CHUNK = 200
MAX_REJECTIONS = 1000
NGRAM_FILTERS = ("none", "quality")
MAX_CHARS = 10**9  # per text (training, held-out, self): 4 GB of int32 codes
MAX_TEMPERATURE = 1e6


@dataclass(frozen=True)
class NGramConfig:
    """Parameters of the character n-gram experiment (TOML table ``[ngram]``).

    Attributes
    ----------
    order : int
        n-gram order (1 to 10).
    smoothing : {"kneser-ney", "add-k", "mle"}
    k : float
        Pseudo-count of ``add-k`` smoothing.
    discount : float
        Absolute discount D of interpolated Kneser-Ney, in (0, 1).
    corpus : str
        ``"builtin"`` or a path to a UTF-8 text file or a folder of ``.txt`` files.
    train_chars : int
        Size n of the real pool R and of every generation's training text.
    heldout_chars : int
        Size of the held-out real text.
    self_chars : int
        Size of the fresh text sampled from the model (``self_bpc``).
    schedule : {"constant", "linear", "geometric"}
        Training-set size per generation: n, n (1 + growth g) or n growth^g.
    growth : float
        Rate of the ``linear`` schedule or factor of the ``geometric`` one.
    temperature : float
        Synthetic text is sampled from p(c|h)^(1/temperature), renormalised
        (in (0, 1e6]; every positive temperature samples the right
        distribution, computed in log space).
    top_k : int
        Keep only the k most likely next characters (0 = off).
    top_p : float
        Nucleus sampling: keep the smallest set of most likely characters whose
        probability reaches top_p (1 = off).
    filter : {"none", "quality"}
        ``quality`` keeps a synthetic chunk only if its bits per character under
        generation 0's model (trained on the real pool) is at most
        ``filter_threshold``.
    filter_chunk : int
        Length of the chunks the quality filter judges.
    filter_threshold : float
        Bits per character a chunk may cost under the real-pool model.
    """

    order: int = 4
    smoothing: str = "kneser-ney"
    k: float = 0.05
    discount: float = 0.75
    corpus: str = "builtin"
    train_chars: int = 30000
    heldout_chars: int = 10000
    self_chars: int = 2000
    schedule: str = "constant"
    growth: float = 1.0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    filter: str = "none"
    filter_chunk: int = 200
    filter_threshold: float = 4.0

    UNSWEEPABLE = ("corpus",)

    def __post_init__(self):
        v.check_schedule("ngram", self.schedule, self.growth)
        v.positive_float("ngram.temperature", self.temperature, MAX_TEMPERATURE)
        v.non_negative_int("ngram.top_k", self.top_k)
        require(v.is_real(self.top_p) and 0 < self.top_p <= 1,
                f"`ngram.top_p` must be in (0, 1] (1 = off), got {self.top_p!r}")
        v.one_of("ngram.filter", self.filter, NGRAM_FILTERS)
        v.positive_int("ngram.filter_chunk", self.filter_chunk, MAX_CHARS)
        v.positive_float("ngram.filter_threshold", self.filter_threshold)
        v.positive_int("ngram.order", self.order)
        require(self.order <= MAX_ORDER, f"`ngram.order` must be at most {MAX_ORDER}, got {self.order}")
        v.one_of("ngram.smoothing", self.smoothing, SMOOTHINGS)
        v.positive_float("ngram.k", self.k)
        v.positive_float("ngram.discount", self.discount, 1.0)
        require(self.discount < 1, f"`ngram.discount` must be below 1, got {self.discount}")
        require(isinstance(self.corpus, str) and self.corpus, "`ngram.corpus` must be 'builtin' or a path")
        for name in ("train_chars", "heldout_chars", "self_chars"):
            v.positive_int(f"ngram.{name}", getattr(self, name), MAX_CHARS)
            require(getattr(self, name) > self.order, f"`ngram.{name}` must exceed `ngram.order` ({self.order})")

    def check_grid(self, grid):
        """The schedule's largest training text stays within :data:`MAX_CHARS`."""
        largest = max(scheduled_size(self.train_chars, self.schedule, self.growth, g)
                      for g in (0, grid.generations - 1))
        require(largest <= MAX_CHARS, f"`ngram.schedule` {self.schedule} with `ngram.growth` {self.growth} asks "
                f"for {largest:,} training characters, more than {MAX_CHARS:,}; lower the growth or run fewer "
                "generations")


class Segments:
    """One training part made of several segments (no n-gram spans two).

    ``len()`` is the number of characters, as the shared loop expects.
    """

    def __init__(self, arrays):
        self.arrays = list(arrays)

    def __len__(self):
        return sum(a.shape[0] for a in self.arrays)


class HeldOut:
    """Held-out codes of one cell, their distinct grams and the tail (positions rare in R).

    Every generation scores the same held-out text, so it is scored by its
    distinct grams (:class:`hoi_fast.ngram.DistinctGrams`): the same values,
    about half the look-ups at the defaults (0.53x the time).

    Attributes
    ----------
    codes : ndarray, shape (L,), int32
    grams : hoi_fast.ngram.DistinctGrams
    tail : ndarray, shape (P,), bool
        The scored positions whose top-order n-gram occurs at most
        ``TAIL_MAX_COUNT`` times in R.
    tail_grams : ndarray, shape (T,), int64
        The distinct gram of every tail position, in order (``grams.inverse[tail]``).
    """

    def __init__(self, codes, grams, tail):
        self.codes = codes
        self.grams = grams
        self.tail = tail
        self.tail_grams = grams.inverse[tail]


def _whole(codes):
    """Segment bounds covering all of ``codes``."""
    return np.zeros(1, np.int64), np.full(1, codes.shape[0], np.int64)


def flatten(parts):
    """Training parts -> list of 1-D code arrays (:class:`Segments` expanded)."""
    out = []
    for p in parts:
        if isinstance(p, Segments):
            out.extend(p.arrays)
        else:
            out.append(p)
    return out


class NGramExperiment:
    """:class:`~hoi_fast.experiment.Experiment` for character n-grams.

    Parameters
    ----------
    config : NGramConfig

    Raises
    ------
    hoi_fast._validate.ConfigError
        If the corpus cannot be loaded or is too short for the sizes.
    """

    name = "ngram"
    config_class = NGramConfig

    def __init__(self, config):
        self.config = config
        self.corpus = load_corpus(config.corpus)
        self.corpus.check_sizes(config.train_chars, config.heldout_chars)
        self._last_fit = (None, None)  # (array, model) of the last single-part fit, see fit()

    # -- data -----------------------------------------------------------------

    def train_size(self, generation):
        c = self.config
        return scheduled_size(c.train_chars, c.schedule, c.growth, generation)

    def real_pool(self, rng):
        return self.corpus.window("train", self.config.train_chars, rng)

    def heldout(self, rng, pool):
        """The held-out window and its tail mask, from the counts of R."""
        codes = self.corpus.window("heldout", self.config.heldout_chars, rng)
        grams = distinct_grams(codes, self.config.order, self.corpus.vocab_size)
        _, top = self.fit([pool], rng)._score_distinct(grams)
        return HeldOut(codes, grams, top[grams.inverse] <= TAIL_MAX_COUNT)

    def real_subset(self, pool, m, rng):
        n = pool.shape[0]
        offset = int(rng.integers(0, n))
        end = offset + m
        if end <= n:
            return pool[offset:end]
        return Segments([pool[offset:], pool[:end - n]])

    def fresh_real(self, m, rng):
        if m > self.corpus.split:
            raise ExperimentError(
                f"`ngram.corpus` training part ({self.corpus.split} characters) is shorter than the "
                f"{m} fresh real characters a generation needs; lower `ngram.train_chars` or `ngram.growth`"
            )
        return self.corpus.window("train", m, rng)

    # -- model ----------------------------------------------------------------

    def fit(self, parts, rng):
        """The n-gram model of the training parts (``rng`` is not used: counting is deterministic).

        The model of R alone is built once per seed: :meth:`heldout` needs it
        for the tail mask and generation 0 trains on exactly R, so the last
        single-part fit is remembered by the identity of its array.
        """
        if len(parts) == 1 and self._last_fit[0] is parts[0]:
            return self._last_fit[1]
        c = self.config
        codes, starts, ends = _join(flatten(parts))
        model = NGramModel(codes, starts, ends, c.order, c.smoothing, self.corpus.vocab_size, c.k, c.discount)
        if len(parts) == 1:
            self._last_fit = (parts[0], model)
        return model

    def _context(self, rng):
        return self.corpus.window("train", self.config.order - 1, rng)

    def sample(self, model, n, rng):
        return model._sample(n, rng, self._context(rng))

    def _biased(self, model, n, rng, ctx):
        c = self.config
        return model._sample(n, rng, ctx, c.temperature, c.top_k, c.top_p)

    def synthesize(self, model, n, rng, first_model):
        """``n`` synthetic characters after sampling bias and the quality filter.

        Returns ``(part, acceptance)``; see the module docstring.
        """
        c = self.config
        ctx = self._context(rng)
        if c.filter == "none":
            return self._biased(model, n, rng, ctx), 1.0
        width, chunk = c.order - 1, c.filter_chunk
        kept, have, judged = [], 0, 0
        while have < n:
            if judged >= MAX_REJECTIONS * (len(kept) + 1):
                raise ExperimentError(
                    f"`ngram.filter_threshold` = {c.filter_threshold} kept {len(kept)} of {judged} synthetic "
                    f"chunks; raise it (or lower `ngram.filter_chunk`)"
                )
            batch = max(1, min(64, 2 * (n - have) // chunk + 1))
            stream = self._biased(model, batch * chunk, rng, ctx)
            text = np.concatenate([ctx, stream])
            bounds = np.arange(batch, dtype=np.int64) * chunk
            # each chunk is scored with the order - 1 characters before it as context
            logp, _ = first_model._score(text, bounds, bounds + chunk + width)
            cost = -logp.reshape(batch, chunk).sum(axis=1) / (chunk * np.log(2.0))
            for b in range(batch):
                judged += 1
                if cost[b] <= c.filter_threshold:
                    take = min(chunk, n - have)
                    kept.append(stream[b * chunk:b * chunk + take])
                    have += take
                    if have >= n:
                        break
            ctx = text[text.shape[0] - width:]
        return Segments(kept), len(kept) / judged

    def subsample(self, parts, n, rng):
        """``n`` characters as chunks drawn without replacement from ``parts``."""
        chunks = []
        for a in flatten(parts):
            chunks.extend(a[i:i + SUBSAMPLE_CHUNK] for i in range(0, a.shape[0], SUBSAMPLE_CHUNK))
        picked, have = [], 0
        for i in rng.permutation(len(chunks)):
            if have >= n:
                break
            take = min(chunks[i].shape[0], n - have)
            picked.append(chunks[i][:take])
            have += take
        return [Segments(picked)]

    # -- metrics --------------------------------------------------------------

    def metrics(self, model, parts, heldout, rng):
        grams = heldout.grams
        logp, top = model._score_distinct(grams)  # per distinct gram
        real = summarize(logp.take(grams.inverse))
        ctx = self._context(rng)
        own = np.concatenate([ctx, model._sample(self.config.self_chars, rng, ctx)])
        own_logp, _ = model._score(own, *_whole(own))
        out = {
            "real_bpc": real.bits_per_char,
            "tail_bpc": summarize(logp.take(heldout.tail_grams)).bits_per_char,
            "self_bpc": summarize(own_logp).bits_per_char,
            "support": float(model.support),
            "unseen_rate": float(grams.counts.dot(top == 0)) / grams.inverse.shape[0],
            "char_counts": model.symbol_counts().astype(np.float64),
            "unseen_events": float(real.unseen),
        }
        return out

    def metric_specs(self):
        mle = self.config.smoothing == "mle"  # probability-0 events are left out: nothing may be left
        specs = [
            MetricSpec("real_bpc", "bits/char", "bits per character on held-out real text"
                       + (" (NaN if every held-out position is unseen: mle only)" if mle else ""),
                       role="real", nan_ok=mle),
            MetricSpec("tail_bpc", "bits/char",
                       "bits per character on held-out positions whose top-order n-gram occurs at most twice in R "
                       "(NaN if no position qualifies)", role="tail", nan_ok=True),
            MetricSpec("self_bpc", "bits/char", "bits per character on text sampled from the model itself",
                       role="self"),
            MetricSpec("support", "count", "distinct top-order n-grams in the training text"),
            MetricSpec("unseen_rate", "1",
                       "share of held-out positions whose top-order n-gram is absent from the training text"),
            MetricSpec("char_counts", "count", "occurrences of each symbol in the training text", ("symbol",)),
            MetricSpec("unseen_events", "count",
                       "held-out positions of probability 0 (left out of the bpc metrics; mle only has any)"),
        ]
        return specs

    def coords(self):
        return {"symbol": np.asarray(self.corpus.symbols, dtype=object).astype(str)}
