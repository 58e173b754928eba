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

Generation 0 trains on R alone with a stream shared by every α (see
:mod:`hoi_fast.seeding`), so it is computed once per seed by
:func:`first_generation` and handed to :func:`run_cell` for every α of that
seed.  Every metric row is checked (:func:`check_row`): the names must be
those of the specs, the shapes those of their extra dimensions, and a value
may be non-finite only where its spec says so (``nan_ok``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

import numpy as np

from hoi_fast._validate import SCHEDULES, ConfigError, scheduled_size  # noqa: F401  (re-exported)

REGIMES = ("mix", "fresh", "accumulate", "accumulate-subsample")
ROLES = ("real", "self", "tail")


class ExperimentError(ConfigError):
    """An experiment broke its contract (a metric not in its specs, a wrong shape,
    a non-finite value where none is allowed) or its settings cannot be run."""


@dataclass(frozen=True)
class MetricSpec:
    """How a per-generation metric is stored and read.

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
    role : {"real", "self", "tail"} or None
        What the report does with it: ``"real"`` is a loss on held-out real
        data (higher is worse: the collapse, degradation and α* figures),
        ``"self"`` the same loss on the model's own samples (the
        hall-of-illusions gap), ``"tail"`` the same loss on the rare part of
        the real data (the tail figure).  The store writes it as the
        dataset attribute ``role``.
    nan_ok : bool
        The value may legitimately be NaN or infinite (documented in
        ``long_name``); otherwise a non-finite value stops the run with
        :class:`ExperimentError` instead of being stored as done.
    """

    name: str
    units: str
    long_name: str
    extra_dims: tuple = ()
    role: str | None = None
    nan_ok: bool = False

    def __post_init__(self):
        if self.role is not None and self.role not in ROLES:
            raise ExperimentError(f"MetricSpec `{self.name}`: `role` must be one of {', '.join(ROLES)} "
                                  f"or None, got {self.role!r}")
        object.__setattr__(self, "extra_dims", tuple(self.extra_dims))


class Experiment(Protocol):
    """What the loop needs from an experiment.

    "Data" is whatever one training part is (an ``(n, d)`` float64 array of
    points, an int code array of characters); a training set is a list of
    parts, so that experiments which must not join parts (text segments) can
    keep them apart.  ``len(part)`` is its number of items.

    An experiment class also names its configuration: ``config_class`` is a
    frozen dataclass whose fields all have defaults, and the class is built
    as ``cls(config)``.  A short ``name`` (optional for plug-ins) names its
    TOML table, its ``--sweep`` prefix and its results group.
    :class:`ArrayExperiment` implements everything but the data, the model
    and the metrics for experiments whose items are rows of an array.
    """

    name: str
    config_class: type

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


#: The methods :func:`run_cell` calls; a plug-in lacking one is refused up front.
PROTOCOL_METHODS = ("train_size", "real_pool", "heldout", "real_subset", "fresh_real", "fit", "sample",
                    "synthesize", "subsample", "metrics", "metric_specs", "coords")


class ArrayExperiment:
    """A base for experiments whose items are the rows of a NumPy array.

    Subclasses set ``config_class`` (a frozen dataclass with a ``samples``
    field, and optionally ``schedule``/``growth``) and implement
    :meth:`real_pool`, :meth:`heldout`, :meth:`fit`, :meth:`sample`,
    :meth:`metrics` and :meth:`metric_specs`; :meth:`fresh_real` if they
    support the ``fresh`` regime.  The rest is provided: sizes from the
    schedule, real subsets and subsamples as rows drawn without replacement,
    synthesis as plain sampling (acceptance 1), no extra coordinates.
    """

    name = None
    config_class = None

    def __init__(self, config):
        self.config = config

    def train_size(self, generation):
        c = self.config
        return scheduled_size(c.samples, getattr(c, "schedule", "constant"), getattr(c, "growth", 1.0),
                              generation)

    def real_subset(self, pool, m, rng):
        return pool[rng.choice(len(pool), size=m, replace=False)]

    def fresh_real(self, m, rng):
        raise ExperimentError(f"experiment {type(self).__name__} has no fresh real source: "
                              "implement fresh_real or use another --regime")

    def synthesize(self, model, n, rng, first_model):
        return self.sample(model, n, rng), 1.0

    def subsample(self, parts, n, rng):
        X = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return [X[rng.choice(len(X), size=n, replace=False)]]

    def coords(self):
        return {}


LOOP_METRICS = (
    MetricSpec("acceptance", "1", "share of synthetic candidates accepted by the filters "
               "(NaN at generation 0)", nan_ok=True),
    MetricSpec("train_size", "count", "items in the training set of the generation"),
)


def cell_metric_specs(experiment):
    """Every metric a cell of ``experiment`` records: the experiment's and the loop's."""
    return list(experiment.metric_specs()) + list(LOOP_METRICS)


@functools.lru_cache(maxsize=4096)
def _real_count(alpha, n):
    exact = (1 - Fraction(repr(alpha))) * n + Fraction(1, 2)
    return int(math.floor(exact))


def real_count(alpha, n):
    """Number of real items ``m = floor((1 - alpha) n + 1/2)``, halves rounded up.

    Computed exactly from the shortest decimal of ``alpha`` (``repr``), so
    α = 0.9 and n = 25 give 3 (floating point gives ``2.4999999999999996 + 0.5``
    and 2).  ``m`` may be 0 (α close to 1): the generation is then all synthetic.
    """
    return _real_count(float(alpha), int(n))  # exact fractions cost ~10 µs; a grid asks the same few


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


@dataclass(frozen=True)
class FirstGeneration:
    """What every α of one seed shares: R, the held-out data, generation 0's model and metrics.

    Attributes
    ----------
    pool : object
        The real pool R.
    heldout : object
        The held-out evaluation data.
    model : object
        Generation 0's model, fitted on R alone.
    row : dict
        Generation 0's checked metrics (the loop's ``acceptance`` and
        ``train_size`` included).
    """

    pool: Any
    heldout: Any
    model: Any
    row: dict


def first_generation(experiment, streams, specs=None):
    """Generation 0 of a seed: R, held-out data, the model fitted on R and its metrics.

    It depends on neither α nor the swept values of parameters that act on
    synthetic data only, so the grid computes it once per seed and passes it
    to :func:`run_cell` for every α.

    Parameters
    ----------
    experiment : Experiment
    streams : hoi_fast.seeding.CellStreams
        Any cell of the seed (only the α-independent streams are used).
    specs : list of MetricSpec, optional
        Default :func:`cell_metric_specs` of ``experiment``.
    """
    specs = cell_metric_specs(experiment) if specs is None else specs
    pool = experiment.real_pool(streams.real())
    heldout = experiment.heldout(streams.heldout(), pool)
    rng = streams.generation(0)
    parts = [pool]
    model = experiment.fit(parts, rng)
    row = experiment.metrics(model, parts, heldout, rng)
    row["acceptance"] = np.nan
    row["train_size"] = float(len(pool))
    return FirstGeneration(pool, heldout, model, RowCheck(experiment, specs)(row, 0))


def check_row(experiment, row, specs, generation):
    """One generation's metrics as float64 values, checked against the specs.

    Scalar metrics come back as ``numpy.float64``, metrics with extra
    dimensions as float64 arrays (the same numbers :func:`numpy.asarray` with
    ``dtype=float64`` gives).  A loop over generations checks through one
    :class:`RowCheck` instead.

    Raises
    ------
    ExperimentError
        If a name is missing or not in the specs, a shape does not match the
        spec's extra dimensions, or a value is non-finite where the spec does
        not allow it.
    """
    return RowCheck(experiment, specs)(row, generation)


class RowCheck:
    """:func:`check_row` for every generation of a cell, with what the specs imply worked out once.

    The names and the sizes of the extra dimensions (from
    ``experiment.coords()``, asked at the first metric that has one) are the
    same for every generation.  Worked out per row, a check cost 10-40 µs,
    8-14% of a toy experiment's generation, and rebuilding the n-gram's
    coordinates was half of its check.

    Parameters
    ----------
    experiment : Experiment
    specs : sequence of MetricSpec
    """

    def __init__(self, experiment, specs):
        self.experiment, self.specs = experiment, tuple(specs)
        self._names = {s.name for s in self.specs}
        self._limits = None

    def _limit(self, spec):
        if self._limits is None:
            coords = self.experiment.coords()
            self._limits = {s.name: tuple(len(coords[d]) for d in s.extra_dims) for s in self.specs
                            if s.extra_dims}
        return self._limits[spec.name]

    def __call__(self, row, generation):
        """The checked row of generation ``generation`` (see :func:`check_row`)."""
        experiment = self.experiment
        if row.keys() != self._names:
            _name_mismatch(experiment, row, self.specs)
        out = {}
        for spec in self.specs:
            raw = row[spec.name]
            if not spec.extra_dims and isinstance(raw, _PLAIN_SCALARS):
                # a plain number: no array machinery (this check runs once per generation and metric)
                value = np.float64(raw)
                if not (spec.nan_ok or math.isfinite(value)):
                    _non_finite(experiment, spec, np.asarray(value), generation)
                out[spec.name] = value
                continue
            value = np.asarray(raw, dtype=np.float64)
            if spec.extra_dims:
                limit = self._limit(spec)
                ok = value.ndim == len(limit) and all(s <= n for s, n in zip(value.shape, limit))
            else:
                ok = value.ndim == 0
            if not ok:
                raise ExperimentError(f"experiment {type(experiment).__name__} returned metric {spec.name!r} "
                                      f"with shape {value.shape}; its spec has extra dimensions "
                                      f"{spec.extra_dims or '()'}")
            if not spec.nan_ok and not np.isfinite(value).all():
                _non_finite(experiment, spec, value, generation)
            out[spec.name] = value
        return out


_PLAIN_SCALARS = (float, int, np.floating, np.integer, np.bool_, bool)


def _name_mismatch(experiment, row, specs):
    names = [s.name for s in specs]
    extra = sorted(set(row) - set(names))
    missing = [n for n in names if n not in row]
    what = (f"returned metric {extra[0]!r}, which is not in its metric_specs()" if extra
            else f"did not return metric {missing[0]!r} of its metric_specs()")
    raise ExperimentError(f"experiment {type(experiment).__name__} {what}; "
                          f"make metrics() and metric_specs() agree")


def _non_finite(experiment, spec, value, generation):
    bad = value.ravel()[~np.isfinite(value.ravel())][0]
    raise ExperimentError(
        f"experiment {type(experiment).__name__}: metric {spec.name!r} is {bad} at generation {generation}; "
        f"the cell is not stored (check the scales of the settings)")


def run_cell(experiment, alpha, generations, regime, streams, first=None):
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
    first : FirstGeneration, optional
        Generation 0 of this seed, if already computed (for another α).

    Returns
    -------
    dict
        Metric name -> float64 array of shape ``(generations, *extra)``, for
        every spec of :func:`cell_metric_specs`.

    Raises
    ------
    ExperimentError
        If a generation's metrics break :func:`check_row`; the message names
        the metric, the generation and the cell.
    """
    if regime not in REGIMES:
        raise ValueError(f"`regime` must be one of {REGIMES}, got {regime!r}")
    specs = cell_metric_specs(experiment)
    check = RowCheck(experiment, specs)
    try:
        if first is None:
            first = first_generation(experiment, streams, specs)
        pool, heldout, model = first.pool, first.heldout, first.model
        history = [pool]
        rows = [first.row]
        for g in range(1, generations):
            rng = streams.generation(g)
            parts, acceptance = next_training_parts(
                experiment, regime, alpha, g, model, history, pool, streams, rng, first.model
            )
            model = experiment.fit(parts, rng)
            row = experiment.metrics(model, parts, heldout, rng)
            row["acceptance"] = acceptance
            row["train_size"] = float(sum(len(p) for p in parts))
            rows.append(check(row, g))
    except ExperimentError as exc:
        raise ExperimentError(f"cell (alpha = {alpha:g}, seed {streams.seed_index}): {exc}") from None
    return {spec.name: _stack([row[spec.name] for row in rows]) for spec in specs}


def _stack(values):
    """Per-generation values as one float64 array, NaN-padded where a generation's extra axis is shorter."""
    if not isinstance(values[0], np.ndarray) or values[0].ndim == 0:
        return np.array(values, dtype=np.float64)  # scalars: one conversion, not one array per generation
    if all(v.shape == values[0].shape for v in values):
        return np.stack(values)
    shape = tuple(max(v.shape[i] for v in values) for i in range(values[0].ndim))
    out = np.full((len(values),) + shape, np.nan)
    for g, v in enumerate(values):
        out[(g,) + tuple(slice(0, s) for s in v.shape)] = v
    return out
