"""Speed regression check: a base revision against the working tree, interleaved.

Usage (from the repository root)::

    python bench/regress.py                       # base = merge-base with main
    python bench/regress.py --base v0.1.0 --rounds 5 -k "fit or grid"
    python bench/regress.py --save baseline.json  # store the working tree's medians
    python bench/regress.py --baseline baseline.json

The base revision is checked out in a temporary ``git worktree``; both trees
run the same benchmark selection with ``pytest --benchmark-enable`` in
alternating order (base, work, work, base, ...) on this machine in this job, so
slow phases of a noisy machine hit both.  Each round yields, per benchmark, the
ratio of the two trees' medians measured back to back; the verdict takes the
median of these paired ratios over rounds and calls it a regression when it
exceeds ``1 + threshold``.  The spread of the per-round ratios (max/min - 1) is
printed as the measured noise: a threshold below it is not meaningful.

Exit status: 0 no regression, 1 regression (the slow benchmarks are named),
2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def _git(*args, cwd=None):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def default_base(repo):
    """The merge-base of HEAD with ``main`` (HEAD itself on main)."""
    try:
        return _git("merge-base", "HEAD", "main", cwd=repo)
    except subprocess.CalledProcessError:
        return _git("rev-parse", "HEAD", cwd=repo)


def run_benchmarks(tree, bench, select, json_path):
    """Run the benchmarks of ``tree`` against ``tree``'s package; return {name: median seconds}."""
    env = dict(os.environ, PYTHONPATH=tree + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "pytest", bench, "-q", "-p", "no:cacheprovider", "--benchmark-enable",
           "--benchmark-only", f"--benchmark-json={json_path}", "-o", "addopts="]
    if select:
        cmd += ["-k", select]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 5) or not os.path.exists(json_path):
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise RuntimeError(f"benchmarks failed in {tree}:\n" + "\n".join(tail))
    return medians_from_json(json_path)


def medians_from_json(path):
    """{benchmark name: median seconds} from a pytest-benchmark JSON or a saved baseline."""
    with open(path) as fh:
        data = json.load(fh)
    if "medians" in data:
        return {k: float(v) for k, v in data["medians"].items()}
    return {b["fullname"].split("::", 1)[-1]: float(b["stats"]["median"]) for b in data["benchmarks"]}


def spread(values):
    """Relative spread max/min - 1 of repeated medians (the measured noise)."""
    return max(values) / min(values) - 1.0 if len(values) > 1 and min(values) > 0 else 0.0


def compare(base_runs, work_runs, threshold):
    """Verdict per benchmark present in both.

    Parameters
    ----------
    base_runs, work_runs : list of dict
        One ``{name: median seconds}`` per round; round ``i`` of both lists ran
        back to back.  A single base run (a saved baseline) pairs with every
        work round.
    threshold : float
        Allowed relative slowdown of the median paired ratio.

    Returns
    -------
    list of dict
        name, base, work (median seconds), ratio, noise, regressed.
    """
    names = sorted(set.intersection(*(set(r) for r in base_runs + work_runs)))
    rows = []
    for name in names:
        base = [r[name] for r in base_runs]
        work = [r[name] for r in work_runs]
        paired = base if len(base) == len(work) else base[:1] * len(work)
        ratios = [w / b for w, b in zip(work, paired)]
        ratio = statistics.median(ratios)
        rows.append(dict(name=name, base=statistics.median(base), work=statistics.median(work),
                         ratio=ratio, noise=spread(ratios), regressed=ratio > 1.0 + threshold))
    return rows


def print_table(rows, threshold):
    width = max([len(r["name"]) for r in rows] + [9])
    print(f"{'benchmark':<{width}}  {'base ms':>10}  {'work ms':>10}  {'ratio':>6}  {'noise':>6}  verdict")
    for r in rows:
        verdict = "SLOWER" if r["regressed"] else ("faster" if r["ratio"] < 1 - threshold else "ok")
        print(f"{r['name']:<{width}}  {r['base'] * 1e3:10.3f}  {r['work'] * 1e3:10.3f}  "
              f"{r['ratio']:6.2f}  {100 * r['noise']:5.0f}%  {verdict}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python bench/regress.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--base", help="base revision [default: merge-base of HEAD with main]")
    p.add_argument("--baseline", help="compare against a saved baseline JSON instead of a base revision")
    p.add_argument("--save", help="write the working tree's medians to this JSON file")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per tree")
    p.add_argument("--threshold", type=float, default=0.25, help="allowed slowdown of the median (0.25 = 25%%)")
    p.add_argument("--bench", default="bench", help="benchmark folder or file, relative to the repository")
    p.add_argument("-k", dest="select", default=None, help="pytest -k expression selecting benchmarks")
    args = p.parse_args(argv)
    if args.rounds < 1 or not args.threshold > 0:
        print("regress: error: `--rounds` must be >= 1 and `--threshold` > 0", file=sys.stderr)
        return 2
    try:
        repo = _git("rev-parse", "--show-toplevel")
    except (subprocess.CalledProcessError, FileNotFoundError):
        print("regress: error: run it inside the git repository", file=sys.stderr)
        return 2
    if args.baseline and not os.path.isfile(args.baseline):
        print(f"regress: error: `--baseline` {args.baseline} does not exist", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as tmp:
        base_runs, work_runs = [], []
        if args.baseline:
            base_runs = [medians_from_json(args.baseline)]
            for i in range(args.rounds):
                work_runs.append(run_benchmarks(repo, args.bench, args.select, f"{tmp}/work{i}.json"))
            label = args.baseline
        else:
            rev = args.base or default_base(repo)
            base_tree = os.path.join(tmp, "base")
            try:
                _git("worktree", "add", "--detach", base_tree, rev, cwd=repo)
            except subprocess.CalledProcessError as exc:
                print(f"regress: error: `--base` {rev} cannot be checked out ({exc.stderr.strip()})",
                      file=sys.stderr)
                return 2
            try:
                for i in range(args.rounds):  # alternate the order so drifts hit both trees
                    order = [("base", base_tree), ("work", repo)]
                    for kind, tree in order if i % 2 == 0 else order[::-1]:
                        runs = base_runs if kind == "base" else work_runs
                        runs.append(run_benchmarks(tree, args.bench, args.select, f"{tmp}/{kind}{i}.json"))
            finally:
                _git("worktree", "remove", "--force", base_tree, cwd=repo)
            label = rev[:12]
        if args.save:
            work = {n: statistics.median(r[n] for r in work_runs) for n in work_runs[0]}
            with open(args.save, "w") as fh:
                json.dump({"medians": work}, fh, indent=1, sort_keys=True)
        rows = compare(base_runs, work_runs, args.threshold)
    print(f"base: {label}; work: working tree of {repo}; {args.rounds} round(s); threshold {args.threshold:.0%}")
    print_table(rows, args.threshold)
    slow = [r["name"] for r in rows if r["regressed"]]
    if slow:
        print(f"REGRESSION: {len(slow)} benchmark(s) slower than {1 + args.threshold:.2f}x base: {', '.join(slow)}")
        return 1
    print("no regression")
    return 0


if __name__ == "__main__":
    sys.exit(main())
