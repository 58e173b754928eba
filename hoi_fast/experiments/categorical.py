"""The categorical experiment: a count model over V symbols refitted on its own draws.

The simplest model that collapses, and the one most theory is about
(Wright–Fisher resampling; Seddik et al. 2024; Suresh et al. 2025; Kazdan et
al.'s K-sided die; Dohmatob et al.'s "Tale of Tails").  Its expectations are
known exactly, so it doubles as a proof that the loop and the regimes are right.

Truth
-----
A distribution q over the symbols ``0 .. V-1`` (2 <= V <= 10^6), every
probability positive:

``zipf`` (default)
    Zipf–Mandelbrot: symbol ``s`` has rank ``i = s + 1`` and
    ``q_s ∝ (i + zipf_b)^(-zipf_a)`` (defaults a = 1, b = 2.7, V = 1000:
    q_0 ≈ 0.047, q_999 ≈ 1.7e-4).  Computed in log space.
``uniform``
    A fair V-sided die.
``weights``
    ``weights`` (V positive numbers, normalised).

Items and regimes
-----------------
An item is one draw, a symbol code; a training part is an ``int32`` array of
draws, so every regime works unchanged: ``mix`` draws ``m`` items of R without
replacement (a partial Fisher–Yates shuffle), ``fresh`` draws ``m`` new symbols
from the truth, ``accumulate`` appends each generation's synthetic draws,
``accumulate-subsample`` draws ``n`` items of the accumulated pool without
replacement.  R is ``samples`` draws from the truth (the seed's real stream).

Fit
---
From the training counts ``c`` (``N = Σ c``): ``mle`` ``p = c / N``, or
``add-k`` ``p = (c + k) / (N + k V)``.  The model keeps counts,
probabilities, their logs and a sampling table; nothing grows beyond O(V).

The default is ``add-k`` with k = 0.05 because under ``mle`` the held-out
loss is conditional on the model's support: draws of probability 0 are
counted (``unseen_events``), not scored, so ``real_nll`` can *fall* while the
model forgets the tail (the forgetting shows in ``unseen_events``,
``missing_mass`` and ``support``).  The closed forms below, and the papers
they come from, use ``mle``: set ``smoothing = "mle"``.

Index convention: generation 0 is fitted on R (n real draws), so it already
counts as one fit; generation g >= 1 is fitted on data built from generation
g - 1's model.  Under ``mix`` with α = 1 and MLE, generation g's counts are a
multinomial draw of n from generation g - 1's frequencies (Wright–Fisher).
Papers that call the fit on real data the first model (Seddik et al.'s
p^(1), Suresh et al.'s Θ_1) are one ahead: their model m is generation m - 1.

Sampling and the sampling-bias knobs
------------------------------------
Draws are inversion of the running sums through a guide table
(:mod:`hoi_fast.kernels.categorical`), one uniform each, one pass over V to
build the table.  Synthetic draws use the biased weights
``p_s^(1/temperature)`` (computed in log space: a tiny temperature samples the
argmax limit, ties shared evenly), restricted to the ``top_k`` most likely
symbols (0 = off), then to the smallest set of the most likely remaining ones
whose weight reaches ``top_p`` of the remaining total (1 = off), renormalised.
Symbols are ranked by the model's p, ties to the lower index.  The knobs act
on synthetic data only: R, held-out data, generation 0 and ``self_nll`` (which
samples the model itself) do not see them.

Metrics per generation
----------------------
p is the generation's fitted model, q the truth, p_0 generation 0's model
(fitted on R; under MLE, R's frequencies), h the counts of ``heldout`` draws
from the truth (the seed's held-out stream, shared by every α; drawn once as
counts, so a generation's cost does not depend on ``heldout``).

=================  ======  ====================================================
metric             units   meaning
=================  ======  ====================================================
``real_nll``       nats    mean -log p over the held-out real draws of positive
                           probability (role ``real``); draws of probability 0
                           are counted in ``unseen_events`` instead, so it is
                           never inf or NaN (0 if every draw is unseen)
``self_nll``       nats    mean -log p of ``self_samples`` fresh draws from p
                           itself (role ``self``; its expectation is ``entropy``)
``tail_nll``       nats    as ``real_nll`` over the held-out draws of tail symbols
                           (role ``tail``; NaN if none has positive probability,
                           e.g. the truth has no tail)
``unseen_events``  count   held-out draws of probability 0 (only ``mle`` has any)
``kl_support``     nats    KL(q_S || p), q_S = q restricted to the model's support
                           S and renormalised (= KL(q || p) when nothing is missing)
``missing_mass``   1       Σ q over symbols of probability 0
``tv``             1       total variation ½ Σ |p - q|
``support``        count   symbols with p > 0 (V under add-k)
``seen``           count   symbols with a positive training count (= support under mle)
``entropy``        nats    -Σ p log p
``collision``      1       Σ p²
``tail_mass``      1       Σ p over the truth's tail (symbols with q <= ``tail_weight``)
``pool_l2``        1       Σ (p - p_0)²: squared L2 distance to generation 0's model
``pool_tv``        1       ½ Σ |p - p_0|: total variation to generation 0's model
``counts``         count   training counts per symbol (dimension ``symbol``), only
                           while V <= ``COUNTS_MAX_VOCAB`` = 4096
=================  ======  ====================================================

Closed forms (tested in ``tests/test_categorical.py``; MLE, constant n, no
sampling bias; S_g = Σ p_g², D_g = Σ (p_g - p_0)², m real and k = n - m
synthetic items per generation):

* ``mix``, any α: E[D_g] = (1 - S_0) k (m / (n - 1) + 1) / n²
  + (k (k - 1) / n²) E[D_{g-1}], D_0 = 0, and E[S_g] = S_0 + E[D_g] (the
  model's mean stays p_0: real items are drawn from R without replacement,
  synthetic ones from the unbiased model).  With α = 1 (m = 0, k = n):
  E[S_g] = 1 - (1 - 1/n)^g (1 - S_0).
* α = 1: each symbol's count is a Wright–Fisher chain,
  c_g ~ Binomial(n, c_{g-1} / n), so P(symbol s survives to generation g) =
  1 - (T^g)[c_0(s), 0] with T the binomial transition matrix, and
  E[support_g] is the sum over symbols.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from hoi_fast import _validate as v
from hoi_fast._validate import require
from hoi_fast.experiment import ArrayExperiment, MetricSpec, scheduled_size
from hoi_fast.kernels import categorical as _k

TRUTHS = ("zipf", "uniform", "weights")
SMOOTHINGS = ("mle", "add-k")
MAX_VOCAB = 10**6
MAX_DRAWS = 10**8           # per set of draws (training, held-out): 400 MB of int32 codes
MAX_SELF_SAMPLES = 10**7    # drawn in one piece: 80 MB of uniforms
MAX_TEMPERATURE = 1e6
MAX_ZIPF_A = 1e3
MAX_ZIPF_B = 1e12
COUNTS_MAX_VOCAB = 4096     # per-symbol counts are stored only up to this V
DRAW_CHUNK = 1 << 20        # uniforms drawn at a time for long samples (same stream as one call)
LOG_TABLE_SIZE = 4096       # log(c + k) looked up for counts below this
_NO_DRAWS = np.empty(0, np.int32)


@dataclass(frozen=True)
class CategoricalConfig:
    """Parameters of the categorical experiment (TOML table ``[categorical]``).

    Attributes
    ----------
    vocab_size : int
        Number of symbols V, 2 to 10^6.  Not sweepable: it decides whether
        per-symbol ``counts`` are stored (V <= 4096).
    truth : {"zipf", "uniform", "weights"}
    zipf_a, zipf_b : float
        Zipf–Mandelbrot exponent a >= 0 and shift b > -1: symbol s (rank
        s + 1) has probability ∝ (s + 1 + b)^(-a).
    weights : tuple of float
        V positive weights of the ``weights`` truth (normalised); empty otherwise.
    smoothing : {"mle", "add-k"}
    k : float
        Pseudo-count of ``add-k``.
    samples : int
        Training-set size n per generation (also the size of R).
    heldout : int
        Held-out real draws (``real_nll``, ``tail_nll``, ``unseen_events``).
    self_samples : int
        Draws from the model itself per generation (``self_nll``).
    schedule : {"constant", "linear", "geometric"}
    growth : float
        Training-set size per generation: n, n (1 + growth g) or n growth^g.
    temperature : float
        Synthetic draws from p^(1/temperature), renormalised (0 < t <= 1e6).
    top_k : int
        Keep only the top_k most likely symbols for synthetic draws (0 = off).
    top_p : float
        Keep the smallest set of most likely symbols whose mass reaches top_p
        (in (0, 1]; 1 = off).
    tail_weight : float
        Symbols with truth probability <= tail_weight form the tail
        (``tail_nll``, ``tail_mass``).
    """

    vocab_size: int = 1000
    truth: str = "zipf"
    zipf_a: float = 1.0
    zipf_b: float = 2.7
    weights: tuple = ()
    smoothing: str = "add-k"
    k: float = 0.05
    samples: int = 1000
    heldout: int = 10000
    self_samples: int = 1000
    schedule: str = "constant"
    growth: float = 1.0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    tail_weight: float = 5e-4

    UNSWEEPABLE = ("vocab_size", "weights")

    def __post_init__(self):
        v.positive_int("categorical.vocab_size", self.vocab_size, MAX_VOCAB)
        require(self.vocab_size >= 2, f"`categorical.vocab_size` must be at least 2, got {self.vocab_size}")
        v.one_of("categorical.truth", self.truth, TRUTHS)
        v.non_negative_float("categorical.zipf_a", self.zipf_a, MAX_ZIPF_A)
        require(v.is_real(self.zipf_b) and -1 < self.zipf_b <= MAX_ZIPF_B,
                f"`categorical.zipf_b` must be a number in (-1, {MAX_ZIPF_B:g}] (rank 1 + b must be positive), "
                f"got {self.zipf_b!r}")
        if self.truth == "weights":
            w = v.finite_array("categorical.weights", self.weights, shape=(None,))
            require(w.shape[0] == self.vocab_size,
                    f"`categorical.weights` has {w.shape[0]} entries but `categorical.vocab_size` is "
                    f"{self.vocab_size}; set vocab_size = {w.shape[0]}")
            require(np.all(w > 0), "`categorical.weights` must all be positive (every symbol of the truth "
                    "needs positive probability)")
        else:
            given = not (isinstance(self.weights, (tuple, list)) and len(self.weights) == 0)
            require(not given, f"`categorical.weights` is given but `categorical.truth` is "
                    f"{self.truth!r}; set truth = \"weights\" or drop weights")
        v.one_of("categorical.smoothing", self.smoothing, SMOOTHINGS)
        v.positive_float("categorical.k", self.k, 1e6)
        v.positive_int("categorical.samples", self.samples, MAX_DRAWS)
        v.positive_int("categorical.heldout", self.heldout, MAX_DRAWS)
        v.positive_int("categorical.self_samples", self.self_samples, MAX_SELF_SAMPLES)
        v.check_schedule("categorical", self.schedule, self.growth)
        v.positive_float("categorical.temperature", self.temperature, MAX_TEMPERATURE)
        v.non_negative_int("categorical.top_k", self.top_k)
        require(v.is_real(self.top_p) and 0 < self.top_p <= 1,
                f"`categorical.top_p` must be in (0, 1] (1 = off), got {self.top_p!r}")
        v.positive_float("categorical.tail_weight", self.tail_weight, 1.0)
        truth_probabilities(self)  # a Zipf exponent so steep that a probability underflows is refused here

    def check_grid(self, grid):
        """The schedule's largest training set stays within :data:`MAX_DRAWS`."""
        largest = max(scheduled_size(self.samples, self.schedule, self.growth, g)
                      for g in (0, grid.generations - 1))
        require(largest <= MAX_DRAWS, f"`categorical.schedule` {self.schedule} with `categorical.growth` "
                f"{self.growth} asks for {largest:,} training draws, more than {MAX_DRAWS:,}; lower the growth "
                "or run fewer generations")


def truth_probabilities(config):
    """The truth q of ``config``: float64 array (V,), positive, summing to 1.

    Raises
    ------
    ConfigError
        If a probability underflows to 0 in float64 (a very steep Zipf law or
        weights spanning more than ~600 orders of magnitude).
    """
    V = config.vocab_size
    if config.truth == "uniform":
        return np.full(V, 1.0 / V)
    if config.truth == "zipf":
        log_w = -config.zipf_a * np.log(np.arange(1, V + 1, dtype=np.float64) + config.zipf_b)
        w = np.exp(log_w - log_w.max())
        what = "`categorical.zipf_a`"
    else:
        w = np.asarray(config.weights, dtype=np.float64)
        w = w / w.max()
        what = "`categorical.weights`"
    q = w / w.sum()
    require(np.all(q > 0), f"{what} gives symbols of probability 0 in float64 (the smallest weight is below "
            "1e-308 of the largest); use a flatter truth or fewer symbols")
    return q


class SamplingTable(NamedTuple):
    """Running sums and guide table of a distribution (:func:`hoi_fast.kernels.categorical.build_table`).

    (A named tuple rather than a frozen dataclass, like :class:`CategoricalModel`:
    one is made per generation, and a tuple is built several times faster.)

    Attributes
    ----------
    cum : ndarray, shape (V,), float64
    guide : ndarray, shape (V,), int32
    last : int
        Last symbol of positive weight.
    """

    cum: np.ndarray
    guide: np.ndarray
    last: int

    @classmethod
    def of(cls, weights):
        """The table of non-negative ``weights`` (float64, at least one positive)."""
        cum = np.empty(weights.shape[0])
        guide = np.empty(weights.shape[0], np.int32)
        return cls(cum, guide, int(_k.build_table(weights, cum, guide)))

    def draw(self, n, rng):
        """``n`` draws: int32 array (n,), one ``rng.random()`` each, in order."""
        out = np.empty(n, np.int32)
        if n <= DRAW_CHUNK:  # the common case, without the loop's overhead
            _k.draw(self.cum, self.guide, self.last, rng.random(n), out)
            return out
        for start in range(0, n, DRAW_CHUNK):
            stop = min(n, start + DRAW_CHUNK)
            _k.draw(self.cum, self.guide, self.last, rng.random(stop - start), out[start:stop])
        return out

    def draw_counts(self, n, rng):
        """Counts per symbol of ``n`` draws (the same draws as :meth:`draw`): int64 array (V,)."""
        V = self.cum.shape[0]
        counts = np.zeros(V, np.int64)
        out = np.empty(min(n, DRAW_CHUNK), np.int32)
        for start in range(0, n, DRAW_CHUNK):
            size = min(n, start + DRAW_CHUNK) - start
            _k.draw(self.cum, self.guide, self.last, rng.random(size), out[:size])
            counts += np.bincount(out[:size], minlength=V)
        return counts


class CategoricalModel(NamedTuple):
    """A fitted count model.

    Attributes
    ----------
    counts : ndarray, shape (V,), int64
        Training counts.
    total : int
        Training-set size N.
    probs, logp : ndarray, shape (V,), float64
        Probabilities and their logs (``-inf`` where 0).
    table : SamplingTable
        For plain draws from ``probs``.
    """

    counts: np.ndarray
    total: int
    probs: np.ndarray
    logp: np.ndarray
    table: SamplingTable


@dataclass(frozen=True, eq=False)
class CategoricalHeldout:
    """What the metrics compare against, per seed.

    Attributes
    ----------
    counts : ndarray, shape (V,), int64
        Held-out real draws, as counts per symbol.
    p0 : ndarray, shape (V,), float64
        Generation 0's model (fitted on R).
    """

    counts: np.ndarray
    p0: np.ndarray


class CategoricalExperiment(ArrayExperiment):
    """The categorical experiment for :func:`hoi_fast.experiment.run_cell`.

    Parameters
    ----------
    config : CategoricalConfig
    """

    name = "categorical"
    config_class = CategoricalConfig

    def __init__(self, config):
        super().__init__(config)
        self.truth = truth_probabilities(config)
        self.log_truth = np.log(self.truth)
        self.tail = self.truth <= config.tail_weight
        self.truth_table = SamplingTable.of(self.truth)
        self.k = config.k if config.smoothing == "add-k" else 0.0
        with np.errstate(divide="ignore"):  # log 0 = -inf for a count of 0 under mle
            self.log_table = np.log(np.arange(LOG_TABLE_SIZE) + self.k)
        self.biased = config.temperature != 1.0 or 0 < config.top_k < config.vocab_size or config.top_p < 1.0
        self.store_counts = config.vocab_size <= COUNTS_MAX_VOCAB

    def notes(self):
        """One-line remarks the grid prints once before running."""
        if self.tail.any():
            return []
        return [f"categorical: no symbol has truth probability <= categorical.tail_weight "
                f"({self.config.tail_weight:g}), so the truth has no tail: tail_nll is NaN and tail_mass 0"]

    # -- data -----------------------------------------------------------------

    def real_pool(self, rng):
        return self.truth_table.draw(self.config.samples, rng)

    def heldout(self, rng, pool):
        counts = self.truth_table.draw_counts(self.config.heldout, rng)
        return CategoricalHeldout(counts, self.fit([pool], rng).probs)

    def real_subset(self, pool, m, rng):
        return _without_replacement(pool, m, rng)

    def fresh_real(self, m, rng):
        return self.truth_table.draw(m, rng)

    def subsample(self, parts, n, rng):
        items = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return [_without_replacement(items, n, rng)]

    # -- model ----------------------------------------------------------------

    def fit(self, parts, rng):
        """The count model of the training parts (``rng`` is not used)."""
        more = _NO_DRAWS if len(parts) == 1 else parts[1] if len(parts) == 2 else np.concatenate(parts[1:])
        counts, probs, logp, cum, guide, last = _k.fit_model(parts[0], more, self.config.vocab_size, self.k,
                                                             self.log_table)
        return CategoricalModel(counts, parts[0].shape[0] + more.shape[0], probs, logp,
                                SamplingTable(cum, guide, int(last)))

    def sample(self, model, n, rng):
        """``n`` plain draws from ``model``: int32 array (n,)."""
        return model.table.draw(n, rng)

    def synthesize(self, model, n, rng, first_model):
        """``n`` synthetic draws after temperature, top-k and top-p (module docstring); acceptance 1."""
        if not self.biased:
            return model.table.draw(n, rng), 1.0
        return SamplingTable.of(self.biased_weights(model)).draw(n, rng), 1.0

    def biased_weights(self, model):
        """Unnormalised synthetic sampling weights of ``model``: float64 array (V,)."""
        c = self.config
        out = np.empty(c.vocab_size)
        _k.biased(model.probs, model.logp, c.temperature, c.top_k, c.top_p, out)
        return out

    # -- metrics --------------------------------------------------------------

    def metrics(self, model, parts, heldout, rng):
        out = np.empty(len(_k.METRIC_NAMES))
        t = model.table
        _k.metrics(model.counts, model.probs, model.logp, self.truth, self.log_truth, self.tail,
                   heldout.counts, heldout.p0, t.cum, t.guide, t.last, rng.random(self.config.self_samples), out)
        row = dict(zip(_k.METRIC_NAMES, out.tolist()))
        if self.store_counts:
            row["counts"] = model.counts
        return row

    def metric_specs(self):
        specs = [
            MetricSpec("real_nll", "nats", "mean negative log-likelihood of the held-out real draws of positive "
                       "model probability (the others are counted in unseen_events; 0 if every draw is unseen)",
                       role="real"),
            MetricSpec("self_nll", "nats", "mean negative log-likelihood of fresh draws from the model itself",
                       role="self"),
            MetricSpec("tail_nll", "nats", "mean negative log-likelihood of the held-out real draws of tail symbols "
                       "(truth probability <= tail_weight) of positive model probability (NaN if there are none)",
                       role="tail", nan_ok=True),
            MetricSpec("unseen_events", "count", "held-out real draws of model probability 0 (mle only has any)"),
            MetricSpec("kl_support", "nats", "KL(truth restricted to the model's support and renormalised || model)"),
            MetricSpec("missing_mass", "1", "truth probability of the symbols of model probability 0"),
            MetricSpec("tv", "1", "total variation distance between the model and the truth"),
            MetricSpec("support", "count", "symbols of positive model probability"),
            MetricSpec("seen", "count", "symbols with a positive count in the training set"),
            MetricSpec("entropy", "nats", "entropy of the model"),
            MetricSpec("collision", "1", "collision probability of the model, sum of p squared"),
            MetricSpec("tail_mass", "1", "model probability of the truth's tail (symbols with truth probability "
                       "<= tail_weight)"),
            MetricSpec("pool_l2", "1", "squared L2 distance to generation 0's model (fitted on the real pool R)"),
            MetricSpec("pool_tv", "1", "total variation distance to generation 0's model (fitted on R)"),
        ]
        if self.store_counts:
            specs.append(MetricSpec("counts", "count", "training-set count of each symbol", ("symbol",)))
        return specs

    def coords(self):
        return {"symbol": np.arange(self.config.vocab_size)} if self.store_counts else {}


def _without_replacement(items, m, rng):
    """``m`` of ``items`` drawn without replacement (a random subset in random order).

    The first ``m`` steps of a Fisher–Yates shuffle of a copy, driven by
    ``rng.random(m)`` (:func:`hoi_fast.kernels.categorical.partial_shuffle`).
    """
    shuffled = items.copy()
    _k.partial_shuffle(shuffled, rng.random(m))
    return shuffled[:m]
