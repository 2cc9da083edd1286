"""The code as compressed data: edits, interpolation endpoints, quantisation error bounds,
byte counts, JPEG at a byte budget, and the ledger / rate-distortion figures."""

from __future__ import annotations

import pytest
import torch

from convae.codec import (
    code_bytes,
    edit_code,
    interpolate,
    jpeg,
    jpeg_at_budget,
    ledger,
    quantise,
    rate_distortion,
)


def test_edits_touch_only_the_chosen_channel_and_cells():
    z = torch.rand(1, 4, 8, 8)
    zero = edit_code(z, channel=2, scale=0)
    assert (zero[0, 2] == 0).all() and torch.equal(zero[0, [0, 1, 3]], z[0, [0, 1, 3]])
    double = edit_code(z, channel=0, scale=2)
    assert torch.allclose(double[0, 0], 2 * z[0, 0])
    painted = edit_code(z, channel=1, paint=(2, 3, 2, 4), value=5.0)
    assert (painted[0, 1, 2:4, 3:7] == 5).all() and int((painted != z).sum()) == 8
    assert torch.equal(edit_code(z), z) and edit_code(z) is not z
    with pytest.raises(ValueError):
        edit_code(z, channel=4)


def test_interpolation_endpoints_are_the_two_codes():
    z0, z1 = torch.rand(1, 4, 8, 8) * 3, torch.rand(1, 4, 8, 8) * 3
    path = interpolate(z0, z1, 7)
    assert path.shape == (7, 4, 8, 8)
    assert torch.equal(path[0], z0[0]) and torch.equal(path[-1], z1[0])  # bit for bit
    assert torch.allclose(path[3], (z0[0] + z1[0]) / 2)
    steps = path[1:] - path[:-1]
    assert torch.allclose(steps, steps[0].expand_as(steps), atol=1e-6)  # a straight line
    with pytest.raises(ValueError):
        interpolate(z0, z1, 1)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_quantisation_error_is_at_most_half_a_step(bits):
    z = torch.rand(5, 4, 8, 8) * torch.tensor([1.0, 2.0, 4.0, 8.0, 0.5]).reshape(5, 1, 1, 1)
    q = quantise(z, bits)
    span = (z.flatten(1).max(1).values - z.flatten(1).min(1).values).reshape(5, 1, 1, 1)
    half_step = span / (2 * (2**bits - 1))
    assert ((q - z).abs() <= half_step * (1 + 1e-5) + 1e-7).all()
    assert q.flatten(1).unique(dim=None).numel() <= 5 * 2**bits
    # min and max survive exactly (they are stored)
    assert torch.allclose(q.flatten(1).min(1).values, z.flatten(1).min(1).values)


def test_float16_and_float32_round_trips():
    z = torch.rand(2, 4, 8, 8) * 10
    assert torch.equal(quantise(z, 32), z)
    assert ((quantise(z, 16) - z).abs() <= z.abs() * 2**-11 + 1e-7).all()
    assert code_bytes(256, 32) == 1024 and code_bytes(256, 16) == 512
    assert code_bytes(256, 8) == 256 + 8 and code_bytes(256, 3) == 96 + 8
    with pytest.raises(ValueError):
        quantise(z, 0)


def test_jpeg_at_budget_fits_and_more_bytes_look_better():
    x = torch.rand(3, 32, 32)
    x = (x + x.roll(1, 1) + x.roll(1, 2)) / 3  # some structure
    small, large = jpeg_at_budget(x, 300), jpeg_at_budget(x, 900)
    assert small.scan_bytes <= 300 < large.scan_bytes <= 900
    assert small.file_bytes > small.scan_bytes  # headers and tables on top
    assert large.quality > small.quality
    err = lambda j: float((j.image - x).pow(2).mean())  # noqa: E731
    assert err(large) < err(small)
    assert jpeg(x, 95).image.shape == (3, 32, 32)


def test_ledger_and_rate_distortion(tiny_models, tiny_data):
    model = tiny_models["upsample"].model
    x = tiny_data.test.floats()[:6]
    rows = ledger(model, x[:1])
    forms = [r["form"] for r in rows]
    assert forms[:4] == ["raw uint8 pixels", "code float32", "code float16", "code 8-bit"]
    assert [r["bytes"] for r in rows[:4]] == [3072, 1024, 512, 264]
    assert rows[-1]["form"].startswith("JPEG") and rows[-1]["bytes"] <= 264
    assert abs(rows[1]["psnr"] - rows[2]["psnr"]) < 0.1  # float16 costs almost nothing
    rd = rate_distortion(model, x, bits=(32, 8, 2), qualities=(5, 50, 90))
    code_db = [p["psnr"] for p in rd["code"]]
    assert code_db[0] >= code_db[1] - 0.05 and code_db[1] >= code_db[2] - 0.05
    jpeg_db = [p["psnr"] for p in rd["jpeg"]]
    assert jpeg_db[0] < jpeg_db[1] < jpeg_db[2]
    assert rd["jpeg"][0]["scan_bytes"] < rd["jpeg"][2]["scan_bytes"]
