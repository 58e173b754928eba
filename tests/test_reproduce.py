"""Reproductions of published results: closed forms against direct simulation, every ``--quick`` run, the CLI.

* Every closed form of :mod:`hoi_fast.reproductions` is compared with a
  direct NumPy simulation written here (not hoi_fast's loop), by z-scores
  of the mean over seeds, and must reject its planted bug (an exponent off by
  one: the formula at g + 1).
* Every reproduction's ``--quick`` run is run once (one shared pool of two
  workers) and must report "agrees" on every row; the same results judged
  against the theory with a planted bug (every closed form at g + 1, or the
  reproduction's equivalent) must report "disagrees".
* The command line: the list, bad input (one line, exit status 2, nothing
  created) and resuming.
"""

import dataclasses
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import special, stats

from hoi_fast import reproduce as R
from hoi_fast import reproductions as P
from hoi_fast.executors import local_pool
from hoi_fast.experiment import real_count

Z = 4.5  # a correct closed form stays within Z standard errors at every checked point


def zscores(samples, theory):
    """(mean - theory) / SE over the seed axis 0."""
    samples = np.asarray(samples, float)
    se = samples.std(axis=0, ddof=1) / math.sqrt(samples.shape[0])
    return (samples.mean(axis=0) - theory) / se


def assert_closed_form(samples, theory, planted):
    """The closed form fits the simulation; the planted bug does not."""
    z = zscores(samples, theory)
    assert np.all(np.abs(z) < Z), z
    assert np.max(np.abs(zscores(samples, planted))) > Z


# -- direct simulations -------------------------------------------------------------------

def gaussian_chain(n, d, G, S, ddof, rng, regime="replace", alpha=1.0):
    """Mean error, trace and log det of S independent chains, per generation: arrays (S, G)."""
    pool = [rng.standard_normal((S, n, d))]
    X = pool[0]
    trace, error, logdet = (np.empty((S, G)) for _ in range(3))
    m = real_count(alpha, n)
    for g in range(G):
        mu = X.mean(axis=1)
        centred = X - mu[:, None, :]
        C = np.einsum("sni,snj->sij", centred, centred) / (X.shape[1] - ddof)
        trace[:, g] = np.trace(C, axis1=1, axis2=2) / d
        error[:, g] = (mu ** 2).sum(axis=1) / d
        logdet[:, g] = np.linalg.slogdet(C)[1]
        L = np.linalg.cholesky(C)
        if regime == "fresh":
            new = mu[:, None, :] + rng.standard_normal((S, n - m, d)) @ L.transpose(0, 2, 1)
            X = np.concatenate([rng.standard_normal((S, m, d)), new], axis=1)
            continue
        new = mu[:, None, :] + rng.standard_normal((S, n, d)) @ L.transpose(0, 2, 1)
        if regime == "replace":
            X = new
        else:
            pool.append(new)
            X = np.concatenate(pool, axis=1)
            if regime == "subsample":
                keep = np.argsort(rng.random(X.shape[:2]), axis=1)[:, :n]
                X = np.take_along_axis(X, keep[:, :, None], axis=1)
    return trace, error, logdet


def bug(closed, g, n, ddof):
    """The planted bug of a replace closed form: exponent off by one, or the wrong ddof where the
    quantity is a martingale (the variance with ddof 1 does not move)."""
    shifted = closed(n, g + 1, ddof)
    return shifted if not np.allclose(shifted, closed(n, g, ddof)) else closed(n, g, 1 - ddof)


def test_replace_gaussian_moments():
    rng = np.random.default_rng(1)
    g = np.arange(5)
    for n, d, ddof in ((6, 2, 0), (5, 1, 1), (8, 3, 0)):
        trace, error, logdet = gaussian_chain(n, d, 5, 40000, ddof, rng)
        assert_closed_form(trace, P.replace_trace(n, g, ddof), bug(P.replace_trace, g, n, ddof))
        assert_closed_form(error, P.replace_mean_error(n, g, ddof), P.replace_mean_error(n, g + 1, ddof))
        det = np.exp(logdet[:, :2])  # heavy-tailed beyond a few fits
        assert_closed_form(det, P.replace_det(n, d, g[:2], ddof),
                           bug(lambda n, g, ddof: P.replace_det(n, d, g, ddof), g[:2], n, ddof))
        if d == 1:
            assert_closed_form(logdet, P.replace_log_variance(n, g, ddof), P.replace_log_variance(n, g + 1, ddof))
            sigma = np.exp(logdet / 2)
            for s in (0.7, 1.0):
                assert_closed_form(sigma ** s, P.sigma_moment(n, s, g, ddof), P.sigma_moment(n, s, g + 1, ddof))
            assert np.all(np.abs(1 - sigma).mean(0) >= P.abs_sigma_error_bound(n, g, ddof) - 0.01)
            assert np.all(np.sqrt(error).mean(0) <= P.abs_mean_error_bound(n, g, ddof) + 0.01)
    assert P.replace_det(5, 5, np.arange(3)).tolist() == [0.0, 0.0, 0.0]


def test_accumulating_gaussian():
    rng = np.random.default_rng(2)
    g = np.arange(5)
    for regime, closed in (("accumulate", P.accumulate_gaussian), ("subsample", P.subsample_gaussian)):
        trace, error, _ = gaussian_chain(4, 2, 5, 40000, 0, rng, regime)
        t, e = closed(4, g)
        t1, e1 = closed(4, g + 1)
        assert_closed_form(trace, t, t1)
        assert_closed_form(error, e, e1)
    trace, _ = P.accumulate_gaussian(10, np.array([10 ** 5]))
    assert trace[0] == pytest.approx(P.accumulate_limit(10), rel=1e-4)


def test_fresh_gaussian_recursion():
    rng = np.random.default_rng(3)
    g = np.arange(5)
    for alpha in (0.5, 0.9, 1.0):
        trace, error, _ = gaussian_chain(5, 2, 5, 40000, 0, rng, "fresh", alpha)
        t, e = P.fresh_gaussian(5, alpha, g)
        t1, e1 = P.fresh_gaussian(5, alpha, g + 1)
        assert_closed_form(trace, t, t1)
        assert_closed_form(error, e, e1)
    # replace is the fresh recursion with no real point; the fixed point is the recursion's limit
    t, e = P.fresh_gaussian(7, 1.0, g)
    assert np.allclose(t, P.replace_trace(7, g)) and np.allclose(e, P.replace_mean_error(7, g))
    t, e = P.fresh_gaussian(100, 0.95, np.array([5000]))
    assert [t[0], e[0]] == pytest.approx(P.fresh_fixed_point(100, 0.95)[0], rel=1e-9)


def test_suresh_bound_is_markov_on_c4():
    for n in list(range(2, 200)) + [1000, 10 ** 4]:
        c4 = math.sqrt(2 / (n - 1)) * math.exp(special.gammaln(n / 2) - special.gammaln((n - 1) / 2))
        assert P.chi_moment(n, 1.0, ddof=1) == pytest.approx(c4, rel=1e-10)
        assert c4 <= math.exp(-1 / (4 * n - 1))
    # the bound dominates the exact Markov bound with s = 1
    g = np.arange(200)
    assert np.all(P.suresh_bound(10, 0.1, g) >= P.moment_bound(10, 1.0, 0.1, g))


def test_regression_closed_forms():
    rng = np.random.default_rng(4)
    S, T, d, noise, G = 20000, 8, 2, 0.5, 4
    g = np.arange(G)
    X = rng.standard_normal((S, T, d))
    w = rng.standard_normal((S, d)) / math.sqrt(d)

    def fit(Xs, ys):
        return np.linalg.solve(np.einsum("sti,stj->sij", Xs, Xs), np.einsum("sti,st->si", Xs, ys)[..., None])[..., 0]

    for regime, closed in (("replace", P.regression_replace), ("accumulate", P.regression_accumulate)):
        labels = [np.einsum("sti,si->st", X, w) + math.sqrt(noise) * rng.standard_normal((S, T))]
        errors = np.empty((S, G))
        for k in range(G):  # the design stacked once per label set, fitted as it stands
            w_hat = fit(np.concatenate([X] * len(labels), axis=1), np.concatenate(labels, axis=1))
            errors[:, k] = ((w_hat - w) ** 2).sum(axis=1)
            new = np.einsum("sti,si->st", X, w_hat) + math.sqrt(noise) * rng.standard_normal((S, T))
            labels = [new] if regime == "replace" else labels + [new]
        assert_closed_form(errors, closed(T, d, noise, g), closed(T, d, noise, g + 1))


def categorical_mix(q, n, alpha, G, S, rng):
    """Collision and squared distance to p_0 of S chains under mix (real items of R without replacement)."""
    m = real_count(alpha, n)
    collision, pool_l2 = np.empty((S, G)), np.empty((S, G))
    for s in range(S):
        R0 = rng.multinomial(n, q)
        p0 = R0 / n
        p = p0
        for g in range(G):
            if g:
                real = rng.multivariate_hypergeometric(R0, m) if m else np.zeros_like(R0)
                p = (real + rng.multinomial(n - m, p)) / n
            collision[s, g] = (p ** 2).sum()
            pool_l2[s, g] = ((p - p0) ** 2).sum()
    return collision, pool_l2


def test_categorical_closed_forms():
    rng = np.random.default_rng(5)
    q = np.arange(1, 9, dtype=float) ** -1.0
    q /= q.sum()
    n, G, S = 10, 5, 6000
    g = np.arange(G)
    collision, pool_l2 = categorical_mix(q, n, 1.0, G, S, rng)
    s0 = collision[:, :1]
    h = g[1:]  # generation 0 is S_0 itself
    assert_closed_form(collision[:, 1:] - P.collision_replace(n, h, s0), 0.0,
                       P.collision_replace(n, h + 1, s0) - P.collision_replace(n, h, s0))
    for alpha in (0.3, 0.7):
        collision, pool_l2 = categorical_mix(q, n, alpha, G, S, rng)
        s0 = collision[:, :1]
        resid = pool_l2[:, 1:] - (1 - s0) * P.pool_l2_coefficient(n, alpha, g[1:])
        planted = (1 - s0) * (P.pool_l2_coefficient(n, alpha, g[1:] + 1) - P.pool_l2_coefficient(n, alpha, g[1:]))
        assert np.all(np.abs(zscores(resid, 0.0)) < Z)
        assert np.max(np.abs(zscores(resid - planted, 0.0))) > Z


def test_survival_exact_and_bound():
    rng = np.random.default_rng(6)
    q = (np.arange(1, 31) + 2.7) ** -1.0
    q /= q.sum()
    n, G, S = 40, 6, 20000
    g = np.arange(G)
    P_ = np.broadcast_to(q, (S, len(q)))
    support = np.empty((S, G))
    counts = rng.multinomial(n, P_)
    for k in range(G):
        support[:, k] = (counts > 0).sum(axis=1)
        counts = rng.multinomial(n, counts / n)
    exact = P.survival_exact(q, n, g)
    assert_closed_form(support, exact, P.survival_exact(q, n, g + 1))
    bound = P.survival_lower_bound(q, n, g)
    assert np.all(bound <= exact + 1e-12)
    assert P.iterate_g(1) == 1.0 and P.iterate_g(2) == pytest.approx(1 - math.exp(-1))
    # at the first generation the bound is the Poisson version of Σ[1 - (1 - q)^n]
    assert bound[0] == pytest.approx(np.sum(1 - np.exp(-n * q)))


def test_missing_mass_first_generation():
    rng = np.random.default_rng(7)
    q = np.arange(1, 13, dtype=float) ** -1.5
    q /= q.sum()
    counts = np.array([9, 5, 4, 2, 2, 1, 1, 0, 0, 1, 0, 0], dtype=float)  # a tie at the top-k cut
    n, k_top, S = int(counts.sum()), 4, 40000
    keep = P.top_k_set(counts, k_top)
    assert sorted(keep.tolist()) == [0, 1, 2, 3]
    for alpha in (1.0, 0.5):
        m = real_count(alpha, n)
        p = np.zeros_like(q)
        p[keep] = counts[keep] / counts[keep].sum()
        miss = np.empty(S)
        for s in range(S):
            real = rng.multivariate_hypergeometric(counts.astype(int), m) if m else 0
            seen = (real + rng.multinomial(n - m, p)) > 0
            miss[s] = q[~seen].sum()
        theory = P.missing_mass_first(q, counts[None, :], k_top, alpha)[0]
        planted = P.missing_mass_first(q, counts[None, :], k_top + 1, alpha)[0]
        assert abs(zscores(miss[:, None], theory)[0]) < Z
        assert abs(zscores(miss[:, None], planted)[0]) > Z
        if alpha == 1.0:  # without clean data the cut tail is a floor
            assert theory >= P.cut_tail(q, k_top)


def test_mixture_l2_against_quadrature():
    rng = np.random.default_rng(8)
    w1, w2 = np.array([0.6, 0.4]), np.array([0.3, 0.7])
    m1, m2 = rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    A = rng.normal(size=(4, 2, 2))
    c = np.einsum("kij,klj->kil", A, A) + 0.3 * np.eye(2)
    c1, c2 = c[:2], c[2:]
    grid = np.linspace(-9, 9, 721)
    xy = np.stack(np.meshgrid(grid, grid), axis=-1)

    def density(w, m, cv):
        return sum(wk * stats.multivariate_normal(mk, ck).pdf(xy) for wk, mk, ck in zip(w, m, cv))

    numeric = ((density(w1, m1, c1) - density(w2, m2, c2)) ** 2).sum() * (grid[1] - grid[0]) ** 2
    assert P.mixture_l2(w1, m1, c1, w2, m2, c2) == pytest.approx(numeric, rel=1e-6)
    assert P.mixture_l2(w1, m1, c1, w1, m1, c1) == pytest.approx(0.0, abs=1e-15)


def test_em_matches_moments():
    from hoi_fast import gmm

    rng = np.random.default_rng(9)
    for seed in range(5):
        X = rng.standard_normal((300, 2)) @ np.array([[1.0, 0.3], [0.0, 0.7]])
        res = gmm.fit(X, 2, seed=seed)
        total = P.mixture_trace(res.weights, res.means, res.covariances)
        assert total == pytest.approx(np.trace(np.cov(X.T, ddof=0)) + 2e-6, rel=1e-9)
    assert P.gmm_trace(10, np.arange(3), 2.0, 0.0).tolist() == pytest.approx((2 * 0.9 ** np.arange(1, 4)).tolist())


# -- the quick reproductions --------------------------------------------------------------------

class Shifted:
    """A case whose named settings are replaced (for planted bugs such as a top-k cut off by one)."""

    def __init__(self, case, **changes):
        self._case, self._changes = case, changes

    def __getattr__(self, name):
        return getattr(self._case, name)

    def get(self, key):
        return self._changes[key] if key in self._changes else self._case.get(key)


def with_theories(spec, change):
    """``spec`` with every theory's value replaced by ``change(value)``."""
    quantities = []
    for q in spec.quantities:
        theories = tuple(dataclasses.replace(t, value=change(t)) for t in q.theories)
        quantities.append(dataclasses.replace(q, theories=theories))
    return dataclasses.replace(spec, quantities=tuple(quantities))


def exponent_off_by_one(theory):
    f = theory.value
    return lambda case, g: f(case, None if g is None else g + 1)


def top_k_off_by_one(theory):
    f = theory.value
    return lambda case, g: f(Shifted(case, top_k=case.get("top_k") + 1), g)


def claim_reversed(theory):
    return theory.value  # the judge is reversed below


PLANTED = {"dohmatob-tails": top_k_off_by_one, "hall-of-illusions": claim_reversed}


def planted(spec):
    bug = PLANTED.get(spec.name, exponent_off_by_one)
    bugged = with_theories(spec, bug)
    if bug is claim_reversed:
        flip = {"greater": "less", "less": "greater"}
        bugged = dataclasses.replace(bugged, quantities=tuple(
            dataclasses.replace(q, theories=tuple(dataclasses.replace(t, judge=flip.get(t.judge, t.judge))
                                                  for t in q.theories)) for q in bugged.quantities))
    return bugged


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("repro"))
    outcomes = {}
    with local_pool(2) as pool:
        for name, spec in P.REPRODUCTIONS.items():
            outcomes[name] = R.reproduce(spec, folder, quick=True, jobs=2, executor=pool)
    return folder, outcomes


@pytest.mark.parametrize("name", list(P.REPRODUCTIONS))
def test_quick_reproduction_agrees_and_rejects_its_planted_bug(quick_runs, name):
    folder, outcomes = quick_runs
    outcome = outcomes[name]
    failed = [r for r in outcome.evaluation.rows if not r.agrees]
    assert outcome.evaluation.agrees, failed
    with open(outcome.page, encoding="utf-8") as fh:
        page = fh.read()
    assert "**Verdict: agrees" in page and "Bonferroni" in page and "**disagrees**" not in page
    assert os.path.getsize(outcome.figure) > 10_000
    bugged = R.evaluate(planted(outcome.spec), outcome.evaluation.cases)
    assert not bugged.agrees


def test_evaluation_is_deterministic_and_resumes(quick_runs):
    folder, outcomes = quick_runs
    spec = P.REPRODUCTIONS["dohmatob-tails"]
    before = {p: os.path.getmtime(p) for p in outcomes[spec.name].results.values()}
    again = R.reproduce(spec, folder, quick=True)  # every cell is done: nothing runs, same table
    assert [r.mean for r in again.evaluation.rows] == [r.mean for r in outcomes[spec.name].evaluation.rows]
    assert all(os.path.getmtime(p) >= t for p, t in before.items())


def test_judges():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert R.judge_mean(x, 2.5, "equal", 0.95)[-1]
    assert not R.judge_mean(x, 10.0, "equal", 0.95)[-1]
    assert R.judge_mean(x, 10.0, "upper", 0.95)[-1] and not R.judge_mean(x, 10.0, "lower", 0.95)[-1]
    assert R.judge_mean(x, 0.0, "greater", 0.95)[-1] and not R.judge_mean(x, 2.0, "greater", 0.95)[-1]
    # per-seed theory: paired, the interval is that of the mean difference
    mean, low, high, value, p, seeds, agrees = R.judge_mean(x, x + 1e-3, "equal", 0.95)
    assert value == pytest.approx(2.501) and not agrees and p < 1e-6
    # every seed equal: exact comparison with a rounding tolerance
    assert R.judge_mean(np.full(5, 0.3), 0.1 + 0.2, "equal", 0.99)[-1]
    ok = R.judge_proportion(np.r_[np.ones(30), np.zeros(70)], 0.3, "equal", 0.99)
    assert ok[-1] and ok[1] < 0.3 < ok[2]
    assert not R.judge_proportion(np.r_[np.ones(30), np.zeros(70)], 0.05, "upper", 0.99)[-1]


# -- command line -----------------------------------------------------------------------------------

def run_cli(*args, cwd=None):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "hoi_fast.reproduce", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_cli_lists_the_reproductions():
    out = run_cli()
    assert out.returncode == 0
    for name in P.REPRODUCTIONS:
        assert name in out.stdout


@pytest.mark.parametrize("args, words", [
    (["nobody"], "names no reproduction"),
    (["seddik", "--seeds", "0"], "--seeds"),
    (["seddik", "--seeds", "many"], "--seeds"),
    (["seddik", "--jobs", "0"], "--jobs"),
])
def test_bad_input_is_one_line_and_creates_nothing(tmp_path, capsys, args, words):
    out = tmp_path / "made"
    status = R.main(args + ["--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and words in err and "\n" not in err
    assert not out.exists()


def test_unwritable_out(tmp_path, capsys):
    afile = tmp_path / "file"
    afile.write_text("x")
    assert R.main(["seddik", "--quick", "--out", str(afile)]) == 2
    assert "not a folder" in capsys.readouterr().err
    missing = tmp_path / "no" / "such"
    assert R.main(["seddik", "--quick", "--out", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_other_seeds_need_overwrite(quick_runs, capsys):
    folder, _ = quick_runs
    assert R.main(["dohmatob-tails", "--quick", "--seeds", "3", "--out", folder, "--jobs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--overwrite" in err and "\n" not in err
