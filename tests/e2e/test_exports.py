"""Exports in a real browser: the files a user downloads open as what they claim to be
(PNG pictures, CSV tables). The checks of a page that the per-page test opens anyway run
there (test_pages.py: picture rows, the layer table, an activation map, a score table,
the checkpoint after training; a browser page costs Chromium seconds of CPU, see
docs/testing.md); the style transfer's result, a slow run of its own, is checked here."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from .conftest import RUN_TIMEOUT_MS, App

# Streamlit draws an element only once the front end's code for its kind has loaded,
# which on a busy 2-core machine took over 10 s after the run that sent it; Playwright's
# 5 s default for expect() is too short for a first picture or chart. (Global: the
# other browser-test modules import this one.)
expect.set_options(timeout=RUN_TIMEOUT_MS)

PICTURES_PNG = "Download these pictures (PNG)"
SHOWN_PX = 96  # ui.download_png enlarges each picture to about this many pixels


def download(app: App, name: str, nth: int = 0) -> bytes:
    with app.page.expect_download(timeout=60_000) as info:
        app.main.get_by_role("button", name=name, exact=True).nth(nth).click()
    return open(info.value.path(), "rb").read()


def expand(app: App, label: str, scope=None) -> None:
    """Open the expander whose title starts with ``label`` and wait until it has finished
    opening (no rerun: the browser only shows what the last run already sent).

    Streamlit sets the <details> element's ``open`` attribute at the start of a 500 ms
    height animation, during which the element is ``overflow: hidden`` and shorter than
    what it holds. A click or focus on a widget inside then scrolls the <details>, and a
    selectbox's list closes on any scroll of an element around its box (react-aria's
    useCloseOnScroll): a choice made in that half second was thrown away before its
    option could be clicked (issue 21: the Train page's Batch size in "More settings",
    after which the test waited for a run that nothing had asked for)."""
    box = (
        (scope or app.main)
        .locator('[data-testid="stExpander"]')
        .filter(has=app.page.locator("summary", has_text=label))
        .first
    )
    summary = box.locator("summary")
    expect(summary).to_be_visible()
    details = box.locator("details")
    if details.get_attribute("open") is None:
        summary.click()
    expect(details).to_have_attribute("open", "")
    app.page.wait_for_function(
        "d => d.open && d.getAnimations().length === 0 && d.style.overflow !== 'hidden'",
        arg=details.element_handle(),
        timeout=RUN_TIMEOUT_MS,
    )


def choose(
    app: App, testid: str, label: str, option: str, scope=None, fragment: bool = False
) -> None:
    """Pick ``option`` in a selectbox or multiselect: type it (a long list draws only its
    first options), click it once the list shows it, and wait for the run. (App.pick
    presses Enter instead, which on a busy machine can go out before the list has
    filtered, and then nothing is chosen.)

    ``fragment``: the widget is in an st.fragment, whose short rerun the run counter
    can miss on a busy machine (see :func:`in_fragment`); the caller then waits for
    what the choice changes with expect()."""
    field = app.widget(testid, label, scope).locator("input").first
    item = app.page.get_by_role("option", name=option, exact=True)
    for attempt in range(3):  # on a busy machine the list can close before it draws
        field.click()
        field.fill(option)
        try:
            expect(item).to_be_visible(timeout=20_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
            app.page.keyboard.press("Escape")
    if fragment:
        item.click()
    else:
        app.act(item.click)
    app.page.keyboard.press("Escape")  # a multiselect's list stays open


def in_fragment(action) -> None:
    """Do something that reruns only an st.fragment, without App.act: the caller waits
    for its outcome with expect(). A fragment's rerun takes a few ms on the server, and
    on a busy machine the browser can take its start and its end in one render, so the
    app root's script state never reads "running" and App.act's counter, when it
    watched that state, never moved (seen: the Layers switch toggled, its chart drawn,
    act still waiting 90 s later). It counts the websocket's messages since issue 21."""
    action()


def picture(data: bytes) -> np.ndarray:
    """A downloaded PNG as an RGB array, after checking it is a PNG with content."""
    im = Image.open(io.BytesIO(data))
    assert im.format == "PNG"
    arr = np.asarray(im.convert("RGB"))
    assert arr.std() > 10  # pictures, not a blank canvas
    return arr


def enlarged(side: int) -> int:
    """How wide a picture of ``side`` pixels is in a downloaded picture-row file: an
    integer enlargement to about SHOWN_PX, never smaller than the picture itself."""
    return side * max(1, round(SHOWN_PX / side))


def rows_png(app: App, nth: int, rows: int, columns: int) -> None:
    """The page's ``nth`` "Download these pictures (PNG)" saves its picture rows as one
    PNG holding what the page shows (at least ``rows`` x ``columns`` pictures), each
    picture enlarged so that the file reads on its own. (The shipped task models take
    32x32 colour pictures: the embedded CIFAR-10 sample too.) Checked on every page that
    has one, in test_pages.py, where the page is open anyway."""
    shown = app.main.locator(".cae-pic img")
    expect(shown.first).to_be_visible()
    arr = picture(download(app, PICTURES_PNG, nth))
    widths = shown.evaluate_all("els => els.map(e => e.naturalWidth)")
    assert widths and min(widths) > 0, widths  # every shown picture is a decodable PNG
    side = enlarged(min(widths))  # the smallest picture the rows draw, as saved
    assert side >= SHOWN_PX * 2 // 3, side
    assert arr.shape[1] >= columns * side, (arr.shape, side)
    assert arr.shape[0] >= rows * side, (arr.shape, side)


def layer_table_csv(app: App) -> None:
    """The Overview's layer table downloads as a CSV of the model's steps."""
    expand(app, "Layer by layer: shapes and parameters")
    rows = list(
        csv.DictReader(io.StringIO(download(app, "Download the layer table (CSV)").decode()))
    )
    assert rows[0]["step"] == "input" and any(r["step"] == "pool2" for r in rows)
    assert sum(int(r["parameters"]) for r in rows) in (1495, 2055)


def activation_map_png(app: App) -> None:
    """Layers draws its maps as pictures; one channel's exact values are a plotly heatmap
    whose toolbar saves it as a PNG (drawn by the browser)."""
    toggle = app.main.get_by_role("switch", name="Read the exact values of one channel")
    expect(toggle).not_to_be_checked()
    charts = app.main.locator('[data-testid="stPlotlyChart"]')
    expect(charts).to_have_count(0)
    # by keyboard: the switch's own <input> is a 1 px box that other elements cover
    in_fragment(lambda: toggle.press("Space"))
    expect(toggle).to_be_checked()
    chart = charts.first
    expect(chart).to_be_visible()
    expect(app.main.get_by_text(re.compile(r"^Channel 0 of \w+: \d+x\d+ values"))).to_be_visible()
    chart.hover()
    button = chart.locator('.modebar-btn[data-title*="png" i]')
    with app.page.expect_download(timeout=60_000) as info:
        button.click()
    png = Image.open(info.value.path())
    assert png.format == "PNG" and png.width > 300


# Chromium's native save dialog cannot be driven headless; without it Streamlit falls back
# to an ordinary download (its file-system-access polyfill). For a page context's init.
NO_SAVE_PICKER = "delete window.showSaveFilePicker"


def table_csv_from_toolbar(app: App) -> None:
    """st.dataframe's own toolbar button: the Repair page's score table as a CSV file
    (the context needs :data:`NO_SAVE_PICKER`)."""
    expect(app.main.get_by_text(re.compile("^PSNR of the mean MSE against"))).to_be_visible()
    table = app.main.locator('[data-testid="stDataFrame"]').first
    expect(table).to_be_visible()
    table.scroll_into_view_if_needed()
    table.hover()  # the toolbar shows while the mouse is over the table
    button = app.main.get_by_role("button", name="Download as CSV", exact=True)
    expect(button).to_be_visible()
    # By keyboard: the table is the first thing in an expander, and its toolbar overlaps
    # the expander's title, which takes a click aimed at the button's top half; the
    # mouse then leaves the table, the toolbar slides away and the click hits the grid.
    with app.page.expect_download(timeout=60_000) as info:
        button.focus()
        button.press("Enter")
    text = Path(info.value.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["output"] for r in rows][0] == "corrupted input"
    assert all(float(r["PSNR whole (dB)"]) > 0 for r in rows)


@pytest.mark.e2e
def test_style_transfer_result_downloads(app):
    app.open("style-transfer")
    expect(app.main.get_by_text("The result appears here.")).to_be_visible()
    content = app.main.locator(".cae-pic img").first
    expect(content).to_have_attribute("alt", re.compile("^content: "))
    assert content.evaluate("e => e.naturalWidth") == 64  # the default size
    expand(app, "Settings: pictures, weights, layers, steps")
    sliders = {"Size (pixels)": "32", "Steps": "20"}  # Home: the smallest, a short run
    for label, lowest in sliders.items():
        thumb = app.widget("stSlider", label).locator('input[type="range"]')
        expect(thumb).to_be_attached()
        app.act(lambda t=thumb: (t.focus(), t.press("Home")))
        expect(thumb).to_have_attribute("aria-valuetext", lowest)
    assert content.evaluate("e => e.naturalWidth") == 32
    app.click("Run style transfer")
    app.no_exception()
    result = app.main.locator(".cae-pic", has_text=re.compile(r"^result$"))
    expect(result.locator("img")).to_have_attribute("alt", re.compile("^style transfer result"))
    expand(app, "How the loss fell")
    expect(app.main.get_by_text(re.compile(r"^20 steps in"))).to_be_visible()
    arr = picture(download(app, "Download (PNG)"))
    assert arr.shape[1] >= 3 * enlarged(32)  # content, style and result, side by side
    assert arr.shape[0] < 2 * enlarged(32)  # in one row
