"""The real command line, run as a user would, on a tiny tree made here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from convae.checkpoints import load_checkpoint

# Each test starts python -m convae (a torch import, about 2 CPU seconds, a command).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, data_root: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "CONVAE_DATA": str(data_root),
        "CONVAE_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
        # One thread, as in this process (tests/conftest.py): on a busy 2-core machine two
        # OpenMP threads wait at every barrier for the one that was descheduled.
        "CONVAE_THREADS": os.environ.get("CONVAE_TEST_THREADS") or "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "convae", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )


def test_help_explains_every_option(tmp_path):
    out = run_cli("train", "--help", data_root=tmp_path).stdout
    for opt in (
        "--data",
        "--decoder",
        "--loss",
        "--epochs",
        "--batch-size",
        "--lr",
        "--classes",
        "--limit",
        "--noise",
        "--seed",
        "--device",
        "--out",
    ):
        assert opt in out
    assert "default: 32" in out and "default: transpose" in out
    assert "--json" in run_cli("evaluate", "--help", data_root=tmp_path).stdout


def test_train_then_evaluate(image_tree, tmp_path):
    ckpt = tmp_path / "tiny.pt"
    r = run_cli(
        "train",
        "--data",
        f"folder:{image_tree}",
        "--decoder",
        "upsample",
        "--loss",
        "mse",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--limit",
        "40",
        "--out",
        str(ckpt),
        data_root=tmp_path / "root",
    )
    assert r.returncode == 0, r.stderr
    assert "test PSNR" in r.stdout and "img/s" in r.stderr  # result line + progress bar
    ck = load_checkpoint(ckpt)
    assert ck.config.decoder == "upsample" and len(ck.history) == 2
    assert ck.train_config["limit"] == 40 and ck.data_source == f"folder:{image_tree}"

    r = run_cli("evaluate", str(ckpt), "--json", data_root=tmp_path / "root")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["n"] == 18 and set(res["per_class"]) == {"circle", "square", "stripes"}
    assert res["psnr"] > 5 and 0 < res["ssim"] <= 1

    table = run_cli("evaluate", str(ckpt), "--classes", "square", data_root=tmp_path / "root")
    assert "square" in table.stdout and "circle" not in table.stdout


def test_errors_are_one_line(tmp_path):
    r = run_cli("evaluate", str(tmp_path / "none.pt"), data_root=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    r = run_cli("train", "--data", "mnist", "--epochs", "1", data_root=tmp_path)
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("train", "--data", "mnist", "--lr", "0", data_root=tmp_path)
    assert r.returncode == 2 and "learning rate" in r.stderr
