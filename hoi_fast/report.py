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
canvas), so importing this module never touches pyplot's global state or a
display.
"""

from __future__ import annotations

import argparse
import errno
import itertools
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from hoi_fast import stats
from hoi_fast.store import ResultsFileError, experiments_in, stored_config

CELL_TAIL = ("seed", "generation")
CURVES = 6  # α shown as lines by default
GAP_CURVES = 3
HEADLINE_ALPHAS = 3  # α quoted in the summary's first lines (the largest shown)
ALPHA_RULES = ("sequence", "first")
DPI = 110


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


# -- loading -------------------------------------------------------------------

@dataclass(frozen=True)
class Group:
    """What the report needs of one experiment's group, without reading every metric.

    Attributes
    ----------
    name : str
    path : str
    coords : dict of str -> ndarray
        Every dimension scale.
    dims : dict of str -> tuple of str
        The dimension names of each metric.
    attrs : dict of str -> dict
        ``units``, ``long_name`` and ``role`` of each metric.
    done : ndarray of bool
        Shape of the cell dimensions.
    config : dict
    provenance : dict
        The file's root attributes.
    """

    name: str
    path: str
    coords: dict
    dims: dict
    attrs: dict
    done: np.ndarray
    config: dict
    provenance: dict

    def read(self, metric):
        """The metric with every cell that is not done set to NaN (float64)."""
        import h5py

        with h5py.File(self.path, "r") as f:
            data = f[self.name][metric][...]
        done = self.done.reshape(self.done.shape + (1,) * (data.ndim - self.done.ndim))
        return np.where(done, data, np.nan)


#: Roles of the metrics of files written before roles were stored (gmm and ngram only).
_LEGACY_ROLES = {"real_nll": "real", "real_bpc": "real", "self_nll": "self", "self_bpc": "self",
                 "tail_nll": "tail", "tail_bpc": "tail"}


def _dim_names(ds):
    return tuple(ds.dims[i][0].name.rsplit("/", 1)[-1] for i in range(ds.ndim))


def read_layout(path, name):
    """Coordinates, dimensions, attributes and done mask of experiment ``name`` of ``path``.

    Metric values are read later, one at a time (:meth:`Group.read`): a
    100 000-cell file holds gigabytes of per-component and per-symbol
    metrics the report never draws.

    Raises
    ------
    ResultsFileError
        If the file is missing, foreign or lacks the experiment.
    """
    import h5py

    if not os.path.exists(path):
        raise ResultsFileError(f"`{path}` does not exist; give a results file written by hoi_fast.grid")
    stored_config(path)
    with h5py.File(path, "r") as f:
        if name not in f:
            raise ResultsFileError(f"`{path}` has no `{name}` results; it holds {', '.join(f.keys())}")
        g = f[name]
        coords, dims, attrs = {}, {}, {}
        for key, ds in g.items():
            if ds.is_scale:
                coords[key] = ds.asstr()[...].astype(str) if h5py.check_string_dtype(ds.dtype) else ds[...]
            elif key != "done":
                dims[key] = _dim_names(ds)
                attrs[key] = {k: str(v) for k, v in ds.attrs.items() if k in ("units", "long_name", "role")}
                attrs[key].setdefault("role", _LEGACY_ROLES.get(key, ""))
        provenance = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        return Group(name=name, path=path, coords=coords, dims=dims, attrs=attrs,
                     done=g["done"][...].astype(bool), config=json.loads(g.attrs["config"]),
                     provenance=provenance)


@dataclass
class Facet:
    """One experiment at one combination of sweep values: cubes ``(alpha, seed, generation)``."""

    label: str
    alphas: np.ndarray
    real: np.ndarray
    self_: np.ndarray | None
    tail: np.ndarray | None
    done: np.ndarray  # (alpha, seed) bool


@dataclass
class Loaded:
    """An experiment's group, masked to done cells and cut into facets."""

    name: str
    metric: str
    self_metric: str | None
    tail_metric: str | None
    attrs: dict
    facets: list
    done_cells: int
    total_cells: int
    generations: int
    provenance: dict
    config: dict


def _with_role(group, role):
    """The per-generation scalar metrics of ``group`` whose stored role is ``role``, sorted by name."""
    return sorted(k for k, a in group.attrs.items()
                  if a.get("role") == role and group.dims[k][-2:] == CELL_TAIL)


def _check_metric(group, metric):
    if metric not in group.dims:
        scalar = sorted(k for k, d in group.dims.items() if d[-2:] == CELL_TAIL)
        raise ReportError(f"`--metric` {metric} is not in the {group.name} results; "
                          f"choose one of {', '.join(scalar)}")
    dims = group.dims[metric]
    if dims[0] != "alpha" or dims[-2:] != CELL_TAIL:
        raise ReportError(f"`--metric` {metric} of {group.name} has dimensions {dims}; "
                          "choose a per-generation scalar metric (alpha, ..., seed, generation)")


def load(path, name, metric=None):
    """Read experiment ``name`` of ``path`` for the report (only the metrics it draws).

    Raises
    ------
    ResultsFileError
        If the file is missing, foreign or lacks the experiment.
    ReportError
        If ``metric`` is not a per-generation scalar metric of the experiment.
    """
    group = read_layout(path, name)
    real = _with_role(group, "real")
    metric = metric or (real[0] if real else None)
    if metric is None:
        raise ReportError(f"{name} has no metric with the role `real` (a loss on held-out real data); "
                          "pass --metric")
    _check_metric(group, metric)
    # the gap and tail figures pair the real-role metric with the self- and tail-role ones
    paired = metric in real
    self_metric = next(iter(_with_role(group, "self")), None) if paired else None
    tail_metric = next(iter(_with_role(group, "tail")), None) if paired else None
    cubes = {k: group.read(k) for k in (metric, self_metric, tail_metric) if k}
    if tail_metric is not None and not np.any(np.isfinite(cubes[tail_metric])):
        tail_metric = None  # e.g. a truth without a tail: nothing to draw
    sweeps = group.dims[metric][1:-2]
    facets = []
    for index in itertools.product(*(range(len(group.coords[d])) for d in sweeps)):
        sel = (slice(None),) + index
        label = ", ".join(f"{d} = {_fmt(group.coords[d][i])}" for d, i in zip(sweeps, index))
        facets.append(Facet(
            label=label, alphas=np.asarray(group.coords["alpha"], dtype=np.float64),
            real=cubes[metric][sel],
            self_=cubes[self_metric][sel] if self_metric else None,
            tail=cubes[tail_metric][sel] if tail_metric else None,
            done=group.done[sel],
        ))
    return Loaded(
        name=name, metric=metric, self_metric=self_metric, tail_metric=tail_metric,
        attrs=group.attrs, facets=facets, done_cells=int(group.done.sum()),
        total_cells=int(group.done.size), generations=len(group.coords["generation"]),
        provenance=group.provenance, config=group.config,
    )


# -- analysis ------------------------------------------------------------------

@dataclass
class Analysis:
    """Everything one facet's figures and tables need."""

    facet: Facet
    shown: np.ndarray  # indices of the α drawn as curves
    real: stats.Band  # (shown, generation)
    self_: stats.Band | None
    tail: stats.Band | None
    gap: stats.Band | None  # (gap α, generation)
    gap_index: np.ndarray
    degradation_mean: np.ndarray | None = None  # (alpha, generation)
    degradation: stats.Band | None = None  # (shown, generation) of metric(alpha) - metric(0)
    significant: np.ndarray | None = None  # (alpha, generation) bool: each α's own test
    base_mean: np.ndarray | None = None  # (generation,) mean metric at alpha = 0
    critical: stats.CriticalAlpha | None = None  # the chosen rule
    thresholds: dict | None = None  # rule -> CriticalAlpha (sequence, first, isotonic)
    survival: stats.Survival | None = None  # over alpha
    rate: stats.Rate | None = None  # over alpha
    seeds_per_alpha: np.ndarray | None = None
    notes: list = field(default_factory=list)


def _choose_alphas(alphas, done_rows, wanted):
    """Indices of the α shown as curves: the requested ones, or an even spread of done rows."""
    if wanted is not None:
        index = []
        for a in wanted:
            hit = np.flatnonzero(np.isclose(alphas, a, rtol=0, atol=1e-9))
            if len(hit) == 0:
                raise ReportError(f"`--alphas` value {a:g} is not in the grid "
                                  f"(it has {', '.join(_fmt(x) for x in alphas)})")
            index.append(int(hit[0]))
        return np.asarray(sorted(set(index), key=lambda i: alphas[i]), dtype=np.int64)
    rows = np.flatnonzero(done_rows)
    rows = rows[np.argsort(alphas[rows], kind="stable")]
    if len(rows) <= CURVES:
        return rows
    return rows[np.unique(np.round(np.linspace(0, len(rows) - 1, CURVES)).astype(int))]


def _band(values, options, rng, axis=1):
    if options.simultaneous and values.ndim == 3:
        return stats.simultaneous_band(values, seed_axis=axis, curve_axis=-1, level=options.level,
                                       n_resamples=min(options.n_resamples, 4999), rng=rng)
    return stats.seed_band(values, axis=axis, level=options.level, method=options.method,
                           n_resamples=options.n_resamples, rng=rng)


def analyse(facet, options, seed_key=0):
    """Bands, degradation, α*, the isotonic threshold, time to collapse and rates of one facet.

    Parameters
    ----------
    facet : Facet
    options : Options
    seed_key : int
        Distinguishes the bootstrap streams of facets and experiments.
    """
    def rng(k):
        return np.random.default_rng([options.seed, seed_key, k])

    alphas, real = facet.alphas, facet.real
    seeds_per_alpha = facet.done.sum(axis=1)
    shown = _choose_alphas(alphas, seeds_per_alpha > 0, options.alphas)
    gap_index = shown[np.unique(np.round(np.linspace(0, len(shown) - 1, min(GAP_CURVES, len(shown)))))
                      .astype(int)] if len(shown) else shown
    out = Analysis(
        facet=facet, shown=shown, real=_band(real[shown], options, rng(0)),
        self_=_band(facet.self_[shown], options, rng(1)) if facet.self_ is not None else None,
        tail=_band(facet.tail[shown], options, rng(2)) if facet.tail is not None else None,
        gap=None, gap_index=gap_index, seeds_per_alpha=seeds_per_alpha,
    )
    if facet.self_ is not None:
        out.gap = _band(stats.illusion_gap(real[gap_index], facet.self_[gap_index]), options, rng(3))
    zero = np.flatnonzero(alphas == 0.0)
    if len(zero) == 0:
        out.notes.append("the grid has no α = 0, so paired degradation, α* and the time to collapse "
                         "are not computed (run the grid with 0 among --alphas)")
        return out
    if seeds_per_alpha[zero[0]] < 2:
        out.notes.append("fewer than two seeds are done at α = 0, so paired degradation, α* and the "
                         "time to collapse are not computed yet")
        return out
    diff = stats.paired_degradation(real, alphas, alpha_axis=0)
    out.degradation_mean = _seed_mean(diff)
    out.degradation = _band(diff[shown], options, rng(4))
    out.base_mean = _seed_mean(real[zero[0]], axis=0)
    bound = stats.lower_confidence_bound(diff, seed_axis=1, level=options.level)
    out.significant = bound > options.tolerance * np.abs(out.base_mean)
    axes = dict(alpha_axis=0, seed_axis=1, generation_axis=2)
    out.thresholds = stats.alpha_thresholds(
        real, alphas, **axes, generation=options.generation, tolerance=options.tolerance,
        level=options.level, n_resamples=options.alpha_resamples, rng=rng(5))
    out.critical = out.thresholds[options.alpha_rule]
    out.survival = stats.time_to_collapse(real, alphas, **axes, tolerance=options.tolerance,
                                          level=options.level)
    out.rate = stats.degradation_rate(real, alphas, **axes, level=options.level, method="t",
                                      n_resamples=options.alpha_resamples, rng=rng(6))
    return out


def _seed_mean(values, axis=1):
    """Mean over the done (non-NaN) seeds; NaN where none is done, without warnings."""
    valid = ~np.isnan(values)
    n = valid.sum(axis=axis)
    total = np.where(valid, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


# -- figures -------------------------------------------------------------------

def _fmt(x, digits=3):
    if isinstance(x, (str, bytes, np.str_, np.bytes_)):  # a string-valued sweep coordinate, e.g. gmm.filter
        return x.decode("utf-8") if isinstance(x, (bytes, np.bytes_)) else str(x)
    x = float(x)
    if np.isnan(x):
        return "n/a"
    if np.isinf(x):
        return "none" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def _label(loaded, metric):
    attrs = loaded.attrs.get(metric, {})
    units = attrs.get("units", "")
    return f"{metric} [{units}]" if units else metric


def _figure(analyses, cols, width=6.4, height=4.0, title_lines=2):
    """A figure with a row of ``cols`` axes per analysis (facet), with fixed margins in inches.

    Fixed margins rather than matplotlib's constrained layout, which took
    half of the report's drawing time; titles of ``title_lines`` lines (and
    the facet label, if any) and colour bars fit.
    """
    from matplotlib.figure import Figure

    rows = len(analyses)
    title_lines += any(an.facet.label for an in analyses)
    fig = Figure(figsize=(width * cols, height * rows), dpi=DPI)
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    top, bottom, left, right, gap_x = 0.3 + 0.19 * title_lines, 0.55, 0.8, 0.2, 0.95
    axes_h = max(height - top - bottom, 0.5)
    axes_w = max(width - gap_x, 0.5)
    fig.subplots_adjust(left=left / (width * cols), right=1 - right / (width * cols),
                        top=1 - top / (height * rows), bottom=bottom / (height * rows),
                        hspace=(top + bottom) / axes_h, wspace=gap_x / axes_w)
    return fig, axes


def _alpha_colours(alphas):
    from matplotlib import cm, colors

    finite = alphas[np.isfinite(alphas)]
    norm = colors.Normalize(vmin=float(finite.min()), vmax=float(max(finite.max(), finite.min() + 1e-12)))
    return cm.ScalarMappable(norm=norm, cmap="viridis")


def _draw_bands(ax, gens, band, rows, mapper, alphas, linestyle="-", labels=True, step=False):
    for j, i in enumerate(rows):
        colour = mapper.to_rgba(alphas[i])
        label = f"α = {_fmt(alphas[i])}" if labels else None
        if step:
            ax.step(gens, band.mean[j], where="post", color=colour, lw=1.8, ls=linestyle, label=label)
        else:
            ax.plot(gens, band.mean[j], color=colour, lw=1.8, ls=linestyle, label=label)
        ax.fill_between(gens, band.low[j], band.high[j], color=colour, alpha=0.18, lw=0,
                        step="post" if step else None)


def _band_words(options):
    kind = "simultaneous sup-t" if options.simultaneous else {
        "bca": "BCa bootstrap", "percentile": "percentile bootstrap", "t": "Student-t"}[options.method]
    return f"{100 * options.level:g}% {kind} band"


def _title(ax, analysis, text):
    label = analysis.facet.label
    ax.set_title(f"{text}\n{label}" if label else text, fontsize=10)


def _int_ticks(ax):
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _finish(ax, xlabel="generation", integer=True):
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    if integer:
        _int_ticks(ax)


def figure_collapse(loaded, analyses, options, path):
    """Real metric vs generation, one banded line per shown α; paired degradation beside it."""
    paired = all(a.degradation is not None for a in analyses)
    fig, axes = _figure(analyses, 2 if paired else 1, width=6.4, height=4.6)
    gens = np.arange(loaded.generations)
    for row, an in zip(axes, analyses):
        mapper = _alpha_colours(an.facet.alphas)
        ax = row[0]
        _draw_bands(ax, gens, an.real, an.shown, mapper, an.facet.alphas)
        ax.set_ylabel(_label(loaded, loaded.metric))
        _title(ax, an, f"{loaded.name}: {loaded.metric} on real held-out data\n"
                       f"mean over seeds, {_band_words(options)}")
        ax.legend(fontsize=8, ncols=2, loc="upper left", frameon=False)
        if paired:
            ax = row[1]
            _draw_bands(ax, gens, an.degradation, an.shown, mapper, an.facet.alphas)
            ax.plot(gens, options.tolerance * np.abs(an.base_mean), color="0.3", ls="--", lw=1,
                    label=f"tolerance: {100 * options.tolerance:g}% of α = 0")
            ax.axhline(0, color="0.6", lw=0.8)
            ax.set_ylabel(f"Δ {_label(loaded, loaded.metric)} vs α = 0")
            _title(ax, an, f"paired degradation {loaded.metric}(α) − {loaded.metric}(α = 0), "
                           "same seeds\n(higher = worse than training on real data only)")
            ax.legend(handles=ax.get_lines()[-2:-1], fontsize=8, loc="upper left", frameon=False)
        for ax in row:
            _finish(ax)
        fig.colorbar(mapper, ax=row[-1], label="synthetic fraction α")
    fig.savefig(path)


def _rule_words(rule):
    return {"sequence": "fixed-sequence α*", "first": "first-passing α*", "isotonic": "isotonic threshold"}[rule]


def figure_degradation(loaded, analyses, options, path):
    """Heatmap α × generation of the mean paired degradation, α* and the isotonic threshold on top."""
    from matplotlib import colors

    fig, axes = _figure(analyses, 1, width=7.5, height=4.6, title_lines=1)
    gens = np.arange(loaded.generations)
    for ax, an in zip(axes[:, 0], analyses):
        order = np.argsort(an.facet.alphas)
        alphas = an.facet.alphas[order]
        mean = an.degradation_mean[order]
        top = float(np.nanmax(np.abs(mean))) if np.isfinite(mean).any() else 1.0
        top = top if top > 0 else 1.0
        norm = colors.TwoSlopeNorm(vcenter=0.0, vmin=-top, vmax=top)
        mesh = ax.pcolormesh(_edges(gens.astype(float)), _edges(alphas), mean,
                             cmap="RdBu_r", norm=norm, shading="flat")
        for rule, style in ((options.alpha_rule, "k.-"), ("isotonic", "m--")):
            crit = an.thresholds[rule].per_generation
            ok = np.isfinite(crit)
            ax.plot(gens[ok], crit[ok], style, lw=1.2, ms=5, label=_rule_words(rule))
        ax.set_ylabel("synthetic fraction α")
        _title(ax, an, f"{loaded.name}: paired degradation {loaded.metric}(α) − {loaded.metric}(α = 0), "
                       "mean over seeds")
        ax.legend(fontsize=8, loc="upper right", framealpha=0.8)
        _finish(ax)
        ax.grid(False)
        fig.colorbar(mesh, ax=ax, label=f"Δ {_label(loaded, loaded.metric)}  (red = worse)")
    fig.savefig(path)


def _edges(centres):
    """Cell edges around sorted centres (for pcolormesh)."""
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mid = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def figure_critical(loaded, analyses, options, path):
    """α* by both rules and the isotonic threshold vs generation, with intervals; 'none' at the top."""
    fig, axes = _figure(analyses, 1, width=8.0, height=4.8, title_lines=3)
    gens = np.arange(loaded.generations)
    series = (("sequence", "tab:blue", "o", -0.15), ("first", "tab:orange", "s", 0.0),
              ("isotonic", "tab:purple", "D", 0.15))
    for ax, an in zip(axes[:, 0], analyses):
        top = float(np.max(an.facet.alphas))
        for rule, colour, marker, shift in series:
            crit = an.thresholds[rule]
            x = gens + shift
            low = np.minimum(np.nan_to_num(crit.per_generation_low, posinf=top), top)
            # an interval end beyond the grid is drawn just past the top, into the "none" zone
            high = np.minimum(np.nan_to_num(crit.per_generation_high, posinf=1.06 * top), 1.06 * top)
            ax.vlines(x, low, high, color=colour, lw=2.2, alpha=0.35)
            ok = np.isfinite(crit.per_generation)
            chosen = " (headline)" if rule == options.alpha_rule else ""
            ax.plot(x[ok], crit.per_generation[ok], marker=marker, ls="-", color=colour, ms=4.5, lw=1.2,
                    label=_rule_words(rule) + chosen)
            none = ~ok & ~np.isnan(crit.per_generation)
            if none.any():
                ax.plot(x[none], np.full(none.sum(), 1.06 * top), "^", color=colour, ms=6, alpha=0.8)
        ax.axhline(top, color="0.5", ls=":", lw=1, label=f"largest α of the grid ({_fmt(top)}); ▲ none")
        ax.set_ylim(-0.03 * top, 1.12 * top)
        ax.set_ylabel("critical synthetic fraction")
        _title(ax, an, f"{loaded.name}: where {loaded.metric} becomes more than {100 * options.tolerance:g}% "
                       f"worse than α = 0\nα*: one-sided {100 * options.level:g}% tests, fixed sequence from the "
                       f"largest α down (family-wise error ≤ {100 * (1 - options.level):g}%) or first α passing; "
                       f"\nisotonic: monotone fit of the mean crossing the tolerance; bars: "
                       f"{100 * options.level:g}% bootstrap intervals over seeds")
        ax.legend(fontsize=8, loc="lower left", frameon=False)
        _finish(ax)
    fig.savefig(path)


def figure_survival(loaded, analyses, options, path):
    """Kaplan-Meier curves for the shown α, the median generations to collapse and the rate against α."""
    fig, axes = _figure(analyses, 3, width=5.6, height=4.4)
    gens = np.arange(loaded.generations)
    horizon = loaded.generations - 1
    for row, an in zip(axes, analyses):
        surv, rate, alphas = an.survival, an.rate, an.facet.alphas
        mapper = _alpha_colours(alphas)
        band = stats.Band(surv.survival[an.shown], surv.low[an.shown], surv.high[an.shown],
                          np.array([]), np.array([]), surv.level)
        _draw_bands(row[0], gens, band, an.shown, mapper, alphas, step=True)
        row[0].set_ylim(-0.03, 1.03)
        row[0].set_ylabel("share of seeds not yet collapsed")
        row[0].legend(fontsize=8, ncols=2, loc="lower left", frameon=False)
        _title(row[0], an, f"{loaded.name}: Kaplan-Meier survival, collapse = first generation\nwith "
                           f"Δ{loaded.metric} > {100 * options.tolerance:g}% of α = 0; "
                           f"{100 * surv.level:g}% {surv.band} band")
        _finish(row[0])
        order = np.argsort(alphas)
        order = order[surv.n[order] > 0]
        _draw_medians(row[1], alphas[order], surv.median[order], surv.median_low[order],
                      surv.median_high[order], horizon)
        row[1].set_ylabel("generations to collapse (median)")
        _title(row[1], an, f"median generations to collapse\nbars: {100 * surv.level:g}% interval; "
                           f"▲ not within {horizon} generations")
        _finish(row[1], "synthetic fraction α", integer=False)
        slope = rate.slope
        ok = order[np.isfinite(slope.mean[order])]
        row[2].plot(alphas[ok], slope.mean[ok], "o-", color="tab:red", ms=3.5, lw=1.2, label="mean slope")
        row[2].fill_between(alphas[ok], slope.low[ok], slope.high[ok], color="tab:red", alpha=0.2, lw=0,
                            label=f"{100 * rate.level:g}% interval over seeds")
        sat = ok[rate.saturated[ok]]
        if len(sat):
            row[2].plot(alphas[sat], slope.mean[sat], "o", mfc="none", mec="k", ms=7,
                        label="levels off within the horizon")
        row[2].axhline(0, color="0.6", lw=0.8)
        row[2].set_ylabel(f"Δ{loaded.metric} per generation [{_units(loaded)}]")
        row[2].legend(fontsize=8, loc="upper left", frameon=False)
        _title(row[2], an, f"rate: least-squares slope of Δ{loaded.metric}\nover generations 0–{horizon}")
        _finish(row[2], "synthetic fraction α", integer=False)
    fig.savefig(path)


def _draw_medians(ax, alphas, median, low, high, horizon):
    """Median generations to collapse against α; 'not within the horizon' drawn as triangles above it."""
    beyond = horizon + 1
    found = np.isfinite(median)
    lo = np.where(np.isfinite(low), low, beyond)
    hi = np.where(np.isfinite(high), high, beyond)
    ax.vlines(alphas, lo, hi, color="tab:green", lw=2.2, alpha=0.4)
    ax.plot(alphas[found], median[found], "o-", color="tab:green", ms=4, lw=1.2)
    if (~found).any():
        ax.plot(alphas[~found], np.full((~found).sum(), beyond), "^", color="tab:green", ms=6, alpha=0.7)
    ax.axhline(beyond, color="0.6", ls=":", lw=1)
    ax.set_ylim(0, beyond + 0.8)


def figure_gap(loaded, analyses, options, path):
    """Real vs self metric for a few α, and the gap real − self with its band."""
    fig, axes = _figure(analyses, 2, width=6.0, height=4.1, title_lines=1)
    gens = np.arange(loaded.generations)
    for row, an in zip(axes, analyses):
        mapper = _alpha_colours(an.facet.alphas)
        pick = np.searchsorted(an.shown, an.gap_index) if len(an.shown) else []
        real = _take(an.real, pick)
        self_ = _take(an.self_, pick)
        _draw_bands(row[0], gens, real, an.gap_index, mapper, an.facet.alphas)
        _draw_bands(row[0], gens, self_, an.gap_index, mapper, an.facet.alphas, "--", labels=False)
        row[0].plot([], [], "k-", label="real held-out data")
        row[0].plot([], [], "k--", label="model's own samples")
        row[0].set_ylabel(_label(loaded, loaded.metric).replace("real_", ""))
        _title(row[0], an, f"{loaded.name}: {loaded.metric} (solid) vs {loaded.self_metric} (dashed)")
        _draw_bands(row[1], gens, an.gap, an.gap_index, mapper, an.facet.alphas)
        row[1].axhline(0, color="0.4", lw=0.8)
        row[1].set_ylabel(f"gap {loaded.metric} − {loaded.self_metric} [{_units(loaded)}]")
        _title(row[1], an, "hall-of-illusions gap (higher = the model fools itself more)")
        for ax in row:
            _finish(ax)
            ax.legend(fontsize=8, frameon=False, loc="upper left")
    fig.savefig(path)


def _units(loaded):
    return loaded.attrs.get(loaded.metric, {}).get("units", "")


def _take(band, *index):
    return stats.Band(band.mean[index], band.low[index], band.high[index], band.method[index],
                      band.n[index], band.level, band.simultaneous)


def figure_tail(loaded, analyses, options, path):
    """The tail metric next to the overall one, same α and colours."""
    fig, axes = _figure(analyses, 2, width=6.0, height=4.1, title_lines=1)
    gens = np.arange(loaded.generations)
    for row, an in zip(axes, analyses):
        mapper = _alpha_colours(an.facet.alphas)
        for ax, band, metric, what in ((row[0], an.real, loaded.metric, "all of the held-out data"),
                                       (row[1], an.tail, loaded.tail_metric, "the rare tail only")):
            _draw_bands(ax, gens, band, an.shown, mapper, an.facet.alphas)
            ax.set_ylabel(_label(loaded, metric))
            _title(ax, an, f"{loaded.name}: {metric} on {what}")
            _finish(ax)
        row[0].legend(fontsize=8, ncols=2, frameon=False, loc="upper left")
        fig.colorbar(mapper, ax=row[1], label="synthetic fraction α")
    fig.savefig(path)


# -- summary -------------------------------------------------------------------

def _interval(low, high, digits=4):
    return f"[{_fmt(low, digits)}, {_fmt(high, digits)}]"


def _pct(x):
    return "n/a" if np.isnan(x) else f"{100 * x:.0f}%"


def _summary_experiment(loaded, analyses, options, figures):
    lines = [f"## {loaded.name}", ""]
    g = options.generation % loaded.generations
    for an in analyses:  # the answer first: when and how fast
        head = _headline_lines(loaded, an, options, g)
        if head and an.facet.label:
            head[0] = f"*{an.facet.label}:* " + head[0]
        lines += head
    if loaded.done_cells < loaded.total_cells:
        lines += [f"**Partial results:** {loaded.done_cells} of {loaded.total_cells} cells are done; "
                  "everything below uses only the done cells.", ""]
    attrs = loaded.attrs.get(loaded.metric, {})
    seeds_min = int(min(a.seeds_per_alpha.min() for a in analyses))
    seeds_max = int(max(a.seeds_per_alpha.max() for a in analyses))
    level = f"{100 * options.level:g}%"
    lines += [
        f"- metric: `{loaded.metric}` — {attrs.get('long_name', '')} [{attrs.get('units', '')}]; higher is worse",
        f"- seeds: {seeds_max} per α (done per α: {seeds_min}–{seeds_max}); "
        f"generations: {loaded.generations} (0 = trained on real data only); "
        f"α grid: {len(analyses[0].facet.alphas)} values in "
        f"[{_fmt(analyses[0].facet.alphas.min())}, {_fmt(analyses[0].facet.alphas.max())}]",
        f"- bands: {_band_words(options)} over seeds ({options.n_resamples} resamples)",
        f"- α*: one-sided {level} Student-t tests of \"mean paired degradation > {100 * options.tolerance:g}% "
        f"of the α = 0 mean\"; "
        + ("fixed sequence from the largest α down, stopping at the first α not significant (family-wise "
           f"error ≤ {100 * (1 - options.level):g}%)" if options.alpha_rule == "sequence" else
           "the smallest α whose own test passes (no multiplicity control)")
        + f"; isotonic threshold: where the monotone fit of the mean degradation crosses the tolerance; "
        f"intervals: {level} bootstrap percentile over seeds ({options.alpha_resamples} resamples)",
        f"- collapse of a seed: the first generation where its paired degradation exceeds the tolerance "
        f"(right-censored at the last generation); Kaplan-Meier (`scipy.stats.ecdf`), median interval "
        f"from the {level} log-log band; rate: least-squares slope per seed, {level} Student-t interval",
        "",
    ]
    for an in analyses:
        if an.facet.label:
            lines += [f"### {an.facet.label}", ""]
        lines += [f"- {note}" for note in an.notes] + ([""] if an.notes else [])
        lines += _critical_lines(loaded, an, options, g)
        lines += _collapse_lines(loaded, an, options)
        lines += _rate_lines(loaded, an, options)
        lines += _degradation_lines(loaded, an, options, g)
        lines += _gap_lines(loaded, an, options, g)
    lines += ["### Figures", ""]
    for file, caption, reading in figures:
        lines += [f"**{caption}.** {reading}", "", f"![{caption}]({file})", ""]
    return lines


def _headline_alphas(an):
    """The α quoted in the first lines: the largest shown α above 0 with done seeds, largest first."""
    alphas = an.facet.alphas
    rows = [i for i in an.shown if alphas[i] > 0 and an.seeds_per_alpha[i] > 0]
    return sorted(rows, key=lambda i: -alphas[i])[:HEADLINE_ALPHAS]


def _headline_lines(loaded, an, options, g):
    """α* at ``g`` with its interval, the median generations to collapse and the rate at a few α."""
    if an.critical is None:
        return []
    metric, tol, level = loaded.metric, f"{100 * options.tolerance:g}%", f"{100 * options.level:g}%"
    top = float(np.max(an.facet.alphas))
    crit, iso = an.critical, an.thresholds["isotonic"]
    other = an.thresholds["first" if options.alpha_rule == "sequence" else "sequence"]
    rule = "fixed-sequence test from the largest α down" if options.alpha_rule == "sequence" else \
        "first α whose own test passes"
    value = crit.per_generation[g]
    if np.isfinite(value):
        first = (f"**α\\* = {_fmt(value)}** at generation {g} ({level} interval "
                 f"{_ci_alpha(crit.per_generation_low[g], crit.per_generation_high[g], top)}): from this "
                 f"synthetic fraction up, `{metric}` is significantly more than {tol} worse than with real "
                 f"data only ({rule}).")
    else:
        first = (f"**α\\* = none** at generation {g}: no α ≤ {_fmt(top)} makes `{metric}` significantly "
                 f"more than {tol} worse than with real data only ({rule}).")
    first += (f" Isotonic threshold {_fmt(iso.per_generation[g])} "
              f"({_ci_alpha(iso.per_generation_low[g], iso.per_generation_high[g], top)}); "
              f"{_rule_words(other.rule)} {_fmt(other.per_generation[g])}.")
    rows = _headline_alphas(an)
    surv, rate = an.survival, an.rate
    horizon = loaded.generations - 1
    collapse = "; ".join(f"α = {_fmt(an.facet.alphas[i])}: {_median_words(surv, i, horizon)}" for i in rows)
    if horizon == 0:
        collapse = "none can be seen with a single generation"
    units = _units(loaded)
    rates = "; ".join(f"at α = {_fmt(an.facet.alphas[i])} {_rate_words(rate, i, units)}" for i in rows)
    return [first, "",
            f"**Generations to collapse** (first generation at which a seed's `{metric}` is more than {tol} "
            f"worse than at α = 0; median and {level} interval): {collapse}.", "",
            f"**Rate:** `{metric}` gets worse per generation {rates}.", ""]


def _median_words(surv, i, horizon):
    never = (f"{_pct(surv.never[i])} of seeds never collapse "
             f"[{_pct(surv.never_low[i])}, {_pct(surv.never_high[i])}]")
    if not np.isfinite(surv.median[i]):
        low = surv.median_low[i]
        since = f", possibly from generation {_fmt(low)}" if np.isfinite(low) else ""
        return f"not within {horizon} generations ({never}{since})"
    high = surv.median_high[i]
    high = _fmt(high) if np.isfinite(high) else f"> {horizon}"
    words = f"{_fmt(surv.median[i])} ({_fmt(surv.median_low[i])}–{high})"
    return words + (f", {never}" if surv.never[i] >= 0.005 else "")


def _half_life(x):
    """A half-life in generations; at the bottom of the fitted range it only says "within a generation"."""
    return f"≤ {_fmt(x, 2)}" if x <= stats.HALF_LIFE_RANGE[0] * 1.0001 else _fmt(x, 2)


def _rate_words(rate, i, units):
    slope = rate.slope
    half = (slope.high[i] - slope.low[i]) / 2
    words = f"by {_fmt(slope.mean[i], 3)} ± {_fmt(half, 2)} {units}".rstrip()
    if rate.saturated[i]:
        words += (f" (levelling off at {_fmt(rate.plateau[i], 3)} {units} "
                  f"[{_fmt(rate.plateau_low[i], 3)}, {_fmt(rate.plateau_high[i], 3)}], half-life "
                  f"{_half_life(rate.half_life[i])} generations [{_half_life(rate.half_life_low[i])}, "
                  f"{_half_life(rate.half_life_high[i])}])")
    return words


def _critical_lines(loaded, an, options, g):
    crit = an.critical
    if crit is None:
        return []
    top = float(np.max(an.facet.alphas))
    level = f"{100 * crit.level:g}%"
    other = "first" if options.alpha_rule == "sequence" else "sequence"
    seq, iso, alt = an.thresholds[options.alpha_rule], an.thresholds["isotonic"], an.thresholds[other]
    lines = ["#### Critical α* by generation", "",
             f"| generation | {_rule_words(options.alpha_rule)} | {level} interval | resamples with some α* | "
             f"{_rule_words(other)} | isotonic threshold | {level} interval |",
             "|---:|---:|:---:|---:|---:|---:|:---:|"]
    for k in range(len(seq.per_generation)):
        lines.append(f"| {k} | {_fmt(seq.per_generation[k])} | "
                     f"{_ci_alpha(seq.per_generation_low[k], seq.per_generation_high[k], top)} | "
                     f"{_pct(seq.found_fraction[k])} | {_fmt(alt.per_generation[k])} | "
                     f"{_fmt(iso.per_generation[k])} | "
                     f"{_ci_alpha(iso.per_generation_low[k], iso.per_generation_high[k], top)} |")
    return lines + [""]


def _ci_alpha(low, high, top):
    def one(x):
        if np.isnan(x):
            return "n/a"
        return _fmt(x) if np.isfinite(x) else f"> {_fmt(top)}"
    return f"{one(low)} – {one(high)}"


def _collapse_lines(loaded, an, options):
    surv = an.survival
    if surv is None:
        return []
    horizon = loaded.generations - 1
    level = f"{100 * surv.level:g}%"
    lines = [f"#### Generations to collapse (Δ{loaded.metric} > {100 * options.tolerance:g}% of α = 0)", "",
             f"| α | median generation | {level} interval | never collapse (by generation {horizon}) | "
             f"{level} interval | collapsed / seeds |",
             "|---:|---:|:---:|---:|:---:|---:|"]
    for i in an.shown:
        median = _fmt(surv.median[i]) if np.isfinite(surv.median[i]) else f"> {horizon}"
        ends = [_fmt(x) if np.isfinite(x) else f"> {horizon}" for x in (surv.median_low[i], surv.median_high[i])]
        lines.append(f"| {_fmt(an.facet.alphas[i])} | {median} | {ends[0]} – {ends[1]} | {_pct(surv.never[i])} | "
                     f"{_pct(surv.never_low[i])} – {_pct(surv.never_high[i])} | {surv.events[i]} / {surv.n[i]} |")
    return lines + [""]


def _rate_lines(loaded, an, options):
    rate = an.rate
    if rate is None:
        return []
    units = _units(loaded)
    level = f"{100 * rate.level:g}%"
    lines = [f"#### Rate: Δ{loaded.metric} per generation", "",
             f"| α | slope [{units}/generation] | {level} interval | plateau [{units}] | half-life "
             f"[generations] | levels off within {rate.horizon} generations |",
             "|---:|---:|:---:|---:|---:|:---:|"]
    for i in an.shown:
        plateau = f"{_fmt(rate.plateau[i], 3)} {_interval(rate.plateau_low[i], rate.plateau_high[i], 3)}"
        half = (f"{_half_life(rate.half_life[i])} [{_half_life(rate.half_life_low[i])}, "
                f"{_half_life(rate.half_life_high[i])}]")
        sat = rate.saturated[i]
        lines.append(f"| {_fmt(an.facet.alphas[i])} | {_fmt(rate.slope.mean[i], 4)} | "
                     f"{_interval(rate.slope.low[i], rate.slope.high[i])} | {plateau if sat else '—'} | "
                     f"{half if sat else '—'} | {'yes' if sat else 'no'} |")
    return lines + [""]


def _degradation_lines(loaded, an, options, g):
    if an.degradation is None:
        return []
    band = _take(an.degradation, slice(None), g)
    units = _units(loaded)
    lines = [f"#### Degradation at generation {g}: {loaded.metric}(α) − {loaded.metric}(α = 0)", "",
             f"| α | mean Δ [{units}] | {100 * options.level:g}% band | relative to α = 0 | seeds | "
             f"own test: above {100 * options.tolerance:g}% tolerance |",
             "|---:|---:|:---:|---:|---:|:---:|"]
    base = an.base_mean[g]
    for j, i in enumerate(an.shown):
        rel = band.mean[j] / abs(base) if base else np.nan
        sig = "yes" if an.significant[i, g] else "no"
        lines.append(f"| {_fmt(an.facet.alphas[i])} | {_fmt(band.mean[j], 4)} | "
                     f"{_interval(band.low[j], band.high[j])} | {_fmt(100 * rel, 3)}% | {band.n[j]} | {sig} |")
    return lines + [""]


def _gap_lines(loaded, an, options, g):
    if an.gap is None:
        return []
    units = _units(loaded)
    lines = [f"#### Hall-of-illusions gap at generation {g}: {loaded.metric} − {loaded.self_metric}", "",
             f"| α | real [{units}] | self [{units}] | gap [{units}] | {100 * options.level:g}% band |",
             "|---:|---:|---:|---:|:---:|"]
    pick = np.searchsorted(an.shown, an.gap_index)
    for j, (i, p) in enumerate(zip(an.gap_index, pick)):
        lines.append(f"| {_fmt(an.facet.alphas[i])} | {_fmt(an.real.mean[p, g], 4)} | "
                     f"{_fmt(an.self_.mean[p, g], 4)} | {_fmt(an.gap.mean[j, g], 4)} | "
                     f"{_interval(an.gap.low[j, g], an.gap.high[j, g])} |")
    return lines + [""]


def _provenance_lines(path, provenance):
    finished = provenance.get("finished", "")
    lines = ["## Provenance", "", f"Results file: `{os.path.abspath(path)}`"
             + ("" if finished else " — **the grid has not finished** (no finish time recorded)"), "",
             "| attribute | value |", "|---|---|"]
    for key in sorted(provenance):
        if key == "config":
            continue
        value = str(provenance[key]).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {key} | `{value}` |" if value else f"| {key} | |")
    config = provenance.get("config")
    if config:
        try:
            config = json.dumps(json.loads(config), indent=2, sort_keys=True)
        except (TypeError, ValueError):
            pass
        lines += ["", "Run configuration:", "", "```json", str(config), "```"]
    return lines + [""]


# -- driver ----------------------------------------------------------------------

FIGURES = (
    ("collapse", figure_collapse, "Collapse curves"),
    ("degradation", figure_degradation, "Paired degradation heatmap"),
    ("critical_alpha", figure_critical, "Critical α* and the isotonic threshold by generation"),
    ("survival", figure_survival, "When and how fast: generations to collapse and the rate"),
    ("gap", figure_gap, "Hall-of-illusions gap"),
    ("tail", figure_tail, "Tail metric next to the overall metric"),
)

READING = {
    "collapse": "Each line is one synthetic fraction α (colour bar); the shaded band is where the "
                "mean over seeds lies with the stated confidence. Lines that climb with generation are "
                "collapsing: the model gets worse on real data each time it trains on its own output.",
    "degradation": "Each cell is how much worse (red) or better (blue) α is than α = 0 at that "
                   "generation, seed by seed; the black line is α*, from which on every α is "
                   "significantly worse, the dashed magenta line the isotonic threshold.",
    "critical_alpha": "α* (blue) is the largest share of synthetic data that is still safe: every α from it "
                      "up is significantly worse, tested from the largest α down so that the chance of "
                      "an α* below the true threshold stays at the test's level however fine the grid. "
                      "The first-passing rule (orange) tests each α on its own and, with many α, finds a "
                      "falsely early one by chance. The isotonic threshold (purple) is where a monotone "
                      "fit of the mean degradation crosses the tolerance: continuous, not tied to the "
                      "grid's spacing. A falling line means the safe share shrinks as generations stack up.",
    "survival": "Left: the share of seeds whose paired degradation has not yet exceeded the tolerance, "
                "generation by generation (Kaplan-Meier, one line per α); a curve that drops fast means "
                "collapse comes early. Middle: the generation by which half of the seeds have collapsed, "
                "for every α (a triangle: not within the horizon). Right: how much worse the metric gets "
                "per generation; circled α level off within the horizon (plateau and half-life in the "
                "tables).",
    "gap": "Solid lines score the model on real data, dashed lines on its own samples; a growing gap "
           "means the model looks better to itself while getting worse on reality.",
    "tail": "Rare data is forgotten first: the tail metric rises earlier and faster than the overall one.",
}


def report_experiment(path, name, out_dir, options, seed_key=0):
    """Analyse one experiment and write its figures; return its summary lines and provenance."""
    loaded = load(path, name, options.metric)
    if loaded.done_cells == 0:
        return [f"## {name}", "", "No cell is done yet: nothing to report.", ""], loaded.provenance
    if not -loaded.generations <= options.generation < loaded.generations:
        raise ReportError(f"`--generation` {options.generation} is out of range: "
                          f"{name} has generations 0..{loaded.generations - 1}")
    analyses = [analyse(f, options, seed_key * 1000 + k) for k, f in enumerate(loaded.facets)]
    figures = []
    for key, draw, caption in FIGURES:
        if key in ("degradation", "critical_alpha", "survival") and any(a.critical is None for a in analyses):
            continue
        if key == "gap" and loaded.self_metric is None:
            continue
        if key == "tail" and loaded.tail_metric is None:
            continue
        file = f"{name}_{key}.png"
        draw(loaded, analyses, options, os.path.join(out_dir, file))
        figures.append((file, caption, READING[key]))
    return _summary_experiment(loaded, analyses, options, figures), loaded.provenance


def _report_all(path, names, out_dir, options, jobs):
    """``report_experiment`` of every experiment, in file order; in ``jobs`` forked workers where possible.

    Experiments are independent (each has its own bootstrap streams, keyed by
    its position), so workers give the same files as a serial run.  Workers
    are forked (Linux), so they start without importing anything again; where
    fork is not the platform's way (macOS, Windows) the report runs serially.
    """
    calls = [(path, name, out_dir, options, k) for k, name in enumerate(names)]
    jobs = min(jobs, len(calls))
    if jobs <= 1 or not sys.platform.startswith("linux"):
        return [report_experiment(*call) for call in calls]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(report_experiment, *call) for call in calls]
        return [f.result() for f in futures]


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def make_report(path, out_dir, options=Options(), experiments=None, jobs=1):
    """Write figures and ``summary.md`` for every experiment of ``path``.

    Parameters
    ----------
    path : str
        A results file written by ``python -m hoi_fast.grid``.
    out_dir : str
        Folder for the outputs (created if needed).
    options : Options
    experiments : list of str, optional
        Experiments to report (default: all in the file).
    jobs : int
        Experiments reported at once (forked workers on Linux); the files
        are the same for any value.

    Returns
    -------
    str
        Path of ``summary.md``.
    """
    if not os.path.exists(path):
        raise ResultsFileError(f"`{path}` does not exist; give a results file written by hoi_fast.grid")
    if options.alpha_rule not in ALPHA_RULES:
        raise ReportError(f"`--alpha-rule` must be one of {', '.join(ALPHA_RULES)}, got {options.alpha_rule!r}")
    names = experiments_in(path)
    if experiments:
        missing = [e for e in experiments if e not in names]
        if missing:
            raise ReportError(f"`--experiment` {', '.join(missing)} is not in `{path}`; "
                              f"it holds {', '.join(names) or 'nothing'}")
        names = [e for e in names if e in experiments]
    if not names:
        raise ReportError(f"`{path}` holds no experiment results yet")
    if options.metric is not None:
        for name in names:  # fail before any work if the metric is missing anywhere
            _check_metric_in_file(path, name, options.metric)
    _check_out_dir(out_dir)
    created = not os.path.exists(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    try:
        return _write_report(path, names, out_dir, options, jobs)
    except BaseException:
        if created:  # a failed report leaves no folder behind that it made
            shutil.rmtree(out_dir, ignore_errors=True)
        raise


def _write_report(path, names, out_dir, options, jobs):
    lines = [f"# hoi_fast report: {os.path.basename(path)}", "",
             f"Written {time.strftime('%Y-%m-%d %H:%M:%S')} by `python -m hoi_fast.report`.", ""]
    provenance = {}
    for body, provenance in _report_all(path, names, out_dir, options, jobs):
        lines += body
    lines += _provenance_lines(path, provenance)
    summary = os.path.join(out_dir, "summary.md")
    with open(summary, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    return summary


def _check_metric_in_file(path, name, metric):
    import h5py

    with h5py.File(path, "r") as f:
        g = f[name]
        if metric not in g or g[metric].ndim < 3:
            scalar = sorted(k for k, ds in g.items()
                            if isinstance(ds, h5py.Dataset) and not ds.is_scale and k != "done"
                            and ds.ndim >= 3)
            raise ReportError(f"`--metric` {metric} is not in the {name} results; choose one of "
                              f"{', '.join(scalar)} (or pick the experiment with --experiment)")


def _check_out_dir(out_dir):
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ReportError(f"`--out` {out_dir} is a file; give a folder for the figures and summary.md")
    parent = os.path.dirname(os.path.abspath(out_dir))
    if not os.path.isdir(parent):
        raise ReportError(f"`--out` parent folder {parent} does not exist; create it or choose another --out")
    target = out_dir if os.path.isdir(out_dir) else parent
    if not os.access(target, os.W_OK | os.X_OK):
        raise ReportError(f"`--out` folder {target} is not writable; choose another --out")


def _experiment_words(text):
    """The group names a report ``--experiment`` selection names (plug-ins by their results group)."""
    from hoi_fast.experiments import ALIASES

    words = []
    for word in text.split(","):
        word = word.strip()
        words += list(ALIASES.get(word, (word,)))
    return words


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error voice: one line, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see --help\n")


def _alpha_list(text):
    try:
        values = tuple(float(a) for a in text.split(",") if a.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers such as 0,0.5,1, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("must name at least one α")
    return values


def _checked(convert, ok, requirement):
    """An argparse ``type``: ``convert`` the text, then require ``ok(value)``."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}")
        return value
    return parse


_level = _checked(float, lambda v: 0 < v < 1, "strictly between 0 and 1")
_positive = _checked(int, lambda v: v >= 1, "a positive integer")
_seed = _checked(int, lambda v: 0 <= v < 2**63, "an integer in [0, 2**63)")
# Resample matrices are (resamples x points) float64: these bounds keep a report within ~1 GB;
# beyond them a 95% interval's ends move by less than its Monte-Carlo error is worth.
MAX_BAND_RESAMPLES = 100_000
MAX_ALPHA_RESAMPLES = 20_000
_band_resamples = _checked(int, lambda v: 1 <= v <= MAX_BAND_RESAMPLES, f"an integer in 1..{MAX_BAND_RESAMPLES}")
_alpha_resamples = _checked(int, lambda v: 1 <= v <= MAX_ALPHA_RESAMPLES, f"an integer in 1..{MAX_ALPHA_RESAMPLES}")
_fraction = _checked(float, lambda v: v >= 0, "a number >= 0")


def build_parser():
    """The command-line interface."""
    p = _Parser(
        prog="python -m hoi_fast.report",
        description="Figures (PNG) and a Markdown summary of a hoi_fast results file: collapse curves "
                    "with confidence bands over seeds, the paired degradation against alpha = 0, the "
                    "critical synthetic fraction alpha* and the isotonic threshold with bootstrap "
                    "intervals, Kaplan-Meier curves of the generations to collapse, the degradation per "
                    "generation, the hall-of-illusions gap (real minus self metric) and the tail metric.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("results", metavar="RESULTS.h5", help="results file written by python -m hoi_fast.grid")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for the figures and summary.md [default: RESULTS_report next to the file]")
    p.add_argument("--experiment", default="all",
                   help="which experiment(s) of the file to report: all, both (gmm and ngram), or names "
                        "separated by commas, as given to python -m hoi_fast.grid")
    p.add_argument("--metric", default=None,
                   help="metric to analyse (higher = worse); with the experiment's metric of role `real` "
                        "its `self` and `tail` metrics draw the gap and tail figures [default: the metric "
                        "of role `real`, e.g. real_nll for gmm, real_bpc for ngram]")
    p.add_argument("--alphas", type=_alpha_list, default=None,
                   help="comma-separated α of the grid to draw as curves and list in the tables "
                        f"[default: {CURVES} evenly spread α]")
    p.add_argument("--level", type=_level, default=0.95, help="confidence level of bands, test and α* interval")
    p.add_argument("--method", choices=stats.METHODS, default="bca",
                   help="pointwise band over seeds: BCa or percentile bootstrap, or Student-t")
    p.add_argument("--simultaneous", action="store_true",
                   help="draw sup-t bootstrap bands that cover each whole curve at --level")
    p.add_argument("--n-resamples", type=_band_resamples, default=9999,
                   help=f"bootstrap resamples of the bands (at most {MAX_BAND_RESAMPLES:,})")
    p.add_argument("--alpha-resamples", type=_alpha_resamples, default=2000,
                   help=f"bootstrap resamples of the seeds for the α* interval (at most {MAX_ALPHA_RESAMPLES:,})")
    p.add_argument("--tolerance", type=_fraction, default=0.01,
                   help="relative increase of the α = 0 mean that counts as degradation (α* tests, "
                        "isotonic threshold, a seed's collapse)")
    p.add_argument("--alpha-rule", choices=ALPHA_RULES, default="sequence",
                   help="α*: `sequence` tests α from the largest down and stops at the first that is not "
                        "significantly worse (family-wise error control); `first` takes the smallest α "
                        "whose own test passes (no multiplicity control, for comparison)")
    p.add_argument("--generation", type=int, default=-1,
                   help="generation index of the headline α* and tables (negative counts from the end)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the bootstrap resamples (reproducible)")
    p.add_argument("--jobs", type=_positive, default=None,
                   help="experiments reported at once in worker processes (Linux); same files for any "
                        "value [default: the number of cores]")
    return p


def main(argv=None):
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    options = Options(metric=args.metric, alphas=args.alphas, level=args.level, method=args.method,
                      n_resamples=args.n_resamples, alpha_resamples=args.alpha_resamples,
                      tolerance=args.tolerance, generation=args.generation,
                      simultaneous=args.simultaneous, seed=args.seed, alpha_rule=args.alpha_rule)
    out = args.out or os.path.splitext(args.results)[0] + "_report"
    experiments = None if args.experiment.strip() == "all" else _experiment_words(args.experiment)
    try:
        t0 = time.perf_counter()
        summary = make_report(args.results, out, options, experiments, jobs=args.jobs or _cores())
    except (ResultsFileError, ReportError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the folder became unwritable or the disk filled while writing
        what = "disk full: free space and rerun" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
        print(f"{parser.prog}: error: cannot write the report into `{out}` ({what})", file=sys.stderr)
        return 2
    print(f"[hoi_fast.report] wrote {summary} and figures in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
