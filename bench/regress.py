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

Timings from different CPUs are not comparable: every run records the CPU
it ran on (the benchmarks' ``extra_info`` from :func:`hoi_fast.machine.describe`,
else pytest-benchmark's ``machine_info``), ``--save`` stores it with the
medians, and the check refuses to compare runs (or a saved baseline) from
another CPU model, family/model or SIMD flag set unless ``--allow-other-cpu``
is given.  On a machine shared with noisy neighbours, ``--stat min``
compares the fastest round of each run instead of the median (neighbours
only ever add time) and ``--timer cpu`` times rounds by the process's CPU
time, which leaves out the time it waited for a core (single-process
benchmarks only).

Exit status: 0 no regression, 1 regression (the slow benchmarks are named),
2 bad input (including runs from different CPUs).
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


#: Flags that decide FP64 throughput (as :data:`hoi_fast.machine.SIMD_FLAGS`; copied so that
#: this script reads old JSON files without importing the package).
SIMD_FLAGS = ("sse2", "avx", "fma", "avx2", "avx512f", "avx512dq", "avx512vl", "asimd", "sve")


class OtherCPU(Exception):
    """Runs to compare came from different CPUs."""


TIMERS = {"wall": "time.perf_counter", "cpu": "time.process_time"}


def run_benchmarks(tree, bench, select, json_path, stat="median", timer="wall"):
    """Run the benchmarks of ``tree`` against ``tree``'s package.

    Returns ``({name: seconds}, cpu)``: the ``stat`` of each benchmark and the
    CPU record of the run (:func:`cpu_from_json`).
    """
    env = dict(os.environ, PYTHONPATH=tree + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "pytest", bench, "-q", "-p", "no:cacheprovider", "--benchmark-enable",
           "--benchmark-only", f"--benchmark-json={json_path}", f"--benchmark-timer={TIMERS[timer]}",
           "-o", "addopts="]
    if select:
        cmd += ["-k", select]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 5) or not os.path.exists(json_path):
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise RuntimeError(f"benchmarks failed in {tree}:\n" + "\n".join(tail))
    return medians_from_json(json_path, stat), cpu_from_json(json_path)


def medians_from_json(path, stat="median"):
    """{benchmark name: seconds} from a pytest-benchmark JSON (its ``stat``) or a saved baseline."""
    with open(path) as fh:
        data = json.load(fh)
    if "medians" in data:
        return {k: float(v) for k, v in data["medians"].items()}
    return {b["fullname"].split("::", 1)[-1]: float(b["stats"][stat]) for b in data["benchmarks"]}


def cpu_from_json(path):
    """The CPU a pytest-benchmark JSON or a saved baseline was measured on, or None if unrecorded.

    Returns
    -------
    dict or None
        ``cpu_model``, ``cpu_id`` (vendor, family, model; may be empty) and
        ``simd`` (the :data:`SIMD_FLAGS` present, one string).
    """
    with open(path) as fh:
        data = json.load(fh)
    if "medians" in data:
        return data.get("machine")
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if info.get("cpu_model"):
            return {k: info.get(k, "") for k in ("cpu_model", "cpu_id", "simd")}
    cpu = data.get("machine_info", {}).get("cpu") or {}
    if not cpu.get("brand_raw"):
        return None
    flags = set(cpu.get("flags", []))
    cpu_id = " ".join(str(x) for x in (cpu.get("vendor_id_raw", ""), f"family {cpu['family']}" if "family" in cpu
                                        else "", f"model {cpu['model']}" if "model" in cpu else "") if x)
    return {"cpu_model": cpu["brand_raw"], "cpu_id": cpu_id, "simd": " ".join(f for f in SIMD_FLAGS if f in flags)}


def describe_cpu(cpu):
    if not cpu:
        return "an unrecorded CPU"
    extra = ", ".join(x for x in (cpu.get("cpu_id"), cpu.get("simd")) if x)
    return f"{cpu.get('cpu_model')} ({extra})" if extra else str(cpu.get("cpu_model"))


def check_same_cpu(cpus, allow_other):
    """Raise :class:`OtherCPU` unless every record in ``cpus`` (label -> record) names the same CPU.

    Model names must match, and vendor/family/model and SIMD flags where both
    records have them; an unrecorded CPU matches nothing.  ``allow_other``
    turns the check off.
    """
    if allow_other:
        return
    items = list(cpus.items())
    first_label, first = items[0]
    for label, cpu in items[1:]:
        same = bool(first) and bool(cpu) and first.get("cpu_model") == cpu.get("cpu_model") and all(
            first.get(k) == cpu.get(k) for k in ("cpu_id", "simd") if first.get(k) and cpu.get(k))
        if not same:
            raise OtherCPU(f"{first_label} ran on {describe_cpu(first)} but {label} on {describe_cpu(cpu)}; "
                           "timings from different CPUs are not comparable (pass --allow-other-cpu to compare "
                           "anyway)")


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
    p.add_argument("--stat", choices=("median", "min"), default="median",
                   help="statistic of each run's rounds that is compared")
    p.add_argument("--timer", choices=tuple(TIMERS), default="wall",
                   help="wall clock, or the process's CPU time (ignores time the process waits for a core; "
                        "only for benchmarks that run in one process)")
    p.add_argument("--allow-other-cpu", action="store_true",
                   help="compare even if the runs (or the baseline) come from different CPUs")
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
        base_runs, work_runs, cpus = [], [], {}
        if args.baseline:
            base_runs = [medians_from_json(args.baseline)]
            cpus["the baseline"] = cpu_from_json(args.baseline)
            for i in range(args.rounds):
                medians, cpus[f"work round {i + 1}"] = run_benchmarks(repo, args.bench, args.select,
                                                                      f"{tmp}/work{i}.json", args.stat, args.timer)
                work_runs.append(medians)
                if i == 0:  # a baseline from another CPU: say so before spending more rounds
                    try:
                        check_same_cpu(cpus, args.allow_other_cpu)
                    except OtherCPU as exc:
                        print(f"regress: error: {exc}", file=sys.stderr)
                        return 2
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
                        medians, cpus[f"{kind} round {i + 1}"] = run_benchmarks(
                            tree, args.bench, args.select, f"{tmp}/{kind}{i}.json", args.stat, args.timer)
                        runs.append(medians)
            finally:
                _git("worktree", "remove", "--force", base_tree, cwd=repo)
            label = rev[:12]
        try:
            check_same_cpu(cpus, args.allow_other_cpu)
        except OtherCPU as exc:
            print(f"regress: error: {exc}", file=sys.stderr)
            return 2
        work_cpu = next(v for k, v in cpus.items() if k.startswith("work"))
        if args.save:
            work = {n: statistics.median(r[n] for r in work_runs) for n in work_runs[0]}
            with open(args.save, "w") as fh:
                json.dump({"medians": work, "machine": work_cpu, "stat": args.stat}, fh, indent=1, sort_keys=True)
        rows = compare(base_runs, work_runs, args.threshold)
    print(f"base: {label}; work: working tree of {repo}; {args.rounds} round(s); {args.stat} of each run; "
          f"threshold {args.threshold:.0%}; CPU: {describe_cpu(work_cpu)}")
    print_table(rows, args.threshold)
    slow = [r["name"] for r in rows if r["regressed"]]
    if slow:
        print(f"REGRESSION: {len(slow)} benchmark(s) slower than {1 + args.threshold:.2f}x base: {', '.join(slow)}")
        return 1
    print("no regression")
    return 0


if __name__ == "__main__":
    sys.exit(main())
