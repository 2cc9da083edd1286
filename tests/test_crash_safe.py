"""Crash-safe saves: a process killed (SIGKILL) at any moment while it writes checkpoints
never leaves a broken file at the checkpoint's path; the previous one still loads."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convae.checkpoints import load_checkpoint, save_checkpoint
from convae.models import AEConfig, ConvAutoencoder

ROOT = Path(__file__).resolve().parents[1]

# Saves the same path again and again, as fast as it can, with bigger and bigger histories
# so that each write takes a while; prints a line once it has started.
WRITER = """
import sys, torch
from convae.checkpoints import save_checkpoint
from convae.models import AEConfig, ConvAutoencoder
model = ConvAutoencoder(AEConfig(decoder="upsample"))
history = [{"epoch": i, "pad": torch.zeros(20000)} for i in range(40)]
print("ready", flush=True)
while True:
    save_checkpoint(sys.argv[1], model, history=history)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_mid_write_keeps_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, ConvAutoencoder(AEConfig()))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    delays = [0.05 * i for i in range(1, 13)]  # kill at many different moments
    for delay in delays:
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        ck = load_checkpoint(path)  # never half a file
        assert ck.config.decoder in ("transpose", "upsample")
    # the writer did replace the file at least once, so kills did land during saves
    assert load_checkpoint(path).config.decoder == "upsample"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model.pt"]
    assert all(n.endswith(".tmp") for n in leftovers)  # only orphaned temp files, if any
