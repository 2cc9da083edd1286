"""The upload part of the bad-input catalogue: every kind of file a person may drop on the
photo uploader either becomes a sensible model input or gives a clear ImageDecodeError."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from convae.images import ImageDecodeError, image_to_input


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _gradient(w: int = 64, h: int = 48) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    return np.stack([x, x[:, ::-1], np.full_like(x, 128)], -1).astype(np.uint8)


GOOD = {
    "rgb jpeg": lambda: _encode(Image.fromarray(_gradient()), "JPEG"),
    "rgba png": lambda: _encode(Image.fromarray(_gradient()).convert("RGBA"), "PNG"),
    "palette png": lambda: _encode(Image.fromarray(_gradient()).convert("P"), "PNG"),
    "greyscale png": lambda: _encode(Image.fromarray(_gradient()).convert("L"), "PNG"),
    "cmyk jpeg": lambda: _encode(Image.fromarray(_gradient()).convert("CMYK"), "JPEG"),
    "16-bit png": lambda: _encode(
        Image.fromarray((np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)),
        "PNG"),
    "animated gif": lambda: _encode(
        Image.fromarray(_gradient()).convert("P"), "GIF", save_all=True,
        append_images=[Image.new("P", (64, 48), 3)], duration=100, loop=0),
    "wide panorama": lambda: _encode(Image.fromarray(
        np.random.default_rng(0).integers(0, 256, (40, 4000, 3), dtype=np.uint8)), "PNG"),
}


@pytest.mark.parametrize("kind", GOOD)
@pytest.mark.parametrize("channels", [3, 1])
def test_readable_kinds_become_model_inputs(kind, channels):
    x = image_to_input(GOOD[kind](), channels, 32, kind)
    assert x.shape == (1, channels, 32, 32) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
    assert x.std() > 0.01  # a real picture, not a flat white or black square


def test_sixteen_bit_keeps_its_range():
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    x = image_to_input(_encode(Image.fromarray(ramp), "PNG"), 1, 32)
    assert x.min() < 0.1 and x.max() > 0.9  # not clipped to white above 255


def test_transparent_areas_are_white():
    im = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    x = image_to_input(_encode(im, "PNG"), 3, 32)
    assert torch.allclose(x, torch.ones_like(x))


BAD = {
    "zero bytes": (lambda: b"", "empty"),
    "not an image": (lambda: b"%PDF-1.7 this is a document", "not an image"),
    "truncated png": (lambda: GOOD["greyscale png"]()[:60], "not an image"),
    "truncated jpeg": (lambda: GOOD["rgb jpeg"]()[:300], "not an image"),
}


@pytest.mark.parametrize("kind", BAD)
def test_unreadable_uploads_get_a_clear_error(kind):
    make, words = BAD[kind]
    with pytest.raises(ImageDecodeError, match=words) as err:
        image_to_input(make(), 3, 32, "photo.png")
    assert "photo.png" in str(err.value)


def test_decompression_bomb_is_refused_before_decoding():
    # A 1-bit PNG of 20,000 x 20,000 pixels is a few kB on disk and 400 Mpx in memory.
    bomb = _encode(Image.new("1", (20000, 20000)), "PNG")
    assert len(bomb) < 100_000
    with pytest.raises(ImageDecodeError, match="too (large|many pixels)"):
        image_to_input(bomb, 3, 32, "bomb.png")
