"""Figure builders, model inspection and photo decoding: what the pages draw is right."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from convae.figures import (
    activation_grid,
    architecture_diagram,
    architecture_image,
    architecture_markdown,
    rows_png,
    step_thumbnail,
    training_curves,
    upscale,
)
from convae.figures.html import data_uri
from convae.figures.maps import DIVERGING, plotly_scale, step_maps
from convae.images import ImageDecodeError, image_to_input
from convae.models import AEConfig, ConvAutoencoder, trace
from convae.summary import architecture, channel_stats, compression, value_range


@pytest.fixture(params=["transpose", "upsample"])
def model(request) -> ConvAutoencoder:
    torch.manual_seed(0)
    return ConvAutoencoder(AEConfig(decoder=request.param)).eval()


def test_upscale_repeats_pixels_without_blending():
    img = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    big = upscale(img, 3)
    assert big.shape == (6, 6)
    assert set(np.unique(big)) == {0, 255}  # no in-between values: nothing was smoothed
    assert (big[:3, :3] == 0).all() and (big[:3, 3:] == 255).all()


def test_architecture_matches_the_design_table(model):
    rows = architecture(model)
    by_step = {r["step"]: r for r in rows}
    assert by_step["conv1"]["parameters"] == 448
    assert by_step["conv2"]["parameters"] == 580
    assert by_step["pool2"]["output shape"] == "4 x 8 x 8"
    assert by_step["pool2"]["part"] == "code"
    assert by_step["sigmoid"]["output shape"] == "3 x 32 x 32"
    total = sum(r["parameters"] for r in rows)
    assert total == (1495 if model.config.decoder == "transpose" else 2055)
    assert compression(model)["ratio"] == 12
    md = architecture_markdown(rows)
    assert md.count("\n") == len(rows) + 1
    assert architecture_image(rows).shape[2] == 3
    fig = architecture_diagram(rows)
    assert list(fig.layout.xaxis.ticktext) == [r["step"] for r in rows]


def test_channel_stats_count_relu_zeros_only_after_a_relu(model):
    acts = dict(trace(model, torch.rand(1, 3, 32, 32)))
    relu = channel_stats(acts["relu1"], "relu1")
    assert len(relu) == 16
    for row, ch in zip(relu, acts["relu1"][0], strict=True):
        assert row["zeros"] == pytest.approx(float((ch == 0).float().mean()))
        assert row["min"] >= 0 and row["min"] <= row["mean"] <= row["max"]
    assert all(r["zeros"] is None for r in channel_stats(acts["conv1"], "conv1"))
    assert channel_stats(acts["pool2"], "pool2")[0]["zeros"] is not None


def test_activation_grid_hover_holds_the_true_values(model):
    acts = trace(model, torch.rand(1, 3, 32, 32))
    conv1 = dict(acts)["conv1"]
    fig = activation_grid(conv1, "conv1", "channel")
    trace0 = fig.data[0]
    cd = np.asarray(trace0.customdata)
    # Channel 5, pixel (3, 7): find it in the tiled grid through its customdata.
    hit = (cd[..., 0] == 5) & (cd[..., 1] == 3) & (cd[..., 2] == 7)
    assert hit.sum() == 1
    assert cd[hit][0, 3] == pytest.approx(float(conv1[0, 5, 3, 7]), rel=1e-5)
    assert (trace0.zmin, trace0.zmax) == (0.0, 1.0)  # per channel: normalised
    z = np.asarray(trace0.z, dtype=float)
    assert np.nanmin(z) == 0 and np.nanmax(z) == 1


def test_colour_modes_span_the_right_ranges(model):
    acts = trace(model, torch.rand(1, 3, 32, 32))
    relu1 = dict(acts)["relu1"]
    layer = activation_grid(relu1, "relu1", "layer").data[0]
    assert layer.zmax == pytest.approx(float(relu1.max()))
    lo, hi = value_range(acts)
    whole = activation_grid(relu1, "relu1", "model", (lo, hi)).data[0]
    assert whole.zmax == pytest.approx(max(-lo, hi) if lo < 0 < hi else hi)
    assert whole.zmax >= layer.zmax
    # Signed maps get a diverging scale centred on zero: the same blue-white-red
    # "balance" as the Layers page's pictures and their legend.
    conv1 = dict(acts)["conv1"]
    if float(conv1.min()) < 0 < float(conv1.max()):
        signed = activation_grid(conv1, "conv1", "layer").data[0]
        assert signed.zmid == 0 and signed.zmin == -signed.zmax
        balance = [c for _, c in signed.colorscale]
        assert balance[0] == plotly_scale(DIVERGING)[0] and len(balance) > 2
    with pytest.raises(ValueError):
        activation_grid(relu1, "relu1", "model")  # needs the model's range


def test_step_thumbnails_are_pictures_for_image_steps_and_tiles_otherwise(model):
    for name, act in trace(model, torch.rand(1, 3, 32, 32)):
        thumb = step_thumbnail(act, name, 3)
        assert thumb.dtype == np.uint8 and thumb.ndim == 3 and thumb.shape[2] == 3
        assert 60 <= thumb.shape[1] <= 140, name


def test_thumbnails_and_channel_maps_share_one_colour_table(model):
    """The overview strip's tiles are the Layers page's per-channel pictures, colour for
    colour (one viridis table, not a copy of it per module)."""
    acts = dict(trace(model, torch.rand(1, 3, 32, 32)))
    thumb = step_thumbnail(acts["relu1"], "relu1", 3)  # 16 maps as 4x4 tiles, 1 px apart
    maps = step_maps(acts["relu1"], "relu1", "channel").pictures
    assert np.array_equal(thumb[:32, :32], maps[0])
    assert np.array_equal(thumb[33:65, 33:65], maps[5])


def test_training_curves_overlay_runs():
    runs = [
        {"label": d, "steps": [(1, 0.7), (2, 0.6)], "history": [{"epoch": 1, "test_psnr": 15.0}]}
        for d in ("a", "b")
    ]
    fig = training_curves(runs)
    assert len(fig.data) == 4
    assert fig.layout.xaxis.title.text == "step" and fig.layout.yaxis2.title.text == "PSNR (dB)"


def test_rows_png_keeps_each_picture_as_drawn():
    """Rows of pictures of different sizes and kinds (grey, RGB, an error colour bar)."""
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    bar = rng.integers(0, 256, (14, 100, 3), dtype=np.uint8)
    png = rows_png(
        [
            ("recon", [big, big], ["1 dB", "2 dB"]),
            ("grey", [grey], None),
            ("scale", [bar], ["0 ... 40"]),
        ],
        gap=4,
        label_px=50,
    )
    im = np.asarray(Image.open(io.BytesIO(png)))
    assert im.shape[1] == 50 + 2 * (4 + 64) + 4  # label, gap-picture twice, right margin
    assert im.shape[0] == 4 + (64 + 14 + 4) + (32 + 14 + 4) + (14 + 14 + 4)
    left = 50 + 4
    assert np.array_equal(im[4:68, left : left + 64], big)
    assert np.array_equal(im[4 + 82 : 4 + 82 + 32, left : left + 32], np.stack([grey] * 3, -1))
    assert np.array_equal(im[4 + 82 + 50 : 4 + 82 + 50 + 14, left : left + 100], bar)
    assert (im[4:68, :50] < 255).any()  # the row label is written
    with pytest.raises(ValueError, match="at least one picture"):
        rows_png([("empty", [], None)])


def test_data_uri_is_remembered_by_the_pixels_alone():
    """A picture encoded again (another session's run) is the same URI, decoded back to
    the same pixels; the same bytes in another shape are another picture."""
    import base64

    rng = np.random.default_rng(1)
    pic = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
    uri = data_uri(pic)
    assert data_uri(pic.copy()) == uri and data_uri(pic[:, ::-1][:, ::-1]) == uri
    png = base64.b64decode(uri.split(",", 1)[1])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), pic)
    other = data_uri(pic.reshape(6, 8, 3))
    assert other != uri
    assert np.asarray(Image.open(io.BytesIO(base64.b64decode(other.split(",")[1])))).shape == (
        6,
        8,
        3,
    )


def _encode(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def test_photo_is_centre_cropped_and_resized():
    arr = np.zeros((40, 80, 3), dtype=np.uint8)
    arr[:, 20:60] = 255  # a white centre square on a black wide picture
    x = image_to_input(_encode(arr, "PNG"), 3, 32)
    assert x.shape == (1, 3, 32, 32)
    assert float(x.min()) > 0.95  # the crop kept only the white centre
    grey = image_to_input(_encode(arr, "JPEG"), 1, 28)
    assert grey.shape == (1, 1, 28, 28)


@pytest.mark.parametrize(
    "data,words",
    [
        (b"", "empty .* JPEG or PNG"),
        (b"not an image at all", "not an image: its bytes are not a JPEG, PNG"),
        (b"\x89PNG\r\n\x1a\n broken", "starts as a PNG image but .* cut short or damaged"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "starts as a WebP image"),
    ],
)
def test_non_images_raise_a_clear_error(data, words):
    with pytest.raises(ImageDecodeError, match=f"^upload.png .*{words}"):
        image_to_input(data, 3, 32, "upload.png")


def test_strength_chart_draws_more_models_than_colours():
    """The Denoise page's "every model" chart: the shipped family alone has more models
    than the palette has colours (a StopIteration stopped the page)."""
    from convae.figures import RUN_COLOURS
    from convae.figures.uses import psnr_curve_figure

    curves = {f"model {i}": [20.0, 18.0] for i in range(len(RUN_COLOURS) + 3)}
    fig = psnr_curve_figure([0.1, 0.2], curves | {"noisy input": [15.0, 12.0]}, "noise")
    assert len(fig.data) == len(curves) + 1
