"""Exports in a real browser: the files a user downloads open as what they claim to be
(PNG pictures, CSV tables; the checkpoint download is checked after training in
test_pages.py)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from .conftest import App


def download(app: App, name: str, nth: int = 0) -> bytes:
    with app.page.expect_download(timeout=60_000) as info:
        app.main.get_by_role("button", name=name, exact=True).nth(nth).click()
    return open(info.value.path(), "rb").read()


def picture(data: bytes) -> np.ndarray:
    """A downloaded PNG as an RGB array, after checking it is a PNG with content."""
    im = Image.open(io.BytesIO(data))
    assert im.format == "PNG"
    arr = np.asarray(im.convert("RGB"))
    assert arr.std() > 10  # pictures, not a blank canvas
    return arr


IMAGES = "Download these images (PNG)"


@pytest.mark.e2e
@pytest.mark.shared_data  # skips without CIFAR-10: allowed in CI's fresh-machine pass only
@pytest.mark.parametrize(
    "path,nth,rows,columns",
    [
        ("decoders", 0, 5, 8),  # input, A, B, |A - input|, |B - input| for 8 images + scale
        ("denoising", 0, 4, 8),  # clean, noisy, plain model, denoiser
        ("repairing", 0, 1, 4),  # original, input, plain model, repair model (224 px each)
        ("the-code", 0, 1, 3),  # original, decoded, decoded from the edit
        ("the-code", 1, 2, 8),  # code path and cross-fade, 8 frames
    ],
)
def test_image_rows_download_as_one_png(app, app_data, path, nth, rows, columns):
    """Every page's picture rows save as one PNG holding what the page shows."""
    if not app_data["real"]:
        pytest.skip("the task pages' checkpoints need the CIFAR-10 data")
    app.open(path)
    app.no_exception()
    arr = picture(download(app, IMAGES, nth))
    shown = app.main.locator('[data-testid="stImage"] img').evaluate_all(
        "els => els.map(e => e.naturalWidth)"
    )
    side = min(w for w in shown if w >= 96)  # the smallest picture the rows draw
    assert arr.shape[1] >= columns * side, (arr.shape, side)
    assert arr.shape[0] >= rows * side, (arr.shape, side)


@pytest.mark.e2e
def test_style_transfer_result_downloads(app):
    app.open("style-transfer")
    sliders = {"Size (pixels)": "Home", "Steps": "Home"}  # 32 px, 20 steps: a short run
    for label, key in sliders.items():
        thumb = app.widget("stSlider", label).locator('input[type="range"]')
        app.act(lambda t=thumb, k=key: (t.focus(), t.press(k)))
    app.click("Run style transfer")
    app.no_exception()
    expect(app.main.get_by_text(re.compile(r"^20 steps in"))).to_be_visible()
    arr = picture(download(app, "Download (PNG)"))
    assert arr.shape[1] >= 3 * 192  # content, style and result


@pytest.mark.e2e
def test_overview_picture_and_table_download(app):
    app.open()
    png = Image.open(io.BytesIO(download(app, "Download these images (PNG)")))
    assert png.format == "PNG" and png.width > png.height > 64  # two rows of ten
    app.main.get_by_text("Layer table").first.scroll_into_view_if_needed()
    rows = list(
        csv.DictReader(io.StringIO(download(app, "Download the layer table (CSV)").decode()))
    )
    assert rows[0]["step"] == "input" and any(r["step"] == "pool2" for r in rows)
    assert sum(int(r["parameters"]) for r in rows) in (1495, 2055)


@pytest.mark.e2e
def test_activation_maps_save_as_png(app):
    app.open("layer-by-layer")
    chart = app.main.locator('[data-testid="stPlotlyChart"]').first
    chart.hover()
    button = chart.locator('.modebar-btn[data-title*="png" i]')
    with app.page.expect_download(timeout=60_000) as info:
        button.click()
    png = Image.open(info.value.path())
    assert png.format == "PNG" and png.width > 300


@pytest.mark.e2e
@pytest.mark.shared_data  # skips without CIFAR-10: allowed in CI's fresh-machine pass only
def test_tables_download_as_csv_from_their_toolbar(app, app_data):
    """st.dataframe's own toolbar button: the Repair page's score table as a CSV file."""
    if not app_data["real"]:
        pytest.skip("the task pages' checkpoints need the CIFAR-10 data")
    # Chromium's native save dialog cannot be driven headless; without it Streamlit
    # falls back to an ordinary download (its file-system-access polyfill).
    app.page.add_init_script("delete window.showSaveFilePicker")
    app.open("repairing")
    table = app.main.locator('[data-testid="stDataFrame"]').first
    table.hover()
    button = (
        app.main.locator('[data-testid="stElementToolbarButton"]')
        .filter(has=app.page.get_by_label(re.compile("download", re.I)))
        .first
    )
    with app.page.expect_download(timeout=60_000) as info:
        button.click()
    text = Path(info.value.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["output"] for r in rows][0] == "corrupted input"
    assert all(float(r["PSNR whole (dB)"]) > 0 for r in rows)
