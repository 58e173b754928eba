"""The machine a number was measured on: CPU model, flags, FP64 peak (measured and theoretical).

A speed figure means nothing without the CPU it came from, and a "fraction
of peak" is only true against the peak of the CPU that ran: the benchmarks
(``bench/``) record :func:`describe` in ``extra_info``, divide by
:func:`measured_peak_gflops`, and ``bench/regress.py`` refuses to compare
runs from different CPUs.

* :func:`cpu_model`, :func:`cpu_flags`, :func:`simd_flags`,
  :func:`clock_ghz`: read once from ``/proc/cpuinfo`` (``lscpu`` or the
  platform string elsewhere) and cached; cheap enough for a results file's
  provenance.  Importing this module does not import numba.
* :func:`measured_peak_gflops`: FP64 GFLOP/s of one core, measured by a
  short numba loop of independent fused multiply-adds (about 0.2 s once
  compiled, then cached for the process).  On a shared machine it measures what
  one core delivers *now*, which is the fair denominator for a kernel timed
  in the same run.
* :func:`theoretical_peak_gflops`: clock x FP64 flop per cycle where the
  micro-architecture is known (AMD Zen by family and model; otherwise from
  the SIMD flags), ``None`` when unknown.  The clock is the one the OS
  reports (nominal on a VM; a boosting core can exceed it).

Example::

    >>> from hoi_fast import machine
    >>> machine.cpu_model()                     # doctest: +SKIP
    'AMD EPYC 7B13'
    >>> machine.describe()["simd"]              # doctest: +SKIP
    'avx2 fma'
"""

from __future__ import annotations

import functools
import os
import time

#: Flags that decide FP64 throughput, reported by :func:`simd_flags` in this order.
SIMD_FLAGS = ("sse2", "avx", "fma", "avx2", "avx512f", "avx512dq", "avx512vl", "asimd", "sve")

#: Fused multiply-adds per element of the measuring loop, and independent chains per element:
#: enough chains (8) to cover an FMA latency of 4 cycles on 2 pipes.
_FMA_PER_ELEMENT, _CHAINS = 16, 8


@functools.lru_cache(maxsize=None)
def _cpuinfo():
    """First processor block of /proc/cpuinfo as {lower-case key: value}; {} if unreadable."""
    info = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    if info:
                        break
                    continue
                key, _, value = line.partition(":")
                info.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    return info


@functools.lru_cache(maxsize=None)
def _lscpu():
    """``lscpu`` as {lower-case key: value}; {} if it is not there."""
    import shutil
    import subprocess

    if not shutil.which("lscpu"):
        return {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5,
                             env=dict(os.environ, LC_ALL="C")).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


@functools.lru_cache(maxsize=None)
def cpu_model():
    """The CPU's model name, e.g. ``"AMD EPYC 7B13"`` (``"unknown"`` if nothing says)."""
    import platform

    for source in (_cpuinfo(), _lscpu()):
        if source.get("model name"):
            return source["model name"]
    return platform.processor() or platform.machine() or "unknown"


@functools.lru_cache(maxsize=None)
def cpu_id():
    """Vendor, family and model numbers, e.g. ``"AuthenticAMD family 25 model 1"`` ("" if unknown).

    Tells apart CPUs that a VM names alike (every EPYC generation can show
    as ``"AMD EPYC"``).
    """
    info = _cpuinfo()
    parts = [info.get("vendor_id", "")]
    for key in ("cpu family", "model"):
        if info.get(key):
            parts.append(f"{key.split()[-1]} {info[key]}")
    return " ".join(p for p in parts if p)


@functools.lru_cache(maxsize=None)
def cpu_flags():
    """The CPU's feature flags (x86 ``flags`` or Arm ``features``), sorted; () if unknown."""
    info = _cpuinfo()
    text = info.get("flags") or info.get("features") or _lscpu().get("flags", "")
    return tuple(sorted(set(text.split())))


def simd_flags():
    """The flags of :data:`SIMD_FLAGS` this CPU has, as one string, e.g. ``"sse2 avx fma avx2"``."""
    have = set(cpu_flags())
    return " ".join(f for f in SIMD_FLAGS if f in have)


@functools.lru_cache(maxsize=None)
def clock_ghz():
    """The clock the OS reports (``cpu MHz``), in GHz; ``None`` if unknown."""
    for source, key in ((_cpuinfo(), "cpu mhz"), (_lscpu(), "cpu mhz"), (_lscpu(), "cpu max mhz")):
        try:
            return float(source[key]) / 1000.0
        except (KeyError, ValueError):
            continue
    return None


def _int(text):
    try:
        return int(text, 0)
    except (TypeError, ValueError):
        return None


def flops_per_cycle():
    """FP64 flop per cycle of one core and the basis of the figure, or ``(None, reason)``.

    AMD Zen by family and model (Zen/Zen+: 2 x 128-bit FMA; Zen 2, 3, 4: 2 x
    256-bit, Zen 4 running AVX-512 as two halves; Zen 5: 2 x 512-bit);
    otherwise from the flags (AVX-512: 2 x 512-bit FMA, an upper bound for
    parts with one unit; AVX2 + FMA: 2 x 256-bit; AVX: one 256-bit add and
    one multiply; SSE2: one 128-bit add and one multiply).
    """
    info = _cpuinfo()
    flags = set(cpu_flags())
    family, model = _int(info.get("cpu family")), _int(info.get("model"))
    if info.get("vendor_id") == "AuthenticAMD" and family is not None and model is not None:
        if family == 0x17:
            return (8, "AMD Zen/Zen+ (2 x 128-bit FMA)") if model < 0x30 else (16, "AMD Zen 2 (2 x 256-bit FMA)")
        if family == 0x19:
            return 16, "AMD Zen 3/4 (2 x 256-bit FMA)"
        if family == 0x1A:
            return (32, "AMD Zen 5 (2 x 512-bit FMA)") if "avx512f" in flags else (16, "AMD Zen 5 (2 x 256-bit FMA)")
    if "avx512f" in flags:
        return 32, "AVX-512 (2 x 512-bit FMA; 16 on parts with one FMA unit)"
    if {"avx2", "fma"} <= flags:
        return 16, "AVX2 + FMA (2 x 256-bit FMA)"
    if "avx" in flags:
        return 8, "AVX (256-bit add + multiply)"
    if "sse2" in flags:
        return 4, "SSE2 (128-bit add + multiply)"
    return None, "unknown micro-architecture"


def theoretical_peak_gflops():
    """FP64 GFLOP/s of one core at the reported clock, or ``None`` when clock or width is unknown."""
    per_cycle, _ = flops_per_cycle()
    ghz = clock_ghz()
    return per_cycle * ghz if per_cycle and ghz else None


def _fma_loop(x, out, s, t, reps):
    """The measuring loop (compiled by :func:`_fma_kernel`).

    Eight independent multiply-add chains per element, vectorised across
    elements: the loop is bound by FMA throughput, not latency.
    """
    m = x.shape[1]
    for _ in range(reps):
        for i in range(m):
            a0, a1, a2, a3 = x[0, i], x[1, i], x[2, i], x[3, i]
            a4, a5, a6, a7 = x[4, i], x[5, i], x[6, i], x[7, i]
            for _k in range(16):
                a0 = a0 * s + t
                a1 = a1 * s + t
                a2 = a2 * s + t
                a3 = a3 * s + t
                a4 = a4 * s + t
                a5 = a5 * s + t
                a6 = a6 * s + t
                a7 = a7 * s + t
            out[i] += a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7
    return out[0]


@functools.lru_cache(maxsize=None)
def _fma_kernel():
    """:func:`_fma_loop` compiled on first use (numba is imported here, not at module import).

    ``contract`` only (no ``reassoc``): LLVM fuses each multiply-add but
    cannot fold the chain of 16 into fewer operations.
    """
    import numba

    return numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True, cache=True)(_fma_loop)


@functools.lru_cache(maxsize=None)
def measured_peak_gflops(seconds=0.15):
    """FP64 GFLOP/s one core delivers in a loop of independent FMAs (best of short trials; cached).

    Parameters
    ----------
    seconds : float
        Rough total time spent measuring (after compilation).

    Returns
    -------
    float
        ``2 * FMAs / best time`` over trials of about 10 ms; the 8 elements
        summed at the end of each inner iteration are not counted.
    """
    import numpy as np

    fma = _fma_kernel()
    width = 64  # elements per row: the data stays in L1
    x = np.random.default_rng(0).random((_CHAINS, width))
    out = np.zeros(width)
    fma(x, out, 0.999, 1e-3, 1)  # compile
    flop_per_rep = 2 * _CHAINS * _FMA_PER_ELEMENT * width
    reps = 64
    while True:  # about 10 ms per trial
        t0 = time.perf_counter()
        fma(x, out, 0.999, 1e-3, reps)
        dt = time.perf_counter() - t0
        if dt > 0.01 or reps > 1 << 26:
            break
        reps *= 2
    best = dt
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        fma(x, out, 0.999, 1e-3, reps)
        best = min(best, time.perf_counter() - t0)
    return flop_per_rep * reps / best / 1e9


def describe(measure=True):
    """The machine as a flat dict for ``extra_info`` or a provenance record.

    Parameters
    ----------
    measure : bool
        Include :func:`measured_peak_gflops` (runs the loop once per process).

    Returns
    -------
    dict
        ``cpu_model``, ``cpu_id``, ``cpu_flags`` (all, one string), ``simd``, ``cores``,
        ``clock_ghz``, ``flop_per_cycle``, ``peak_basis``,
        ``theoretical_peak_gflops`` and (with ``measure``)
        ``measured_peak_gflops``; per core, FP64.
    """
    per_cycle, basis = flops_per_cycle()
    out = {
        "cpu_model": cpu_model(),
        "cpu_id": cpu_id(),
        "cpu_flags": " ".join(cpu_flags()),
        "simd": simd_flags(),
        "cores": os.cpu_count(),
        "clock_ghz": clock_ghz(),
        "flop_per_cycle": per_cycle,
        "peak_basis": basis,
        "theoretical_peak_gflops": theoretical_peak_gflops(),
    }
    if measure:
        out["measured_peak_gflops"] = measured_peak_gflops()
    return out


def same_cpu(a, b):
    """Whether two :func:`describe` records (or model strings) are the same kind of CPU.

    Model names must match; ``cpu_id`` and ``simd`` must match where both records have them.
    """
    def fields(x):
        return {"cpu_model": x} if isinstance(x, str) else x
    fa, fb = fields(a), fields(b)
    if fa.get("cpu_model") != fb.get("cpu_model"):
        return False
    return all(fa.get(k) == fb.get(k) for k in ("cpu_id", "simd") if fa.get(k) and fb.get(k))
