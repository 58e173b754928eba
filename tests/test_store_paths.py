"""Where a run may write: special paths, links, foreign and unwritable files, a full disk.

Issue 16, items 6-8 and the store-side items of its last section: a
character device or FIFO given as `--out`, an empty `--out`, a text file
replaced with `--overwrite`, a symbolic link replaced by a file, an
unwritable file or folder, the journal path being a folder, and a full disk
must each give one line (a ResultsFileError; exit 2 from the CLI), never a
hang, a traceback or leftover `.consolidating`/`.partial` files.
"""

import errno
import os
import shutil
import stat
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

import hoi_fast.store as store
import hoi_fast.store.writer as store_writer
from hoi_fast.store import (
    DISK_FULL,
    ResultsFileError,
    ResultsWriter,
    check_output_path,
    done_masks,
    journal_path,
    read_journal,
)

from test_journal import all_cells, assert_complete_and_correct, config, killed_run, layout, metrics, resume


def finished_file(path, cfg=None):
    cfg = cfg or config()
    writer = ResultsWriter(path, [layout()], cfg, flush_seconds=0)
    for index in all_cells():
        writer.write_cell("gmm", index, metrics(cfg, index))
    writer.close(finished=True)
    return path


def helpers(folder):
    """hoi_fast's transient and helper files left in ``folder``."""
    return sorted(p.name for p in folder.iterdir()
                  if p.name.endswith((".consolidating", ".partial", ".lock")))


def one_line(exc_info):
    text = str(exc_info.value)
    assert "\n" not in text and text
    return text


# -- special files -------------------------------------------------------------

@pytest.fixture
def char_device(tmp_path):
    path = tmp_path / "fakenull"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError):
        pytest.skip("mknod needs privileges here")
    return path


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_character_device_is_refused_and_stays_a_device(char_device, overwrite):
    with pytest.raises(ResultsFileError, match="is a character device"):
        ResultsWriter(char_device, [layout()], config(), overwrite=overwrite)
    assert stat.S_ISCHR(os.lstat(char_device).st_mode)
    assert helpers(char_device.parent) == []


FIFO_WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from test_journal import config, layout
from hoi_fast.store import ResultsFileError, ResultsWriter, check_output_path
try:
    ResultsWriter(sys.argv[1], [layout()], config(), overwrite=sys.argv[3] == "1")
except ResultsFileError as exc:
    print(exc)
"""


@pytest.mark.parametrize("overwrite", ["0", "1"])
def test_a_fifo_is_refused_without_being_opened(tmp_path, overwrite):
    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    tests = os.path.dirname(__file__)
    proc = subprocess.run([sys.executable, "-c", FIFO_WRITER, str(fifo), tests, overwrite],
                          capture_output=True, text=True, timeout=120)  # opening the FIFO would block forever
    assert "is a FIFO" in proc.stdout, proc.stdout + proc.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_folder_and_an_empty_path_are_refused(tmp_path):
    with pytest.raises(ResultsFileError, match="is a folder"):
        check_output_path(tmp_path)
    for empty in ("", None):
        with pytest.raises(ResultsFileError, match="`--out` is empty"):
            check_output_path(empty)
        with pytest.raises(ResultsFileError, match="`--out` is empty"):
            ResultsWriter(empty, [layout()], config())
    with pytest.raises(ResultsFileError, match="folder .* does not exist"):
        check_output_path(tmp_path / "missing" / "r.h5")


# -- files that are not results files -------------------------------------------

@pytest.mark.parametrize("overwrite", [False, True])
def test_a_non_empty_foreign_file_is_never_replaced(tmp_path, overwrite):
    text = tmp_path / "notes.txt"
    text.write_text("my thesis, chapter 3\n")
    other_hdf5 = tmp_path / "other.h5"
    with h5py.File(other_hdf5, "w") as f:
        f["x"] = np.arange(3)
    for path in (text, other_hdf5):
        before = path.read_bytes()
        with pytest.raises(ResultsFileError, match="not a hoi_fast results file.*even with --overwrite") as caught:
            ResultsWriter(path, [layout()], config(), overwrite=overwrite)
        one_line(caught)
        assert path.read_bytes() == before
    assert helpers(tmp_path) == []


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_empty_file_is_a_fine_target(tmp_path, overwrite):
    path = tmp_path / "r.h5"
    path.touch()
    writer = ResultsWriter(path, [layout()], config(), overwrite=overwrite, flush_seconds=0)
    for index in all_cells():
        writer.write_cell("gmm", index, metrics(config(), index))
    writer.close(finished=True)
    assert_complete_and_correct(path)


# -- symbolic links: written through, never replaced ----------------------------

def test_a_symlink_is_written_through_and_stays_a_link(tmp_path):
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "r.h5"
    link = tmp_path / "link.h5"
    link.symlink_to(target)  # dangling: the target is created through it
    killed_run(link, n_cells=5)
    assert link.is_symlink() and target.is_file()
    assert os.path.exists(str(target) + ".journal") and not os.path.lexists(str(link) + ".journal")
    assert journal_path(link) == str(target) + ".journal" and len(read_journal(link)) == 5
    resume(link)  # consolidation replaces the target, not the link
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert_complete_and_correct(target)
    assert done_masks(link, ["gmm"])["gmm"].all()


def test_a_symlink_to_a_special_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "link.h5").symlink_to(tmp_path / "pipe")
    with pytest.raises(ResultsFileError, match=r"link\.h5 \(-> .*pipe\) is a FIFO"):
        check_output_path(tmp_path / "link.h5")


# -- helper paths ------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".journal", ".lock", ".consolidating", ".partial"])
def test_a_helper_path_that_is_a_folder_is_refused(tmp_path, suffix):
    path = finished_file(tmp_path / "r.h5")
    (tmp_path / ("r.h5" + suffix)).mkdir()
    with pytest.raises(ResultsFileError, match=rf"r\.h5{suffix}` is a folder.*move it away") as caught:
        ResultsWriter(path, [layout()], config())
    one_line(caught)
    (tmp_path / ("r.h5" + suffix)).rmdir()
    assert_complete_and_correct(path)  # untouched


# -- unwritable files and folders -----------------------------------------------------

def make_unwritable(path):
    """Read-only for a user, immutable (chattr +i) for root, who writes read-only files."""
    if os.geteuid() != 0:
        os.chmod(path, 0o555 if os.path.isdir(path) else 0o444)
        return lambda: os.chmod(path, 0o755 if os.path.isdir(path) else 0o644)
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
        pytest.skip("cannot make a path immutable here")
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.fixture
def unwritable():
    undo = []
    yield lambda path: undo.append(make_unwritable(path))
    for step in undo:
        step()


def test_an_unwritable_results_file_is_refused_before_anything_is_written(tmp_path, unwritable):
    path = killed_run(tmp_path / "r.h5", n_cells=5)
    journal = open(journal_path(path), "rb").read()
    unwritable(path)
    with pytest.raises(ResultsFileError, match="not writable.*make it writable or choose another --out") as caught:
        ResultsWriter(path, [layout()], config())
    one_line(caught)
    assert helpers(tmp_path) == [] and open(journal_path(path), "rb").read() == journal


def test_an_unwritable_folder_is_refused_with_no_debris(tmp_path, unwritable):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = finished_file(folder / "r.h5")
    unwritable(folder)
    for target in (path, folder / "new.h5"):
        with pytest.raises(ResultsFileError, match="folder .* is not writable") as caught:
            ResultsWriter(target, [layout()], config(), overwrite=True)
        one_line(caught)
    assert sorted(p.name for p in folder.iterdir()) == ["r.h5"]


def test_a_file_made_unwritable_mid_run_gives_one_line_and_no_debris(tmp_path, unwritable):
    """The up-front check cannot see everything (ACLs, a folder frozen later): every write is guarded too."""
    path = tmp_path / "d" / "r.h5"
    path.parent.mkdir()
    writer = ResultsWriter(path, [layout()], config(), flush_seconds=0)
    writer.write_cell("gmm", (0, 0), metrics(config(), (0, 0)))
    unwritable(path.parent)
    with pytest.raises(ResultsFileError, match="cannot be written|not permitted|Permission") as caught:
        writer.close(finished=True)  # consolidation cannot create its copy
    one_line(caught)
    # no copy left behind (the lock file stays: a frozen folder keeps it, the OS lock is gone)
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.h5", "r.h5.journal", "r.h5.lock"]
    assert len(read_journal(path)) == 1  # kept for the resume


# -- a full disk ----------------------------------------------------------------------------

def raise_enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_appending_keeps_the_journal_usable(tmp_path, monkeypatch):
    path = tmp_path / "r.h5"
    writer = ResultsWriter(path, [layout()], config(), flush_seconds=0)
    for index in all_cells()[:4]:
        writer.write_cell("gmm", index, metrics(config(), index))
    real_pwrite = os.pwrite

    def half_then_full(fd, data, offset):  # the disk fills in the middle of a record
        real_pwrite(fd, bytes(data)[:len(data) // 2], offset)
        raise_enospc()

    monkeypatch.setattr(store_writer.os, "pwrite", half_then_full)
    with pytest.raises(ResultsFileError) as caught:
        writer.write_cell("gmm", all_cells()[4], metrics(config(), all_cells()[4]))
    assert one_line(caught).startswith(DISK_FULL)
    writer.close(finished=True)  # writes nothing more, releases the lock
    monkeypatch.undo()
    assert len(read_journal(path)) == 4 and helpers(tmp_path) == []
    resume(path)
    assert_complete_and_correct(path)


def test_disk_full_while_consolidating_leaves_file_and_journal_intact(tmp_path, monkeypatch):
    path = killed_run(tmp_path / "r.h5", n_cells=6)
    before = path.read_bytes()
    real_copy = shutil.copyfile

    def copy_then_full(src, dst, **kwargs):
        real_copy(src, dst)  # the copy exists, the writes into it fail
        raise_enospc()

    monkeypatch.setattr(store_writer.shutil, "copyfile", copy_then_full)
    with pytest.raises(ResultsFileError) as caught:
        ResultsWriter(path, [layout()], config())
    assert one_line(caught).startswith(DISK_FULL)
    monkeypatch.undo()
    assert path.read_bytes() == before and len(read_journal(path)) == 6 and helpers(tmp_path) == []
    resume(path)
    assert_complete_and_correct(path)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MB tmpfs (root only) and a function that fills it up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")

    def fill():
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        block = 1 << 16
        while block:
            try:
                os.write(fd, bytes(block))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                block //= 2
        os.close(fd)

    yield mount, fill
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_real_full_disk_at_every_step_then_resume(tiny_disk):
    mount, fill = tiny_disk
    path = mount / "r.h5"
    fill()  # creation
    with pytest.raises(ResultsFileError) as caught:
        ResultsWriter(path, [layout()], config(), flush_seconds=0)
    assert one_line(caught).startswith(DISK_FULL) and sorted(p.name for p in mount.iterdir()) == ["filler"]
    os.remove(mount / "filler")

    writer = ResultsWriter(path, [layout()], config(), flush_seconds=0)
    for index in all_cells()[:3]:
        writer.write_cell("gmm", index, metrics(config(), index))
    fill()  # a journal append
    with pytest.raises(ResultsFileError) as caught:
        for index in all_cells()[3:]:
            writer.write_cell("gmm", index, metrics(config(), index))
    assert one_line(caught).startswith(DISK_FULL)
    writer.close()
    os.remove(mount / "filler")
    kept = len(read_journal(path))
    assert kept >= 3

    with warnings.catch_warnings(record=True) as seen:  # the append may have torn the journal's tail
        warnings.simplefilter("always")
        fill()  # the consolidation of the resume
        with pytest.raises(ResultsFileError) as caught:
            ResultsWriter(path, [layout()], config(), flush_seconds=0)
        assert one_line(caught).startswith(DISK_FULL)
        assert len(read_journal(path)) == kept and helpers(mount) == []
        os.remove(mount / "filler")

        resume(path)
    assert_complete_and_correct(path)
    assert all(issubclass(w.category, store.ResultsWarning) and "were cut" in str(w.message) for w in seen)


# -- end to end ---------------------------------------------------------------------

TINY = """
[grid]
generations = 2

[gmm]
components = 2
samples = 100
heldout = 200
tail_heldout = 50
self_samples = 100
"""


def grid(tmp_path, out, *extra):
    (tmp_path / "tiny.toml").write_text(TINY)
    return subprocess.run([sys.executable, "-m", "hoi_fast.grid", "--config", str(tmp_path / "tiny.toml"),
                           "--experiment", "gmm", "--alphas", "0,1", "--seeds", "2", "--jobs", "1",
                           "--out", str(out), *map(str, extra)],
                          capture_output=True, text=True, timeout=300)


def assert_one_line_exit_2(proc, match):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and match in lines[0], proc.stderr


def test_cli_refuses_special_and_foreign_paths_and_writes_through_links(tmp_path):
    os.mkfifo(tmp_path / "pipe.h5")
    assert_one_line_exit_2(grid(tmp_path, tmp_path / "pipe.h5", "--overwrite"), "is a FIFO")
    (tmp_path / "notes.txt").write_text("keep me\n")
    assert_one_line_exit_2(grid(tmp_path, tmp_path / "notes.txt", "--overwrite"), "not a hoi_fast results file")
    assert (tmp_path / "notes.txt").read_text() == "keep me\n"
    (tmp_path / "data").mkdir()
    (tmp_path / "link.h5").symlink_to(tmp_path / "data" / "r.h5")
    proc = grid(tmp_path, tmp_path / "link.h5")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "link.h5").is_symlink()
    with h5py.File(tmp_path / "data" / "r.h5", "r") as f:
        assert f["gmm/done"][...].all()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["r.h5"]
