"""The experiment registry: every experiment the grid can run, built in or plugged in.

An experiment is named by a *word*: the short name of a built-in experiment
(``gmm``, ``ngram``, ...) or the import string ``package.module:Class`` of a
user's class that implements :class:`hoi_fast.experiment.Experiment`.  Each
resolves to an :class:`Entry`: its name (the TOML table, the ``--sweep``
prefix and the results group), its configuration class, its experiment class
and its stream key (:mod:`hoi_fast.seeding`).

Adding a built-in experiment is one module in this package (its configuration
dataclass beside its experiment class) and one line in :data:`BUILTIN`.  A
plug-in needs no line anywhere: ``--experiment mypkg.mymodule:MyExperiment``.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from dataclasses import dataclass

from hoi_fast._validate import ConfigError
from hoi_fast.experiment import PROTOCOL_METHODS
from hoi_fast.seeding import plugin_stream_key

#: name -> (import string, stream key).  The stream keys never change: they
#: seed every random stream of the experiment.
BUILTIN = {
    "gmm": ("hoi_fast.experiments.gmm:GMMExperiment", 1),
    "ngram": ("hoi_fast.experiments.ngram:NGramExperiment", 2),
    "gaussian": ("hoi_fast.experiments.gaussian:GaussianExperiment", 3),
    "categorical": ("hoi_fast.experiments.categorical:CategoricalExperiment", 4),
    "regression": ("hoi_fast.experiments.regression:RegressionExperiment", 5),
}

#: Words that stand for several experiments.
ALIASES = {"both": ("gmm", "ngram")}

_SHORT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_IMPORT_STRING = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Entry:
    """One registered experiment.

    Attributes
    ----------
    name : str
        Short name: TOML table ``[name]``, ``--sweep name.param``, results group ``/name``.
    spec : str
        Import string ``module:Class`` of the experiment class.
    stream_key : int
        First word of every spawn key of the experiment's random streams.
    builtin : bool
    """

    name: str
    spec: str
    stream_key: int
    builtin: bool

    @property
    def experiment_class(self):
        """The experiment class (imported on first use)."""
        return _import(self.spec)

    @property
    def config_class(self):
        """The experiment's configuration dataclass."""
        return self.experiment_class.config_class

    def words(self):
        """Every word that names this entry in a TOML table or a sweep."""
        return {self.name, self.spec}


def _import(spec):
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an ImportError, or whatever the module raises while importing
        raise ConfigError(f"`--experiment {spec}`: cannot import {module_name} "
                          f"({type(exc).__name__}: {exc}); put it on PYTHONPATH or fix the module") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ConfigError(f"`--experiment {spec}`: module {module_name} has no class {class_name}")
    return cls


def _check_plugin(spec, cls):
    """Refuse a plug-in class that cannot run, with one line that says why."""
    missing = [m for m in PROTOCOL_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise ConfigError(f"`--experiment {spec}` lacks the method {missing[0]}() of the experiment protocol "
                          "(hoi_fast.experiment.Experiment; subclass hoi_fast.experiment.ArrayExperiment "
                          "for array data)")
    config_class = getattr(cls, "config_class", None)
    if not (isinstance(config_class, type) and dataclasses.is_dataclass(config_class)):
        raise ConfigError(f"`--experiment {spec}` must name its configuration: set the class attribute "
                          "config_class to a dataclass (frozen, every field with a default)")
    try:
        config_class()
    except Exception as exc:
        raise ConfigError(f"`--experiment {spec}`: its config_class {config_class.__name__}() cannot be built "
                          f"from defaults ({type(exc).__name__}: {exc}); give every field a default") from None
    name = getattr(cls, "name", None)
    if name is not None and (not isinstance(name, str) or not _SHORT_NAME.match(name)):
        raise ConfigError(f"`--experiment {spec}`: its name attribute must be a short word of letters, digits, "
                          f"'_' or '-' starting with a letter, got {name!r}")
    if name in BUILTIN or name in ALIASES or name == "all":
        raise ConfigError(f"`--experiment {spec}`: its name {name!r} is taken by a built-in experiment; "
                          "choose another name attribute")


def resolve(word):
    """The :class:`Entry` of one experiment word (a built-in name or ``module:Class``).

    Raises
    ------
    ConfigError
        If the word names nothing, the class cannot be imported, or it does
        not implement the experiment protocol.
    """
    word = str(word).strip()
    if word in BUILTIN:
        spec, key = BUILTIN[word]
        return Entry(word, spec, key, True)
    if not _IMPORT_STRING.match(word):
        raise ConfigError(f"`--experiment` {word!r} names no experiment; use one of "
                          f"{', '.join(BUILTIN)}, all, both, a comma-separated list of them, "
                          "or a plug-in as package.module:Class")
    cls = _import(word)
    _check_plugin(word, cls)
    name = getattr(cls, "name", None) or word
    return Entry(name, word, plugin_stream_key(name), False)


def select(selection="all"):
    """The entries named by an experiment selection, in order, without repeats.

    Parameters
    ----------
    selection : str or sequence of str
        ``"all"`` (every built-in), ``"both"`` (gmm and ngram), a built-in
        name, a plug-in import string, or a comma-separated list / sequence
        of those.

    Returns
    -------
    tuple of Entry
    """
    if not isinstance(selection, str) and not (isinstance(selection, (list, tuple))
                                              and all(isinstance(w, str) for w in selection)):
        raise ConfigError(f"`--experiment` must be experiment names (a string or a list of strings), got {selection!r}")
    words = selection.split(",") if isinstance(selection, str) else list(selection)
    words = [w.strip() for w in words]
    if not words or any(not w for w in words):
        raise ConfigError(f"`--experiment` must name experiments separated by commas, got {selection!r}")
    entries = []
    for word in words:
        names = tuple(BUILTIN) if word == "all" else ALIASES.get(word, (word,))
        for name in names:
            entry = resolve(name)
            if entry.name in [e.name for e in entries]:
                continue
            clash = [e for e in entries if e.stream_key == entry.stream_key]
            if clash:
                raise ConfigError(f"`--experiment`: {entry.spec} and {clash[0].spec} share a stream key; "
                                  "rename one of them (its name attribute)")
            entries.append(entry)
    return tuple(entries)


def words_of(entries):
    """The selection string that :func:`select` turns back into ``entries``."""
    return ",".join(e.name if e.builtin else e.spec for e in entries)


def streams(experiment, root_seed, seed_index, alpha, sweep=()):
    """The :class:`hoi_fast.seeding.CellStreams` of one cell of ``experiment`` (a name or import string).

    The same streams the grid uses, e.g. to run one cell by hand with
    :func:`hoi_fast.experiment.run_cell`.
    """
    from hoi_fast.seeding import CellStreams

    return CellStreams(root_seed, resolve(experiment).stream_key, seed_index, alpha, tuple(sweep))
