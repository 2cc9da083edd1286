"""Code-cell footprint, receptive field and one pixel's arithmetic (issue 11, items 3-4):
the geometry a student is told (4x4 tiles, 10x10 windows) is what the models really do,
the rows of a pixel's sum add up to the model's own output, and no shared model is
touched on the way."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from convae.cells import (
    cell_footprint,
    decoder_field_box,
    encode_image,
    pixel_arithmetic,
    receptive_field,
    receptive_field_box,
)
from convae.checkpoints import load_checkpoint
from convae.figures.cells import (
    code_cells_figure,
    footprint_figure,
    pixel_waterfall,
    receptive_field_figure,
)
from convae.models import AEConfig, ConvAutoencoder, trace

CKPT = Path(__file__).resolve().parents[1] / "checkpoints"


def model(decoder: str, seed: int = 0, channels: int = 3, size: int = 32) -> ConvAutoencoder:
    """A freshly initialised model: real layers with random weights, every tap non-zero."""
    torch.manual_seed(seed)
    return ConvAutoencoder(AEConfig(channels, size, decoder)).eval()


def images(n: int, seed: int = 1, channels: int = 3, size: int = 32) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


def snapshot(m: ConvAutoencoder) -> dict:
    return {
        "state": {k: v.clone() for k, v in m.state_dict().items()},
        "grads": [p.grad for p in m.parameters()],
        "requires_grad": [p.requires_grad for p in m.parameters()],
        "training": m.training,
    }


def assert_untouched(m: ConvAutoencoder, before: dict) -> None:
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before["state"].items())
    assert all(p.grad is None for p in m.parameters())
    assert [p.requires_grad for p in m.parameters()] == before["requires_grad"]
    assert m.training == before["training"]


# --- geometry ------------------------------------------------------------------------


def test_receptive_field_box_is_10x10_inside_and_cut_at_the_border():
    m = model("transpose")
    # input rows 4r-3 .. 4r+6 (conv1, pool1, conv2, pool2 walked back by hand)
    assert receptive_field_box(m, (0, 3, 5)) == (9, 17, 19, 27)
    for r in range(1, 7):
        for c in range(1, 7):
            top, left, bottom, right = receptive_field_box(m, (2, r, c))
            assert (bottom - top, right - left) == (10, 10)
    assert receptive_field_box(m, (0, 0, 0)) == (0, 0, 7, 7)
    assert receptive_field_box(m, (0, 7, 7)) == (25, 25, 32, 32)


@pytest.mark.parametrize(
    ("decoder", "box", "side"),
    [
        ("transpose", (12, 20, 16, 24), 4),  # rows 4r..4r+3: its own tile
        ("transpose3", (9, 17, 16, 24), 7),  # rows 4r-3..4r+3
        ("transpose4", (9, 17, 19, 27), 10),  # rows 4r-3..4r+6
        ("upsample", (9, 17, 19, 27), 10),
        ("bilinear", (6, 14, 22, 30), 16),  # bilinear reaches one more row each side
        ("subpixel", (6, 14, 22, 30), 16),
        ("subpixel-icnr", (6, 14, 22, 30), 16),
    ],
)
def test_every_decoders_field_box_is_what_its_decode_reaches(decoder, box, side):
    """The layer-geometry walk, checked against the model's own decode: the union of the
    pixels a nudge of cell (1, 3, 5) changes over a few random codes fills exactly the box
    (random weights: every tap is non-zero somewhere)."""
    m = model(decoder)
    assert decoder_field_box(m, (1, 3, 5)) == box
    assert box[2] - box[0] == box[3] - box[1] == side
    reach = torch.zeros(32, 32, dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        z = torch.rand(4, 8, 8, generator=gen) * 3
        reach |= (cell_footprint(m, z, (1, 3, 5), 1.0).difference.abs() > 0).any(0)
    rows, cols = reach.any(1).nonzero()[:, 0], reach.any(0).nonzero()[:, 0]
    assert (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1) == box
    top, left, bottom, right = decoder_field_box(m, (0, 0, 7))  # cut at the border
    assert top == 0 and right == 32


def test_decoder_field_box_is_the_4x4_tile_or_a_10x10_patch():
    assert decoder_field_box(model("transpose"), (1, 3, 5)) == (12, 20, 16, 24)
    assert decoder_field_box(model("upsample"), (1, 3, 5)) == (9, 17, 19, 27)
    assert decoder_field_box(model("upsample"), (1, 0, 7)) == (0, 25, 7, 32)


def test_gradient_of_a_code_cell_fills_exactly_its_10x10_receptive_field():
    # Each image's gradient is non-zero only where the max-pools picked a path, inside
    # the window; over many images the pools pick every path, and the union of the
    # gradients' supports is the whole 10x10 window, no more.
    m = model("upsample", seed=3)
    before = snapshot(m)
    cell = (1, 3, 4)
    box = receptive_field_box(m, cell)
    assert (box[2] - box[0], box[3] - box[1]) == (10, 10)
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[box[0] : box[2], box[1] : box[3]] = True
    union = torch.zeros(32, 32, dtype=torch.bool)
    live = 0
    for x in images(60, seed=4):
        field = receptive_field(m, x, cell)
        assert field.box == box
        support = (field.gradient != 0).any(0)
        assert not (support & ~inside).any()  # never outside the window
        union |= support
        live += field.value > 0
    assert live > 20  # enough images had the cell switched on to see its window
    assert torch.equal(union, inside)
    assert_untouched(m, before)


def test_gradient_is_the_real_derivative_of_the_code_value():
    m = model("transpose", seed=5)
    x = images(1, seed=6)[0]
    cell = (2, 4, 2)
    field = receptive_field(m, x, cell)
    with torch.no_grad():
        assert field.value == pytest.approx(float(m.encode(x[None])[0, 2, 4, 2]), abs=1e-6)
    # a finite difference at the pixel with the largest gradient agrees
    ch, r, c = (int(i) for i in (field.gradient.abs() == field.gradient.abs().max()).nonzero()[0])
    eps = 1e-3
    bumped = x.clone()
    bumped[ch, r, c] += eps
    with torch.no_grad():
        moved = float(m.encode(bumped[None])[0, 2, 4, 2])
    assert (moved - field.value) / eps == pytest.approx(float(field.gradient[ch, r, c]), rel=0.02)


def test_receptive_field_works_inside_no_grad_and_leaves_the_model_alone():
    m = model("transpose")
    m.train()  # a shared model may be in either mode
    before = snapshot(m)
    with torch.no_grad():
        field = receptive_field(m, images(1)[0], (0, 2, 2))
    assert field.gradient.shape == (3, 32, 32) and field.gradient.abs().sum() > 0
    assert_untouched(m, before)


# --- footprint ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_transpose_footprint_is_exactly_the_cells_4x4_tile(seed):
    m = model("transpose", seed)
    before = snapshot(m)
    z = encode_image(m, images(1, seed)[0])
    fp = cell_footprint(m, z, (1, 3, 5), delta=2.0)
    assert fp.changed_box() == fp.box == (12, 20, 16, 24)
    with torch.no_grad():
        moved = z.clone()
        moved[1, 3, 5] += 2.0
        want = m.decode(moved[None])[0] - m.decode(z[None])[0]
    assert torch.equal(fp.difference, want)
    assert fp.code_value == pytest.approx(float(z[1, 3, 5]))
    assert_untouched(m, before)


def test_upsample_footprint_is_a_soft_patch_bigger_than_a_tile():
    m = model("upsample", seed=2)
    z = encode_image(m, images(1, 2)[0])
    fp = cell_footprint(m, z, (0, 3, 5), delta=3.0)
    top, left, bottom, right = fp.changed_box()
    b = fp.box
    assert b == (9, 17, 19, 27)
    assert b[0] <= top and b[1] <= left and bottom <= b[2] and right <= b[3]  # inside 10x10
    assert (bottom - top) > 4 and (right - left) > 4  # reaches past the cell's own tile
    assert float(fp.difference[:, 12:16, 20:24].abs().mean()) > float(
        fp.difference[:, 9:10, 17:27].abs().mean()
    )  # strongest on its own tile, fading outwards
    assert cell_footprint(m, z, (0, 3, 5), 0.0).difference.abs().max() == 0


@pytest.mark.shared_data
def test_shipped_footprints_tile_versus_patch(cifar):
    x = cifar.test.images[7]
    boxes = {}
    for decoder in ("transpose", "upsample"):
        m = load_checkpoint(CKPT / f"cifar10-{decoder}.pt").model
        z = encode_image(m, x)
        cell = max(((c, 3, 4) for c in range(4)), key=lambda k: float(z[k]))
        boxes[decoder] = cell_footprint(m, z, cell, 1.0).changed_box(tol=0.5 / 255)
    assert boxes["transpose"] == (12, 16, 16, 20)
    top, left, bottom, right = boxes["upsample"]
    assert bottom - top > 4 and right - left > 4


def test_footprint_and_cells_reject_what_is_not_there():
    m = model("transpose")
    z = encode_image(m, images(1)[0])
    with pytest.raises(ValueError, match="outside the 4x8x8 code"):
        cell_footprint(m, z, (4, 0, 0), 1.0)
    with pytest.raises(ValueError, match="shape"):
        cell_footprint(m, z[:, :4], (0, 0, 0), 1.0)
    with pytest.raises(ValueError, match="finite"):
        cell_footprint(m, z, (0, 0, 0), math.nan)
    with pytest.raises(ValueError, match="takes images"):
        receptive_field(m, torch.rand(1, 28, 28), (0, 0, 0))


# --- pixel arithmetic -----------------------------------------------------------------


PIXELS = [(0, 0, 0), (0, 31, 1), (13, 22, 2), (16, 15, 0), (31, 31, 2), (7, 8, 1)]


@pytest.mark.parametrize("decoder", ["transpose", "upsample"])
@pytest.mark.parametrize("seed", [0, 1])
def test_pixel_rows_add_up_to_the_models_own_output(decoder, seed):
    m = model(decoder, seed)
    before = snapshot(m)
    z = encode_image(m, images(1, seed + 10)[0])
    with torch.no_grad():
        logits = m.decode_logits(z[None])[0]
        out = m.decode(z[None])[0]
        hidden = dict(trace(m, images(1, seed + 10)))["relu3"][0]  # after the hidden ReLU
    for r, c, ch in PIXELS:
        a = pixel_arithmetic(m, z, (r, c, ch))
        rows = a.output.rows()
        # the rows a student adds by hand: products plus bias = the sum, and its sigmoid
        total = math.fsum(row["product"] for row in rows[:-2])
        assert total == pytest.approx(rows[-2]["product"], abs=1e-9)
        assert total == pytest.approx(float(logits[ch, r, c]), abs=2e-5)
        assert rows[-1]["product"] == pytest.approx(float(out[ch, r, c]), abs=1e-6)
        assert a.value == pytest.approx(float(out[ch, r, c]), abs=1e-6)
        # every hidden value the pixel reads is its own sum of code values, and it is the
        # model's real activation there
        for term in a.output.terms:
            unit = a.hidden[term.source]
            assert unit.activation == pytest.approx(term.value, abs=1e-9)
            k, i, j = unit.channel, unit.row, unit.col
            assert unit.activation == pytest.approx(float(hidden[k, i, j]), abs=1e-5)
            assert all(t.source.startswith("code[") for t in unit.terms)
    assert_untouched(m, before)


def test_transpose_pixel_reads_one_code_cell_through_one_tap():
    m = model("transpose")
    z = encode_image(m, images(1)[0])
    a = pixel_arithmetic(m, z, (13, 22, 1))
    assert len(a.output.terms) == 16  # 16 hidden channels at (6, 11)
    assert {t.source for t in a.output.terms} == {f"t_conv1[{k}, 6, 11]" for k in range(16)}
    assert all(t.taps == ((1, 0),) for t in a.output.terms)  # 13 % 2, 22 % 2
    assert all(
        t.weight == float(m.t_conv2.weight.detach()[k, 1, 1, 0])
        for k, t in enumerate(a.output.terms)
    )
    assert a.code_cells() == [(c, 3, 5) for c in range(4)]  # 13 // 4, 22 // 4
    unit = a.hidden["t_conv1[7, 6, 11]"]
    assert [t.taps for t in unit.terms] == [((0, 1),)] * 4  # 6 % 2, 11 % 2
    assert unit.bias == float(m.t_conv1.bias.detach()[7])


def test_upsample_pixel_groups_the_taps_that_read_one_value():
    m = model("upsample")
    z = encode_image(m, images(1)[0])
    inner = pixel_arithmetic(m, z, (13, 22, 1))
    # the 3x3 window over the x2-upsampled conv4 output covers 2 x 2 conv4 positions
    assert len(inner.output.terms) == 4 * 16
    for k in range(16):
        mine = [t for t in inner.output.terms if t.source.startswith(f"conv4[{k},")]
        assert sorted(tap for t in mine for tap in t.taps) == [
            (a, b) for a in range(3) for b in range(3)
        ]  # all 9 taps, each once
        for t in mine:
            assert t.weight == pytest.approx(
                sum(float(m.conv5.weight.detach()[1, k, a, b]) for a, b in t.taps)
            )
    corner = pixel_arithmetic(m, z, (0, 0, 0))
    assert len(corner.output.terms) == 16  # padding leaves one conv4 position
    assert sum(len(t.taps) for t in corner.output.terms) == 16 * 4  # 2x2 taps on the image


def test_pixel_arithmetic_on_one_channel_images_and_bad_pixels():
    m = model("upsample", channels=1, size=28)
    z = encode_image(m, images(1, channels=1, size=28)[0])
    a = pixel_arithmetic(m, z, (27, 0, 0))
    with torch.no_grad():
        assert a.value == pytest.approx(float(m.decode(z[None])[0, 0, 27, 0]), abs=1e-6)
    with pytest.raises(ValueError, match="outside the 28x28 output"):
        pixel_arithmetic(m, z, (0, 0, 1))
    with pytest.raises(ValueError, match="outside"):
        pixel_arithmetic(m, z, (28, 0, 0))


# --- figures --------------------------------------------------------------------------


def test_cells_figures_show_the_numbers():
    t, u = model("transpose"), model("upsample")
    x = images(1)[0]
    zt, zu = encode_image(t, x), encode_image(u, x)
    fig = code_cells_figure(zt, selected=(2, 3, 4))
    cd = fig.data[0].customdata
    assert len(cd) == 256 and tuple(cd[2 * 64 + 3 * 8 + 4][:3]) == (2, 3, 4)
    assert cd[2 * 64 + 3 * 8 + 4][3] == pytest.approx(float(zt[2, 3, 4]))

    fps = {
        "transpose": cell_footprint(t, zt, (2, 3, 4), 1.0),
        "upsample": cell_footprint(u, zu, (2, 3, 4), 1.0),
    }
    fig = footprint_figure(fps)
    shown = fig.data[0].z
    assert shown.shape == (32, 32)
    assert shown[12:16, 16:20].mean() == pytest.approx(
        float(fps["transpose"].difference.mean(0)[12:16, 16:20].mean() * 255), rel=1e-5
    )
    assert fig.layout.coloraxis.cmin == -fig.layout.coloraxis.cmax  # centred on no change
    assert len(fig.layout.shapes) == 4  # tile and reach, for each decoder

    field = receptive_field(t, x, (2, 3, 4))
    fig = receptive_field_figure(x, field)
    assert fig.data[1].z.sum() == pytest.approx(float(field.gradient.abs().sum()), rel=1e-5)

    a = pixel_arithmetic(u, zu, (13, 22, 1))
    fig = pixel_waterfall(a, top=10)
    wf = fig.data[0]
    assert list(wf.x[-3:]) == ["54 other inputs", "bias", "sum"]
    assert sum(wf.y[:-1]) == pytest.approx(a.logit, abs=1e-9)
    assert wf.y[-1] == pytest.approx(a.logit)
    assert f"{a.value * 255:.1f} grey levels" in fig.layout.title.text
