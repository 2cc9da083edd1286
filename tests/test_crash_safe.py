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
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], env=env, stdout=subprocess.PIPE, text=True
        )
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


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killing_the_cli_around_its_save_keeps_a_loadable_checkpoint(image_tree, tmp_path):
    """``python -m convae train --out PATH`` over an existing PATH, SIGKILLed at moments
    from its last epoch line (then come the final scoring and the save) onwards: PATH
    always loads, as the old model or the complete new one, never a mix."""
    path = tmp_path / "model.pt"
    save_checkpoint(path, ConvAutoencoder(AEConfig(decoder="transpose")))
    env = {
        **os.environ,
        "CONVAE_DATA": str(tmp_path / "root"),
        "CONVAE_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    }
    cmd = [
        sys.executable,
        "-m",
        "convae",
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
    seen = set()
    for delay in (0.0, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, None):  # None: let it finish
        proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        for line in proc.stderr:  # wait for the last epoch's line
            if line.startswith("epoch 1/1"):
                break
        if delay is not None:
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=120)
        ck = load_checkpoint(path)
        if ck.config.decoder == "transpose":  # the old one, untouched
            assert ck.history == []
            seen.add("old")
        else:  # the new one, whole: weights, history, metrics and snapshots together
            assert len(ck.history) == 1 and ck.test_metrics["psnr"] > 0
            assert len(ck.snapshots) == 1 + 3  # step 0 and each of the 3 steps (40 / 16)
            seen.add("new")
    assert proc.returncode == 0 and seen >= {"new"}
    leftovers = [
        p.name for p in tmp_path.iterdir() if p.name not in ("model.pt", "root", image_tree.name)
    ]
    assert all(n.endswith(".tmp") for n in leftovers), leftovers
    print(f"outcomes seen: {sorted(seen)}")
