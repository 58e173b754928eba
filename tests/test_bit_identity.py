"""The grid's files are bit-identical to those of the code before the experiment registry.

Pinned reference: commit 7a4877d (the last commit before the registry, the shared
generation 0 and the faster n-gram engine).  When the repository's history is
available, the test runs that commit's code (``git archive``) on the same
machine and compares every dataset byte for byte; otherwise it compares with
the digests recorded from it in ``tests/data/identity_digests.json`` (recorded
on an AMD EPYC Zen 3, AVX2; bitwise reproducibility is a per-CPU-family
promise, so prefer the history).  Cases: the four regimes, gmm filters and
sampling bias, n-gram quality filter, biased n-gram sampling (top-k/top-p),
sample-size schedules and sweeps, on small sizes.
"""

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import io
from pathlib import Path

import h5py
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
PINNED = "7a4877df3401ef638641f3615d735fb595e34557"
CASES = {
    "tiny": ["--config", "identity_tiny.toml", "--alphas", "0,0.5,0.9,1", "--seeds", "3"],
    "knobs": ["--config", "identity_knobs.toml", "--alphas", "0,0.5,0.9,1", "--seeds", "3"],
    "fresh": ["--config", "identity_fresh.toml", "--alphas", "0,0.5,0.9,1", "--seeds", "3"],
    "accumulate": ["--config", "identity_tiny.toml", "--regime", "accumulate", "--alphas", "0,0.3,1",
                   "--seeds", "2"],
}


def digests(path):
    """sha256 of every dataset of a results file (strings by value)."""
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            data = obj.asstr()[...] if h5py.check_string_dtype(obj.dtype) else obj[...]
            raw = "\x00".join(map(str, data.ravel())).encode() if data.dtype.kind in "OU" else data.tobytes()
            out[name] = hashlib.sha256(raw + str(data.shape).encode()).hexdigest()

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def run_grid(pythonpath, case, out, cache):
    env = dict(os.environ, PYTHONPATH=str(pythonpath), NUMBA_CACHE_DIR=str(cache))
    cmd = [sys.executable, "-m", "hoi_fast.grid", *CASES[case], "--experiment", "both", "--jobs", "1",
           "--quiet", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=DATA, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def pinned_tree(tmp_path_factory):
    """The pinned commit's package, unpacked; None without the repository's history."""
    try:
        archive = subprocess.run(["git", "archive", "--format=tar", PINNED, "hoi_fast"], cwd=REPO,
                                 capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if archive.returncode != 0:
        return None
    root = tmp_path_factory.mktemp("pinned")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(root)
    return root


@pytest.mark.parametrize("case", sorted(CASES))
def test_grid_files_are_bit_identical_to_the_pinned_commit(case, pinned_tree, tmp_path, tmp_path_factory):
    new = tmp_path / "new.h5"
    run_grid(REPO, case, new, os.environ.get("NUMBA_CACHE_DIR") or tmp_path_factory.getbasetemp() / "numba_new")
    got = digests(new)
    if pinned_tree is not None:
        old = tmp_path / "old.h5"
        run_grid(pinned_tree, case, old, tmp_path_factory.getbasetemp() / "numba_pinned")
        want = digests(old)
    else:
        want = json.loads((DATA / "identity_digests.json").read_text())[case]
    assert sorted(got) == sorted(want)
    differ = [name for name in want if got[name] != want[name]]
    assert not differ, f"datasets that changed: {differ}"


if __name__ == "__main__":  # record the digests of the pinned commit (run from a tree that has it)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        archive = subprocess.run(["git", "archive", "--format=tar", PINNED, "hoi_fast"], cwd=REPO,
                                 capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp / "pinned")
        record = {}
        for case in sorted(CASES):
            run_grid(tmp / "pinned", case, tmp / f"{case}.h5", tmp / "numba")
            record[case] = digests(tmp / f"{case}.h5")
        (DATA / "identity_digests.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        print(f"wrote {DATA / 'identity_digests.json'}")
