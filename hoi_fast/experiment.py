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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

REGIMES = ("mix", "fresh", "accumulate")


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

    def heldout(self, rng: np.random.Generator) -> Any:
        """Held-out evaluation data; never trains anything."""

    def real_subset(self, pool: Any, m: int, rng: np.random.Generator) -> Any:
        """``m`` real items drawn anew from the pool R (regime ``mix``)."""

    def fresh_real(self, m: int, rng: np.random.Generator) -> Any:
        """``m`` fresh real items from the real source (regime ``fresh``)."""

    def fit(self, parts: list, rng: np.random.Generator) -> Any:
        """Fit a model on the training parts."""

    def sample(self, model: Any, n: int, rng: np.random.Generator) -> Any:
        """``n`` synthetic items from ``model``."""

    def metrics(self, model: Any, parts: list, heldout: Any, rng: np.random.Generator) -> dict:
        """Per-generation metrics: name -> scalar or array (see :meth:`metric_specs`)."""

    def metric_specs(self) -> list:
        """:class:`MetricSpec` of every metric :meth:`metrics` returns."""

    def coords(self) -> dict:
        """Coordinates of the extra dimensions used by the metrics."""


def real_count(alpha, n):
    """Number of real items ``m = floor((1 - alpha) * n + 1/2)``."""
    return int(math.floor((1.0 - alpha) * n + 0.5))


def synthetic_count(alpha, n):
    """Number of synthetic items ``n - m`` for a training set of size ``n``."""
    return n - real_count(alpha, n)


@dataclass
class CellResult:
    """Metrics of one cell, each an array with a leading generation axis."""

    metrics: dict = field(default_factory=dict)


def next_training_parts(experiment, regime, alpha, generation, model, parts, pool, streams, rng):
    """Build the training parts of ``generation`` (>= 1) from the previous model.

    Parameters
    ----------
    experiment : Experiment
    regime : {"mix", "fresh", "accumulate"}
    alpha : float
        Synthetic fraction in [0, 1].
    generation : int
        The generation about to be fitted.
    model : object
        The model of ``generation - 1``.
    parts : list
        Training parts of ``generation - 1`` (used by ``accumulate``).
    pool : object
        The real pool R.
    streams : hoi_fast.seeding.CellStreams
    rng : numpy.random.Generator
        The stream of ``generation``.
    """
    n = experiment.train_size(generation)
    if regime == "accumulate":
        n_syn = real_count(1.0 - alpha, n)
        if n_syn == 0:
            return parts
        return parts + [experiment.sample(model, n_syn, rng)]
    m = real_count(alpha, n)
    if regime == "mix":
        real = experiment.real_subset(pool, m, rng) if m else None
    elif regime == "fresh":
        real = experiment.fresh_real(m, streams.fresh(generation)) if m else None
    else:
        raise ValueError(f"`regime` must be one of {REGIMES}, got {regime!r}")
    new_parts = [] if real is None else [real]
    if n - m:
        new_parts.append(experiment.sample(model, n - m, rng))
    return new_parts


def run_cell(experiment, alpha, generations, regime, streams):
    """Run one cell: ``generations`` fits of the recursive loop.

    Parameters
    ----------
    experiment : Experiment
    alpha : float
        Synthetic fraction in [0, 1].
    generations : int
        Number of generations G (generation 0 trains on the real pool only).
    regime : {"mix", "fresh", "accumulate"}
    streams : hoi_fast.seeding.CellStreams

    Returns
    -------
    dict
        Metric name -> float64 array of shape ``(generations, *extra)``.
    """
    if regime not in REGIMES:
        raise ValueError(f"`regime` must be one of {REGIMES}, got {regime!r}")
    pool = experiment.real_pool(streams.real())
    heldout = experiment.heldout(streams.heldout())
    parts = [pool]
    rows = []
    for g in range(generations):
        rng = streams.generation(g)
        if g > 0:
            parts = next_training_parts(
                experiment, regime, alpha, g, model, parts, pool, streams, rng
            )
        model = experiment.fit(parts, rng)
        rows.append(experiment.metrics(model, parts, heldout, rng))
    return {
        spec.name: np.asarray([row[spec.name] for row in rows], dtype=np.float64)
        for spec in experiment.metric_specs()
    }
