"""One atomic-write helper for every file kept for later: a writer SIGKILLed mid-write
leaves the old file whole, and the next write into that folder removes the temp file the
kill orphaned, whichever of the three writers (checkpoint, data cache, PCA cache) it is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from convae.atomic import save_or_notice, write_atomic
from convae.baselines import pca_baseline
from convae.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and flock are POSIX")

# Starts an atomic write of argv[1], says so once half of it is in the temp file, then
# waits on stdin, which is never answered: the test kills it right there, mid-write.
KILLED_WRITER = """
import sys
from pathlib import Path
from convae.atomic import write_atomic

def write(f):
    f.write(b"half of the new file " * 1000)
    f.flush()
    print("writing", flush=True)
    sys.stdin.readline()

write_atomic(Path(sys.argv[1]), write)
"""


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _kill_mid_write(path: Path) -> list[str]:
    """Run a writer of ``path`` in a subprocess, SIGKILL it mid-write, and return the temp
    files it left behind."""
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return _temp_files(path.parent)


@posix_only
def test_a_writer_killed_mid_write_keeps_the_old_file_and_the_next_write_cleans_up(tmp_path):
    path = tmp_path / "cache.bin"
    write_atomic(path, lambda f: f.write(b"old"))
    orphans = _kill_mid_write(path)
    assert len(orphans) == 1 and orphans[0].startswith(".cache.bin.")  # the kill's leftover
    assert path.read_bytes() == b"old"  # never half a file
    write_atomic(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.bin"]
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "cache.bin"
    write_atomic(path, lambda f: f.write(b"old"))

    def broken(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(path, broken)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.bin"]


def test_a_cache_that_cannot_be_saved_gives_one_line_naming_the_folder_and_error(tmp_path):
    """The caches (data, code space) save through save_or_notice: written, it says
    nothing; blocked (here a file where the folder should be), it says so on one line."""
    blob = {"x": torch.arange(3)}
    assert save_or_notice(tmp_path / "ok" / "c.pt", blob, "The X cache", "kept.") == ""
    assert torch.equal(torch.load(tmp_path / "ok" / "c.pt", weights_only=True)["x"], blob["x"])
    (tmp_path / "blocked").write_text("a file")
    notice = save_or_notice(tmp_path / "blocked" / "c.pt", blob, "The X cache", "kept.")
    assert notice.startswith(f"The X cache could not be written to {tmp_path / 'blocked'} (")
    assert "\n" not in notice and notice.endswith("); kept.")
    assert (tmp_path / "blocked").read_text() == "a file"


@posix_only
def test_the_data_cache_and_pca_cache_writes_remove_a_killed_writers_orphan(image_tree, tmp_path):
    """The decoded-data cache and the PCA cache are written by the same helper: a data
    set's first load, and a PCA fit, remove the temp file a killed writer left in the
    cache folder (the CIFAR-10 data cache's would be 184 MB)."""
    cache = tmp_path / "root" / "cache"
    cache.mkdir(parents=True)
    assert _kill_mid_write(cache / "cifar10-v2.pt")  # e.g. a server killed mid-decode
    data = load_dataset(f"folder:{image_tree}", root=tmp_path / "root")
    assert _temp_files(cache) == [] and len(list(cache.glob("folder-*.pt"))) == 1

    assert _kill_mid_write(cache / "pca256-3x32-x-v1.pt")
    pca = pca_baseline(data, root=tmp_path / "root")
    assert _temp_files(cache) == [] and len(list(cache.glob("pca256-*.pt"))) == 1
    again = pca_baseline(data, root=tmp_path / "root")  # read back from the cache
    assert torch.equal(again.components, pca.components)
