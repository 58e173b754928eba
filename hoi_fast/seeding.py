"""Random streams keyed by a cell's coordinates, never by execution order.

Every stream is a :class:`numpy.random.Generator` (PCG64) seeded by a
:class:`numpy.random.SeedSequence` whose ``spawn_key`` spells out what the
stream is for:

==============  ====================================================  ==========
stream          spawn key                                             shared by
==============  ====================================================  ==========
real pool R     (key, seed, 0)                                        all α
held-out sets   (key, seed, 1)                                        all α
fresh real, g   (key, seed, 2, g)                                     all α
generation 0    (key, seed, 4)                                        all α, sweeps
generation g≥1  (key, seed, 3, α bits, sweep bits..., g)              one cell
==============  ====================================================  ==========

where ``key`` is the experiment's stream key from the registry
(:mod:`hoi_fast.experiments`): a fixed small number for a built-in
experiment (``gmm`` 1, ``ngram`` 2, ...), and for a plug-in a number derived
from its name (:func:`plugin_stream_key`), so renaming a plug-in changes its
streams.

so R, the held-out sets, the fresh real draws and the random choices of
generation 0 (which trains on R alone) are *common random numbers* across α
and swept parameters: differences between α values are paired per seed and
exactly zero at generation 0, and so are differences between values of a
parameter that only acts on synthetic data (a temperature, a filter).  α and swept values enter the key through the bits of their
float64 value, so adding a value to a grid never changes existing cells.
"""

from __future__ import annotations

import functools
import struct
import zlib
from dataclasses import dataclass

import numpy as np

_REAL, _HELDOUT, _FRESH, _GENERATION, _FIRST_GENERATION = 0, 1, 2, 3, 4


def value_key(value):
    """Two uint32 words identifying a coordinate value.

    Numbers give the IEEE-754 bits of ``float(value)`` (``-0.0`` folded onto
    ``0.0`` so that equal numbers give equal keys); strings give a tag word and
    their CRC-32.
    """
    if isinstance(value, str):
        return (0xFFFFFFFF, zlib.crc32(value.encode("utf-8")))
    value = float(value) + 0.0
    hi, lo = struct.unpack(">II", struct.pack(">d", value))
    return (hi, lo)


def plugin_stream_key(name):
    """The stream key of a plug-in experiment called ``name``: ``2**31 + crc32(name) mod 2**31``.

    Built-in experiments have keys below ``2**31``, so a plug-in never shares
    the streams of a built-in one.
    """
    return (1 << 31) | (zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF)


def generator(root_seed, spawn_key):
    """A PCG64 ``Generator`` for ``SeedSequence(root_seed, spawn_key=...)``."""
    ss = np.random.SeedSequence(int(root_seed), spawn_key=tuple(map(int, spawn_key)))
    return np.random.Generator(np.random.PCG64(ss))


@dataclass(frozen=True)
class CellStreams:
    """The random streams of one grid cell.

    Parameters
    ----------
    root_seed : int
        The grid's root seed.
    stream_key : int
        The experiment's stream key (:mod:`hoi_fast.experiments`).
    seed_index : int
        The replicate (seed) index of the cell.
    alpha : float
        The synthetic fraction of the cell.
    sweep : tuple of float
        Values of any extra swept parameters, in the grid's axis order.
    """

    root_seed: int
    stream_key: int
    seed_index: int
    alpha: float
    sweep: tuple = ()

    def _base(self):
        return (int(self.stream_key), int(self.seed_index))

    def real(self):
        """Stream for the real training pool R (shared across α)."""
        return generator(self.root_seed, self._base() + (_REAL,))

    def heldout(self):
        """Stream for the held-out evaluation sets (shared across α)."""
        return generator(self.root_seed, self._base() + (_HELDOUT,))

    def fresh(self, generation):
        """Stream for fresh real data of ``generation`` (shared across α)."""
        return generator(self.root_seed, self._base() + (_FRESH, int(generation)))

    def generation(self, generation):
        """Stream for everything random in ``generation`` of this cell.

        Generation 0 trains on R alone, so its stream depends on neither α
        nor the swept values.
        """
        if generation == 0:
            return generator(self.root_seed, self._base() + (_FIRST_GENERATION,))
        return generator(self.root_seed, self._generation_key + (int(generation),))

    @functools.cached_property
    def _generation_key(self):
        """The spawn key of generations >= 1 without the generation (built once per cell)."""
        sweep = tuple(w for value in self.sweep for w in value_key(value))
        return self._base() + (_GENERATION,) + value_key(self.alpha) + sweep
