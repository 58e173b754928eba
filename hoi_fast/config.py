"""Frozen, validated configuration of experiments and grids.

Every check raises :class:`ConfigError` (a ``ValueError``) whose one-line
message names the argument in backticks and says what to do; the command line
turns it into exit status 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import numpy as np

from hoi_fast.experiment import REGIMES, SCHEDULES, scheduled_size

SMOOTHINGS = ("kneser-ney", "add-k", "mle")
GMM_FILTERS = ("none", "quality", "verifier")
NGRAM_FILTERS = ("none", "quality")
EXPERIMENTS = ("gmm", "ngram")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names it and the fix."""


def _require(condition, message):
    if not condition:
        raise ConfigError(message)


def _positive_int(name, value):
    _require(
        isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1,
        f"`{name}` must be a positive integer, got {value!r}",
    )
    return int(value)


def _positive_float(name, value):
    _require(
        isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
        and math.isfinite(value) and value > 0,
        f"`{name}` must be a positive finite number, got {value!r}",
    )
    return float(value)


def _fraction(name, value):
    _require(
        isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and 0 <= value < 1,
        f"`{name}` must be in [0, 1), got {value!r}",
    )


def _non_negative_float(name, value):
    _require(
        isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
        and math.isfinite(value) and value >= 0,
        f"`{name}` must be a finite number >= 0, got {value!r}",
    )


def _check_schedule(section, schedule, growth):
    _require(
        schedule in SCHEDULES,
        f"`{section}.schedule` must be one of {', '.join(SCHEDULES)}; got {schedule!r}",
    )
    _require(
        isinstance(growth, (int, float)) and not isinstance(growth, bool) and math.isfinite(growth)
        and growth >= 0 and (growth > 0 or schedule != "geometric"),
        f"`{section}.growth` must be a finite number >= 0 (> 0 for a geometric schedule), got {growth!r}",
    )


# The built-in truth: a bulk of three overlapping components and a long tail of
# two rare (3% and 2%), far-away components.  Collapse erodes the tail first.
DEFAULT_TRUTH_WEIGHTS = (0.45, 0.30, 0.20, 0.03, 0.02)
DEFAULT_TRUTH_MEANS = ((0.0, 0.0), (3.0, 1.0), (-1.5, 2.5), (9.0, -6.0), (-8.0, -7.0))
DEFAULT_TRUTH_COVARIANCES = (
    ((1.0, 0.3), (0.3, 0.8)),
    ((0.6, -0.2), (-0.2, 1.2)),
    ((0.9, 0.0), (0.0, 0.5)),
    ((0.5, 0.1), (0.1, 0.4)),
    ((0.4, -0.1), (-0.1, 0.6)),
)


def validate_truth(weights, means, covariances, name="gmm.truth"):
    """Validate and coerce a 2-D Gaussian mixture truth.

    Returns
    -------
    weights : ndarray, shape (K,), float64
    means : ndarray, shape (K, 2), float64
    covariances : ndarray, shape (K, 2, 2), float64
    """
    try:
        w = np.asarray(weights, dtype=np.float64)
        mu = np.asarray(means, dtype=np.float64)
        cov = np.asarray(covariances, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"`{name}` weights, means and covariances must be numeric arrays") from None
    _require(w.ndim == 1 and w.size >= 1, f"`{name}.weights` must be a non-empty list, got shape {w.shape}")
    k = w.size
    _require(mu.shape == (k, 2), f"`{name}.means` must have shape ({k}, 2) to match the weights, got {mu.shape}")
    _require(cov.shape == (k, 2, 2), f"`{name}.covariances` must have shape ({k}, 2, 2), got {cov.shape}")
    for arr, part in ((w, "weights"), (mu, "means"), (cov, "covariances")):
        _require(np.all(np.isfinite(arr)), f"`{name}.{part}` must be finite numbers")
    _require(np.all(w > 0), f"`{name}.weights` must all be positive")
    _require(abs(w.sum() - 1.0) < 1e-9, f"`{name}.weights` must sum to 1, they sum to {w.sum():.12g}")
    for j in range(k):
        c = cov[j]
        _require(
            abs(c[0, 1] - c[1, 0]) <= 1e-12 * max(1.0, abs(c).max()),
            f"`{name}.covariances[{j}]` must be symmetric",
        )
        det = c[0, 0] * c[1, 1] - c[0, 1] * c[1, 0]
        _require(
            c[0, 0] > 0 and det > 0,
            f"`{name}.covariances[{j}]` must be positive definite (det = {det:.3g}); fix the truth's covariances",
        )
    return w, mu, cov


@dataclass(frozen=True)
class GMMConfig:
    """Parameters of the Gaussian-mixture experiment.

    Attributes
    ----------
    components : int
        Number of components K fitted by EM.
    samples : int
        Training-set size n per generation.
    heldout : int
        Size of the held-out real set drawn from the truth (``real_nll``, ``kl``).
    tail_heldout : int
        Size of the held-out set drawn from the tail components only (``tail_nll``).
    self_samples : int
        Size of the fresh sample from the model itself (``self_nll``).
    tail_weight : float
        Truth components with weight <= this form the long tail.
    reg_covar, tol, max_iter : float, float, int
        EM settings (scikit-learn's conventions).
    truth_weights, truth_means, truth_covariances : tuple
        The true mixture (default: the built-in five-component truth).
    schedule : {"constant", "linear", "geometric"}
        Training-set size per generation: n, n (1 + growth g) or n growth^g.
    growth : float
        Rate of the ``linear`` schedule or factor of the ``geometric`` one.
    sample_temperature : float
        Synthetic points are drawn from N(mu_k, temperature * Sigma_k).
    sample_truncation : float
        Likelihood truncation in [0, 1): the least likely fraction of candidate
        samples (under the model) is dropped, i.e. synthetic data come from the
        model's high-density region.
    filter : {"none", "quality", "verifier"}
        Filtering of synthetic points before they train (see README).
    quality_quantile : float
        ``quality`` keeps a point when its true density is at least this
        quantile of the true density under the truth itself.
    verifier_c : float
        ``verifier`` accepts x with probability min(1, p_true(x) / (c p_model(x))).
        The accepted density is proportional to min(p_model, p_true / c): with
        c near 1 the thinner tail wins and the verifier erodes the tail; it
        corrects toward the truth once c p_model >= p_true (c >~ 10 on the
        default truth).
    verifier_noise : float
        Standard deviation of the log-normal noise on p_true seen by the verifier.
    """

    components: int = 5
    samples: int = 1000
    heldout: int = 5000
    tail_heldout: int = 1000
    self_samples: int = 2000
    tail_weight: float = 0.03
    reg_covar: float = 1e-6
    tol: float = 1e-3
    max_iter: int = 100
    truth_weights: tuple = DEFAULT_TRUTH_WEIGHTS
    truth_means: tuple = DEFAULT_TRUTH_MEANS
    truth_covariances: tuple = DEFAULT_TRUTH_COVARIANCES
    schedule: str = "constant"
    growth: float = 1.0
    sample_temperature: float = 1.0
    sample_truncation: float = 0.0
    filter: str = "none"
    quality_quantile: float = 0.05
    verifier_c: float = 10.0
    verifier_noise: float = 0.0

    def __post_init__(self):
        _check_schedule("gmm", self.schedule, self.growth)
        _positive_float("gmm.sample_temperature", self.sample_temperature)
        _fraction("gmm.sample_truncation", self.sample_truncation)
        _require(self.filter in GMM_FILTERS,
                 f"`gmm.filter` must be one of {', '.join(GMM_FILTERS)}; got {self.filter!r}")
        _fraction("gmm.quality_quantile", self.quality_quantile)
        _positive_float("gmm.verifier_c", self.verifier_c)
        _non_negative_float("gmm.verifier_noise", self.verifier_noise)
        for name in ("components", "samples", "heldout", "tail_heldout", "self_samples", "max_iter"):
            _positive_int(f"gmm.{name}", getattr(self, name))
        _require(
            isinstance(self.reg_covar, (int, float)) and math.isfinite(self.reg_covar) and self.reg_covar >= 0,
            f"`gmm.reg_covar` must be >= 0, got {self.reg_covar!r}",
        )
        _positive_float("gmm.tol", self.tol)
        _positive_float("gmm.tail_weight", self.tail_weight)
        _require(
            self.components <= self.samples,
            f"`gmm.components` ({self.components}) must not exceed `gmm.samples` ({self.samples})",
        )
        w, _, _ = validate_truth(self.truth_weights, self.truth_means, self.truth_covariances)
        _require(
            np.any(w <= self.tail_weight),
            f"`gmm.tail_weight` ({self.tail_weight}) selects no truth component; "
            f"raise it to at least the smallest weight ({w.min():.3g})",
        )

    def truth(self):
        """The truth as ``(weights, means, covariances)`` float64 arrays."""
        return validate_truth(self.truth_weights, self.truth_means, self.truth_covariances)

    def tail_components(self):
        """Indices of the truth's tail components, int64 array."""
        return np.flatnonzero(np.asarray(self.truth_weights) <= self.tail_weight)


@dataclass(frozen=True)
class NGramConfig:
    """Parameters of the character n-gram experiment.

    Attributes
    ----------
    order : int
        n-gram order (1 to 10).
    smoothing : {"kneser-ney", "add-k", "mle"}
    k : float
        Pseudo-count of ``add-k`` smoothing.
    discount : float
        Absolute discount D of interpolated Kneser-Ney, in (0, 1).
    corpus : str
        ``"builtin"`` or a path to a UTF-8 text file or a folder of ``.txt`` files.
    train_chars : int
        Size n of the real pool R and of every generation's training text.
    heldout_chars : int
        Size of the held-out real text.
    self_chars : int
        Size of the fresh text sampled from the model (``self_bpc``).
    schedule : {"constant", "linear", "geometric"}
        Training-set size per generation: n, n (1 + growth g) or n growth^g.
    growth : float
        Rate of the ``linear`` schedule or factor of the ``geometric`` one.
    temperature : float
        Synthetic text is sampled from p(c|h)^(1/temperature), renormalised.
    top_k : int
        Keep only the k most likely next characters (0 = off).
    top_p : float
        Nucleus sampling: keep the smallest set of most likely characters whose
        probability reaches top_p (1 = off).
    filter : {"none", "quality"}
        ``quality`` keeps a synthetic chunk only if its bits per character under
        generation 0's model (trained on the real pool) is at most
        ``filter_threshold``.
    filter_chunk : int
        Length of the chunks the quality filter judges.
    filter_threshold : float
        Bits per character a chunk may cost under the real-pool model.
    """

    order: int = 4
    smoothing: str = "kneser-ney"
    k: float = 0.05
    discount: float = 0.75
    corpus: str = "builtin"
    train_chars: int = 30000
    heldout_chars: int = 10000
    self_chars: int = 2000
    schedule: str = "constant"
    growth: float = 1.0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    filter: str = "none"
    filter_chunk: int = 200
    filter_threshold: float = 4.0

    def __post_init__(self):
        _check_schedule("ngram", self.schedule, self.growth)
        _positive_float("ngram.temperature", self.temperature)
        _require(isinstance(self.top_k, (int, np.integer)) and not isinstance(self.top_k, bool) and self.top_k >= 0,
                 f"`ngram.top_k` must be an integer >= 0 (0 = off), got {self.top_k!r}")
        _positive_float("ngram.top_p", self.top_p)
        _require(self.top_p <= 1, f"`ngram.top_p` must be in (0, 1], got {self.top_p}")
        _require(self.filter in NGRAM_FILTERS,
                 f"`ngram.filter` must be one of {', '.join(NGRAM_FILTERS)}; got {self.filter!r}")
        _positive_int("ngram.filter_chunk", self.filter_chunk)
        _positive_float("ngram.filter_threshold", self.filter_threshold)
        _positive_int("ngram.order", self.order)
        _require(self.order <= 10, f"`ngram.order` must be at most 10, got {self.order}")
        _require(
            self.smoothing in SMOOTHINGS,
            f"`ngram.smoothing` must be one of {', '.join(SMOOTHINGS)}; got {self.smoothing!r}",
        )
        _positive_float("ngram.k", self.k)
        _positive_float("ngram.discount", self.discount)
        _require(self.discount < 1, f"`ngram.discount` must be below 1, got {self.discount}")
        _require(isinstance(self.corpus, str) and self.corpus, "`ngram.corpus` must be 'builtin' or a path")
        for name in ("train_chars", "heldout_chars", "self_chars"):
            _positive_int(f"ngram.{name}", getattr(self, name))
        for name in ("train_chars", "heldout_chars", "self_chars"):
            _require(
                getattr(self, name) > self.order,
                f"`ngram.{name}` must exceed `ngram.order` ({self.order})",
            )


def alpha_grid(spec):
    """Alphas from a count (evenly spaced in [0, 1], ends included) or a list.

    Returns
    -------
    tuple of float
        Sorted, unique values in [0, 1].
    """
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        _require(spec >= 1, f"`alphas` count must be at least 1, got {spec}")
        if spec == 1:
            return (0.0,)
        return tuple(float(a) for a in np.linspace(0.0, 1.0, int(spec)))
    try:
        values = [float(a) for a in spec]
    except (TypeError, ValueError):
        raise ConfigError(f"`alphas` must be a count or a list of numbers in [0, 1], got {spec!r}") from None
    _require(len(values) >= 1, "`alphas` must not be empty")
    for a in values:
        _require(math.isfinite(a) and 0.0 <= a <= 1.0, f"`alphas` values must lie in [0, 1], got {a!r}")
    _require(len(set(values)) == len(values), f"`alphas` values must be distinct, got {values}")
    return tuple(sorted(values))


# Parameters that change the data's identity or shape rather than the recipe.
UNSWEEPABLE = {"corpus", "truth_weights", "truth_means", "truth_covariances"}


def _coerce_sweep_value(name, default, value):
    """Convert a swept value (often a string from the command line) to the field's type."""
    kind = type(default)
    try:
        if kind is int:
            number = float(value)
            if number != int(number):
                raise ValueError
            return int(number)
        if kind is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"`{name}` sweep values must be {kind.__name__} numbers, got {value!r}") from None


@dataclass(frozen=True)
class Sweep:
    """An extra grid axis: one experiment parameter taking several values.

    Attributes
    ----------
    name : str
        ``"gmm.<field>"`` or ``"ngram.<field>"`` of :class:`GMMConfig` / :class:`NGramConfig`.
    values : tuple
        The values, coerced to the field's type, in the given order.
    """

    name: str
    values: tuple

    @property
    def experiment(self):
        return self.name.split(".", 1)[0]

    @property
    def field(self):
        return self.name.split(".", 1)[1]


def make_sweep(name, values):
    """Validate a sweep ``name=values`` and coerce its values."""
    section, _, field_name = str(name).partition(".")
    classes = {"gmm": GMMConfig, "ngram": NGramConfig}
    _require(
        section in classes and field_name in classes[section].__dataclass_fields__,
        f"`--sweep {name}` names no parameter; use gmm.<name> or ngram.<name> with a field of "
        "the [gmm] or [ngram] configuration table",
    )
    _require(field_name not in UNSWEEPABLE, f"`--sweep {name}`: {field_name} cannot be swept; set it in the config")
    default = getattr(classes[section](), field_name)
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    values = tuple(_coerce_sweep_value(name, default, v) for v in values)
    _require(len(values) >= 1, f"`--sweep {name}` needs at least one value")
    _require(len(set(values)) == len(values), f"`--sweep {name}` values must be distinct, got {list(values)}")
    return Sweep(name, values)


@dataclass(frozen=True)
class GridConfig:
    """A whole grid: experiments x alphas x [swept parameters] x seeds, each cell run for G generations."""

    experiment: str = "both"
    alphas: tuple = field(default_factory=lambda: alpha_grid(11))
    seeds: int = 20
    generations: int = 20
    regime: str = "mix"
    root_seed: int = 0
    gmm: GMMConfig = field(default_factory=GMMConfig)
    ngram: NGramConfig = field(default_factory=NGramConfig)
    sweeps: tuple = ()

    def __post_init__(self):
        _require(
            self.experiment in EXPERIMENTS + ("both",),
            f"`experiment` must be gmm, ngram or both; got {self.experiment!r}",
        )
        object.__setattr__(self, "alphas", alpha_grid(self.alphas))
        _positive_int("seeds", self.seeds)
        _positive_int("generations", self.generations)
        _require(self.regime in REGIMES, f"`regime` must be one of {', '.join(REGIMES)}; got {self.regime!r}")
        _require(
            isinstance(self.root_seed, (int, np.integer)) and not isinstance(self.root_seed, bool)
            and self.root_seed >= 0,
            f"`root_seed` must be a non-negative integer, got {self.root_seed!r}",
        )
        sweeps = tuple(s if isinstance(s, Sweep) else make_sweep(*s) for s in self.sweeps)
        object.__setattr__(self, "sweeps", sweeps)
        names = [s.name for s in sweeps]
        _require(len(set(names)) == len(names), f"`--sweep` names must be distinct, got {names}")
        for sweep in sweeps:
            _require(
                sweep.experiment in self.experiments,
                f"`--sweep {sweep.name}` needs `experiment` {sweep.experiment} or both",
            )
            for value in sweep.values:  # every swept configuration must be valid
                try:
                    self.experiment_config(sweep.experiment, {sweep.name: value})
                except ConfigError as exc:
                    raise ConfigError(f"`--sweep {sweep.name}={value}`: {exc}") from None

        if "gmm" in self.experiments:
            self._check_gmm_sizes()

    def _check_gmm_sizes(self):
        """Every generation of every swept GMM configuration has at least K points."""
        sweeps = self.sweeps_for("gmm")
        for index in np.ndindex(*(len(s.values) for s in sweeps)):
            c = self.experiment_config("gmm", {s.name: s.values[i] for s, i in zip(sweeps, index)})
            sizes = [scheduled_size(c.samples, c.schedule, c.growth, g) for g in range(self.generations)]
            smallest = int(np.argmin(sizes))
            _require(
                sizes[smallest] >= c.components,
                f"`gmm.schedule` {c.schedule} with `gmm.growth` {c.growth} gives {sizes[smallest]} training "
                f"points at generation {smallest}, fewer than `gmm.components` ({c.components}); "
                "raise gmm.growth or run fewer generations",
            )

    def sweeps_for(self, experiment):
        """The sweeps that apply to ``experiment``, in grid order."""
        return tuple(s for s in self.sweeps if s.experiment == experiment)

    def experiment_config(self, experiment, values=None):
        """The configuration of ``experiment`` with swept ``{name: value}`` applied."""
        base = self.gmm if experiment == "gmm" else self.ngram
        changes = {name.split(".", 1)[1]: v for name, v in (values or {}).items()}
        return replace(base, **changes) if changes else base

    @property
    def experiments(self):
        """The experiments this grid runs, in file order."""
        return EXPERIMENTS if self.experiment == "both" else (self.experiment,)


def as_dict(config):
    """A JSON-ready dict of a (nested) config dataclass."""
    out = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if hasattr(value, "__dataclass_fields__"):
            value = as_dict(value)
        elif f.name == "sweeps":
            value = {s.name: list(s.values) for s in value}
        elif isinstance(value, tuple):
            value = np.asarray(value).tolist()
        out[f.name] = value
    return out
