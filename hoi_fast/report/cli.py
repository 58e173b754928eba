"""The command line ``python -m hoi_fast.report``: the parser, its argument checks and :func:`main`."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time

from hoi_fast import stats
from hoi_fast.report._common import ALPHA_RULES, Options, ReportError
from hoi_fast.report.analysis import CURVES
from hoi_fast.report.driver import make_report
from hoi_fast.store import ResultsFileError


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


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
