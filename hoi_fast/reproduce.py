"""``python -m hoi_fast.reproduce``: published model-collapse results, one command each, theory over the bands.

Each reproduction (:mod:`hoi_fast.reproductions`) is a declarative
:class:`Reproduction`: one or more grids (:class:`Run`, run through
:func:`hoi_fast.grid.run`, the machinery and file format of
``python -m hoi_fast.grid``, resumable), the quantities compared
(:class:`Quantity`: a function of the stored metrics of one *case*, i.e. one
α and swept value of one run, per seed and generation) and, for each, the
theory (:class:`Theory`: a closed form or a published bound as a function of
the case and the generation, or a per-seed conditional expectation) with how
to judge it.  This module runs them, judges them and writes, into the output
folder:

``NAME.md``
    The table: for a few generations of every case, the mean over seeds with
    its confidence interval, the theoretical value, how it is judged, a
    p-value and the verdict ("agrees" / "disagrees"), and the rule.
``NAME.png``
    The figure: mean over seeds with a 95% band, the theory drawn on top
    (dashed, dotted, ...), log scales where the paper used them.
``NAME.h5`` (``NAME-LABEL.h5`` for a reproduction with several grids)
    The results file of each grid (``python -m hoi_fast.report`` reads it).
``index.md``
    With ``all``: one line per reproduction with its verdict and time.

``--quick`` runs the small version of every grid (files ``NAME-quick.*``), in
seconds: the tests run it and assert the verdicts it reports.

The cases are read by :mod:`hoi_fast.reproductions.cases`, judged by
:mod:`~hoi_fast.reproductions.judge` (which states the verdict rule) and
drawn by :mod:`~hoi_fast.reproductions.render`; their public names are
importable from here too.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass

from hoi_fast import grid as _grid
from hoi_fast._validate import ConfigError, require
from hoi_fast.config import MAX_SEEDS
from hoi_fast.executors import local_pool
from hoi_fast.reproductions import REPRODUCTIONS, Quantity, Reproduction, Run, Theory  # noqa: F401 (the spec types)
from hoi_fast.reproductions.cases import SYMBOLS, Case, load_cases  # noqa: F401 (importable from here)
from hoi_fast.reproductions.judge import (  # noqa: F401 (importable from here)
    EXACT_RTOL,
    FAMILY_LEVEL,
    Evaluation,
    Row,
    evaluate,
    judge_mean,
    judge_proportion,
)
from hoi_fast.reproductions.render import (  # noqa: F401 (importable from here)
    BAND_LEVEL,
    DPI,
    JUDGE_WORDS,
    _cell,
    rule_text,
    table_lines,
    verdict_words,
    write_figure,
    write_page,
)
from hoi_fast.store import ResultsFileError, check_output_path, check_resumable

DEFAULT_OUT = "repro"


# -- running ------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What :func:`reproduce` wrote and found."""

    spec: Reproduction
    evaluation: Evaluation
    page: str
    figure: str
    results: dict
    seconds: float


def command_for(name, quick=False, seeds=None, out=None):
    """The command line that reproduces ``name``."""
    words = ["python", "-m", "hoi_fast.reproduce", name]
    if quick:
        words.append("--quick")
    if seeds is not None:
        words += ["--seeds", str(seeds)]
    if out is not None and out != DEFAULT_OUT:
        words += ["--out", out]
    return shlex.join(words)


def reproduce(spec, folder, quick=False, seeds=None, jobs=1, quiet=True, overwrite=False, executor="local"):
    """Run (or resume) every grid of ``spec`` into ``folder``, judge it and write its page and figure.

    Parameters
    ----------
    spec : Reproduction
    folder : str
        An existing, writable folder.
    quick : bool
        The small grids of ``--quick``.
    seeds : int, optional
        Seeds of every grid (default: the spec's).
    jobs : int
        Worker processes of each grid.
    quiet : bool
        No progress output from the grids.
    overwrite : bool
        Replace results files that hold another configuration (e.g. other seeds).
    executor : "local", None or concurrent.futures.Executor
        Where the grids' blocks run (:func:`hoi_fast.grid.run`): ``"local"``
        opens a pool of ``jobs`` workers per grid; an executor (or None: this
        process) is shared by every grid, so workers start once.

    Returns
    -------
    Outcome
    """
    t0 = time.perf_counter()
    paths = spec.result_paths(folder, quick)
    command = command_for(spec.name, quick, seeds)
    for run in spec.runs:
        config = run.grid_config(quick, seeds)
        _grid.run(config, paths[run.label], jobs=jobs, overwrite=overwrite, command_line=command, quiet=quiet,
                  executor=executor)
    cases = load_cases(spec, paths)
    evaluation = evaluate(spec, cases)
    page, figure = spec.page_paths(folder, quick)
    seconds = time.perf_counter() - t0
    drawn = write_figure(evaluation, figure)
    write_page(evaluation, page, os.path.basename(figure) if drawn else "", command, seconds, list(paths.values()))
    return Outcome(spec, evaluation, page, figure if drawn else "", paths, seconds)


def write_index(outcomes, path, quick=False, total_seconds=None):
    """The index page of ``all``: one row per reproduction."""
    lines = ["# Reproductions", "",
             f"Every table uses intervals at a Bonferroni level over its rows, so that a correct theory "
             f"gets a whole table of \"agrees\" with probability ≥ {100 * FAMILY_LEVEL:g}%.", "",
             "| reproduction | paper | setting | compared | verdict | time | command |",
             "|---|---|---|---|---|---:|---|"]
    for o in outcomes:
        s = o.spec
        page = os.path.basename(o.page)
        lines.append(f"| [`{s.name}`]({page}) | {_cell(s.paper)} | {_cell(s.setting)} | {_cell(s.compared)} "
                     f"| {verdict_words(o.evaluation)} | {o.seconds:.0f} s | `{command_for(s.name, quick)}` |")
    if total_seconds is not None:
        lines += ["", f"Total: {total_seconds:.0f} s (`{command_for('all', quick)}`)."]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


# -- command line ---------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see --help\n")


def build_parser():

    p = _Parser(prog="python -m hoi_fast.reproduce",
                description="Reproduce published model-collapse results: run the grid, draw the theory over the "
                "bands, judge it in a table.  Without NAME: list the reproductions.",
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("name", nargs="?", default=None,
                   help="a reproduction (" + ", ".join(REPRODUCTIONS) + ") or all")
    p.add_argument("--seeds", default=None, help="seeds of every grid [default: each reproduction's]")
    p.add_argument("--quick", action="store_true", help="the small version (seconds; what the tests run)")
    p.add_argument("--out", default=DEFAULT_OUT, help="folder for the results files, tables and figures")
    p.add_argument("--jobs", default=None, help="worker processes [default: all cores]")
    p.add_argument("--overwrite", action="store_true",
                   help="replace results files that hold another configuration (e.g. other --seeds)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _positive_int(name, text, maximum):
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ConfigError(f"`{name}` must be a positive integer, got {text!r}") from None
    require(1 <= value <= maximum, f"`{name}` must be a positive integer (at most {maximum:,}), got {text!r}")
    return value


def _check_folder(folder):
    """The output folder: an existing writable folder, or a missing one in a writable parent (created later)."""
    require(bool(folder), "`--out` must be a folder name such as repro")
    if os.path.exists(folder):
        require(os.path.isdir(folder), f"`--out` {folder} exists and is not a folder; give a folder")
        require(os.access(folder, os.W_OK | os.X_OK), f"`--out` folder {folder} is not writable; "
                "make it writable or choose another --out")
        return False
    parent = os.path.dirname(os.path.abspath(folder))
    require(os.path.isdir(parent), f"`--out` {folder}: its parent folder {parent} does not exist; create it "
            "or choose another --out")
    require(os.access(parent, os.W_OK | os.X_OK), f"`--out` {folder} cannot be created: {parent} is not "
            "writable; choose another --out")
    return True


def list_text():
    """The list of reproductions (no NAME given)."""

    width = max(len(n) for n in REPRODUCTIONS)
    lines = ["reproductions (python -m hoi_fast.reproduce NAME [--quick] [--seeds N] [--out DIR]; or all):"]
    for name, spec in REPRODUCTIONS.items():
        lines.append(f"  {name:<{width}}  {spec.paper} — {spec.setting}")
    return "\n".join(lines)


def main(argv=None):
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if threading.current_thread() is not threading.main_thread():
        return _main(parser, args)
    previous = signal.signal(signal.SIGINT, _grid.INTERRUPTS.handler)
    try:
        return _main(parser, args)
    finally:
        signal.signal(signal.SIGINT, previous)


def _main(parser, args):

    try:
        if args.name is None:
            print(list_text())
            return 0
        if args.name != "all" and args.name not in REPRODUCTIONS:
            raise ConfigError(f"`NAME` {args.name!r} names no reproduction; use one of "
                              f"{', '.join(REPRODUCTIONS)} or all (run without NAME to list them)")
        specs = list(REPRODUCTIONS.values()) if args.name == "all" else [REPRODUCTIONS[args.name]]
        seeds = None if args.seeds is None else _positive_int("--seeds", args.seeds, MAX_SEEDS)
        jobs = _grid.available_cores() if args.jobs is None else _positive_int("--jobs", args.jobs, 4096)
        create = _check_folder(args.out)
        for spec in specs:  # every grid and results file is checked before anything is written
            paths = spec.result_paths(args.out, args.quick)
            for run in spec.runs:
                config = run.grid_config(args.quick, seeds)
                if not create:
                    check_output_path(paths[run.label])
                    if not args.overwrite:
                        check_resumable(paths[run.label], config.identity(), _grid.same_run(config))
        if create:
            os.makedirs(args.out)
        t0 = time.perf_counter()
        outcomes = []
        with local_pool(jobs) as pool:  # workers start once for every grid
            for spec in specs:
                if not args.quiet:
                    print(f"[hoi_fast.reproduce] {spec.name}: running", file=sys.stderr, flush=True)
                outcome = reproduce(spec, args.out, args.quick, seeds, jobs, quiet=args.quiet,
                                    overwrite=args.overwrite, executor=pool)
                outcomes.append(outcome)
                print(f"{spec.name}: {verdict_words(outcome.evaluation)} in {outcome.seconds:.0f} s -> "
                      f"{outcome.page}", flush=True)
                if args.name == "all":
                    write_index(outcomes, os.path.join(args.out, "index-quick.md" if args.quick else "index.md"),
                                args.quick)
        if args.name == "all":
            total = time.perf_counter() - t0
            write_index(outcomes, os.path.join(args.out, "index-quick.md" if args.quick else "index.md"),
                        args.quick, total)
            print(f"all: {sum(o.evaluation.agrees for o in outcomes)} of {len(outcomes)} agree in {total:.0f} s",
                  flush=True)
        return 0
    except (ConfigError, ResultsFileError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except BaseException as exc:
        if _grid._interrupted(exc):
            print(f"{parser.prog}: interrupted; re-run the same command to resume", file=sys.stderr)
            return 130
        raise


if __name__ == "__main__":
    sys.exit(main())
