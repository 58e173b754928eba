"""Making a report: checks before any work, every experiment (in forked workers), the files written."""

from __future__ import annotations

import os
import shutil
import sys
import time

from hoi_fast.report._common import ALPHA_RULES, Options, ReportError
from hoi_fast.report.analysis import analyse
from hoi_fast.report.figures import (
    figure_collapse,
    figure_critical,
    figure_degradation,
    figure_gap,
    figure_survival,
    figure_tail,
)
from hoi_fast.report.loading import load
from hoi_fast.report.summary import _provenance_lines, _summary_experiment
from hoi_fast.store import ResultsFileError, experiments_in


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
