"""Recipes in one place (the Train page's, the Compare page's pair, the CLI's) and the live
progress a training page draws, on the tiny tree with a real fit()."""

from __future__ import annotations

import pytest
import torch

from convae.__main__ import _parser
from convae.progress import MAX_STEP_POINTS, LiveRun, measuring_steps
from convae.recipes import (
    QUICK_PAIR,
    class_filter,
    classroom_config,
    classroom_warmup,
    cli_config,
    steps_in_run,
)
from convae.recon import reconstruct_scored
from convae.train import TrainConfig, TrainEvent, fit

PAGE = dict(epochs=3, limit=5000, batch_size=32, lr=2e-3, loss="mse", seed=0, noise=0.0)


def test_a_classroom_run_warms_up_over_a_tenth_of_its_steps():
    assert steps_in_run(3, 5000, 32) == 3 * 157  # the last batch of an epoch is short
    assert classroom_warmup(471) == 47
    assert classroom_warmup(5) == 1  # at least one step
    assert classroom_warmup(12 * 1563) == 500  # a full run keeps the library's 500


def test_the_train_pages_recipe_from_its_settings():
    classes = ["circle", "square", "stripes"]
    cfg = classroom_config("upsample", **PAGE, classes=classes, all_classes=classes, device="cpu")
    assert cfg == TrainConfig(decoder="upsample", **PAGE, warmup_steps=47, classes=(), device="cpu")
    some = classroom_config(
        "transpose", **PAGE, classes=["square"], all_classes=classes, device="cpu"
    )
    assert some.classes == ("square",) and some.decoder == "transpose"
    with pytest.raises(ValueError, match="learning rate"):
        classroom_config(
            "transpose", **{**PAGE, "lr": 0}, classes=classes, all_classes=classes, device="cpu"
        )
    assert class_filter(["b", "a"], ["a", "b"]) == ()


def test_the_compare_pages_quick_pair(tiny_data):
    a, b = QUICK_PAIR.configs(["square"], tiny_data.classes, "cpu")
    assert (a.decoder, b.decoder) == ("transpose", "upsample")
    assert {**a.to_dict(), "decoder": "-"} == {**b.to_dict(), "decoder": "-"}  # a fair pair
    assert (a.epochs, a.limit, a.batch_size, a.seed, a.warmup_steps) == (3, 4000, 64, 0, 20)
    assert a.classes == ("square",)
    quick = QUICK_PAIR.data(tiny_data)
    assert len(quick.test) == min(1000, len(tiny_data.test)) and quick.train is tiny_data.train
    assert QUICK_PAIR.name(a) == "transpose-snap8-seed0"


def test_the_command_lines_recipe_from_its_arguments():
    args = _parser().parse_args(
        ["train", "--decoder", "upsample", "--classes", "cat, dog", "--epochs", "2"]
    )
    cfg = cli_config(args, workers=2)
    assert cfg == TrainConfig(decoder="upsample", classes=("cat", "dog"), epochs=2, workers=2)
    defaults = cli_config(_parser().parse_args(["train"]), workers=1)
    assert defaults == TrainConfig()  # the CLI's defaults are the library's


def _event(step: int, total: int = 1000, kind: str = "step") -> TrainEvent:
    return TrainEvent(kind, step, 1, 1, total, loss=1.0 / step, images_per_s=100.0)


def test_live_progress_measures_at_step_1_and_ten_points(tiny_data):
    """A real run (2 epochs of 5 steps): the PSNR points are where they should be, and the
    last is the returned model's PSNR on the same pictures; the pictures are its copies."""
    live = LiveRun("upsample", tiny_data.test, images=12, shown=4)
    points = []
    cfg = TrainConfig(decoder="upsample", epochs=2, batch_size=16, warmup_steps=2)
    result = fit(cfg, tiny_data, lambda ev: points.append(live.update(ev)))
    measured = [p for p in points if p is not None]
    assert [p.step for p in measured] == sorted(measuring_steps(10)) == list(range(1, 11))
    final = reconstruct_scored(result.model, tiny_data.test.images[:12])
    assert measured[-1].psnr == pytest.approx(final.mean_psnr, abs=1e-4)
    assert torch.allclose(live.pictures, final.images[:4], atol=1e-5)
    assert [h["epoch"] for h in live.history] == [1, 2] and len(live.steps) == 10
    assert live.where() == "at the end of epoch 2"  # the run's last event
    curve = live.curve()
    assert curve["psnr_points"] == [(p.step, p.psnr) for p in measured]
    done, text = live.status(_event(2, total=4), index=1, runs=2)  # half of the 2nd run
    assert done == pytest.approx(0.75) and text.startswith("upsample: epoch 1/1, step 2/4")


def test_live_progress_keeps_the_loss_curve_light(tiny_data):
    live = LiveRun("t", tiny_data.test)
    for step in range(1, 5001):  # no model on these events: nothing is measured
        assert live.update(_event(step, total=5000)) is None
    assert MAX_STEP_POINTS // 2 <= len(live.steps) <= MAX_STEP_POINTS
    assert live.steps[0][0] >= 1 and live.steps[-1][0] > 4900
    assert measuring_steps(5000) == {1, *range(500, 5001, 500)}


def test_live_progress_says_where_a_stop_was_taken(tiny_data):
    """The Train page's stop note names the step where the server took the Stop: the
    step counted within its epoch, or the end of an epoch."""
    live = LiveRun("t", tiny_data.test, measure=False)
    assert live.where() == "before its first step"
    for step in range(1, 6):  # epoch 1: steps 1-5 of 5, then its end
        live.update(TrainEvent("step", step, 1, 2, 5, loss=1.0, images_per_s=1.0))
    assert live.where() == "in epoch 1, at step 5 of its 5"
    live.update(TrainEvent("epoch", 5, 1, 2, 5, loss=1.0, images_per_s=1.0))
    assert live.where() == "at the end of epoch 1"
    live.update(TrainEvent("step", 7, 2, 2, 5, loss=1.0, images_per_s=1.0))
    assert live.where() == "in epoch 2, at step 2 of its 5"
