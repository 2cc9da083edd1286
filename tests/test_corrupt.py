"""Corruptions and task scores: noise statistics, mask placement, colour planes, specs,
training on corrupted inputs, and scores that compare against the clean image."""

from __future__ import annotations

import pytest
import torch

from convae.corrupt import (
    Corruption,
    apply_mask,
    corrupt,
    drop_plane,
    gaussian_noise,
    parse_corruption,
    random_rectangles,
    rectangle_mask,
    salt_and_pepper,
    to_grey,
)
from convae.tasks import evaluate_corrupted, pick, psnr_curve, region_psnr, task_of
from convae.train import TrainConfig, fit


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_noise_has_the_asked_std_and_is_seeded():
    x = torch.full((4, 3, 64, 64), 0.5)
    y = gaussian_noise(x, 0.1, _gen())
    d = y - x
    assert abs(float(d.mean())) < 0.005
    assert float(d.std()) == pytest.approx(0.1, rel=0.03)
    assert torch.equal(y, gaussian_noise(x, 0.1, _gen()))  # same seed, same noise
    assert not torch.equal(y, gaussian_noise(x, 0.1, _gen(1)))
    assert torch.equal(x, torch.full_like(x, 0.5))  # the input is untouched
    # one std per image
    y2 = gaussian_noise(x, torch.tensor([0.0, 0.05, 0.1, 0.2]), _gen())
    stds = (y2 - x).flatten(1).std(1)
    assert stds[0] == 0 and stds[1] < stds[2] < stds[3]
    assert float(stds[3]) == pytest.approx(0.2, rel=0.05)
    assert float(gaussian_noise(torch.zeros(1, 3, 8, 8), 5.0, _gen()).min()) >= 0  # clipped


def test_salt_and_pepper_hits_the_fraction_half_black_half_white():
    x = torch.full((2, 3, 100, 100), 0.5)
    y, hit = salt_and_pepper(x, 0.2, _gen())
    assert hit.shape == (2, 1, 100, 100)
    assert float(hit.float().mean()) == pytest.approx(0.2, abs=0.01)
    hit3 = hit.expand_as(y)
    assert torch.equal(y[~hit3], x[~hit3])  # untouched elsewhere
    v = y[hit3]
    assert set(v.unique().tolist()) == {0.0, 1.0}
    assert float((v == 1).float().mean()) == pytest.approx(0.5, abs=0.03)
    # all channels of a hit pixel together, like a dead sensor site
    assert (y[:, 0] == y[:, 1]).logical_or(~hit[:, 0]).all()


def test_rectangle_mask_is_where_it_was_put():
    m = rectangle_mask(32, 32, top=4, left=10, rect_h=6, rect_w=3)
    assert m.sum() == 18
    assert m[4, 10] and m[9, 12] and not m[3, 10] and not m[10, 12] and not m[4, 13]
    assert rectangle_mask(32, 32, 30, 30, 8, 8).sum() == 4  # clipped at the edges
    x = torch.rand(2, 3, 32, 32)
    y = apply_mask(x, m)
    assert (y[:, :, m] == 0).all() and torch.equal(y[:, :, ~m], x[:, :, ~m])


def test_random_rectangles_sizes_and_places():
    m = random_rectangles(500, 32, 32, 4, 16, _gen())
    rows = m[:, 0].any(2).sum(1)
    cols = m[:, 0].any(1).sum(1)
    assert rows.min() >= 4 and rows.max() <= 16 and cols.min() >= 4 and cols.max() <= 16
    assert (m[:, 0].flatten(1).sum(1) == rows * cols).all()  # one solid rectangle each
    cover = m.float().mean(0)[0]
    assert cover[0, 0] > 0 and cover[31, 31] > 0  # corners are reachable
    assert cover[16, 16] > cover[0, 0]  # the centre is covered more often


def test_grey_and_dropped_plane():
    x = torch.rand(3, 3, 8, 8)
    g = to_grey(x)
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for c in range(3):
        assert torch.allclose(g[:, c], luma)
    d = drop_plane(x, 1)
    assert (d[:, 1] == 0).all() and torch.equal(d[:, 0], x[:, 0]) and torch.equal(d[:, 2], x[:, 2])
    per = drop_plane(x, torch.tensor([0, 1, 2]))
    assert all((per[i, i] == 0).all() and per[i].abs().sum() > 0 for i in range(3))
    with pytest.raises(ValueError, match="RGB"):
        to_grey(torch.rand(1, 1, 8, 8))


def test_specs_parse_and_mixtures_pick_one_per_image():
    assert parse_corruption("") == []
    assert parse_corruption("gauss:0.1") == [Corruption("gauss", 0.1, 0.1)]
    assert parse_corruption("mask:4-16, grey") == [Corruption("mask", 4, 16), Corruption("grey")]
    assert parse_corruption("drop:g")[0].plane == 1 and parse_corruption("drop")[0].plane is None
    assert str(parse_corruption("saltpepper:0-0.3")[0]) == "saltpepper:0-0.3"
    for bad in ("blur:2", "gauss:x", "gauss:0.3-0.1", "saltpepper:2", "mask:0", "drop:q"):
        with pytest.raises(ValueError):
            parse_corruption(bad)
    with pytest.raises(ValueError, match="unknown corruption"):
        TrainConfig(corruption="blur:1")
    x = torch.rand(400, 3, 8, 8)
    y, region = corrupt(x, "grey,drop:r", _gen())
    grey = torch.isclose(y[:, 0], y[:, 1]).flatten(1).all(1) & torch.isclose(
        y[:, 1], y[:, 2]
    ).flatten(1).all(1)
    dropped = (y[:, 0] == 0).flatten(1).all(1)
    assert (grey ^ dropped).all()  # each image got exactly one of the two
    assert 150 < int(grey.sum()) < 250
    assert region.all()
    same, none = corrupt(x, "", _gen())
    assert same is x and not none.any()


def test_region_psnr_scores_only_the_region():
    x = torch.zeros(1, 3, 8, 8)
    y = x.clone()
    y[..., :4, :] = 0.1  # error only in the top half
    top = rectangle_mask(8, 8, 0, 0, 4, 8)[None, None]
    assert float(region_psnr(y, x, top)) == pytest.approx(20.0, abs=1e-4)
    assert float(region_psnr(y, x, ~top)) >= 99  # exact there
    assert torch.isnan(region_psnr(y, x, torch.zeros_like(top)))


def test_task_of_and_pick():
    assert task_of({"corruption": "", "noise": 0.0}) == "plain"
    assert task_of(None) == "plain"
    assert task_of({"noise": 0.2}) == "denoise"
    assert task_of({"corruption": "gauss:0-0.4,saltpepper:0-0.3"}) == "denoise"
    assert task_of({"corruption": "mask:4-16"}) == "inpaint"
    assert task_of({"corruption": "grey,drop:any"}) == "colorize"
    cands = [
        ("a", "plain", "transpose"),
        ("b", "denoise", "transpose"),
        ("c", "denoise", "upsample"),
        ("d", "denoise", "transpose"),
    ]
    assert pick(cands, "denoise", "transpose") == "b"
    assert pick(cands, "denoise", "transpose", preferred=["d"]) == "d"
    assert pick(cands, "inpaint", "transpose") is None


def test_training_sees_corrupted_inputs_and_reports_the_task_score(tiny_data):
    base = dict(decoder="transpose", epochs=2, batch_size=16, warmup_steps=2)
    plain = fit(TrainConfig(**base), tiny_data)
    res = fit(TrainConfig(**base, corruption="gauss:0.2"), tiny_data)
    # Same seed and data: only the corrupted inputs can make the weights differ.
    assert not torch.equal(plain.model.conv1.weight, res.model.conv1.weight)
    assert "task" not in plain.test_metrics
    task = res.test_metrics["task"]
    assert task["spec"] == "gauss:0.2" and task["n"] == len(tiny_data.test)
    assert task["input_psnr"] == pytest.approx(15, abs=1.5)  # sigma 0.2 -> ~14-15 dB
    again = evaluate_corrupted(res.model, tiny_data.test, "gauss:0.2", with_ssim=False)
    assert again["psnr"] == pytest.approx(task["psnr"])  # same seed, same noisy set
    curves = psnr_curve({"m": res.model}, tiny_data.test.floats(), "gauss", [0.0, 0.1, 0.3])
    assert curves["noisy input"][0] >= 99 and curves["noisy input"][1] > curves["noisy input"][2]
    assert len(curves["m"]) == 3
