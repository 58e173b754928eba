"""One grid cell: the recursive train-on-your-own-output loop.

The loop is written once for every experiment.  An experiment (see
:mod:`hoi_fast.experiments`) supplies the data-specific steps through the
:class:`Experiment` protocol; this module owns the regimes, the generation
schedule and the bookkeeping of metrics.

Regimes (``n`` is the experiment's training-set size, ``m = round((1 - α) n)``
with halves rounded up, i.e. ``floor((1 - α) n + 1/2)``):

``mix``
    Generation ``g >= 1`` trains on ``m`` real items drawn anew from the real
    pool R plus ``n - m`` items sampled from generation ``g - 1``'s model.
    The preprint's ``D_{g+1} = (1 - α) D_real + α D_syn^g``.
``fresh``
    As ``mix``, but the ``m`` real items are fresh draws from the real source
    (the truth, or a fresh window of the training corpus).
``accumulate``
    R together with every synthetic set so far, each of ``round(α n)`` items
    from the model of its generation: the training set grows.
``accumulate-subsample``
    As ``accumulate``, but each generation trains on a subsample of ``n``
    items of the accumulated pool (the experiment decides the unit: points,
    or text chunks), so the training-set size stays constant (while the pool
    holds no more than ``n`` items, on the whole pool).

``n`` may change with the generation (a sample-size schedule, see
:func:`scheduled_size`).  Under ``mix``, a generation that needs more real
items than R holds takes all of R as often as it fits, then the rest drawn
anew from R.

Synthetic items go through :meth:`Experiment.synthesize`, which applies the
experiment's sampling bias and filters and reports the share of candidates it
accepted; the loop records it as the metric ``acceptance``, and the size of
every training set as ``train_size``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

REGIMES = ("mix", "fresh", "accumulate", "accumulate-subsample")
SCHEDULES = ("constant", "linear", "geometric")


@dataclass(frozen=True)
class MetricSpec:
    """How a per-generation metric is stored.

    Attributes
    ----------
    name : str
        Dataset name in the results file.
    units : str
        Units attribute (e.g. ``"nats"``, ``"bits/char"``, ``"1"``).
    long_name : str
        Human-readable description.
    extra_dims : tuple of str
        Dimensions after ``(alpha, seed, generation)``, e.g. ``("component",)``.
        Their coordinates come from :meth:`Experiment.coords`.
    """

    name: str
    units: str
    long_name: str
    extra_dims: tuple = ()


class Experiment(Protocol):
    """What the loop needs from an experiment.

    "Data" is whatever one training part is (an ``(n, 2)`` float64 array of
    points, an int code array of characters); a training set is a list of
    parts, so that experiments which must not join parts (text segments) can
    keep them apart.
    """

    name: str

    def train_size(self, generation: int) -> int:
        """Training-set size ``n`` for ``generation``."""

    def real_pool(self, rng: np.random.Generator) -> Any:
        """The seed's real training pool R (generation 0 trains on it)."""

    def heldout(self, rng: np.random.Generator, pool: Any) -> Any:
        """Held-out evaluation data; never trains anything.

        ``pool`` is R, for metrics defined relative to it (the n-gram tail).
        """

    def real_subset(self, pool: Any, m: int, rng: np.random.Generator) -> Any:
        """``m`` real items drawn anew from the pool R (regime ``mix``)."""

    def fresh_real(self, m: int, rng: np.random.Generator) -> Any:
        """``m`` fresh real items from the real source (regime ``fresh``)."""

    def fit(self, parts: list, rng: np.random.Generator) -> Any:
        """Fit a model on the training parts."""

    def sample(self, model: Any, n: int, rng: np.random.Generator) -> Any:
        """``n`` synthetic items from ``model`` (plain, unbiased sampling)."""

    def synthesize(self, model: Any, n: int, rng: np.random.Generator, first_model: Any) -> tuple:
        """``n`` synthetic training items after sampling bias and filters.

        Returns ``(data, acceptance)``: the share of candidates the filters
        accepted (1.0 without filters).  ``first_model`` is generation 0's model,
        trained on real data only (a reference for quality filters).
        """

    def subsample(self, parts: list, n: int, rng: np.random.Generator) -> list:
        """``n`` items drawn without replacement from the union of ``parts``."""

    def metrics(self, model: Any, parts: list, heldout: Any, rng: np.random.Generator) -> dict:
        """Per-generation metrics: name -> scalar or array (see :meth:`metric_specs`)."""

    def metric_specs(self) -> list:
        """:class:`MetricSpec` of every metric :meth:`metrics` returns."""

    def coords(self) -> dict:
        """Coordinates of the extra dimensions used by the metrics."""


LOOP_METRICS = (
    MetricSpec("acceptance", "1", "share of synthetic candidates accepted by the filters "
               "(NaN at generation 0)"),
    MetricSpec("train_size", "count", "items in the training set of the generation"),
)


def cell_metric_specs(experiment):
    """Every metric a cell of ``experiment`` records: the experiment's and the loop's."""
    return list(experiment.metric_specs()) + list(LOOP_METRICS)


def scheduled_size(n, schedule, growth, generation):
    """Training-set size of ``generation`` under a sample-size schedule.

    ``constant``: n; ``linear``: round(n (1 + growth g)); ``geometric``:
    round(n growth^g).
    """
    if schedule == "constant":
        return int(n)
    if schedule == "linear":
        return int(round(n * (1.0 + growth * generation)))
    if schedule == "geometric":
        return int(round(n * growth ** generation))
    raise ValueError(f"`schedule` must be one of {SCHEDULES}, got {schedule!r}")


def real_count(alpha, n):
    """Number of real items ``m = floor((1 - alpha) * n + 1/2)``."""
    return int(math.floor((1.0 - alpha) * n + 0.5))


def synthetic_count(alpha, n):
    """Number of synthetic items ``n - m`` for a training set of size ``n``."""
    return n - real_count(alpha, n)


def real_parts(experiment, pool, m, rng):
    """``m`` real items from the pool R: all of R as often as it fits, the rest drawn anew."""
    repeats, rest = divmod(m, len(pool))
    parts = [pool] * repeats
    if rest:
        parts.append(experiment.real_subset(pool, rest, rng))
    return parts


def next_training_parts(experiment, regime, alpha, generation, model, history, pool, streams, rng,
                        first_model):
    """Build the training parts of ``generation`` (>= 1) from the previous model.

    Parameters
    ----------
    experiment : Experiment
    regime : str
        One of :data:`REGIMES`.
    alpha : float
        Synthetic fraction in [0, 1].
    generation : int
        The generation about to be fitted.
    model : object
        The model of ``generation - 1``.
    history : list
        Under the accumulating regimes, R and every synthetic set so far
        (extended in place).
    pool : object
        The real pool R.
    streams : hoi_fast.seeding.CellStreams
    rng : numpy.random.Generator
        The stream of ``generation``.
    first_model : object
        Generation 0's model.

    Returns
    -------
    parts : list
    acceptance : float
        Share of synthetic candidates accepted (NaN if none were drawn).
    """
    n = experiment.train_size(generation)
    acceptance = np.nan
    if regime.startswith("accumulate"):
        n_syn = real_count(1.0 - alpha, n)
        if n_syn:
            synthetic, acceptance = experiment.synthesize(model, n_syn, rng, first_model)
            history.append(synthetic)
        if regime == "accumulate" or sum(len(p) for p in history) <= n:
            return list(history), acceptance
        return experiment.subsample(history, n, rng), acceptance
    m = real_count(alpha, n)
    if regime == "mix":
        parts = real_parts(experiment, pool, m, rng) if m else []
    elif regime == "fresh":
        parts = [experiment.fresh_real(m, streams.fresh(generation))] if m else []
    else:
        raise ValueError(f"`regime` must be one of {REGIMES}, got {regime!r}")
    if n - m:
        synthetic, acceptance = experiment.synthesize(model, n - m, rng, first_model)
        parts.append(synthetic)
    return parts, acceptance


def run_cell(experiment, alpha, generations, regime, streams):
    """Run one cell: ``generations`` fits of the recursive loop.

    Parameters
    ----------
    experiment : Experiment
    alpha : float
        Synthetic fraction in [0, 1].
    generations : int
        Number of generations G (generation 0 trains on the real pool only).
    regime : str
        One of :data:`REGIMES`.
    streams : hoi_fast.seeding.CellStreams

    Returns
    -------
    dict
        Metric name -> float64 array of shape ``(generations, *extra)``, for
        every spec of :func:`cell_metric_specs`.
    """
    if regime not in REGIMES:
        raise ValueError(f"`regime` must be one of {REGIMES}, got {regime!r}")
    pool = experiment.real_pool(streams.real())
    heldout = experiment.heldout(streams.heldout(), pool)
    parts, history = [pool], [pool]
    model = first_model = None
    rows = []
    for g in range(generations):
        rng = streams.generation(g)
        acceptance = np.nan
        if g > 0:
            parts, acceptance = next_training_parts(
                experiment, regime, alpha, g, model, history, pool, streams, rng, first_model
            )
        model = experiment.fit(parts, rng)
        if g == 0:
            first_model = model
        row = experiment.metrics(model, parts, heldout, rng)
        row["acceptance"] = acceptance
        row["train_size"] = float(sum(len(p) for p in parts))
        rows.append(row)
    return {
        spec.name: np.asarray([row[spec.name] for row in rows], dtype=np.float64)
        for spec in cell_metric_specs(experiment)
    }
