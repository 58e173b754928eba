"""``python -m hoi_fast.report RESULTS.h5 [--out DIR]``: figures and a summary of a grid.

For every experiment in the results file this writes PNG figures and one
Markdown summary (``summary.md``) whose first lines per experiment state
when and how fast held-out real performance degrades: the critical α* at the
last generation with its interval, the median number of generations to
collapse at a few α, and the degradation per generation.

``<experiment>_collapse.png``
    The real metric against generation, one line per α of a readable subset,
    coloured by α, each with its confidence band over seeds.
``<experiment>_degradation.png``
    Heatmap α × generation of the mean paired degradation
    ``metric(α) - metric(α = 0)``, with α* and the isotonic threshold of each
    generation drawn on it.
``<experiment>_critical_alpha.png``
    α* (fixed-sequence and first-passing rules) and the isotonic threshold
    against generation, with their bootstrap intervals.
``<experiment>_survival.png``
    Kaplan-Meier curves of the generations to collapse for a few α, the
    median generations to collapse against α, and the degradation per
    generation against α.
``<experiment>_gap.png``
    Real and self metric for a few α, and the gap real − self with its band.
``<experiment>_tail.png``
    The tail metric next to the overall one.

Only cells marked done are used, so a partially finished file gives a report
(the summary says how much is done).  Sweep dimensions between ``alpha`` and
``seed`` are faceted: one panel (and one α*) per combination of their values.
The report names no experiment: it finds the metrics by their stored role
(``real``, ``self``, ``tail``) and reads only those from the file.

Figures are drawn with matplotlib's object API on ``Figure`` objects (Agg
canvas), so importing this package never touches pyplot's global state or a
display.

Modules
-------
:mod:`~hoi_fast.report.loading`
    :func:`load`, :func:`read_layout`, :class:`Group`, :class:`Facet`,
    :class:`Loaded` (and ``CELL_TAIL``): only the metrics drawn, masked to
    the done cells, cut into facets.
:mod:`~hoi_fast.report.analysis`
    :func:`analyse`, :class:`Analysis` (and ``CURVES``, ``GAP_CURVES``):
    bands, paired degradation, α*, time to collapse and rates of one facet.
:mod:`~hoi_fast.report.figures`
    ``figure_collapse``, ``figure_degradation``, ``figure_critical``,
    ``figure_survival``, ``figure_gap``, ``figure_tail`` and their drawing
    helpers (and ``DPI``).
:mod:`~hoi_fast.report.summary`
    The Markdown of ``summary.md``: headline, tables, provenance (and
    ``HEADLINE_ALPHAS``).
:mod:`~hoi_fast.report.driver`
    :func:`make_report`, :func:`report_experiment` (and ``FIGURES``,
    ``READING``): the checks before any work, the workers, the files.
:mod:`~hoi_fast.report.cli`
    :func:`main`, :func:`build_parser` (and ``MAX_BAND_RESAMPLES``,
    ``MAX_ALPHA_RESAMPLES``); ``python -m hoi_fast.report`` runs
    :func:`main` (``__main__.py``).
:mod:`~hoi_fast.report._common`
    :class:`Options` (and ``ALPHA_RULES``), :class:`ReportError`, and the
    formatting helpers the figures and the summary share; a leaf.

Every public name is importable from :mod:`hoi_fast.report` itself.
"""

from hoi_fast.report._common import ALPHA_RULES, Options, ReportError
from hoi_fast.report.analysis import CURVES, GAP_CURVES, Analysis, analyse
from hoi_fast.report.cli import MAX_ALPHA_RESAMPLES, MAX_BAND_RESAMPLES, build_parser, main
from hoi_fast.report.driver import FIGURES, READING, make_report, report_experiment
from hoi_fast.report.figures import (
    DPI,
    figure_collapse,
    figure_critical,
    figure_degradation,
    figure_gap,
    figure_survival,
    figure_tail,
)
from hoi_fast.report.loading import CELL_TAIL, Facet, Group, Loaded, load, read_layout
from hoi_fast.report.summary import HEADLINE_ALPHAS

__all__ = [
    # options and errors
    "ALPHA_RULES", "Options", "ReportError",
    # loading
    "CELL_TAIL", "Group", "read_layout", "Facet", "Loaded", "load",
    # analysis
    "CURVES", "GAP_CURVES", "Analysis", "analyse",
    # figures
    "DPI", "figure_collapse", "figure_degradation", "figure_critical", "figure_survival", "figure_gap",
    "figure_tail",
    # summary
    "HEADLINE_ALPHAS",
    # driver
    "FIGURES", "READING", "report_experiment", "make_report",
    # command line
    "MAX_BAND_RESAMPLES", "MAX_ALPHA_RESAMPLES", "build_parser", "main",
]
