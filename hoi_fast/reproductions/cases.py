"""The cases of a reproduction: one α and swept value of one run, its metrics read from the results file.

:mod:`hoi_fast.reproduce` runs the grids and reads their cases with
:func:`load_cases`; :mod:`~hoi_fast.reproductions.judge` judges the cases
and :mod:`~hoi_fast.reproductions.render` draws them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import h5py
import numpy as np

#: How swept parameters and case keys are written in labels.
SYMBOLS = {"samples": "n", "alpha": "α", "noise": "σ²", "zipf_a": "a", "zipf_b": "b", "top_k": "k",
           "dim": "d", "features": "d", "vocab_size": "V", "components": "K"}


class _Metrics(dict):
    """Metric name -> ``(seeds, generations, ...)`` array, read from the file on first use."""

    def __init__(self, path, group, index, done):
        super().__init__()
        self._path, self._group, self._index, self._done = path, group, index, done

    def __missing__(self, name):
        with h5py.File(self._path, "r") as f:
            g = f[self._group]
            if name not in g:
                raise KeyError(f"{self._path} group {self._group} has no metric {name!r}")
            values = np.asarray(g[name][self._index], dtype=np.float64)
        self[name] = values[self._done]
        return self[name]


@dataclass(eq=False)
class Case:
    """One α (and swept value) of one run of one experiment: the seeds that share its settings.

    Attributes
    ----------
    run : str
        The run's label.
    experiment : str
        The results group (experiment name).
    regime : str
    alpha : float
    config : dict
        The experiment's configuration with the swept values applied.
    swept : dict
        Swept field -> value.
    metrics : mapping
        Metric name -> float64 array ``(seeds, generations, ...)`` of the done seeds.
    seeds : int
        Done seeds.
    generations : int
    label : str
        Set by :func:`load_cases` from the keys that vary.
    """

    run: str
    experiment: str
    regime: str
    alpha: float
    config: dict
    swept: dict
    metrics: dict
    seeds: int
    generations: int
    label: str = ""

    def get(self, key):
        """A case key: ``alpha``, ``regime``, ``run``, ``experiment``, or a (swept) configuration field."""
        if key in ("alpha", "regime", "run", "experiment"):
            return getattr(self, key)
        if key in self.swept:
            return self.swept[key]
        return self.config[key]

    def keys(self):
        """The keys that distinguish cases: run, experiment, α and the swept fields."""
        return {"run": self.run, "experiment": self.experiment, "alpha": self.alpha, **self.swept}

    def gens(self):
        """``arange(generations)`` as int64."""
        return np.arange(self.generations, dtype=np.int64)


def _dims(ds):
    return tuple(ds.dims[i][0].name.rsplit("/", 1)[-1] for i in range(ds.ndim))


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def load_cases(spec, paths):
    """Every case of every run of ``spec`` from its results files (run label -> path).

    Returns
    -------
    list of Case
        In run order, then experiment, α and swept values in grid order;
        cases without any done seed are left out.
    """
    import json

    cases = []
    for run in spec.runs:
        path = paths[run.label]
        with h5py.File(path, "r") as f:
            grid_identity = json.loads(_text(f.attrs["config"]))
            for name in (k for k in f.keys() if isinstance(f[k], h5py.Group)):
                g = f[name]
                config = json.loads(_text(g.attrs["config"]))
                cell_dims = _dims(g["done"])
                done = g["done"][...].astype(bool)
                coords = {d: g[d][...] for d in cell_dims[:-1]}
                generations = int(g["generation"].shape[0])
                for index in np.ndindex(*done.shape[:-1]):
                    mask = done[index]
                    if not mask.any():
                        continue
                    values = {d: coords[d][i].item() for d, i in zip(cell_dims[:-1], index)}
                    alpha = float(values.pop("alpha"))
                    swept = {d: (_text(v) if isinstance(v, bytes) else v) for d, v in values.items()}
                    cases.append(Case(run=run.label, experiment=name, regime=grid_identity["regime"],
                                      alpha=alpha, config={**config, **swept}, swept=swept,
                                      metrics=_Metrics(path, name, index, mask), seeds=int(mask.sum()),
                                      generations=generations))
    _label_cases(cases)
    return cases


def _fmt(value, digits=4):
    """A number in at most ``digits`` significant digits (plain for integers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    value = float(value)
    if not math.isfinite(value):
        return {math.inf: "∞", -math.inf: "−∞"}.get(value, "NaN")
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:.{digits}g}"


def _scalar(value):
    return isinstance(value, (str, int, float, bool, np.generic))


def _label_cases(cases):
    """Label each case by the settings that vary between cases: experiment, α, swept and other scalar
    settings (e.g. a sample size swept in one run and fixed in another), and the run where those tie."""
    keys = ["experiment", "alpha"]
    for c in cases:
        keys += [k for k in c.swept if k not in keys]
    common = set.intersection(*(set(c.config) for c in cases)) if cases else set()
    keys += [k for k in (cases[0].config if cases else ()) if k not in keys and k in common]

    def value(case, key):
        try:
            v = case.get(key)
        except KeyError:
            return None
        return v if _scalar(v) else None

    varying = [k for k in keys if len({value(c, k) for c in cases}) > 1]
    for c in cases:
        parts = []
        for key in varying:
            v = value(c, key)
            if v is None:
                continue
            parts.append(str(v) if key == "experiment" else f"{SYMBOLS.get(key, key)} = {_fmt(v)}")
        c.label = ", ".join(parts)
    if len({c.label for c in cases}) < len(cases) or not any(c.label for c in cases):
        for c in cases:
            c.label = ", ".join(p for p in (c.run, c.label) if p)
    for c in cases:
        c.label = c.label or "all seeds"

