"""EM speed against scikit-learn in the same run, and one full generation step.

Run with::

    python -m pytest bench/bench_gmm.py --benchmark-enable -p no:cacheprovider

Fixed work: both fits start from the same k-means++ parameters and run exactly
``ITERS`` EM iterations (``tol=0``: ``|change| < 0`` never holds).  Our
public ``fit`` requires ``tol > 0``, so the benchmark calls the kernel
:func:`hoi_fast.kernels.gmm.em` directly (the wrapper adds ~10 us of
validation).  Both run on one thread (threadpoolctl limits BLAS/OpenMP).
``extra_info`` holds the work counter and ns per point-component-iteration,
and for the EM rows the GFLOP/s, the fraction of the FP64 peak of *this* CPU
(measured at start by :func:`hoi_fast.machine.measured_peak_gflops`, and of the
nominal-clock figure) and the CPU's model and flags (:func:`hoi_fast.machine.describe`).
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/sklearn import, in case threadpoolctl is missing

import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402

from hoi_fast import machine  # noqa: E402
from hoi_fast.experiments.gmm import GMMConfig  # noqa: E402
from hoi_fast.experiment import run_cell  # noqa: E402
from hoi_fast.experiments.gmm import GMMExperiment  # noqa: E402
from hoi_fast.kernels import gmm as kg  # noqa: E402
from hoi_fast.experiments import streams  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

ITERS = 50
CASES = [(n, k) for n in (1000, 5000) for k in (3, 5, 8)]
# The arithmetic of one point-component-iteration of fused EM (E-step
# log-density and exp, M-step accumulation of 6 moments): ~60 flop.  The peak
# it is compared with is the one of the CPU that runs the benchmark, measured
# at start (hoi_fast.machine: an FMA loop; the nominal-clock figure beside it).
FLOP_PER_POINT_COMPONENT_ITER = 60.0
_SKLEARN_SECONDS = {}


@pytest.fixture(autouse=True)
def _record_machine(request):
    """Every benchmark of this file records the CPU it ran on (model, flags; bench/regress.py reads it)."""
    yield
    bench = request.node.funcargs.get("benchmark")
    if bench is not None:
        bench.extra_info.update(machine.describe(measure=False))


def problem(n, k):
    """Points from the default truth and a k-means++ start (same for both libraries)."""
    w, mu, cov = GMMConfig().truth()
    X = np.empty((n, 2))
    kg.sample(w, mu, cov, n, np.random.default_rng(n), X, np.empty(n, np.int64))
    start = kg.kmeans_init(X, k, np.random.default_rng(k), 1e-6, 20)[:3]
    return X, start


def _single_thread():
    return threadpool_limits(1) if threadpool_limits else _Null()


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("n, k", CASES)
def test_em_sklearn(benchmark, n, k):
    X, (w, mu, cov) = problem(n, k)
    precisions = np.linalg.inv(cov)

    def run():
        gm = GaussianMixture(k, weights_init=w, means_init=mu, precisions_init=precisions,
                             tol=0.0, max_iter=ITERS, reg_covar=1e-6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm.fit(X)
        return gm

    with _single_thread():
        gm = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert gm.n_iter_ == ITERS
    seconds = benchmark.stats.stats.median
    _SKLEARN_SECONDS[(n, k)] = seconds
    benchmark.extra_info.update(points=n, components=k, iterations=ITERS,
                                ns_per_point_component_iter=seconds / (n * k * ITERS) * 1e9)


@pytest.mark.parametrize("n, k", CASES)
def test_em_hoi_fast(benchmark, n, k):
    X, (w, mu, cov) = problem(n, k)
    trace = np.empty(ITERS)

    def run():
        return kg.em(X, w.copy(), mu.copy(), cov.copy(), ITERS, 0.0, 1e-6, trace, False)

    run()  # JIT warm-up
    with _single_thread():
        out = benchmark.pedantic(run, rounds=50, iterations=1, warmup_rounds=2)
    assert out[0] == ITERS
    seconds = benchmark.stats.stats.median
    benchmark.extra_info.update(points=n, components=k, iterations=ITERS,
                                ns_per_point_component_iter=seconds / (n * k * ITERS) * 1e9)
    sk = _SKLEARN_SECONDS.get((n, k))
    if sk is None:  # run alone: time sklearn here, once, for the ratio
        gm = GaussianMixture(k, weights_init=w, means_init=mu, precisions_init=np.linalg.inv(cov),
                             tol=0.0, max_iter=ITERS, reg_covar=1e-6)
        with _single_thread(), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.perf_counter()
            gm.fit(X)
            sk = time.perf_counter() - t0
    ns = seconds / (n * k * ITERS) * 1e9
    gflops = FLOP_PER_POINT_COMPONENT_ITER / ns
    peak, theory = machine.measured_peak_gflops(), machine.theoretical_peak_gflops()
    benchmark.extra_info.update(machine.describe())
    benchmark.extra_info["speedup_vs_sklearn"] = sk / seconds
    benchmark.extra_info["gflops"] = gflops
    benchmark.extra_info["fraction_of_peak"] = gflops / peak
    benchmark.extra_info["fraction_of_theoretical_peak"] = gflops / theory if theory else None
    nominal = f", {100 * gflops / theory:.0f}% of the nominal {theory:.1f}" if theory else ""
    print(f"\nEM n={n} K={k}: {seconds * 1e6:.0f} us, {ns:.2f} ns/point/component/iter, {gflops:.1f} GFLOP/s = "
          f"{100 * gflops / peak:.0f}% of this core's measured FP64 peak {peak:.1f}{nominal} "
          f"({machine.cpu_model()}), {sk / seconds:.0f}x sklearn")


def _fitted_sklearn(k=5):
    """A scikit-learn mixture and our parameters describing the same model."""
    from hoi_fast.gmm import GMMParams

    w, mu, cov = GMMConfig().truth()
    gm = GaussianMixture(len(w), covariance_type="full")
    gm.weights_, gm.means_, gm.covariances_ = w, mu, cov
    gm.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(cov))
    return gm, GMMParams(w, mu, cov)


@pytest.mark.parametrize("library", ["sklearn", "hoi_fast"])
def test_sample(benchmark, library):
    """Draw 100 000 points from the default truth."""
    from hoi_fast import gmm

    n = 100_000
    gm, params = _fitted_sklearn()
    if library == "sklearn":
        gm.random_state = 0
        run = lambda: gm.sample(n)  # noqa: E731
    else:
        rng = np.random.default_rng(0)
        run = lambda: gmm.sample(params, n, rng)  # noqa: E731
    run()
    with _single_thread():
        benchmark.pedantic(run, rounds=20, iterations=1)
    benchmark.extra_info.update(points=n, ns_per_point=benchmark.stats.stats.median / n * 1e9)


@pytest.mark.parametrize("library", ["sklearn", "hoi_fast"])
def test_log_density(benchmark, library):
    """Log-density of 100 000 points under the default truth (5 components)."""
    from hoi_fast import gmm

    gm, params = _fitted_sklearn()
    X = gmm.sample(params, 100_000, np.random.default_rng(1))
    run = (lambda: gm.score_samples(X)) if library == "sklearn" else (lambda: gmm.log_density(params, X))
    np.testing.assert_allclose(gm.score_samples(X), gmm.log_density(params, X), rtol=1e-10)
    with _single_thread():
        benchmark.pedantic(run, rounds=20, iterations=1)
    benchmark.extra_info.update(points=len(X), components=5,
                                ns_per_point_component=benchmark.stats.stats.median / (len(X) * 5) * 1e9)


KNOBS = {
    "default": {},
    "temperature_0.8": dict(sample_temperature=0.8),
    "truncation_0.2": dict(sample_truncation=0.2),
    "quality_0.05": dict(filter="quality"),
    "verifier_c10": dict(filter="verifier", verifier_c=10.0),
}


@pytest.mark.parametrize("knob", list(KNOBS))
def test_generation_step(benchmark, knob):
    """One full generation (alpha = 0.9, mix): build the set, fit, sample, metrics.

    Default GMMConfig, or with one sampling-bias or filter knob set.
    """
    experiment = GMMExperiment(GMMConfig(**KNOBS[knob]))
    generations = 20
    run_cell(experiment, 0.9, 2, "mix", streams("gmm", 0, 0, 0.9))  # warm-up

    def run():
        return run_cell(experiment, 0.9, generations, "mix", streams("gmm", 0, 1, 0.9))

    metrics = benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=1)
    per_step = benchmark.stats.stats.median / generations
    benchmark.extra_info.update(generations=generations, seconds_per_generation=per_step,
                                mean_acceptance=float(np.nanmean(metrics["acceptance"])),
                                mean_em_iterations=float(metrics["n_iter"].mean()))
    print(f"\ngeneration step (N=1000, K=5, all metrics, {knob}): {per_step * 1e6:.0f} us")
