"""Crash-safe saves: a process killed (SIGKILL) at any moment while it writes checkpoints
never leaves a broken file at the checkpoint's path; the previous one still loads. The
temp files such a kill orphans are removed by the next save, never one a live writer is
still writing, and the folder entry itself is flushed to disk (fsync) after the rename."""

import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convae.checkpoints import load_checkpoint, save_checkpoint
from convae.models import AEConfig, ConvAutoencoder

ROOT = Path(__file__).resolve().parents[1]

# Starts writers on request: torch is imported once here, and each "go" line forks a
# writer process that saves the same path again and again, as fast as it can, with bigger
# and bigger histories so that each write takes a while. The writer prints "ready PID"
# once it has started; when it dies (the test kills it), this prints "gone". Forking saves
# a torch import per writer (about 2 CPU seconds, 12-20 writers a test); each writer is
# still a real process of its own, killed with SIGKILL in the middle of its saves.
WRITERS = """
import os, sys, torch
torch.set_num_threads(1)  # no OpenMP pool to carry across fork()
from convae.checkpoints import save_checkpoint
from convae.models import AEConfig, ConvAutoencoder
model = ConvAutoencoder(AEConfig(decoder="upsample"))
history = [{"epoch": i, "pad": torch.zeros(20000)} for i in range(40)]
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        print("ready", os.getpid(), flush=True)
        while True:
            save_checkpoint(sys.argv[1], model, history=history)
    os.waitpid(pid, 0)
    print("gone", flush=True)
"""


class Writers:
    """The WRITERS process: ``start()`` forks a writer and returns its pid, ``kill(pid)``
    SIGKILLs it and waits until it is gone."""

    def __init__(self, path: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRITERS, str(path)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def start(self) -> int:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        word, pid = self.proc.stdout.readline().split()
        assert word == "ready"
        return int(pid)

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        assert self.proc.stdout.readline().strip() == "gone"

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_mid_write_keeps_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, ConvAutoencoder(AEConfig()))
    writers = Writers(path)
    delays = [0.05 * i for i in range(1, 13)]  # kill at many different moments
    try:
        for delay in delays:
            pid = writers.start()
            time.sleep(delay)
            writers.kill(pid)
            ck = load_checkpoint(path)  # never half a file
            assert ck.config.decoder in ("transpose", "upsample")
    finally:
        writers.close()
    # the writer did replace the file at least once, so kills did land during saves
    assert load_checkpoint(path).config.decoder == "upsample"
    # whatever temp files the kills orphaned, the next save removes them
    save_checkpoint(path, ConvAutoencoder(AEConfig()))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _orphan(path: Path) -> list[str]:
    """Kill the writer while a temp file of its is on disk, until one is left orphaned."""
    writers = Writers(path)
    try:
        for _ in range(20):
            pid = writers.start()
            deadline = time.monotonic() + 30
            while not _temp_files(path.parent) and time.monotonic() < deadline:
                time.sleep(0.002)
            writers.kill(pid)
            if _temp_files(path.parent):
                return _temp_files(path.parent)
    finally:
        writers.close()
    pytest.fail("no kill left a temp file behind in 20 tries")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_temp_files_orphaned_by_a_kill_are_removed_by_the_next_save(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, ConvAutoencoder(AEConfig()))
    orphans = _orphan(path)
    # Files that only look alike, and other people's files, are never touched.
    keep = [".notes.tmp", "model.pt.tmp", ".model.pt.backup", "readme.txt"]
    for name in keep:
        (tmp_path / name).write_text("mine")
    # The next save of any checkpoint in the folder cleans up, not only of the same name.
    save_checkpoint(tmp_path / "other.pt", ConvAutoencoder(AEConfig()))
    left = sorted(p.name for p in tmp_path.iterdir())
    assert not set(orphans) & set(left), (orphans, left)
    assert left == sorted(["model.pt", "other.pt", *keep])
    assert load_checkpoint(path).config.decoder in ("transpose", "upsample")


def test_a_temp_file_a_live_writer_holds_is_left_alone(tmp_path):
    """Two processes saving into one folder: a save never removes the other's temp file
    while it is being written (the writer holds a lock on it; a killed writer's lock is
    released by the kernel, which is what makes its file an orphan)."""
    live = tmp_path / ".model.pt.abcd1234.tmp"
    with open(live, "wb") as f:
        f.write(b"half a checkpoint")
        f.flush()
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # as save_checkpoint's writer holds it
        save_checkpoint(tmp_path / "model.pt", ConvAutoencoder(AEConfig()))
        assert live.read_bytes() == b"half a checkpoint"
    # Once its writer is gone (lock released), the same file is an orphan.
    save_checkpoint(tmp_path / "model.pt", ConvAutoencoder(AEConfig()))
    assert not live.exists()


# Saves one path in a loop and reports any failure (a cleaner that removed its temp file
# would make os.replace fail with FileNotFoundError).
STEADY_WRITER = """
import sys, torch
from convae.checkpoints import save_checkpoint
from convae.models import AEConfig, ConvAutoencoder
model = ConvAutoencoder(AEConfig(decoder="upsample"))
history = [{"epoch": i, "pad": torch.zeros(20000)} for i in range(20)]
print("ready", flush=True)
n = 0
while sys.stdin.readline().strip() != "stop":
    save_checkpoint(sys.argv[1], model, history=history)
    n += 1
    print(n, flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_two_processes_saving_into_one_folder_never_break_each_other(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", STEADY_WRITER, str(tmp_path / "theirs.pt")],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        model = ConvAutoencoder(AEConfig())
        for i in range(40):
            proc.stdin.write("go\n")
            proc.stdin.flush()  # the other process starts a save ...
            save_checkpoint(tmp_path / "mine.pt", model)  # ... while this one saves and cleans
            assert proc.stdout.readline().strip() == str(i + 1), proc.stderr.read()[-2000:]
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 0, proc.stderr.read()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert load_checkpoint(tmp_path / "theirs.pt").config.decoder == "upsample"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.pt", "theirs.pt"]


def test_the_folder_is_flushed_after_the_rename(tmp_path, monkeypatch):
    """os.replace only changes the folder's entry; without an fsync of the folder a power
    cut can bring back the old entry (or none) although the file's data was synced."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync-dir" if stat.S_ISDIR(st.st_mode) else "fsync-file", st.st_ino))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", None))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save_checkpoint(tmp_path / "model.pt", ConvAutoencoder(AEConfig()))
    kinds = [k for k, _ in events]
    assert kinds.index("fsync-file") < kinds.index("replace") < kinds.index("fsync-dir"), kinds
    folder = os.stat(tmp_path).st_ino
    assert ("fsync-dir", folder) in events


# Runs the command line's main() on request: imported once here, and each "go FIFO" line
# forks a process that sends its stderr (the progress lines) into that named pipe and
# runs main() with the arguments given here; the next line, "kill", SIGKILLs it (a no-op
# when it has ended: it is not reaped before), and this prints "exit CODE" ("exit -9":
# killed). The same code as `python -m convae ...` from main() on, without a torch import
# (about 2 CPU seconds) for each of the 7 killed runs.
CLI_RUNS = """
import json, os, signal, sys
from convae.__main__ import main
args = json.loads(sys.argv[1])
for line in sys.stdin:
    fifo = line.split(" ", 1)[1].strip()
    pid = os.fork()
    if pid == 0:
        err = os.open(fifo, os.O_WRONLY)
        os.dup2(err, 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        code = main(args)
        sys.stderr.flush()
        os._exit(code or 0)
    if sys.stdin.readline().strip() == "kill":
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    print("exit", os.waitstatus_to_exitcode(status), flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killing_the_cli_around_its_save_keeps_a_loadable_checkpoint(image_tree, tmp_path):
    """``python -m convae train --out PATH`` over an existing PATH, SIGKILLed at moments
    from its last epoch line (then come the final scoring and the save) onwards: PATH
    always loads, as the old model or the complete new one, never a mix. The killed runs
    are forks of one process that imported the command line (CLI_RUNS); the last run,
    left to finish, is the real ``python -m convae``."""
    path = tmp_path / "model.pt"
    save_checkpoint(path, ConvAutoencoder(AEConfig(decoder="transpose")))
    env = {
        **os.environ,
        "CONVAE_DATA": str(tmp_path / "root"),
        "CONVAE_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    }
    args = [
        "train",
        "--data",
        f"folder:{image_tree}",
        "--decoder",
        "upsample",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--limit",
        "40",
        "--snapshots",
        "8",
        "--threads",
        "1",
        "--quiet",
        "--out",
        str(path),
    ]
    runner = subprocess.Popen(
        [sys.executable, "-c", CLI_RUNS, json.dumps(args)],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    seen = set()

    def outcome() -> None:
        ck = load_checkpoint(path)
        if ck.config.decoder == "transpose":  # the old one, untouched
            assert ck.history == []
            seen.add("old")
        else:  # the new one, whole: weights, history, metrics and snapshots together
            assert len(ck.history) == 1 and ck.test_metrics["psnr"] > 0
            assert len(ck.snapshots) == 1 + 3  # step 0 and each of the 3 steps (40 / 16)
            seen.add("new")

    try:
        for i, delay in enumerate((0.0, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3)):
            fifo = tmp_path / f"stderr{i}"
            os.mkfifo(fifo)
            runner.stdin.write(f"go {fifo}\n")
            runner.stdin.flush()
            with open(fifo) as err:
                for line in err:  # wait for the last epoch's line
                    if line.startswith("epoch 1/1"):
                        break
                else:
                    pytest.fail(f"the run ended before its last epoch: {runner.stdout.readline()}")
                time.sleep(delay)
                runner.stdin.write("kill\n")
                runner.stdin.flush()
            assert runner.stdout.readline().split()[0] == "exit"
            fifo.unlink()
            outcome()
    finally:
        runner.stdin.close()
        runner.wait(timeout=30)
    proc = subprocess.run(
        [sys.executable, "-m", "convae", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcome()
    assert seen >= {"new"}
    # the run that finished saved last, and its save removed what earlier kills orphaned
    leftovers = [
        p.name for p in tmp_path.iterdir() if p.name not in ("model.pt", "root", image_tree.name)
    ]
    assert leftovers == []
    print(f"outcomes seen: {sorted(seen)}")
