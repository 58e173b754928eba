"""The reproductions of :mod:`hoi_fast.reproduce`: the spec types, closed forms and declarative specs.

Index convention (every experiment of hoi_fast): generation 0 is fitted on the
real pool R, so generation ``g`` is the ``(g + 1)``-th fit.  A paper that
counts fits from 1 (its ``k``) is compared at ``k = g + 1``; one whose
generation 0 is the truth itself uses the same ``k``.

Every closed form states its derivation in its docstring and is tested
against a direct NumPy simulation (independent of hoi_fast's loop) in
``tests/test_reproduce.py``, the Gaussian and regression ones also through
their experiment's loop (``tests/test_gaussian.py``,
``tests/test_regression.py``); the reproductions then compare them with the
grid.  ``r = (n - 1) / n`` throughout.

Modules
-------
:mod:`~hoi_fast.reproductions.spec`
    The declarative spec types :class:`Run`, :class:`Theory`,
    :class:`Quantity`, :class:`Reproduction` (and ``JUDGES``,
    ``STATISTICS``).
:mod:`~hoi_fast.reproductions.closed_forms`
    The closed forms, by family: one Gaussian (:func:`replace_trace`,
    :func:`accumulate_gaussian`, :func:`fresh_recursion`, ...), linear
    regression (:func:`regression_replace`, ...), categorical
    (:func:`collision_replace`, :func:`survival_exact`,
    :func:`missing_mass_first`, ...), mixtures (:func:`mixture_l2`,
    :func:`gmm_trace`, ...).
:mod:`~hoi_fast.reproductions.published`
    The helpers for specs (:func:`metric`, :func:`up_to`, ``LIGHT_*``), the
    published results as :class:`Reproduction` specs with their private
    helpers, and :data:`REPRODUCTIONS` (name -> spec, in the order the
    command line lists and runs them).

Every public name is importable from :mod:`hoi_fast.reproductions` itself.
"""

from hoi_fast.reproductions.closed_forms import (
    abs_mean_error_bound,
    abs_sigma_error_bound,
    accumulate_gaussian,
    accumulate_limit,
    chi_moment,
    collision_replace,
    cut_tail,
    fresh_fixed_point,
    fresh_gaussian,
    fresh_recursion,
    fresh_step,
    gmm_trace,
    iterate_g,
    missing_mass_first,
    mixture_l2,
    mixture_trace,
    moment_bound,
    ols_error,
    pool_l2_coefficient,
    regression_accumulate,
    regression_replace,
    replace_det,
    replace_log_variance,
    replace_mean_error,
    replace_trace,
    sigma_moment,
    subsample_gaussian,
    suresh_bound,
    survival_exact,
    survival_lower_bound,
    top_k_set,
    variance_factor,
)
from hoi_fast.reproductions.published import (
    BERTRAND,
    BERTRAND_ALPHAS,
    DOHMATOB_TAILS,
    DOMINANT,
    GMM_LIGHT,
    HALL_OF_ILLUSIONS,
    KAZDAN_GAUSSIAN,
    KAZDAN_N,
    LIGHT_CATEGORICAL,
    LIGHT_GAUSSIAN,
    LIGHT_REGRESSION,
    ONE_BLOB,
    REAL,
    REGRESSION,
    REPRODUCTIONS,
    SEDDIK,
    SEDDIK_ALPHAS,
    SELF,
    SHOWN,
    SHUMAILOV_GAUSSIAN,
    SHUMAILOV_GMM,
    SURESH_EPS,
    SURESH_GAUSSIAN,
    SURESH_S,
    SURESH_ZIPF,
    TAILS_K,
    ZIPF_RUN,
    metric,
    up_to,
)
from hoi_fast.reproductions.spec import JUDGES, STATISTICS, Quantity, Reproduction, Run, Theory

__all__ = [
    # the spec types
    "JUDGES", "STATISTICS", "Run", "Theory", "Quantity", "Reproduction",
    # closed forms: one Gaussian
    "variance_factor", "replace_trace", "replace_mean_error", "replace_log_variance", "replace_det",
    "chi_moment", "sigma_moment", "abs_mean_error_bound", "abs_sigma_error_bound", "suresh_bound",
    "moment_bound", "accumulate_gaussian", "accumulate_limit", "subsample_gaussian", "fresh_step",
    "fresh_recursion", "fresh_gaussian", "fresh_fixed_point",
    # closed forms: linear regression
    "ols_error", "regression_replace", "regression_accumulate",
    # closed forms: categorical
    "collision_replace", "pool_l2_coefficient", "survival_exact", "iterate_g", "survival_lower_bound",
    "top_k_set", "missing_mass_first", "cut_tail",
    # closed forms: mixtures
    "mixture_trace", "gmm_trace", "mixture_l2",
    # helpers for specs
    "metric", "up_to", "LIGHT_GAUSSIAN", "LIGHT_CATEGORICAL", "LIGHT_REGRESSION",
    # the published results, their constants and the registry
    "SHUMAILOV_GAUSSIAN",
    "ONE_BLOB", "GMM_LIGHT", "SHUMAILOV_GMM",
    "SURESH_EPS", "SURESH_S", "SURESH_GAUSSIAN",
    "ZIPF_RUN", "SURESH_ZIPF",
    "KAZDAN_N", "KAZDAN_GAUSSIAN",
    "REGRESSION",
    "BERTRAND_ALPHAS", "BERTRAND",
    "SEDDIK_ALPHAS", "SEDDIK",
    "TAILS_K", "DOHMATOB_TAILS",
    "REAL", "SELF", "DOMINANT", "SHOWN", "HALL_OF_ILLUSIONS",
    "REPRODUCTIONS",
]
