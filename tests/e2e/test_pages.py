"""Every page of the app in a real browser: it renders without an exception box, shows
its pictures or charts, and its main control changes what is on screen; then what it
exports downloads as what it claims to be (test_exports.py's checks, here where the page
is open anyway). Class names and
image counts come from the server's data set (``app_data``), whichever it is.

Pages draw their pictures as HTML rows (``<figure class="cae-pic"><img alt><figcaption>``,
convae/figures/html.py), not st.image: the helpers below read those."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from convae.checkpoints import load_checkpoint
from pages.glue.page_table import page_paths

from .conftest import _RUN_COUNTER, App, running_app
from .test_accessibility import assert_accessible
from .test_exports import (
    NO_SAVE_PICKER,
    PICTURES_PNG,
    activation_map_png,
    choose,
    download,
    enlarged,
    expand,
    in_fragment,
    layer_table_csv,
    picture,
    rows_png,
    table_csv_from_toolbar,
)

PICTURES = ".cae-pic img"
VISIBLE = (
    '.cae-pic img, [data-testid="stPlotlyChart"], '
    '[data-testid="stDataFrame"], [data-testid="stMetric"]'
)
PSNR = re.compile(r"^-?\d+\.\d dB$")
REBUILT = re.compile(r" rebuilt by (.+), (-?\d+\.\d) dB$")


def pictures(app: App, scope=None):
    """The picture rows' <img>s, once the first is drawn (Streamlit draws an HTML block
    a moment after the run that sent it, when the front end's code for it has loaded)."""
    imgs = (scope or app.main).locator(PICTURES)
    expect(imgs.first).to_be_visible()
    return imgs


def srcs(app: App, scope=None) -> list[str]:
    """The pictures themselves: each <img>'s data: URI (a PNG)."""
    return pictures(app, scope).evaluate_all("els => els.map(e => e.src)")


def alts(app: App, scope=None) -> list[str]:
    return pictures(app, scope).evaluate_all("els => els.map(e => e.alt)")


def captions(app: App, scope=None) -> list[str]:
    pictures(app, scope)
    return (scope or app.main).locator(".cae-pic figcaption").all_inner_texts()


def _overview(app: App, data: dict) -> None:
    # Main control: the sidebar's class filter; the originals become that class only.
    cls = data["classes"][-1]  # not the first: the unfiltered row starts with the first
    before = captions(app)
    originals = [c for c in before if not PSNR.match(c)]
    assert len(set(originals)) > 1, originals  # several classes before the filter
    choose(app, "stMultiSelect", "Classes", cls, scope=app.sidebar)
    after = captions(app)
    originals = [c for c in after if not PSNR.match(c)]
    assert originals == [cls] * min(8, data["test_counts"][cls]), originals
    # ... with each picked model's reconstruction of those pictures, scored, under them
    scores = [c for c in after if PSNR.match(c)]
    assert len(scores) == 2 * len(originals) and scores != [c for c in before if PSNR.match(c)]
    described = [a for a in alts(app) if re.match(r"^test picture \d+: ", a)]
    assert described and all(a.endswith(f": {cls}") for a in described), described
    # Its exports: the pictures as one PNG (the originals and the two picked models'
    # copies: three rows of eight) and the layer table as a CSV.
    arr = picture(download(app, PICTURES_PNG))
    side = enlarged(32)
    assert 8 * side <= arr.shape[1] and 3 * side <= arr.shape[0] < 4 * side, arr.shape
    layer_table_csv(app)


def _scores_by_model(app: App) -> dict[str, list[float]]:
    """PSNR of every shown reconstruction, per model in row order (from the alt texts:
    "test picture 3 (cat) rebuilt by cifar10-transpose, 21.5 dB")."""
    out: dict[str, list[float]] = {}
    for a in alts(app):
        m = REBUILT.search(a)
        if m:
            out.setdefault(m[1], []).append(float(m[2]))
    return out


def _recon(app: App, data: dict) -> None:
    before = _scores_by_model(app)
    first = next(iter(before))  # the first picked model: the one the sort ranks by
    app.click("worst first")
    after = _scores_by_model(app)
    assert list(after) == list(before) and after != before
    assert len(after[first]) == 12  # the Pictures slider's default
    assert after[first] == sorted(after[first]), after[first]  # worst first
    # the sort looks through more pictures than the first 12, so it finds worse ones
    assert after[first][0] <= min(before[first]) and sum(after[first]) < sum(before[first])
    # the captions under the pictures are the same scores
    shown = [c for c in captions(app) if PSNR.match(c)]
    assert shown[:12] == [f"{v:.1f} dB" for v in after[first]]
    expect(app.main.get_by_role("button", name="Download these pictures (PNG)")).to_be_visible()


def _next(app: App) -> None:
    """Layers' Next: it reruns only the stepper fragment (callers expect its outcome)."""
    in_fragment(app.main.get_by_role("button", name="Next ▶", exact=True).click)


def _layers(app: App, data: dict) -> None:
    expect(app.main.get_by_text(re.compile(r"^conv1 \(encoder, step 1 of \d+\)"))).to_be_visible()
    expect(app.main.locator('.cae-pic img[alt="conv1, ch 0"]')).to_be_visible()
    before = srcs(app)
    _next(app)
    expect(app.main.get_by_text(re.compile(r"^relu1 \(encoder, step 2 of \d+\)"))).to_be_visible()
    # the channel maps are now relu1's, drawn as pictures (none of conv1's is left)
    expect(app.main.locator('.cae-pic img[alt="relu1, ch 0"]')).to_be_visible()
    expect(app.main.locator('.cae-pic img[alt^="conv1, ch "]')).to_have_count(0)
    assert srcs(app) != before
    activation_map_png(app)  # one channel's exact values, saved from the chart's toolbar


def _compare(app: App, data: dict) -> None:
    tabs = app.main.get_by_role("tab")
    expect(tabs).to_have_text(
        ["Side by side", "Per class", "Over training", "Tiles and checkerboards", "Decoder family"]
    )
    side = app.main.locator(".cae-rows")  # the side-by-side picture rows
    expect(side.first).to_be_visible()
    rows_png(app, 0, 5, 8)  # input, A, B, error of A, error of B for 8 pictures
    app.act(app.main.get_by_role("tab", name="Per class").click)
    panel = app.main.locator('[data-testid="stTabPanel"]:visible')
    expect(panel).to_have_count(1)
    expect(panel.locator('[data-testid="stPlotlyChart"]').first).to_be_visible()  # per class
    expect(panel.locator('[data-testid="stDataFrame"]').first).to_be_visible()
    expect(panel.locator(VISIBLE).first).to_be_visible()
    expect(side).to_have_count(0)  # tabs run lazily: the closed tab's pictures are gone


def _train(app: App, data: dict) -> None:
    app.set_number("Training pictures", min(256, data["n_train"]))
    app.set_number("Epochs", 1)
    app.click("Train")
    expect(app.main.get_by_text("Last training run")).to_be_visible()
    expect(app.main.locator('[data-testid="stPlotlyChart"]')).to_have_count(1)
    # the trained model's copies of the test pictures, in a row labelled with its name
    expect(app.main.locator(".cae-row-label", has_text="run1-transpose-1ep")).to_be_visible()
    picker = app.widget("stMultiSelect", "Models", app.sidebar)
    expect(picker).to_contain_text("run1-transpose-1ep")
    # the trained model downloads as a checkpoint file that loads
    ck = load_checkpoint(download(app, "Download checkpoint (.pt)"), name="download.pt")
    assert len(ck.history) == 1 and ck.config.decoder == "transpose"
    assert ck.train_config["limit"] == min(256, data["n_train"])


def _denoise(app: App, data: dict) -> None:
    before = srcs(app)
    assert any("salt and pepper" in a for a in alts(app))  # the default noise
    app.click("Gaussian")
    assert srcs(app) != before
    shown = alts(app)
    assert any("Gaussian" in a for a in shown) and not any("salt and pepper" in a for a in shown)
    rows_png(app, 0, 4, 8)  # noisy, plain model, denoiser, clean


def _repair(app: App, data: dict) -> None:
    before = srcs(app)
    assert any(" hole / " in c for c in captions(app))  # a masked rectangle, the default
    app.click("Missing colour")
    assert srcs(app) != before
    assert not any(" hole / " in c for c in captions(app))
    rows_png(app, 0, 1, 4)  # original, input, plain model, repair model
    table_csv_from_toolbar(app)


def _code(app: App, data: dict) -> None:
    before = srcs(app)
    value = min(7, data["n_test"] - 1)
    app.set_number("Test picture", value)
    after = srcs(app)
    assert after != before and after[0] != before[0]  # the edited picture itself changed
    rows_png(app, 0, 1, 3)  # original, decoded, decoded from the edit
    rows_png(app, 1, 2, 8)  # code path and cross-fade, 8 frames


def _cells(app: App, data: dict) -> None:
    # The cell picked by Channel / Row / Column: its footprint pictures are redrawn.
    caption = app.main.get_by_text(re.compile(r"The outlined one is channel \d+, row"))
    expect(caption).to_contain_text("channel 0,")
    before = srcs(app)
    choose(app, "stSelectbox", "Channel", "2", fragment=True)
    expect(caption).to_contain_text("channel 2,")
    after = srcs(app)
    assert after != before
    assert after[0] == before[0]  # the input picture stays; the nudged outputs change


def _code_space(app: App, data: dict) -> None:
    # Colour the map by A's PSNR: a colour bar with its title, and the summary says so.
    chart = app.main.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first
    expect(chart).to_be_visible(timeout=60_000)
    choose(app, "stSelectbox", "Colour by", "PSNR of A", fragment=True)
    expect(
        app.main.get_by_text(re.compile(r"Colour shows PSNR of A \(dB\): from")).first
    ).to_be_visible()
    expect(app.main.locator(".colorbar").first).to_contain_text("PSNR of A (dB)")


def _style(app: App, data: dict) -> None:
    # The content picture's number (the full style transfer is a slow run).
    field = app.widget("stNumberInput", "Content picture").locator("input")
    expect(field).to_be_visible()
    value = 3 if field.input_value() != "3" else 4
    value = min(value, data["n_test"] - 1)
    before = srcs(app)
    app.set_number("Content picture", value)
    expect(app.main.locator(".cae-pic figcaption").first).to_have_text(
        re.compile(rf"^content: test picture {value} \(")
    )
    assert srcs(app)[0] != before[0]


def _class(app: App, data: dict) -> None:
    # A visitor types a code no class has: one line says so, and they explore on.
    app.act(
        lambda: (
            app.main.get_by_label(re.compile("^Join a class")).fill("KKK KKK"),
            app.main.get_by_role("button", name="Join", exact=True).click(),
        )
    )
    expect(app.main.get_by_text("No class has the code KKKKKK")).to_be_visible()


ACTIONS = {
    "": _overview,
    "recon": _recon,
    "layer-by-layer": _layers,
    "decoders": _compare,
    "code-cells": _cells,
    "code-space": _code_space,
    "training": _train,
    "denoising": _denoise,
    "repairing": _repair,
    "the-code": _code,
    "style-transfer": _style,
    "class": _class,
}


def test_pages_are_read_from_app_py():
    paths = [p for p, _ in page_paths()]
    assert {"", "recon", "layer-by-layer", "training", "code-cells"} <= set(paths)
    assert set(paths) == set(ACTIONS)  # every page has its main control below


@pytest.mark.e2e
@pytest.mark.parametrize("path,title", page_paths(), ids=[p or "default" for p, _ in page_paths()])
def test_page_renders_and_its_main_control_works(app, app_data, path, title):
    app.page.add_init_script(NO_SAVE_PICKER)  # for the Repair page's table download
    app.open(path)
    app.no_exception()
    # The navigation marks this page, and it shows something to look at.
    expect(app.sidebar.get_by_role("link", name=title, exact=True)).to_be_visible()
    expect(app.main.locator("h1").first).to_be_visible()
    # Accessible as it opens (test_accessibility.py): no axe-core WCAG 2.1 AA violation,
    # every picture with a text alternative; then in the presentation look, switched on
    # in the sidebar as a teacher does (what ?present=1 opens), and off again.
    assert_accessible(app, title)
    _present(app, True)
    assert_accessible(app, f"{title} (presentation)")
    _present(app, False)
    action = ACTIONS.get(path)
    if action is None:
        pytest.fail(f"page {path!r} ({title}) is new: add its main control to ACTIONS")
    action(app, app_data)
    app.no_exception()


def _present(app: App, on: bool) -> None:
    """Switch presentation mode on or off with the sidebar's switch."""
    switch = app.sidebar.get_by_role("switch", name="Presentation mode")
    # by keyboard, as test_exports does: the switch's own <input> is a 1 px box
    app.act(lambda: switch.press("Space"))
    (expect(switch).to_be_checked if on else expect(switch).not_to_be_checked)()
    app.no_exception()


def _copy_link(app: App) -> str:
    """The copyable link to the current view: in the sidebar, or on Layers in the page
    (inside its stepping fragment, so that it follows the step)."""
    scope = app.main if "/layer-by-layer" in app.page.url else app.sidebar
    expand(app, "Copy link to this view", scope)
    code = scope.locator('[data-testid="stCode"]')
    expect(code).to_be_visible()
    return code.inner_text().strip()


@pytest.mark.e2e
def test_a_shared_link_opens_that_view_in_the_browser(app):
    app.open("layer-by-layer", "step=conv2&colour=channel")
    app.no_exception()
    expect(app.main.get_by_text(re.compile(r"^conv2 \(encoder, step 4 of"))).to_be_visible()
    expect(app.main.get_by_role("radio", name="per channel")).to_be_checked()
    # The copyable link is the full address of this view.
    link = _copy_link(app)
    assert link.startswith(f"{app.base}/layer-by-layer?"), link
    assert "step=conv2" in link and "colour=channel" in link, link
    _next(app)
    expect(app.main.get_by_text(re.compile(r"^relu2 \(encoder, step 5 of"))).to_be_visible()
    expect(app.page).to_have_url(re.compile(r"[?&]step=relu2(&|$)"))
    assert "colour=channel" in app.page.url
    # the address bar is now a link to this view: loading it starts a new session there
    app.open("layer-by-layer", app.page.url.split("?", 1)[1])
    expect(app.main.get_by_text(re.compile(r"^relu2 \(encoder, step 5 of"))).to_be_visible()
    expect(app.main.locator('.cae-pic img[alt="relu2, ch 0"]')).to_be_visible()
    expect(app.main.get_by_role("radio", name="per channel")).to_be_checked()


@pytest.mark.e2e
def test_the_sidebar_link_follows_a_step(app):
    """Next reruns only the Layers page's stepper (a fragment); the copyable link to the
    view (on Layers drawn in that fragment, not in the sidebar, whose copy stayed on the
    step it was drawn with) must name the step now shown, as the address bar does."""
    app.open("layer-by-layer", "step=conv2&colour=channel")
    expect(app.main.get_by_text(re.compile(r"^conv2 \(encoder, step 4 of"))).to_be_visible()
    _next(app)
    expect(app.main.get_by_text(re.compile(r"^relu2 \(encoder, step 5 of"))).to_be_visible()
    expect(app.page).to_have_url(re.compile(r"[?&]step=relu2(&|$)"))
    link = _copy_link(app)
    assert link.startswith(f"{app.base}/layer-by-layer?") and "step=relu2" in link, link
    # one link to copy: none left in the sidebar to name another step
    expect(app.page.get_by_text("Copy link to this view")).to_have_count(1)


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
