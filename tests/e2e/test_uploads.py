"""Uploads through the browser's own file picker: bad files are named in a clear message,
the app keeps working and nothing picked or saved changes; good files are used."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from .conftest import ROOT, App
from .test_exports import expand
from .test_pages import srcs

UPLOADER = "Add your own model (.pt)"  # the sidebar expander that holds the uploader


def upload(app: App, label: str, name: str, data: bytes, mime: str, scope=None) -> None:
    box = app.widget("stFileUploader", label, scope or app.main)
    app.act(
        lambda: box.locator('input[type="file"]').set_input_files(
            files=[{"name": name, "mimeType": mime, "buffer": data}]
        )
    )


def picked_models(app: App) -> list[str]:
    """The sidebar picker's chosen models, in order (its text less the label)."""
    picker = app.widget("stMultiSelect", "Models", app.sidebar)
    expect(picker).to_be_visible()
    lines = [line.strip() for line in picker.inner_text().splitlines() if line.strip()]
    assert lines[0] == "Models", lines
    return lines[1:]


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.e2e
def test_checkpoint_uploads(app, app_data):
    app.open()
    shown = srcs(app)
    before = picked_models(app)
    expand(app, UPLOADER, app.sidebar)
    saved = sorted(p.name for p in app_data["checkpoints"].iterdir())
    rng = np.random.default_rng(0)

    upload(
        app,
        "Add a checkpoint (.pt)",
        "broken.pt",
        rng.bytes(5000),
        "application/octet-stream",
        app.sidebar,
    )
    error = app.sidebar.locator('[data-testid="stAlertContentError"]')
    expect(error).to_contain_text("broken.pt")
    expect(error).to_contain_text("not a readable PyTorch file")
    app.no_exception()
    assert picked_models(app) == before
    assert srcs(app) == shown  # the page is still drawn, the same pictures

    good = (ROOT / "checkpoints" / "cifar10-upsample.pt").read_bytes()
    upload(app, "Add a checkpoint (.pt)", "mine.pt", good, "application/octet-stream", app.sidebar)
    expect(app.widget("stMultiSelect", "Models", app.sidebar)).to_contain_text("mine (uploaded)")
    expect(error).to_have_count(0)
    app.no_exception()
    # picked after the two shipped models: the page's first model and pictures stay
    assert picked_models(app) == [*before, "mine (uploaded)"]
    assert srcs(app) == shown
    # uploads live in the session; the checkpoints folder is never written by them
    assert sorted(p.name for p in app_data["checkpoints"].iterdir()) == saved


@pytest.mark.e2e
def test_upload_over_the_size_limit_is_refused_by_the_page(app, tmp_path):
    """.streamlit/config.toml's maxUploadSize (20 MB): the browser refuses the file with
    its size in the message, and the server never sees it."""
    app.open()
    before = picked_models(app)
    expand(app, UPLOADER, app.sidebar)
    box = app.widget("stFileUploader", "Add a checkpoint (.pt)", app.sidebar)
    # A file on disk, which the local browser reads itself (a 21 MB in-memory buffer went
    # through Playwright's protocol as base64 and took about 20 s of this machine's CPU).
    huge = tmp_path / "huge.pt"
    with open(huge, "wb") as f:
        f.truncate(21 * 1024 * 1024)
    box.locator('input[type="file"]').set_input_files(huge)
    expect(box).to_contain_text(re.compile(r"File must be 20(\.0)? ?MB or smaller"))
    app.no_exception()
    assert picked_models(app) == before


@pytest.mark.e2e
def test_photo_uploads_on_the_layers_page(app):
    app.open("layer-by-layer")
    app.act(app.main.get_by_text("your photo", exact=True).click)  # the radio's label
    # the picture traced: the first of the pictures row (input, rebuilt), then the maps
    traced = app.main.locator(".cae-pic img").first
    maps = app.main.locator('.cae-pic img[alt^="conv1, ch "]')

    upload(app, "Upload a photo", "notes.png", b"these are my lecture notes", "image/png")
    error = app.main.locator('[data-testid="stAlertContentError"]')
    expect(error).to_contain_text("notes.png")
    expect(error).to_contain_text("not an image")
    # a test picture is traced meanwhile
    expect(traced).to_have_attribute("alt", re.compile(r"^input: test "))
    expect(maps.first).to_be_visible()
    app.no_exception()

    wide = np.zeros((60, 400, 3), np.uint8)
    wide[:, 170:230] = (255, 0, 0)  # a red band in the middle survives the centre crop
    upload(app, "Upload a photo", "panorama.png", png(wide), "image/png")
    expect(error).to_have_count(0)
    expect(app.main.get_by_text(re.compile("panorama.png, cropped and resized"))).to_be_visible()
    expect(traced).to_have_attribute("alt", re.compile(r"^input: panorama.png, cropped"))
    expect(maps.first).to_be_visible()
    app.no_exception()
    # what is traced is the photo's centre: the red band, all of the square crop
    src = traced.get_attribute("src")
    assert src.startswith("data:image/png;base64,")
    arr = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))
    red, green, blue = arr.reshape(-1, 3).mean(0)
    assert red > 200 and green < 40 and blue < 40, (arr.shape, red, green, blue)
