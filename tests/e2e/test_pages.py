"""Every page of the app in a real browser: it renders without an exception box, shows
its pictures or charts, and its main control changes what is on screen. Class names and
image counts come from the server's data set (``app_data``), whichever it is."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from convae.checkpoints import load_checkpoint

from .conftest import _RUN_COUNTER, App, page_paths, running_app
from .test_exports import download

VISIBLE = (
    '[data-testid="stImage"], [data-testid="stPlotlyChart"], '
    '[data-testid="stDataFrame"], [data-testid="stMetric"]'
)


def _overview(app: App, data: dict) -> None:
    # Main control: the sidebar's class filter; the originals become that class only.
    cls = data["classes"][-1]  # not the first: the unfiltered grid starts with the first
    before = app.captions()
    app.pick("stMultiSelect", "Classes", cls, scope=app.sidebar)
    after = app.captions()
    assert after != before
    originals = [c for c in after if c not in ("reconstruction", "")]
    assert originals and set(originals[1:]) == {cls}, originals


def _recon(app: App, data: dict) -> None:
    psnr = re.compile(r"^-?\d+\.\d dB$")
    before = [c for c in app.captions() if psnr.match(c)]
    app.click("worst first")
    after = [float(c.split()[0]) for c in app.captions() if psnr.match(c)]
    assert after and [f"{v:.1f} dB" for v in after] != before
    first_row = after[: len(after) // 2]
    assert first_row == sorted(first_row)  # worst first by the first model
    expect(app.main.get_by_role("button", name="Download this grid (PNG)")).to_be_visible()


def _layers(app: App, data: dict) -> None:
    expect(app.main.get_by_text(re.compile(r"^conv1 \(step 1 of"))).to_be_visible()
    app.click("Next ▶")
    expect(app.main.get_by_text(re.compile(r"^relu1 \(step 2 of"))).to_be_visible()
    expect(app.main.locator('[data-testid="stPlotlyChart"]')).to_have_count(1)


def _compare(app: App, data: dict) -> None:
    tabs = app.main.locator('[data-testid="stTab"]')
    assert tabs.count() >= 2
    app.act(tabs.nth(1).click)
    panel = app.main.locator('[data-testid="stTabPanel"]:visible')
    expect(panel.locator(VISIBLE).first).to_be_visible()


def _train(app: App, data: dict) -> None:
    app.set_number("Training images", min(256, data["n_train"]))
    app.set_number("Epochs", 1)
    app.click("Train")
    expect(app.main.get_by_text("Last training run")).to_be_visible()
    expect(app.main.locator('[data-testid="stPlotlyChart"]')).to_have_count(1)
    picker = app.widget("stMultiSelect", "Models", app.sidebar)
    expect(picker).to_contain_text("transpose-mse-1ep-seed0")
    # the trained model downloads as a checkpoint file that loads
    ck = load_checkpoint(download(app, "Download checkpoint (.pt)"), name="download.pt")
    assert len(ck.history) == 1 and ck.config.decoder == "transpose"


def _denoise(app: App, data: dict) -> None:
    before = app.image_srcs()
    app.click("salt and pepper")
    assert app.image_srcs() != before


def _repair(app: App, data: dict) -> None:
    before = app.image_srcs()
    app.click("Missing colour")
    assert app.image_srcs() != before


def _code(app: App, data: dict) -> None:
    before = app.image_srcs()
    app.set_number("Test image", min(7, data["n_test"] - 1))
    assert app.image_srcs() != before


def _style(app: App, data: dict) -> None:
    # The Gram-matrix section's image picker (the full style transfer is a slow run).
    before = app.image_srcs()
    app.set_number("Test image", min(3, data["n_test"] - 1))
    assert app.image_srcs() != before


ACTIONS = {
    "": _overview,
    "recon": _recon,
    "layer-by-layer": _layers,
    "decoders": _compare,
    "training": _train,
    "denoising": _denoise,
    "repairing": _repair,
    "the-code": _code,
    "style-transfer": _style,
}


def test_pages_are_read_from_app_py():
    paths = [p for p, _ in page_paths()]
    assert {"", "recon", "layer-by-layer", "training"} <= set(paths)


@pytest.mark.e2e
@pytest.mark.parametrize("path,title", page_paths(), ids=[p or "default" for p, _ in page_paths()])
def test_page_renders_and_its_main_control_works(app, app_data, path, title):
    app.open(path)
    app.no_exception()
    # The navigation marks this page, and it shows something to look at.
    expect(app.sidebar.get_by_role("link", name=title)).to_be_visible()
    expect(app.main.locator("h1").first).to_be_visible()
    action = ACTIONS.get(path)
    if action is None:
        pytest.fail(f"page {path!r} ({title}) is new: add its main control to ACTIONS")
    action(app, app_data)
    app.no_exception()


@pytest.mark.e2e
def test_a_shared_link_opens_that_view_in_the_browser(app):
    app.open("layer-by-layer", "step=conv2&colour=channel")
    app.no_exception()
    expect(app.main.get_by_text(re.compile(r"^conv2 \(step 4 of"))).to_be_visible()
    app.click("Next ▶")
    expect(app.main.get_by_text(re.compile(r"^relu2 \(step 5 of"))).to_be_visible()
    assert "step=relu2" in app.page.url and "colour=channel" in app.page.url
    # The sidebar's copyable link is the full address of this view.
    app.sidebar.get_by_text("Copy link to this view").click()
    link = app.sidebar.locator('[data-testid="stCode"]').inner_text().strip()
    assert link.startswith(f"{app.base}/layer-by-layer?") and "step=relu2" in link
    # the address bar is now a link to this view: loading it starts a new session there
    app.open("layer-by-layer", app.page.url.split("?", 1)[1])
    expect(app.main.get_by_text(re.compile(r"^relu2 \(step 5 of"))).to_be_visible()


@pytest.mark.e2e
def test_a_deep_link_as_a_fresh_servers_first_visit(browser, app_data, tmp_path):
    """A shared link is often the first thing a just-started server is asked for. Plain
    ``streamlit run`` (1.67) then covers the right page with a "Page not found" dialog,
    because of the pages/ folder's name; serve.py, which ./dev app runs, prevents it."""
    with running_app(app_data["env"], tmp_path / "streamlit.log") as url:
        context = browser.new_context()
        context.add_init_script(_RUN_COUNTER)
        app = App(context.new_page(), url)
        try:
            app.open("layer-by-layer", "colour=channel")
            expect(app.main.locator("h1").first).to_have_text("Layers")
            expect(app.page.get_by_role("radio", name="per channel")).to_be_checked()
            assert app.page.get_by_text("Page not found").count() == 0
            app.no_exception()
        finally:
            context.close()
