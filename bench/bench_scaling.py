"""How cost grows: n-gram training size x order, GMM size x components; fitted exponents and a figure.

Run as a script (about a minute)::

    python bench/bench_scaling.py                      # table, exponents, docs/scaling.png
    python bench/bench_scaling.py --quick --no-plot    # a smaller sweep

or under pytest (``python -m pytest bench/bench_scaling.py --benchmark-enable -s``;
the exponents go to ``extra_info``).

* **n-gram**: training an order-N Kneser-Ney model (:func:`hoi_fast.ngram.train`:
  counting, smoothing tables, sampling rows, look-up index) on the first n
  characters of the built-in corpus's training part, n = 10 000 - 300 000,
  N = 2 - 8; and scoring 10 000 held-out characters with it (the cost per
  character grows with the model, which the caches hold less of).
* **GMM**: ``ITERS`` EM iterations (:func:`hoi_fast.kernels.gmm.em`, fixed
  work: ``tol = 0``) on n = 250 - 16 000 points of the default truth with K =
  2 - 16 components from a k-means++ start.

Each time is the fastest of ``--repeats`` runs in CPU time of this process
(neighbours on a shared machine only add time).  The exponent b of
``time = a * size ** b`` is the least-squares slope on log-log axes, per
order and per K: 1 is linear; the figure shows time per item, flat when
linear.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from hoi_fast import machine, ngram
from hoi_fast.corpus import load_corpus
from hoi_fast.experiments.gmm import GMMConfig
from hoi_fast.kernels import gmm as kg

NGRAM_SIZES = (10_000, 20_000, 50_000, 100_000, 200_000, 300_000)
NGRAM_ORDERS = (2, 3, 4, 5, 6, 8)
GMM_SIZES = (250, 1000, 4000, 16_000)
GMM_KS = (2, 4, 8, 16)
ITERS = 20
HELDOUT = 10_000
FIGURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "scaling.png")


def fastest(fn, repeats):
    """Fastest of ``repeats`` calls of ``fn`` (after one warm-up), in CPU seconds."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def exponent(sizes, seconds):
    """Least-squares slope of log(seconds) against log(size)."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def ngram_sweep(sizes=NGRAM_SIZES, orders=NGRAM_ORDERS, repeats=3):
    """{order: (train seconds per size, score seconds per size, model nodes per size)}."""
    corpus = load_corpus()
    heldout = corpus.heldout[:HELDOUT].copy()
    out = {}
    for order in orders:
        train_s, score_s, nodes = [], [], []
        for n in sizes:
            text = corpus.train[:n].copy()
            train_s.append(fastest(lambda: ngram.train(text, order, vocab_size=corpus.vocab_size), repeats))
            model = ngram.train(text, order, vocab_size=corpus.vocab_size)
            score_s.append(fastest(lambda: model.log_probs(heldout), repeats))
            nodes.append(model._n_nodes)
        out[order] = (np.array(train_s), np.array(score_s), np.array(nodes))
    return out


def gmm_sweep(sizes=GMM_SIZES, ks=GMM_KS, repeats=3):
    """{K: EM seconds (ITERS iterations) per size}."""
    w, mu, cov = GMMConfig().truth()
    out = {}
    for k in ks:
        seconds = []
        for n in sizes:
            X = np.empty((n, 2))
            kg.sample(w, mu, cov, n, np.random.default_rng(n), X, np.empty(n, np.int64))
            w0, mu0, cov0 = kg.kmeans_init(X, k, np.random.default_rng(k), 1e-6, 20)[:3]
            trace = np.empty(ITERS)
            seconds.append(fastest(lambda: kg.em(X, w0.copy(), mu0.copy(), cov0.copy(), ITERS, 0.0, 1e-6, trace,
                                                 False), repeats))
        out[k] = np.array(seconds)
    return out


def report(ng, gm, ng_sizes, gm_sizes):
    """Printable tables and the fitted exponents ({"ngram train": {order: b}, ...})."""
    exps = {"ngram train": {}, "ngram score": {}, "ngram nodes": {}, "gmm em": {}}
    lines = ["n-gram: train time per character (ns) by training size; exponents of time vs size",
             "| order | " + " | ".join(f"{n:,}" for n in ng_sizes) + " | b (train) | b (score 10k) | b (nodes) |",
             "|---" * (len(ng_sizes) + 4) + "|"]
    for order, (train_s, score_s, nodes) in ng.items():
        exps["ngram train"][order] = exponent(ng_sizes, train_s)
        exps["ngram score"][order] = exponent(ng_sizes, score_s)
        exps["ngram nodes"][order] = exponent(ng_sizes, nodes)
        per = " | ".join(f"{1e9 * t / n:.0f}" for t, n in zip(train_s, ng_sizes))
        lines.append(f"| {order} | {per} | {exps['ngram train'][order]:.2f} | {exps['ngram score'][order]:.2f} | "
                     f"{exps['ngram nodes'][order]:.2f} |")
    lines += ["", f"GMM: EM time per point-component-iteration (ns) by points ({ITERS} iterations); exponent vs n",
              "| K | " + " | ".join(f"{n:,}" for n in gm_sizes) + " | b |", "|---" * (len(gm_sizes) + 2) + "|"]
    for k, seconds in gm.items():
        exps["gmm em"][k] = exponent(gm_sizes, seconds)
        per = " | ".join(f"{1e9 * t / (n * k * ITERS):.2f}" for t, n in zip(seconds, gm_sizes))
        lines.append(f"| {k} | {per} | {exps['gmm em'][k]:.2f} |")
    ks = np.array(list(gm))
    at_largest = np.array([gm[k][-1] for k in ks])
    exps["gmm em vs K"] = exponent(ks, at_largest)
    lines.append(f"\nGMM exponent of time vs K at n = {gm_sizes[-1]:,}: {exps['gmm em vs K']:.2f}")
    return "\n".join(lines), exps


def plot(ng, gm, ng_sizes, gm_sizes, exps, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=80)
    for order, (train_s, _, _) in ng.items():
        a.plot(ng_sizes, 1e9 * train_s / np.array(ng_sizes), "o-", ms=3,
               label=f"order {order} (b = {exps['ngram train'][order]:.2f})")
    a.set(xscale="log", yscale="log", xlabel="training characters", ylabel="ns per character",
          title="n-gram training (Kneser-Ney)")
    a.legend(fontsize=7)
    for k, seconds in gm.items():
        b.plot(gm_sizes, 1e9 * seconds / (np.array(gm_sizes) * k * ITERS), "o-", ms=3,
               label=f"K = {k} (b = {exps['gmm em'][k]:.2f})")
    b.set(xscale="log", yscale="log", xlabel="points", ylabel="ns per point-component-iteration",
          title=f"GMM EM ({ITERS} iterations)")
    b.legend(fontsize=7)
    fig.suptitle(f"cost per item; b: exponent of time vs size (1 = linear) - {machine.cpu_model()} "
                 f"({machine.simd_flags()})", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python bench/bench_scaling.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer sizes and orders")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--out", default=FIGURE, help="figure path [default: docs/scaling.png]")
    args = p.parse_args(argv)
    ng_sizes = NGRAM_SIZES[::2] if args.quick else NGRAM_SIZES
    orders = (2, 4, 8) if args.quick else NGRAM_ORDERS
    gm_sizes = GMM_SIZES[::2] + GMM_SIZES[-1:] if args.quick else GMM_SIZES
    ks = (2, 8) if args.quick else GMM_KS
    ng = ngram_sweep(ng_sizes, orders, args.repeats)
    gm = gmm_sweep(gm_sizes, ks, args.repeats)
    text, exps = report(ng, gm, ng_sizes, gm_sizes)
    print(f"{machine.cpu_model()} ({machine.cpu_id()}; {machine.simd_flags()}); fastest of {args.repeats}, CPU time")
    print(text)
    if not args.no_plot:
        plot(ng, gm, ng_sizes, gm_sizes, exps, args.out)
        print(f"figure: {args.out} ({os.path.getsize(args.out) // 1024} KiB)")
    return 0


def test_scaling(benchmark):
    """pytest entry: the quick sweep once; exponents in ``extra_info``."""
    result = benchmark.pedantic(lambda: (ngram_sweep(NGRAM_SIZES[::2], (2, 4, 8), 2),
                                         gmm_sweep(GMM_SIZES[::2] + GMM_SIZES[-1:], (2, 8), 2)),
                                rounds=1, iterations=1)
    text, exps = report(*result, NGRAM_SIZES[::2], GMM_SIZES[::2] + GMM_SIZES[-1:])
    benchmark.extra_info.update(machine.describe(measure=False))
    benchmark.extra_info["exponents"] = {k: {str(kk): vv for kk, vv in v.items()} if isinstance(v, dict) else v
                                         for k, v in exps.items()}
    print("\n" + text)


if __name__ == "__main__":
    sys.exit(main())
