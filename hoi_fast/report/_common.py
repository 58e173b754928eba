"""What the report's modules share (a leaf: it imports none of them).

:class:`Options` (the command-line flags, with ``ALPHA_RULES``),
:class:`ReportError`, and the helpers of both the figures and the summary:
number formatting (``_fmt``), the words of a band and of an α* rule, the
metric's units and a slice of a band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hoi_fast import stats


ALPHA_RULES = ("sequence", "first")


class ReportError(ValueError):
    """The report cannot be made as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Options:
    """What the report computes (the command-line flags).

    Attributes
    ----------
    metric : str or None
        Real-data metric; None means the experiment's metric of role ``real``.
    alphas : tuple of float or None
        α drawn as curves and listed in the tables; None = a spread of 6.
    level : float
    method : {"bca", "percentile", "t"}
    n_resamples : int
        Bootstrap resamples of the bands.
    alpha_resamples : int
        Bootstrap resamples of the seeds for the α*, isotonic-threshold and
        plateau intervals.
    tolerance : float
        Relative tolerance of the α* tests and of a seed's collapse.
    generation : int
        Generation index of the headline α* and tables (-1 = last).
    simultaneous : bool
        Draw sup-t bands that cover each whole curve.
    seed : int
        Seed of every bootstrap stream.
    alpha_rule : {"sequence", "first"}
        α* by the fixed-sequence test (family-wise error control) or the
        smallest α whose own test passes.
    """

    metric: str | None = None
    alphas: tuple | None = None
    level: float = 0.95
    method: str = "bca"
    n_resamples: int = 9999
    alpha_resamples: int = 2000
    tolerance: float = 0.01
    generation: int = -1
    simultaneous: bool = False
    seed: int = 0
    alpha_rule: str = "sequence"


def _fmt(x, digits=3):
    if isinstance(x, (str, bytes, np.str_, np.bytes_)):  # a string-valued sweep coordinate, e.g. gmm.filter
        return x.decode("utf-8") if isinstance(x, (bytes, np.bytes_)) else str(x)
    x = float(x)
    if np.isnan(x):
        return "n/a"
    if np.isinf(x):
        return "none" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def _band_words(options):
    kind = "simultaneous sup-t" if options.simultaneous else {
        "bca": "BCa bootstrap", "percentile": "percentile bootstrap", "t": "Student-t"}[options.method]
    return f"{100 * options.level:g}% {kind} band"


def _rule_words(rule):
    return {"sequence": "fixed-sequence α*", "first": "first-passing α*", "isotonic": "isotonic threshold"}[rule]


def _units(loaded):
    return loaded.attrs.get(loaded.metric, {}).get("units", "")


def _take(band, *index):
    return stats.Band(band.mean[index], band.low[index], band.high[index], band.method[index],
                      band.n[index], band.level, band.simultaneous)
