"""Reading a results file into memory: :func:`read_group` (one :class:`ResultsGroup`) and :func:`experiments_in`.

Readers take no lock and may read while a run writes (up to its last
consolidation).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import h5py
import numpy as np

from hoi_fast.store.errors import ResultsFileError
from hoi_fast.store.paths import stored_config


@dataclass(frozen=True)
class ResultsGroup:
    """One experiment's results, read into memory.

    Attributes
    ----------
    name : str
    coords : dict of str -> ndarray
        Every dimension scale of the group.
    dims : dict of str -> tuple of str
        The dimension names of each metric.
    data : dict of str -> ndarray
        Every metric, float64 with NaN where not computed (empty when read
        with ``values=False``).
    attrs : dict of str -> dict
        ``units``, ``long_name`` and ``role`` (``""`` for none) of each metric.
    done : ndarray of bool
        Shape of the cell dimensions.
    cell_dims : tuple of str
        The cell dimensions: ``("alpha", *swept parameters, "seed")``.
    config : dict
        The experiment's configuration.
    provenance : dict
        The file's root attributes (versions, command line, times, config).
    """

    name: str
    coords: dict
    dims: dict
    data: dict
    attrs: dict
    done: np.ndarray
    cell_dims: tuple
    config: dict
    provenance: dict

    @property
    def sweep_dims(self):
        """Names of the swept-parameter dimensions (between alpha and seed)."""
        return self.cell_dims[1:-1]


def _dims_of(ds):
    return tuple(ds.dims[i][0].name.rsplit("/", 1)[-1] for i in range(ds.ndim))


def _legacy_role(metric):
    """The role of a metric of a file written before roles were stored (gmm and ngram only)."""
    return {"real_nll": "real", "real_bpc": "real", "self_nll": "self", "self_bpc": "self",
            "tail_nll": "tail", "tail_bpc": "tail"}.get(metric, "")


def read_group(path, name, values=True):
    """Read one experiment group of a results file.

    Parameters
    ----------
    path : str or path-like
    name : str
        The experiment's group.
    values : bool
        Read every metric's values too; False reads the layout only
        (coordinates, dimensions, attributes, done mask, configuration and
        provenance): a 100 000-cell file holds gigabytes of per-component
        and per-symbol metrics that a reader may never need.

    Raises
    ------
    ResultsFileError
        If the file is missing, not a hoi_fast results file, or lacks the group.
    """
    if not os.path.exists(path):
        raise ResultsFileError(f"`{path}` does not exist; give a results file written by hoi_fast.grid")
    stored_config(path)
    with h5py.File(path, "r") as f:
        if name not in f:
            raise ResultsFileError(f"`{path}` has no `{name}` results; it holds {', '.join(f.keys())}")
        g = f[name]
        coords, data, dims, attrs = {}, {}, {}, {}
        for key, ds in g.items():
            if ds.is_scale:
                if h5py.check_string_dtype(ds.dtype):  # UTF-8 strings, e.g. symbols
                    coords[key] = ds.asstr()[...].astype(str)
                else:
                    coords[key] = ds[...]
            elif key != "done":
                if values:
                    data[key] = ds[...]
                dims[key] = _dims_of(ds)
                attrs[key] = {k: str(v) for k, v in ds.attrs.items() if k in ("units", "long_name", "role")}
                if "role" not in ds.attrs:  # a file written before metrics had roles
                    attrs[key]["role"] = _legacy_role(key)
        provenance = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        return ResultsGroup(
            name=name, coords=coords, dims=dims, data=data, attrs=attrs,
            done=g["done"][...].astype(bool), cell_dims=_dims_of(g["done"]),
            config=json.loads(g.attrs["config"]),
            provenance=provenance,
        )


def experiments_in(path):
    """Names of the experiment groups in a results file."""
    stored_config(path)
    with h5py.File(path, "r") as f:
        return [k for k in f.keys() if isinstance(f[k], h5py.Group)]
