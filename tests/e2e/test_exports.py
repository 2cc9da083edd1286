"""Exports in a real browser: the files a user downloads open as what they claim to be
(PNG pictures, CSV tables; the checkpoint download is checked after training in
test_pages.py)."""

from __future__ import annotations

import csv
import io

import pytest
from PIL import Image

from .conftest import App


def download(app: App, name: str) -> bytes:
    with app.page.expect_download(timeout=60_000) as info:
        app.main.get_by_role("button", name=name, exact=True).click()
    return open(info.value.path(), "rb").read()


@pytest.mark.e2e
def test_overview_picture_and_table_download(app):
    app.open()
    png = Image.open(io.BytesIO(download(app, "Download these images (PNG)")))
    assert png.format == "PNG" and png.width > png.height > 64  # two rows of ten
    app.main.get_by_text("Layer table").first.scroll_into_view_if_needed()
    rows = list(csv.DictReader(io.StringIO(
        download(app, "Download the layer table (CSV)").decode())))
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
