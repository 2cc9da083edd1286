"""What the theory of the decoder family predicts, checked (issue 25).

Odena, Dumoulin and Olah (2016): a stride-2 transpose convolution whose kernel is not a
multiple of the stride (3) covers the output unevenly and draws a period-2 checkerboard
even from a flat input; kernel 4 (a multiple) and resize-then-convolve (nearest, bilinear)
cover it evenly. Shi et al. (2016) / Aitken et al. (2017): sub-pixel convolution has one
kernel per position of a 2x2 block, so at random initialisation it draws a checkerboard,
and ICNR (one kernel for all four) starts it as a convolution then nearest upsampling,
with none. Each prediction is tested on synthetic weights, where it is exact, on real
pictures at step 0, and on the shipped checkpoints and their training snapshots (the
first 1,000 test pictures of the real CIFAR-10 copy).

Then the family module itself: the table, the sentences and their thresholds, the
snapshot callback, and ``python -m convae compare`` with more than two checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from convae.__main__ import main
from convae.checkpoints import load_checkpoint, save_checkpoint, snapshot_models
from convae.compare import score_images
from convae.data import load_dataset
from convae.family import (
    CHECKER_VISIBLE,
    FAMILY_RECIPE,
    FAMILY_SNAPSHOT_STEPS,
    checkpoint_labels,
    family_checkpoints,
    family_row,
    family_table,
    flat_doubling,
    format_table,
    merge_snapshots,
    shows_checkerboard,
    snapshot_callback,
    step_checkerboard,
    variant_sentence,
)
from convae.metrics import checkerboard, period2_pattern
from convae.models import DECODERS, AEConfig, ConvAutoencoder
from convae.train import TrainConfig, fit

ROOT = Path(__file__).resolve().parents[1]
CKPT = ROOT / "checkpoints"


# ------------------------------------------------------------ synthetic weights


def test_flat_weights_draw_a_checkerboard_only_with_kernel_3():
    amp, floor = step_checkerboard(flat_doubling("transpose3"))
    # Taps 1, 2, 2, 4 around a mean of 2.25 on inputs about 0.5: ~60 grey levels.
    assert amp > 40 and amp > 20 * floor
    for kind in ("transpose2", "transpose4", "nearest", "bilinear", "subpixel-one-kernel"):
        amp, floor = step_checkerboard(flat_doubling(kind))
        assert amp <= floor, kind  # nothing above what the error shows by chance


def test_a_sub_pixel_step_with_four_random_kernels_draws_one():
    torch.manual_seed(0)
    step = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.PixelShuffle(2))  # default init
    amp, floor = step_checkerboard(step)
    assert amp > 10 * floor and amp > CHECKER_VISIBLE


# ----------------------------------------------------- real pictures, step 0


@pytest.fixture(scope="module")
def sample_test(tmp_path_factory):
    """The embedded sample's 1,000 real CIFAR-10 test pictures (on every machine)."""
    return load_dataset("cifar10-sample", root=tmp_path_factory.mktemp("sample")).test


def _fresh(decoder: str, seed: int) -> ConvAutoencoder:
    torch.manual_seed(seed)
    return ConvAutoencoder(AEConfig(decoder=decoder))


@pytest.mark.parametrize("seed", [0, 1])
def test_sub_pixel_starts_with_a_checkerboard_and_icnr_without(sample_test, seed):
    plain = score_images(_fresh("subpixel", seed), sample_test).mean()
    icnr_model = _fresh("subpixel-icnr", seed)
    icnr = score_images(icnr_model, sample_test).mean()
    assert shows_checkerboard(plain) and plain["checkerboard"] > 10 * plain["checkerboard_floor"]
    assert not shows_checkerboard(icnr)
    # Exactly why: ICNR's output is constant over every 2x2 block at step 0, so the
    # period-2 pattern of its error is the pictures' own (JPEG's), the same as that of any
    # 2x2-block-constant picture; the decoder adds none.
    x = sample_test.floats()
    with torch.no_grad():
        y = icnr_model(x)
        blocks = nn.functional.interpolate(nn.functional.avg_pool2d(x, 2), scale_factor=2)
    assert torch.equal(y[..., ::2, ::2], y[..., 1::2, 1::2])
    assert torch.allclose(period2_pattern(y, x), period2_pattern(blocks, x), atol=1e-9)


# --------------------------------------------------- the shipped checkpoints


class Shipped:
    """The shipped family checkpoints and the checkerboard of their snapshots on the first
    1,000 real test pictures, scored on demand (only the snapshots a test asks for: each
    is a second of CPU on a busy machine)."""

    def __init__(self, x: torch.Tensor) -> None:
        paths = family_checkpoints(CKPT, "cifar10")
        assert set(paths) == set(DECODERS), f"missing: {set(DECODERS) - set(paths)}"
        self.checkpoints = {d: load_checkpoint(p) for d, p in paths.items()}
        self.x = x.contiguous(memory_format=torch.channels_last)
        self._scores: dict[tuple[str, int], dict] = {}

    def steps(self, decoder: str) -> list[int]:
        return sorted(int(s["step"]) for s in self.checkpoints[decoder].snapshots)

    def at(self, decoder: str, step: int) -> dict:
        """{"step", "checkerboard", "checkerboard_floor"} of one snapshot (-1: the last)."""
        step = self.steps(decoder)[-1] if step == -1 else step
        if (decoder, step) not in self._scores:
            ck = self.checkpoints[decoder]
            snap = next(s for s in snapshot_models(ck.snapshots, ck.config) if s.step == step)
            with torch.no_grad():  # channels-last: twice as fast on CPU
                y = snap.model.to(memory_format=torch.channels_last)(self.x)
            amp, floor = checkerboard(y, self.x, pooled=True)
            self._scores[decoder, step] = {
                "step": step,
                "checkerboard": float(amp),
                "checkerboard_floor": float(floor),
            }
        return self._scores[decoder, step]

    def curve(self, decoder: str) -> list[dict]:
        return [self.at(decoder, step) for step in self.steps(decoder)]


@pytest.fixture(scope="module")
def shipped(cifar) -> Shipped:
    return Shipped(cifar.test.floats(slice(0, 1000)))


def test_every_family_checkpoint_starts_at_step_0_and_ends_with_its_model(shipped):
    for decoder in DECODERS:
        steps = shipped.steps(decoder)
        ck = shipped.checkpoints[decoder]
        assert steps[0] == 0 and steps[-1] == ck.history[-1]["step"], decoder
        if decoder not in ("transpose", "upsample"):  # the new ones: one recipe, dense early
            assert set(FAMILY_SNAPSHOT_STEPS) <= set(steps)
            # bench/train_family.py's recipe: the trainer's defaults of the day they were
            # trained (lr 2e-3, float32; fields added to TrainConfig since are not stored)
            want = TrainConfig(decoder=decoder, **FAMILY_RECIPE).to_dict()
            assert ck.train_config == {k: want[k] for k in ck.train_config}, decoder


def test_kernel_3_draws_a_checkerboard_that_training_removes(shipped):
    """Theory: kernel 3 stride 2 draws a checkerboard. It does, early in training (over 5
    grey levels at step 150, 70 times its floor); training then balances the kernel so
    well that the trained model's reading is no higher than the upsample decoder's."""
    curve = shipped.curve("transpose3")
    peak = max(curve, key=lambda q: q["checkerboard"])
    assert shows_checkerboard(peak) and peak["checkerboard"] > 10 * peak["checkerboard_floor"]
    assert 0 < peak["step"] < curve[-1]["step"]
    assert not shows_checkerboard(curve[-1])
    assert curve[-1]["checkerboard"] < peak["checkerboard"] / 10
    assert curve[-1]["checkerboard"] <= shipped.at("upsample", -1)["checkerboard"] + 0.05


def test_kernel_4_and_the_resize_convolutions_end_without_one(shipped):
    for decoder in ("transpose4", "upsample", "bilinear"):
        assert not shows_checkerboard(shipped.at(decoder, -1)), decoder


def test_sub_pixel_checkerboard_at_step_0_and_not_with_icnr(shipped):
    assert shows_checkerboard(shipped.at("subpixel", 0))
    assert not shows_checkerboard(shipped.at("subpixel-icnr", 0))
    assert not shows_checkerboard(shipped.at("subpixel", -1))
    assert not shows_checkerboard(shipped.at("subpixel-icnr", -1))


# ------------------------------------------------------------ the family module


ROW = {
    "label": "transpose conv, kernel 2",
    "psnr": 21.84,
    "ssim": 0.708,
    "n": 10000,
    "blockiness4": 9.12,
    "blockiness4_floor": -0.35,
    "blockiness2": 5.97,
    "blockiness2_floor": -0.12,
    "checkerboard": 0.13,
    "checkerboard_floor": 0.01,
}


def test_sentences_say_what_the_figures_found_and_only_that():
    text = variant_sentence(ROW)
    assert text.startswith("transpose conv, kernel 2: 21.84 dB, SSIM 0.708 on 10,000 pictures;")
    assert "draws 4x4 tiles: 9.5 grey levels above its floor" in text
    assert "no visible checkerboard (0.13 grey levels, floor 0.01" in text
    smooth = {**ROW, "blockiness4": -0.44, "blockiness2": -0.14}
    assert "no tiles (4x4: -0.1, 2x2: -0.0 grey levels from their floors)" in variant_sentence(
        smooth
    )
    blocks = {**smooth, "blockiness2": 1.5}  # 2x2 blocks only (ICNR's start)
    assert "draws 2x2 blocks: 1.6 grey levels above its floor" in variant_sentence(blocks)
    checker = {**smooth, "checkerboard": 5.3, "checkerboard_floor": 0.08}
    assert "a period-2 checkerboard of 5.30 grey levels (floor 0.08)" in variant_sentence(checker)
    # Above half a grey level but not twice its floor (a handful of pictures): not counted.
    noisy = {**smooth, "checkerboard": 0.6, "checkerboard_floor": 0.4}
    assert not shows_checkerboard(noisy)
    assert "no checkerboard above its floor (0.60" in variant_sentence(noisy)


def test_family_table_is_the_scores_of_each_model(tiny_models, tiny_data):
    models = {d: r.model for d, r in tiny_models.items()}
    rows = family_table(models, tiny_data.test)
    assert [r["model"] for r in rows] == list(models)
    for r, (name, model) in zip(rows, models.items(), strict=True):
        want = score_images(model, tiny_data.test).mean()
        assert (
            r["decoder"] == name and r["parameters"] == {"transpose": 1495, "upsample": 2055}[name]
        )
        for key in ("psnr", "ssim", "blockiness4", "checkerboard", "checkerboard_floor"):
            assert r[key] == pytest.approx(want[key], abs=1e-9)
        assert r["sentence"] == variant_sentence(r)
    table = format_table(rows)
    assert "tiles 4 (floor)" in table and "checker (floor)" in table
    assert all(r["sentence"] in table for r in rows)
    with pytest.raises(ValueError, match="at least one"):
        family_table({}, tiny_data.test)


def test_snapshot_callback_keeps_the_steps_asked_for(tiny_data):
    extra: list[dict] = []
    cfg = TrainConfig(decoder="transpose3", epochs=1, batch_size=16, warmup_steps=2)
    res = fit(cfg, tiny_data, snapshot_callback((1, 3), extra), snapshots=1)
    snaps = merge_snapshots(res.snapshots, extra)
    assert [s["step"] for s in snaps] == [0, 1, 3, res.history[-1]["step"]]
    for s in snaps:
        assert all(v.is_contiguous() and v.device.type == "cpu" for v in s["state_dict"].values())
    # The last one is the trained model, and the copies are not views of it.
    final = ConvAutoencoder(res.model.config)
    final.load_state_dict(snaps[-1]["state_dict"])
    assert all(torch.equal(v, res.model.state_dict()[k]) for k, v in final.state_dict().items())
    assert not torch.equal(snaps[1]["state_dict"]["t_conv1.weight"], res.model.t_conv1.weight)


def test_labels_of_several_checkpoints():
    assert checkpoint_labels(["a.pt", "b.pt"], ["transpose", "upsample"]) == [
        "transpose",
        "upsample",
    ]
    assert checkpoint_labels(["x/run1.pt", "run2.pt"], ["subpixel"] * 2) == ["run1", "run2"]
    assert checkpoint_labels(["a/m.pt", "b/m.pt"], ["bilinear"] * 2) == ["m (A)", "m (B)"]


def test_cli_compare_prints_the_family_table_for_any_number(
    image_tree, tmp_path, monkeypatch, capsys
):
    paths = []
    for decoder in ("transpose3", "bilinear", "subpixel-icnr"):
        torch.manual_seed(0)
        model = ConvAutoencoder(AEConfig(decoder=decoder))
        paths.append(str(save_checkpoint(tmp_path / f"{decoder}.pt", model)))
    args = ["compare", *paths, "--data", f"folder:{image_tree}"]
    monkeypatch.setenv("CONVAE_DATA", str(tmp_path / "root"))
    threads = torch.get_num_threads()
    try:  # in this process (the command sets its threads: put them back after)
        assert main([*args, "--json"]) == 0
        res = json.loads(capsys.readouterr().out)
        assert main(args) == 0
        text = capsys.readouterr().out
        assert main(["compare", paths[0]]) == 2
        error = capsys.readouterr().err
    finally:
        torch.set_num_threads(threads)
    assert [f["model"] for f in res["family"]] == ["transpose3", "bilinear", "subpixel-icnr"]
    data = load_dataset(f"folder:{image_tree}", root=tmp_path / "root")
    for f, path in zip(res["family"], paths, strict=True):
        ck = load_checkpoint(path)
        want = family_row(f["model"], ck.model, score_images(ck.model, data.test).mean())
        assert f == pytest.approx(want)
    assert "checker (floor)" in text and "class" not in text.splitlines()[1]
    assert all(f["sentence"] in text for f in res["family"])
    assert error.startswith("error: compare takes two or more checkpoints, got one")


@pytest.mark.parametrize("decoder", DECODERS)
def test_every_decoder_has_a_layer_table_and_a_diagram(decoder):
    from convae.figures import architecture_diagram, architecture_image
    from convae.summary import architecture

    model = ConvAutoencoder(AEConfig(decoder=decoder))
    rows = architecture(model)
    assert sum(r["parameters"] for r in rows) == sum(p.numel() for p in model.parameters())
    layers = {r["layer"] for r in rows if r["part"] == "decoder"}
    kernel = {"transpose3": 3, "transpose4": 4}.get(decoder)
    if kernel:
        assert f"ConvTranspose2d(4, 16, {kernel}, stride 2, pad 1" in " ".join(layers)
    if decoder == "bilinear":
        assert "Upsample(x2, bilinear)" in layers
    if decoder.startswith("subpixel"):
        assert {"PixelShuffle(x2)", "Conv2d(4, 64, 3, pad 1)"} <= layers
    fig = architecture_diagram(rows)
    widths = [b.width[0] for b in fig.data if b.width is not None]
    assert len(widths) == len(rows) and max(widths) <= 0.8  # 64 channels do not overlap
    assert architecture_image(rows).shape[1] > 0
