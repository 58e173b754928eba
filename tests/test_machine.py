"""hoi_fast.machine: CPU identity, peak from the micro-architecture, measured FMA peak."""

import subprocess
import sys

import pytest

from hoi_fast import machine

ZEN1 = {"vendor_id": "AuthenticAMD", "cpu family": "23", "model": "1", "model name": "AMD EPYC 7601",
        "cpu mhz": "2450.000", "flags": "fpu sse2 avx fma avx2"}
ZEN3 = dict(ZEN1, **{"cpu family": "25", "model": "1", "model name": "AMD EPYC 7B13"})
ZEN4 = dict(ZEN1, **{"cpu family": "25", "model": "17", "cpu mhz": "3550.0",
                     "flags": "fpu sse2 avx fma avx2 avx512f avx512dq avx512vl"})
SKYLAKE = {"vendor_id": "GenuineIntel", "cpu family": "6", "model": "85", "cpu mhz": "2000.0",
           "model name": "Intel(R) Xeon(R)", "flags": "sse2 avx fma avx2 avx512f"}
HASWELL = dict(SKYLAKE, flags="sse2 avx fma avx2")
OLD = dict(SKYLAKE, flags="sse2")
UNKNOWN = {"model name": "mystery", "flags": ""}


@pytest.fixture
def fake_cpu(monkeypatch):
    """Replace /proc/cpuinfo (and lscpu) with a dict; clear the caches before and after."""
    cached = (machine._cpuinfo, machine._lscpu, machine.cpu_model, machine.cpu_flags, machine.clock_ghz,
              machine.cpu_id)

    def use(info):
        for f in cached:
            f.cache_clear()
        monkeypatch.setattr(machine, "_cpuinfo", lambda: info)
        monkeypatch.setattr(machine, "_lscpu", lambda: {})

    yield use
    for f in cached:
        f.cache_clear()


@pytest.mark.parametrize("info, per_cycle, peak", [
    (ZEN1, 8, 19.6),     # the 2-core Zen 1 of issue 17: 2 x 128-bit FMA at 2.45 GHz
    (ZEN3, 16, 39.2),
    (ZEN4, 16, 56.8),    # FINDINGS: ~57 GFLOP/s per core
    (SKYLAKE, 32, 64.0),
    (HASWELL, 16, 32.0),
    (OLD, 4, 8.0),
])
def test_theoretical_peak_from_family_model_flags_and_clock(fake_cpu, info, per_cycle, peak):
    fake_cpu(info)
    assert machine.flops_per_cycle()[0] == per_cycle
    assert machine.theoretical_peak_gflops() == pytest.approx(peak)
    assert machine.cpu_model() == info["model name"]
    assert machine.cpu_id() == " ".join(x for x in (info["vendor_id"], f"family {info['cpu family']}", f"model {info['model']}"))


def test_unknown_cpu_has_no_theoretical_peak_but_a_description(fake_cpu):
    fake_cpu(UNKNOWN)
    assert machine.flops_per_cycle()[0] is None and machine.theoretical_peak_gflops() is None
    assert machine.clock_ghz() is None and machine.simd_flags() == ""
    d = machine.describe(measure=False)
    assert d["cpu_model"] == "mystery" and "measured_peak_gflops" not in d


def test_flags_and_simd_summary(fake_cpu):
    fake_cpu(ZEN4)
    assert machine.cpu_flags() == tuple(sorted(ZEN4["flags"].split()))
    assert machine.simd_flags() == "sse2 avx fma avx2 avx512f avx512dq avx512vl"
    assert machine.same_cpu(machine.describe(measure=False), {"cpu_model": "AMD EPYC 7601", "simd": machine.simd_flags()})
    assert not machine.same_cpu({"cpu_model": "AMD EPYC 7601", "simd": "avx2"}, {"cpu_model": "AMD EPYC 7601",
                                                                                  "simd": "avx2 avx512f"})
    assert not machine.same_cpu("AMD EPYC 7601", "AMD EPYC 7B13")
    # a VM names Zen 1 and Zen 3 alike: family and model tell them apart
    assert not machine.same_cpu({"cpu_model": "AMD EPYC", "cpu_id": "AuthenticAMD family 23 model 1"},
                                {"cpu_model": "AMD EPYC", "cpu_id": "AuthenticAMD family 25 model 1"})


def test_this_machine_is_described():
    assert machine.cpu_model() and machine.cpu_model() != ""
    assert list(machine.cpu_flags()) == sorted(set(machine.cpu_flags()))


def test_measured_peak_is_plausible_and_cached():
    """Positive, and not above twice the nominal-clock peak (a boosting core may exceed it;
    a loop that LLVM folded algebraically measured 5x the peak)."""
    peak = machine.measured_peak_gflops()
    assert peak > 0.5
    theory = machine.theoretical_peak_gflops()
    if theory:
        assert peak < 2 * theory
    assert machine.measured_peak_gflops() == peak  # once per process


def test_import_does_not_load_numba():
    code = "import sys, hoi_fast.machine as m; m.cpu_model(); m.describe(measure=False); print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
