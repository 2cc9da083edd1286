"""Training on several processes: real gloo process groups started by torchrun's engine
(torch.distributed), on the tiny synthetic tree. Two workers must train exactly what one
process trains, rank 0 alone writes, and a failure is one line that leaves --out alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path

import pytest
import torch

from convae.checkpoints import load_checkpoint, save_checkpoint
from convae.data import load_dataset
from convae.models import AEConfig, ConvAutoencoder
from convae.train import TrainConfig, fit
from tests.conftest import make_image_tree

ROOT = Path(__file__).resolve().parents[1]
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")


def _stop_at(kind: str, step: int):
    """A callback that asks to stop at the event of ``kind`` at optimizer step ``step``."""
    return lambda ev: ev.kind == kind and ev.step == step


def _rank_main(tree: str, root: str, recipes: list[dict]) -> list[dict]:
    """One rank: join the group torchrun's engine set up, run fit() per recipe (a
    recipe's "stop": (kind, step) is a callback; only rank 0's is called)."""
    from convae import distributed

    torch.set_num_threads(1)
    team = distributed.join("cpu", timeout_s=60)  # a rank left waiting fails, not hangs
    try:
        data = load_dataset(f"folder:{tree}", root=root)
        out = []
        for recipe in recipes:
            recipe = dict(recipe)
            stop = recipe.pop("stop", None)
            callback = _stop_at(*stop) if stop else None
            r = fit(TrainConfig(workers=team.world, **recipe), data, callback, team=team)
            out.append(
                {
                    "rank": team.rank,
                    "state": r.model.state_dict(),
                    "history": r.history,
                    "test_metrics": r.test_metrics,
                    "epochs_done": r.epochs_done,
                    "stopped": r.stopped,
                    "diverged": r.diverged,
                }
            )
        return out
    finally:
        distributed.leave(team)


def _launch(n: int, fn, *args) -> dict:
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    cfg = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=n,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
    )
    # Spawned ranks re-run the parent's __main__ file. After an AppTest in this process
    # that is app.py (Streamlit runs the page script as __main__), which a worker must
    # not run: give the launch a __main__ without a file, as `python -c` has.
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        return elastic_launch(cfg, fn)(*args)
    finally:
        sys.modules["__main__"] = main


# 72 images in batches of 15: four batches split 8 + 7 between the ranks, the last one
# (12 images) 6 + 6, so uneven shares are covered. 5 steps an epoch.
# float32: two workers then train one process's weights to float rounding (1e-6); bf16's
# own rounding is checked apart (BF16), at a small lr: Adam moves a weight by about lr a
# step whatever its gradient's size, so a gradient that bf16 rounds across zero moves it
# the other way by that much.
PLAIN = {"epochs": 2, "batch_size": 15, "warmup_steps": 2, "seed": 5, "precision": "fp32"}
NOISY = {**PLAIN, "noise": 0.1, "corruption": "mask:4-8,grey"}
BF16 = {**PLAIN, "precision": "bf16", "lr": 2e-3}
STOPS = [("step", 7), ("epoch", 5), ("step", 10)]  # mid-epoch, at an epoch's end, last step
DIVERGES = {**PLAIN, "lr": 1e12, "warmup_steps": 0}


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """Rank 0's and rank 1's results of one real two-worker run over all the recipes."""
    if sys.platform == "win32":
        pytest.skip("POSIX processes")
    base = tmp_path_factory.mktemp("team")
    tree = make_image_tree(base / "shapes", n_train=24, n_test=8)  # tiny_data's pictures
    recipes = [PLAIN, NOISY, NOISY, BF16]
    recipes += [{**PLAIN, "epochs": 3, "stop": stop} for stop in STOPS]
    recipes += [DIVERGES]
    results = _launch(2, _rank_main, str(tree), str(base / "root"), recipes)
    assert sorted(results) == [0, 1]
    return results[0], results[1]


def test_two_gloo_workers_train_what_one_process_trains(two_workers, tiny_data):
    """Both ranks end with the same weights, which are the weights one process gets at
    the same global batch (the shares and the loss scaling are right), and with noise
    and corruption the same seed still gives the same model."""
    r0, r1 = two_workers
    for a, b in zip(r0, r1, strict=True):
        assert a["rank"] == 0 and b["rank"] == 1
        for k, v in a["state"].items():
            assert torch.equal(v, b["state"][k]), f"ranks differ in {k}"
    # same seed and N, noise and corruption on: the same model again
    for k, v in r0[1]["state"].items():
        assert torch.equal(v, r0[2]["state"][k])
    # rank 0 alone scores the final model (SSIM and all); both saw the same history
    assert {"mse", "psnr", "ssim"} <= set(r0[0]["test_metrics"]) and r1[0]["test_metrics"] == {}
    assert [h["step"] for h in r0[0]["history"]] == [5, 10] == [h["step"] for h in r1[0]["history"]]

    alone = fit(TrainConfig(**PLAIN), tiny_data)
    for k, v in alone.model.state_dict().items():
        assert torch.allclose(v, r0[0]["state"][k], atol=1e-6, rtol=1e-5), k
    for h1, h2 in zip(alone.history, r0[0]["history"], strict=True):
        assert h2["train_loss"] == pytest.approx(h1["train_loss"], rel=1e-5)
        assert h2["test_psnr"] == pytest.approx(h1["test_psnr"], abs=1e-4)
    # and the noisy recipe did train on noisy inputs: a different model
    assert not torch.allclose(r0[1]["state"]["conv1.weight"], r0[0]["state"]["conv1.weight"])


def test_two_workers_in_bf16_train_what_one_process_trains(two_workers, tiny_data):
    """bf16 convolutions on a team: both ranks hold the same weights, and they are one
    process's bf16 weights up to bf16's rounding of each share's gradients."""
    r0, r1 = two_workers[0][3], two_workers[1][3]
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), f"ranks differ in {k}"
    alone = fit(TrainConfig(**BF16), tiny_data)
    assert alone.train_config.precision == "bf16"
    for k, v in alone.model.state_dict().items():
        assert torch.allclose(v, r0["state"][k], atol=2e-3, rtol=2e-2), k
    assert r0["history"][-1]["test_psnr"] == pytest.approx(alone.history[-1]["test_psnr"], abs=0.05)
    # not the float32 run's weights: bf16 did run
    assert not torch.equal(r0["state"]["conv1.weight"], two_workers[0][0]["state"]["conv1.weight"])


@pytest.mark.parametrize("i", range(len(STOPS)))
def test_a_stop_on_rank_0_stops_both_ranks_where_one_process_stops(two_workers, tiny_data, i):
    """Only rank 0's callback runs; its stop reaches rank 1 a step later, and both keep
    the model one process keeps when its callback stops at the same event."""
    r0, r1 = two_workers[0][4 + i], two_workers[1][4 + i]
    alone = fit(TrainConfig(**{**PLAIN, "epochs": 3}), tiny_data, _stop_at(*STOPS[i]))
    assert r0["stopped"] and alone.stopped
    assert r0["epochs_done"] == r1["epochs_done"] == alone.epochs_done
    assert len(r0["history"]) == len(r1["history"]) == alone.epochs_done
    for k, v in alone.model.state_dict().items():
        assert torch.equal(r0["state"][k], r1["state"][k])
        assert torch.allclose(v, r0["state"][k], atol=1e-6, rtol=1e-5), k


def test_a_divergence_stops_both_ranks_at_the_same_step(two_workers):
    r0, r1 = two_workers[0][-1], two_workers[1][-1]
    assert r0["diverged"] and r0["diverged"] == r1["diverged"]
    assert "learning rate" in r0["diverged"] and r0["epochs_done"] == r1["epochs_done"] == 0


def _cli(*args: str, root: Path, cwd: Path = ROOT, **popen) -> subprocess.Popen:
    env = {**os.environ, "CONVAE_DATA": str(root), "CONVAE_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        env.pop(k, None)
    return subprocess.Popen(
        [sys.executable, *args], env=env, cwd=cwd, text=True, stdout=subprocess.PIPE, **popen
    )


@posix_only
@pytest.mark.parametrize("how", ["torchrun", "--workers"])
def test_two_workers_write_one_loadable_checkpoint(image_tree, tmp_path, how):
    """``torchrun --nproc-per-node 2 -m convae train`` and ``--workers 2``: a checkpoint
    that loads, written by rank 0 alone, and nothing else in its folder."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    train = ["train", "--data", f"folder:{image_tree}", "--epochs", "2", "--batch-size", "16"]
    train += ["--quiet", "--out", str(out_dir / "model.pt")]
    if how == "torchrun":
        cmd = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
        cmd += ["-m", "convae", *train]
    else:
        cmd = ["-m", "convae", *train, "--workers", "2"]
    proc = _cli(*cmd, root=tmp_path / "root", stderr=subprocess.PIPE)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert os.listdir(out_dir) == ["model.pt"]
    ck = load_checkpoint(out_dir / "model.pt")
    assert ck.train_config["workers"] == 2 and len(ck.history) == 2
    assert {"psnr", "ssim"} <= set(ck.test_metrics)
    # rank 0 alone reports: one result line, one line per epoch
    assert stdout.count("wrote ") == 1 and "on 2 workers" in stdout
    assert stderr.count("epoch 2/2") == 1, stderr
    assert "Traceback" not in stderr


def _main(*argv: str, capsys) -> tuple[int, str]:
    """The command line's main() in this process: (exit status, stderr)."""
    from convae.__main__ import main

    try:
        status = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    "value, says",
    [
        ("0", "argument --workers: takes a whole number of training processes >= 1, got '0'"),
        ("-2", "argument --workers: takes a whole number of training processes >= 1, got '-2'"),
        ("two", "argument --workers: takes a whole number of training processes >= 1, got 'two'"),
        ("999", "--workers 999 is more than the"),
    ],
)
def test_a_bad_workers_value_is_one_line(image_tree, data_root, capsys, value, says):
    status, err = _main(
        "train", "--data", f"folder:{image_tree}", "--workers", value, capsys=capsys
    )
    assert status == 2
    assert err.startswith(f"error: {says}") and err.count("\n") == 1, err


def test_workers_under_torchrun_must_match_its_processes(
    image_tree, data_root, capsys, monkeypatch
):
    monkeypatch.setenv("WORLD_SIZE", "2")
    status, err = _main("train", "--data", f"folder:{image_tree}", "--workers", "3", capsys=capsys)
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("error: --workers 3 under torchrun, which started 2 processes")


def test_a_batch_too_small_to_share_is_one_line(image_tree, data_root, capsys):
    argv = ["train", "--data", f"folder:{image_tree}", "--workers", "2", "--batch-size", "1"]
    status, err = _main(*argv, "--quiet", capsys=capsys)
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("error: 1 image(s) per step cannot be shared by 2 workers")


def _children(pid: int) -> dict[str, int]:
    """The worker processes of a launcher, by their RANK."""
    out = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        rank = [e[5:].decode() for e in env if e.startswith(b"RANK=")]
        if rank:
            out[rank[0]] = int(child)
    return out


@posix_only
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc")
def test_a_killed_worker_ends_the_run_in_one_line_and_keeps_the_old_checkpoint(
    image_tree, tmp_path
):
    out = tmp_path / "out" / "model.pt"
    save_checkpoint(out, ConvAutoencoder(AEConfig(decoder="upsample")))
    before = out.read_bytes()
    proc = _cli(
        "-m", "convae", "train", "--data", f"folder:{image_tree}", "--epochs", "500",
        "--batch-size", "16", "--workers", "2", "--quiet", "--out", str(out),
        root=tmp_path / "root", stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        first = proc.stderr.readline()  # rank 0's first epoch line: training is under way
        assert first.startswith("epoch 1/500"), first
        workers = _children(proc.pid)
        assert sorted(workers) == ["0", "1"]
        os.kill(workers["1"], signal.SIGKILL)
        t = time.monotonic()
        rest = proc.stderr.read()
        proc.wait(timeout=120)
    finally:
        proc.kill()
    assert time.monotonic() - t < 60
    assert proc.returncode == 2
    lines = [ln for ln in rest.splitlines() if not ln.startswith("epoch ")]
    assert lines == [
        f"error: training worker 1 of 2 was killed by SIGKILL; the run was stopped and "
        f"{out} is untouched"
    ], rest
    assert out.read_bytes() == before and os.listdir(out.parent) == ["model.pt"]
    assert load_checkpoint(out).config.decoder == "upsample"


def _failure(tmp_path: Path, rank: int, exitcode: int, message: str | None = None):
    """torchrun's own record of a failed worker (an error file when it raised)."""
    import json

    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    error_file = tmp_path / f"error-{rank}.json"
    if message is not None:
        data = {"message": {"message": message, "extraInfo": {"timestamp": "100"}}}
        error_file.write_text(json.dumps(data))
    return ProcessFailure(
        local_rank=rank, pid=1000 + rank, exitcode=exitcode, error_file=str(error_file)
    )


def test_a_killed_worker_is_named_over_one_that_raised_in_the_same_second(tmp_path):
    """What CI saw once on a busy machine: the survivor raised (a lost connection it did
    not recognise) and its error file's whole-second timestamp tied with the moment
    torchrun saw the killed worker. The killed one is the cause."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from convae import distributed

    raised = _failure(tmp_path, 0, 2, "Connection closed by peer [127.0.0.1]:29500")
    killed = _failure(tmp_path, 1, -signal.SIGKILL.value)
    killed.timestamp = raised.timestamp  # the same second
    exc = ChildFailedError("convae", {0: raised, 1: killed})
    line = distributed._failure_line(exc, 2, tmp_path / "model.pt", None)
    assert line.startswith("training worker 1 of 2 was killed by SIGKILL;"), line
    # a partner that died by SIGABRT (gloo's thread, its peer gone) is a consequence too
    aborted = _failure(tmp_path, 0, -signal.SIGABRT.value)
    aborted.timestamp = killed.timestamp
    exc = ChildFailedError("convae", {0: aborted, 1: killed})
    line = distributed._failure_line(exc, 2, tmp_path / "model.pt", None)
    assert line.startswith("training worker 1 of 2 was killed by SIGKILL;"), line
    # with nobody killed, the one that raised is the cause, not the one torchrun stopped
    stopped = _failure(tmp_path, 1, -signal.SIGTERM.value)
    exc = ChildFailedError("convae", {0: raised, 1: stopped})
    line = distributed._failure_line(exc, 2, tmp_path / "model.pt", None)
    assert line.startswith("training worker 0 of 2 "), line
