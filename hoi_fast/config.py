"""The grid's configuration: which experiments, α values, seeds, generations, regime, sweeps.

:class:`GridConfig` is a frozen, validated dataclass that holds a mapping
experiment name -> that experiment's own configuration dataclass (each lives
beside its experiment, e.g. :class:`hoi_fast.experiments.gmm.GMMConfig`).
Nothing here names an experiment: the registry (:mod:`hoi_fast.experiments`)
resolves the names, so TOML tables ``[NAME]`` and ``--sweep NAME.param=...``
work for every registered experiment and every plug-in.

The defaults are the main job's, for the library and the command line alike.
Every check raises :class:`ConfigError` naming the argument and the fix.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field, fields, replace

import numpy as np

from hoi_fast import experiments as registry
from hoi_fast._validate import MAX_COUNT, ConfigError, as_tuple, check_keys, is_int, one_of, positive_int, require
from hoi_fast.experiment import REGIMES

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

__all__ = ["ConfigError", "GridConfig", "Sweep", "alpha_grid", "as_dict", "load_toml", "make_sweep"]

DEFAULT_EXPERIMENT = "all"
DEFAULT_ALPHAS = 50
DEFAULT_SEEDS = 100
DEFAULT_GENERATIONS = 20

#: Bounds that keep a grid's bookkeeping in memory (the done masks, the α list).
MAX_ALPHAS = 100_000
MAX_SEEDS = 10_000_000
MAX_GENERATIONS = 1_000_000


def alpha_grid(spec):
    """Alphas from a count (evenly spaced in [0, 1], ends included) or a list.

    A count N >= 2 gives ``linspace(0, 1, N)``; the count 1 gives ``(0.0,)``.

    Returns
    -------
    tuple of float
        Sorted, unique values in [0, 1].
    """
    if is_int(spec):
        require(1 <= spec <= MAX_ALPHAS, f"`alphas` count must be between 1 and {MAX_ALPHAS:,}, got {spec}; "
                "a count N gives N evenly spaced values in [0, 1]")
        if spec == 1:
            return (0.0,)
        return tuple(float(a) for a in np.linspace(0.0, 1.0, int(spec)))
    if isinstance(spec, (str, bytes)) or not hasattr(spec, "__iter__"):
        raise ConfigError(f"`alphas` must be a count or a list of numbers in [0, 1], got {spec!r}")
    values = []
    for a in spec:
        require(not isinstance(a, (bool, str, bytes)) and isinstance(a, (int, float, np.number)),
                f"`alphas` must be a count or a list of numbers in [0, 1], got {a!r} in the list")
        values.append(float(a))
    require(len(values) >= 1, "`alphas` must not be empty")
    require(len(values) <= MAX_ALPHAS, f"`alphas` may hold at most {MAX_ALPHAS:,} values")
    for a in values:
        require(math.isfinite(a) and 0.0 <= a <= 1.0, f"`alphas` values must lie in [0, 1], got {a!r}")
    require(len(set(values)) == len(values), f"`alphas` values must be distinct, got {values}")
    return tuple(sorted(values))


# -- experiment configurations ------------------------------------------------

def config_from_table(entry, table):
    """An experiment's configuration from its TOML table (a dict).

    Unknown keys are refused; lists become tuples.  A configuration class
    with nested tables (e.g. ``[gmm.truth]``) provides a ``from_table``
    classmethod that does the same for its layout.
    """
    cls = entry.config_class
    require(isinstance(table, dict), f"`{entry.name}` must be a table of settings such as [{entry.name}]")
    if hasattr(cls, "from_table"):
        return cls.from_table(table)
    check_keys(table, {f.name for f in fields(cls) if f.init}, f"{entry.name}.")
    return cls(**{k: as_tuple(v) for k, v in table.items()})


def unsweepable(config_class):
    """Fields that cannot be swept: the class's ``UNSWEEPABLE`` and every non-scalar field."""
    out = set(getattr(config_class, "UNSWEEPABLE", ()))
    default = config_class()
    for f in fields(config_class):
        if not isinstance(getattr(default, f.name), (bool, int, float, str)):
            out.add(f.name)
    return out


def _coerce_sweep_value(name, default, value):
    """Convert a swept value (often a string from the command line) to the field's type."""
    kind = type(default)
    try:
        if kind is bool:
            text = str(value).strip().lower()
            if isinstance(value, bool) or text in ("true", "false", "1", "0"):
                return value if isinstance(value, bool) else text in ("true", "1")
            raise ValueError
        if kind is int:
            require(not isinstance(value, bool), "")
            number = float(value)
            if not math.isfinite(number) or number != int(number) or abs(number) > MAX_COUNT:
                raise ValueError
            return int(number) if isinstance(value, (float, str)) else int(value)
        if kind is float:
            require(not isinstance(value, bool), "")
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
            return number
        return str(value).strip() if isinstance(value, str) else str(value)
    except (TypeError, ValueError, OverflowError):
        what = {bool: "true or false", int: f"integers (at most {MAX_COUNT:,})", float: "finite numbers"}
        raise ConfigError(f"`{name}` sweep values must be {what.get(kind, kind.__name__)}, got {value!r}") from None


@dataclass(frozen=True)
class Sweep:
    """An extra grid axis: one experiment parameter taking several values.

    Attributes
    ----------
    name : str
        ``"<experiment>.<field>"``, the experiment by its registry name.
    values : tuple
        The values, coerced to the field's type, in the given order.
    """

    name: str
    values: tuple

    @property
    def experiment(self):
        return self.name.rpartition(".")[0]

    @property
    def field(self):
        return self.name.rpartition(".")[2]


def make_sweep(name, values, entries):
    """Validate a sweep ``name=values`` for the selected ``entries`` and coerce its values."""
    word, _, field_name = str(name).strip().rpartition(".")
    entry = next((e for e in entries if word in e.words()), None)
    if entry is None:
        names = ", ".join(e.name for e in entries)
        hint = (f"needs `experiment` {word} among the experiments run (now: {names})"
                if word in registry.BUILTIN else
                f"names no parameter; use EXPERIMENT.PARAMETER with one of the experiments run ({names})")
        raise ConfigError(f"`--sweep {name}` {hint}")
    cls = entry.config_class
    known = {f.name for f in fields(cls) if f.init}
    require(field_name in known, f"`--sweep {name}` names no parameter of [{entry.name}]; "
            f"known: {', '.join(sorted(known))}")
    require(field_name not in unsweepable(cls),
            f"`--sweep {name}`: {field_name} cannot be swept; set it in the config")
    default = getattr(cls(), field_name)
    if isinstance(values, str):
        items = values.split(",")
        require(all(v.strip() for v in items), f"`--sweep {name}` has an empty value in {values!r}")
        values = items
    elif not isinstance(values, (list, tuple)):
        values = [values]
    qualified = f"{entry.name}.{field_name}"
    values = tuple(_coerce_sweep_value(qualified, default, v) for v in values)
    require(len(values) >= 1, f"`--sweep {name}` needs at least one value")
    require(len(set(values)) == len(values), f"`--sweep {name}` values must be distinct, got {list(values)}")
    return Sweep(qualified, values)


# -- the grid -----------------------------------------------------------------

@dataclass(frozen=True)
class GridConfig:
    """A whole grid: experiments x alphas x [swept parameters] x seeds, each cell run for G generations.

    Attributes
    ----------
    experiment : str or sequence of str
        Which experiments: ``"all"`` (every built-in, the default), ``"both"``
        (gmm and ngram), names and plug-in import strings ``module:Class``,
        comma-separated.
    alphas : int or sequence of float
        A count of evenly spaced values in [0, 1], or the values.
    seeds, generations : int
    regime : {"mix", "fresh", "accumulate", "accumulate-subsample"}
    root_seed : int
    configs : dict
        Experiment word -> its configuration (an instance of its
        ``config_class``, or a dict of settings as in its TOML table).
        Experiments not named get their defaults.
    sweeps : sequence
        :class:`Sweep` objects or ``(name, values)`` pairs.

    After validation ``configs`` maps every selected experiment's name to its
    configuration, and :attr:`entries` holds their registry entries.
    """

    experiment: object = DEFAULT_EXPERIMENT
    alphas: object = DEFAULT_ALPHAS
    seeds: int = DEFAULT_SEEDS
    generations: int = DEFAULT_GENERATIONS
    regime: str = "mix"
    root_seed: int = 0
    configs: dict = field(default_factory=dict)
    sweeps: tuple = ()
    entries: tuple = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self):
        entries = registry.select(self.experiment)
        object.__setattr__(self, "entries", entries)
        object.__setattr__(self, "experiment", registry.words_of(entries))
        object.__setattr__(self, "alphas", alpha_grid(self.alphas))
        positive_int("seeds", self.seeds, MAX_SEEDS)
        positive_int("generations", self.generations, MAX_GENERATIONS)
        one_of("regime", self.regime, REGIMES)
        require(is_int(self.root_seed) and 0 <= self.root_seed < 2**63,
                f"`root_seed` must be an integer in [0, 2**63), got {self.root_seed!r}")
        object.__setattr__(self, "root_seed", int(self.root_seed))
        object.__setattr__(self, "configs", self._resolve_configs(entries))
        sweeps = tuple(s if isinstance(s, Sweep) else make_sweep(*s, entries) for s in self.sweeps)
        object.__setattr__(self, "sweeps", sweeps)
        names = [s.name for s in sweeps]
        require(len(set(names)) == len(names), f"`--sweep` names must be distinct, got {names}")
        for sweep in sweeps:
            require(sweep.experiment in self.configs,
                    f"`--sweep {sweep.name}` needs `experiment` {sweep.experiment} among the experiments run")
            for value in sweep.values:  # every swept configuration must be valid
                try:
                    self.experiment_config(sweep.experiment, {sweep.name: value})
                except ConfigError as exc:
                    raise ConfigError(f"`--sweep {sweep.name}={value}`: {exc}") from None
        for name in self.configs:
            for _, values in self.sweep_points(name):
                check = getattr(self.experiment_config(name, values), "check_grid", None)
                if check is not None:
                    check(self)

    def _resolve_configs(self, entries):
        given = dict(self.configs or {})
        out = {}
        for entry in entries:
            keys = [k for k in given if k in entry.words()]
            require(len(keys) <= 1, f"`[{entry.name}]` is given twice (as {' and '.join(keys)})")
            value = given.pop(keys[0]) if keys else entry.config_class()
            if isinstance(value, dict):
                value = config_from_table(entry, value)
            require(isinstance(value, entry.config_class),
                    f"`configs[{entry.name!r}]` must be a {entry.config_class.__name__} or a table of settings")
            out[entry.name] = value
        for word, value in given.items():  # tables of experiments that do not run: validated, then dropped
            require(word in registry.BUILTIN,
                    f"`[{word}]` names no experiment that runs; the experiments are "
                    f"{', '.join(e.name for e in entries)} (choose them with `experiment`)")
            entry = registry.resolve(word)
            if isinstance(value, dict):
                config_from_table(entry, value)
        return out

    @property
    def experiments(self):
        """The names of the experiments this grid runs, in file order."""
        return tuple(e.name for e in self.entries)

    def entry(self, name):
        """The registry entry of experiment ``name``."""
        return next(e for e in self.entries if e.name == name)

    def sweeps_for(self, experiment):
        """The sweeps that apply to ``experiment``, in grid order."""
        return tuple(s for s in self.sweeps if s.experiment == experiment)

    def sweep_points(self, experiment):
        """Every combination of ``experiment``'s sweep values: ``(index tuple, {sweep name: value})``."""
        sweeps = self.sweeps_for(experiment)
        for index in np.ndindex(*(len(s.values) for s in sweeps)):
            yield tuple(int(i) for i in index), {s.name: s.values[i] for s, i in zip(sweeps, index)}

    def experiment_config(self, experiment, values=None):
        """The configuration of ``experiment`` with swept ``{sweep name: value}`` applied."""
        base = self.configs[experiment]
        changes = {name.rpartition(".")[2]: v for name, v in (values or {}).items()}
        return replace(base, **changes) if changes else base

    def cell_count(self, experiment):
        """Number of cells of ``experiment``."""
        n = len(self.alphas) * self.seeds
        for sweep in self.sweeps_for(experiment):
            n *= len(sweep.values)
        return n

    def identity(self):
        """Everything that decides the numbers, JSON-ready: what a results file must match to be resumed."""
        out = {"experiment": self.experiment, "alphas": list(self.alphas), "seeds": self.seeds,
               "generations": self.generations, "regime": self.regime, "root_seed": self.root_seed,
               "sweeps": {s.name: list(s.values) for s in self.sweeps}}
        for name, config in self.configs.items():
            out[name] = as_dict(config)
        return out

    @classmethod
    def from_identity(cls, identity):
        """The configuration an :meth:`identity` dict (or an older file's) describes.

        Fields an older version did not record take their defaults, and
        ``"both"`` is the alias it always was, so files written before a
        field was added still resume.
        """
        entries = registry.select(identity.get("experiment", DEFAULT_EXPERIMENT))
        configs = {}
        for entry in entries:
            stored = dict(identity.get(entry.name, {}))
            known = {f.name for f in fields(entry.config_class) if f.init}
            configs[entry.name] = entry.config_class(**{k: as_tuple(v) for k, v in stored.items() if k in known})
        return cls(experiment=registry.words_of(entries), alphas=identity.get("alphas", DEFAULT_ALPHAS),
                   seeds=identity.get("seeds", DEFAULT_SEEDS),
                   generations=identity.get("generations", DEFAULT_GENERATIONS),
                   regime=identity.get("regime", "mix"), root_seed=identity.get("root_seed", 0),
                   configs=configs, sweeps=tuple((k, v) for k, v in identity.get("sweeps", {}).items()))


def as_dict(config):
    """A JSON-ready dict of a configuration dataclass (tuples become lists)."""
    out = {}
    for f in fields(config):
        if not f.init:
            continue
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            value = as_dict(value)
        elif isinstance(value, (tuple, np.ndarray)):
            value = np.asarray(value).tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        out[f.name] = value
    return out


# -- TOML ----------------------------------------------------------------------

GRID_KEYS = ("experiment", "alphas", "seeds", "generations", "regime", "root_seed")


def read_toml(path):
    """Parse the TOML file ``path``; one-line :class:`ConfigError` for every way it can fail."""
    require(isinstance(path, (str, os.PathLike)) and str(path), "`--config` must be a path to a TOML file")
    if os.path.isdir(path):
        raise ConfigError(f"`--config` {path} is a folder; give a TOML file")
    if not os.path.exists(path):
        raise ConfigError(f"`--config` file {path} does not exist; give a readable TOML file")
    if not os.path.isfile(path):
        raise ConfigError(f"`--config` {path} is not a regular file; give a TOML file")
    try:
        with open(path, "rb") as fh:
            data = fh.read((1 << 24) + 1)
    except OSError as exc:
        raise ConfigError(f"`--config` {path} cannot be read ({exc.strerror or exc})") from None
    require(len(data) <= 1 << 24, f"`--config` {path} is larger than 16 MiB; a configuration is a few lines")
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark, as some editors write
        data = data[3:]
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"`--config` {path} is not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"`--config` {path} is not valid TOML ({exc}); fix the file") from None
    except RecursionError:
        raise ConfigError(f"`--config` {path} nests too deeply to be a configuration; fix the file") from None


def settings_from_toml(data):
    """:class:`GridConfig` keyword arguments from a parsed TOML document.

    ``[grid]`` holds the grid's settings, ``[sweep]`` the sweeps (``"gmm.samples"
    = [...]`` or ``[sweep.gmm] samples = [...]``), and every other table is an
    experiment's configuration, named by the experiment's name or import string.
    """
    require(isinstance(data, dict), "the configuration must be a TOML document of tables")
    grid = data.get("grid", {})
    require(isinstance(grid, dict), "`grid` must be a table: [grid]")
    check_keys(grid, set(GRID_KEYS), "grid.")
    settings = dict(grid)
    sweep = data.get("sweep", {})
    require(isinstance(sweep, dict), '`sweep` must be a table such as [sweep] "gmm.samples" = [250, 1000]')
    settings["sweeps"] = tuple(_flatten_sweep(sweep))
    configs = {}
    for key, table in data.items():
        if key in ("grid", "sweep"):
            continue
        require(isinstance(table, dict), f"`{key}` must be a table of an experiment's settings, [{key}]")
        configs[key] = table
    settings["configs"] = configs
    return settings


def load_toml(path):
    """:class:`GridConfig` keyword arguments from the TOML file ``path``."""
    return settings_from_toml(read_toml(path))


def _flatten_sweep(table, prefix=""):
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _flatten_sweep(value, f"{prefix}{key}.")
        else:
            yield (f"{prefix}{key}", value if isinstance(value, list) else [value])
