"""Grid-artifact measures (issue 11): blockiness at periods 2 and 4, the checkerboard and
their floors rank synthetic cases the way their definitions say, deliberately wrong
implementations fail the same checks, and on the shipped models the transpose decoder's
tiles stand far above the upsample decoder's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from convae.checkpoints import load_checkpoint
from convae.metrics import (
    GREY_LEVELS,
    block_steps,
    blockiness,
    blockiness_floor,
    checkerboard,
    period2_phases,
    pooled_checkerboard,
    structure_free,
)

CKPT = Path(__file__).resolve().parents[1] / "checkpoints"


def natural_images(n: int = 16, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth random colour images: low-resolution noise enlarged bicubically, plus a
    little fine texture, so neighbouring pixels differ by a few grey levels everywhere
    (like photos) and nothing is locked to a 2- or 4-pixel grid."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 6, 6, generator=g)
    x = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    x = x + 0.01 * torch.randn(x.shape, generator=g)
    return x.clamp(0.05, 0.95)


def tiles(x: torch.Tensor, period: int, shift: int = 0) -> torch.Tensor:
    """``x`` averaged over period x period tiles whose grid starts at pixel ``shift``."""
    moved = torch.roll(x, (-shift, -shift), (2, 3))
    flat = F.interpolate(F.avg_pool2d(moved, period), scale_factor=period, mode="nearest")
    return torch.roll(flat, (shift, shift), (2, 3))


def checker(size: int = 32, amplitude: float = 0.04) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return amplitude * (-1.0) ** (xx + yy)


def cases(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Reconstructions of ``x`` with one kind of error each (errors of 4-35 grey levels)."""
    g = torch.Generator().manual_seed(1)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return {
        "copy": x.clone(),
        "tiles4": tiles(x, 4),
        "tiles2": tiles(x, 2),
        "tiles4 shifted": tiles(x, 4, shift=1),
        "tiles2 shifted": tiles(x, 2, shift=1),
        "checkerboard": x + checker(),
        "checkerboard shifted": x + torch.roll(checker(), 1, dims=1),
        "noise": x + 0.04 * torch.randn(x.shape, generator=g),
        "blur": F.avg_pool2d(padded, 3, stride=1),
        "brightness": x + 0.1,
    }


# --- blockiness ------------------------------------------------------------------------


def _block_steps_by_hand(img: torch.Tensor, period: int) -> tuple[float, float]:
    """Loops over every neighbour pair of one image (C, H, W): the definition, slowly."""
    edge, inside = [], []
    c, h, w = img.shape
    for ch in range(c):
        for i in range(h):
            for j in range(w - 1):  # horizontal pair (i, j)-(i, j+1)
                d = abs(float(img[ch, i, j + 1] - img[ch, i, j]))
                (edge if (j + 1) % period == 0 else inside).append(d)
        for i in range(h - 1):
            for j in range(w):  # vertical pair (i, j)-(i+1, j)
                d = abs(float(img[ch, i + 1, j] - img[ch, i, j]))
                (edge if (i + 1) % period == 0 else inside).append(d)
    return sum(edge) / len(edge), sum(inside) / len(inside)


@pytest.mark.parametrize("period", [2, 4])
def test_block_steps_match_the_definition_pair_by_pair(period):
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    edge, inside = block_steps(x, period)
    for i in range(2):
        e, n = _block_steps_by_hand(x[i], period)
        assert edge[i].item() == pytest.approx(e, rel=1e-5)
        assert inside[i].item() == pytest.approx(n, rel=1e-5)


def blockiness_ranks_right(measure, period: int) -> bool:
    """The ranking :func:`convae.metrics.blockiness` promises, for any candidate
    ``measure(recon, target, period) -> (N,)`` in grey levels."""
    x = natural_images()
    s = {k: float(measure(y, x, period).mean()) for k, y in cases(x).items()}
    other = 2 if period == 4 else 4
    own, half = s[f"tiles{period}"], s[f"tiles{other}"]
    return (
        own > 10  # tiles on this grid: steps of many grey levels at their edges
        and (own > half > 5 if period == 4 else own > half > 5)  # 4x4 tiles show at 2 too
        and abs(s["copy"]) < 1e-6
        and abs(s["brightness"]) < 1e-6  # a shift changes no step
        and all(abs(s[k]) < 0.1 * own for k in ("noise", "blur", "checkerboard"))
        and s["tiles4 shifted"] < -5  # their edges fall inside this grid's tiles
        and s["tiles2 shifted"] < -5
    )


@pytest.mark.parametrize("period", [2, 4])
def test_blockiness_ranks_the_synthetic_cases(period):
    assert blockiness_ranks_right(blockiness, period)


def test_blockiness_is_in_grey_levels_of_the_step_added_at_tile_edges():
    # A flat input and a reconstruction that is flat inside 4x4 tiles, each tile 4 grey
    # levels brighter than the tile to its left: every step across a vertical tile edge
    # is 4 levels, every other step 0. Horizontal pairs: 7 of 31 per row cross an edge;
    # vertical pairs never change. So edge mean = 4 * 7*32 / (7*32 + 7*32) = 2 levels,
    # inside mean 0, blockiness 2 levels.
    x = torch.full((1, 1, 32, 32), 0.5)
    ramp = (torch.arange(32) // 4).float() * 4 / GREY_LEVELS
    y = x + ramp
    assert blockiness(y, x, 4).item() == pytest.approx(2.0, abs=1e-5)


@pytest.mark.parametrize("period", [2, 4])
def test_wrong_blockiness_implementations_fail_the_ranking(period):
    def wrong_phase(recon, target, p):  # edges one pixel off: j % p == 0
        return blockiness(torch.roll(recon, 1, 3), torch.roll(target, 1, 3), p)

    def not_relative(recon, target, p):  # forgets to subtract the input's own steps
        e, i = block_steps(recon, p)
        return (e - i) * GREY_LEVELS

    def plain_roughness(recon, target, p):  # every step counts, no edge/inside split
        e, i = block_steps(recon, p)
        e0, i0 = block_steps(target, p)
        return (e + i - e0 - i0) * GREY_LEVELS

    assert not blockiness_ranks_right(wrong_phase, period)
    assert not blockiness_ranks_right(plain_roughness, period)
    # Relative to the input matters when the input has steps on the grid itself (a JPEG
    # copy does at its 8x8 block edges): a perfect copy of a tiled input must score 0.
    x = tiles(natural_images(), 4)
    assert abs(float(blockiness(x.clone(), x, period).mean())) < 1e-6
    assert abs(float(not_relative(x.clone(), x, period).mean())) > 5


def test_blockiness_floor_is_what_structure_free_error_scores():
    x = natural_images()
    c = cases(x)
    for p in (2, 4):
        # error without grid structure: the value sits at its floor
        noise, floor = (
            blockiness(c["noise"], x, p).mean(),
            blockiness_floor(c["noise"], x, p).mean(),
        )
        assert abs(float(noise - floor)) < 0.5
        # tiles: the same error with its pixels shuffled scores about nothing
        tiled, tfloor = blockiness(c["tiles4"], x, p).mean(), blockiness_floor(c["tiles4"], x, p)
        assert float(tiled) > 10 and abs(float(tfloor.mean())) < 0.1 * float(tiled)


def test_structure_free_keeps_each_images_error_values():
    x = natural_images(4)
    y = tiles(x, 4)
    ref = structure_free(y, x, torch.Generator().manual_seed(5))
    for i in range(4):
        for c in range(3):
            got, want = (ref - x)[i, c].flatten().sort().values, (y - x)[i, c].flatten().sort()
            assert torch.allclose(got, want.values, atol=1e-6)
    assert not torch.allclose(ref, y)
    # one order per image, the same for its colour channels: a pixel's colour error moves
    # whole (against a zero target the shuffled image is the shuffled error, exactly)
    zero = torch.zeros_like(y)
    moved = structure_free(y, zero, torch.Generator().manual_seed(5))[0].flatten(1).T
    pixels = {tuple(v) for v in y[0].flatten(1).T.tolist()}
    assert {tuple(v) for v in moved.tolist()} == pixels


# --- checkerboard ----------------------------------------------------------------------


def checkerboard_ranks_right(measure) -> bool:
    """The ranking :func:`convae.metrics.checkerboard` promises, for any candidate
    ``measure(recon, target) -> (value, floor)`` pooled over the set, in grey levels."""
    x = natural_images()
    amp = 0.04 * GREY_LEVELS
    s = {k: float(measure(y, x)[0]) for k, y in cases(x).items()}
    return (
        abs(s["checkerboard"] - amp) < 0.02 * amp
        and abs(s["checkerboard shifted"] - amp) < 0.02 * amp  # still a checkerboard
        and s["copy"] == 0
        and s["brightness"] < 1e-6
        and all(s[k] < 0.03 * amp for k in ("noise", "blur", "tiles4", "tiles4 shifted"))
    )


def test_checkerboard_ranks_the_synthetic_cases():
    assert checkerboard_ranks_right(lambda y, x: checkerboard(y, x, pooled=True))


def test_checkerboard_reads_the_amplitude_of_stripes_and_checkerboards():
    x = natural_images(8)
    for pattern in (
        checker(amplitude=0.02),
        0.05 * (-1.0) ** torch.arange(32),  # vertical period-2 stripes
        0.05 * (-1.0) ** torch.arange(32)[:, None],  # horizontal stripes
    ):
        amp = float(pattern.abs().max()) * GREY_LEVELS
        value, floor = checkerboard(x + pattern, x, pooled=True)
        assert float(value) == pytest.approx(amp, rel=0.01)
        assert float(floor) < 0.05 * amp


def test_wrong_checkerboard_implementations_fail_the_ranking():
    def per_image_nyquist(recon, target):  # the old per-image score: tracks error
        phases, _ = period2_phases(recon, target)
        spread = phases.var(dim=2, unbiased=False).mean(1).sqrt() * GREY_LEVELS
        return spread.mean(), None

    def any_period2_energy(recon, target):  # local 2x2 energy, no phase pooling
        r = recon - target
        d = r[..., ::2, ::2] - r[..., ::2, 1::2] - r[..., 1::2, ::2] + r[..., 1::2, 1::2]
        return (d / 4).pow(2).mean().sqrt() * GREY_LEVELS, None

    assert not checkerboard_ranks_right(per_image_nyquist)
    assert not checkerboard_ranks_right(any_period2_energy)


def test_checkerboard_floor_is_the_chance_level_of_shuffled_error():
    # The analytic chance variance 3 s^2 / (n - 1) of the four phase means against the
    # same residual values put at random positions many times (Monte Carlo).
    g = torch.Generator().manual_seed(7)
    x = torch.zeros(1, 1, 16, 16)
    r = torch.rand(1, 1, 16, 16, generator=g) ** 3  # skewed values: not just Gaussian
    _, chance = period2_phases(x + r, x)
    draws = []
    for _ in range(4000):
        shuffled = r.flatten()[torch.randperm(256, generator=g)].view(1, 1, 16, 16)
        phases, _ = period2_phases(x + shuffled, x)
        draws.append(phases.var(dim=2, unbiased=False))
    assert float(torch.stack(draws).mean()) == pytest.approx(float(chance), rel=0.04)


def test_checkerboard_pools_a_fixed_pattern_and_cancels_a_flipping_one():
    x = natural_images(8)
    same = x + checker(amplitude=0.02)
    flips = x + checker(amplitude=0.02) * torch.tensor([1.0, -1.0] * 4)[:, None, None, None]
    per_image_same, _ = checkerboard(same, x)
    per_image_flips, _ = checkerboard(flips, x)
    # each image on its own has the pattern either way ...
    assert torch.allclose(per_image_same, per_image_flips)
    assert (per_image_same > 0.95 * 0.02 * GREY_LEVELS).all()
    # ... but only a pattern with one phase everywhere is a decoder's built-in pattern
    assert float(checkerboard(same, x, pooled=True)[0]) == pytest.approx(5.1, rel=0.01)
    assert float(checkerboard(flips, x, pooled=True)[0]) < 0.5


def test_pooled_checkerboard_floor_falls_with_the_number_of_images():
    x = natural_images(16)
    y = x + 0.04 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    phases, chance = period2_phases(y, x)
    _, floor_4 = pooled_checkerboard(phases[:4], chance[:4])
    _, floor_16 = pooled_checkerboard(phases, chance)
    assert floor_16 == pytest.approx(floor_4 / 2, rel=0.15)  # 1 / sqrt(N)


def test_measures_reject_mismatched_or_too_small_images():
    with pytest.raises(ValueError, match="shapes differ"):
        blockiness(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 6), 2)
    with pytest.raises(ValueError, match="at least"):
        blockiness(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), 4)
    with pytest.raises(ValueError, match="shapes differ"):
        checkerboard(torch.zeros(2, 3, 8, 8), torch.zeros(1, 3, 8, 8))


# --- the shipped models on the real test split ------------------------------------------


@pytest.fixture(scope="module")
def shipped_scores(shipped_test_scores):
    """The shipped pair's scores on the real test split (shared with test_shipped.py)."""
    return {d: shipped_test_scores(f"cifar10-{d}.pt") for d in ("transpose", "upsample")}


@pytest.mark.shared_data
def test_shipped_transpose_decoder_is_the_blocky_one(shipped_scores):
    t, u = shipped_scores["transpose"].mean(), shipped_scores["upsample"].mean()
    assert t["n"] == u["n"] == 10000
    for key in ("blockiness4", "blockiness2"):
        floor_t, floor_u = t[f"{key}_floor"], u[f"{key}_floor"]
        # the criterion, read above each model's floor: the transpose decoder's
        # tiles stand >= 1.5x as far above its floor as the upsample decoder's, and many
        # grey levels above it; the upsample decoder adds no step at tile edges (under
        # half a grey level above its floor; the 30-epoch model of 2026-12-06 is 0.8
        # below it at 4x4 edges: smoother there than inside a tile, which is no tile)
        assert t[key] - floor_t >= 1.5 * abs(u[key] - floor_u)
        assert t[key] - floor_t > 3
        assert u[key] - floor_u < 0.5
        assert abs(floor_t) < 1 and abs(floor_u) < 1


@pytest.mark.shared_data
def test_shipped_models_edge_to_inside_step_ratio(cifar):
    # The issue's own reading: mean step across tile edges / inside tiles, relative to
    # the input's, over 2,000 test images: the transpose decoder's >= 1.5x the upsample's.
    x = cifar.test.floats(slice(0, 2000))
    edge0, inside0 = block_steps(x, 4)
    ratios = {}
    for decoder in ("transpose", "upsample"):
        model = load_checkpoint(CKPT / f"cifar10-{decoder}.pt").model
        with torch.no_grad():
            edge, inside = block_steps(model(x), 4)
        ratios[decoder] = float(edge.mean() / inside.mean()) / float(edge0.mean() / inside0.mean())
    assert ratios["transpose"] >= 1.5 * ratios["upsample"]
    assert 0.9 < ratios["upsample"] < 1.1


@pytest.mark.shared_data
def test_shipped_models_have_no_visible_checkerboard(shipped_scores):
    # kernel 2 = stride 2: no uneven overlap, so no built-in checkerboard in either
    # decoder; what is left is under half a grey level, which rounds away in an 8-bit
    # picture. (The transpose decoder paints each 2x2 block from one code cell, so it can
    # leave a faint fixed period-2 pattern: 0.37 grey levels in the 30-epoch model of
    # 2026-12-06 against the upsample decoder's 0.14; the 20-epoch pair had 0.13 / 0.11.)
    t, u = shipped_scores["transpose"].mean(), shipped_scores["upsample"].mean()
    for r in (t, u):
        assert r["checkerboard"] < 0.5 and r["checkerboard_floor"] < 0.05


@pytest.mark.shared_data
def test_shipped_blockiness_is_stable_across_halves_of_the_split(shipped_scores):
    s = shipped_scores["transpose"]
    first = s.select(torch.arange(0, 5000)).mean()["blockiness4"]
    second = s.select(torch.arange(5000, 10000)).mean()["blockiness4"]
    assert abs(first - second) < 0.05 * s.mean()["blockiness4"]
