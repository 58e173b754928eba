"""Confidence bands over seeds, paired degradation, the critical α, time to collapse and rates.

Pure functions over NumPy arrays or xarray DataArrays.  The grid's metric
cubes have the layout ``(alpha, [sweeps...], seed, generation)`` with NaN
where a cell is not done; every function here takes the positions of the axes
it needs (the seed axis, the generation axis, the α axis) so that new sweep
dimensions are carried along as batch dimensions.  With a DataArray
(``xarray.open_dataset(path, group=..., engine="h5netcdf").real_nll``) the
axes may be given by dimension name and default to the dimensions named
``alpha``, ``seed`` and ``generation``; α then comes from the ``alpha``
coordinate.  Results are NumPy arrays.

Seeds are the replicates: all bands, tests and intervals are over seeds.  A
NaN value is "not computed" and is left out of its point only (a point with
``k`` done seeds uses those ``k``).

Modules
-------
:mod:`~hoi_fast.stats.bands`
    :func:`seed_band`, :func:`simultaneous_band`, :class:`Band` (and
    ``METHODS``, ``BOOTSTRAP_MEMORY``).
:mod:`~hoi_fast.stats.paired`
    :func:`paired_degradation`, :func:`illusion_gap`,
    :func:`lower_confidence_bound`.
:mod:`~hoi_fast.stats.critical`
    :func:`alpha_thresholds`, :func:`critical_alpha`,
    :func:`isotonic_threshold`, :class:`CriticalAlpha` (and ``RULES``).
:mod:`~hoi_fast.stats.survival`
    :func:`collapse_times`, :func:`time_to_collapse`, :class:`CollapseTimes`,
    :class:`Survival` (and ``SURVIVAL_BANDS``).
:mod:`~hoi_fast.stats.rates`
    :func:`degradation_rate`, :class:`Rate` (and ``HALF_LIFE_RANGE``).
:mod:`~hoi_fast.stats._common`
    Private: argument validation and moments under bootstrap weights,
    shared by the others.

Every public name is importable from :mod:`hoi_fast.stats` itself.

Summary of the statistics
-------------------------
:func:`seed_band`
    Mean over seeds with a two-sided confidence band at every point: BCa or
    percentile bootstrap of the mean, or a Student-t interval.  Points where
    every seed agrees get a zero-width band (method ``"exact"``), never NaN.
:func:`simultaneous_band`
    A band that covers a whole curve (e.g. all generations at one α) at the
    nominal level: the sup-t bootstrap.
:func:`paired_degradation`
    ``metric(α) - metric(α = 0)`` per seed.  The real pool and the held-out
    sets of a seed are shared by every α (common random numbers), so the
    difference is paired and much less noisy than the difference of means.
:func:`critical_alpha`, :func:`isotonic_threshold`, :func:`alpha_thresholds`
    α*, the smallest α from which the paired degradation is significantly
    above a tolerance: by a fixed-sequence test from the largest α down
    (family-wise error control, the default), or by the first α that passes
    its own test (``rule="first"``, no multiplicity control); and the α where
    an isotonic (monotone in α) fit of the mean degradation crosses the
    tolerance, interpolated between grid points.  Each with a bootstrap
    interval that resamples whole seeds.
:func:`collapse_times`, :func:`time_to_collapse`
    The first generation at which a seed's paired degradation exceeds the
    tolerance, right-censored at the last generation; Kaplan-Meier survival
    curves (``scipy.stats.ecdf``) with pointwise bands, the median number of
    generations to collapse with its interval, and the share of seeds that
    never collapse within the horizon.
:func:`degradation_rate`
    The slope of the paired degradation over generations with an interval
    over seeds, and where the curve saturates its plateau and half-life.
:func:`illusion_gap`
    The real metric minus the self metric per seed: how much better the model
    looks on its own samples than on real held-out data.
"""

from hoi_fast.stats.bands import BOOTSTRAP_MEMORY, METHODS, Band, seed_band, simultaneous_band
from hoi_fast.stats.critical import RULES, CriticalAlpha, alpha_thresholds, critical_alpha, isotonic_threshold
from hoi_fast.stats.paired import illusion_gap, lower_confidence_bound, paired_degradation
from hoi_fast.stats.rates import HALF_LIFE_RANGE, Rate, degradation_rate
from hoi_fast.stats.survival import SURVIVAL_BANDS, CollapseTimes, Survival, collapse_times, time_to_collapse

__all__ = [
    # bands
    "METHODS", "BOOTSTRAP_MEMORY", "Band", "seed_band", "simultaneous_band",
    # paired differences
    "paired_degradation", "illusion_gap", "lower_confidence_bound",
    # the critical alpha and the isotonic threshold
    "RULES", "CriticalAlpha", "alpha_thresholds", "critical_alpha", "isotonic_threshold",
    # generations to collapse
    "SURVIVAL_BANDS", "CollapseTimes", "Survival", "collapse_times", "time_to_collapse",
    # rates
    "HALF_LIFE_RANGE", "Rate", "degradation_rate",
]
