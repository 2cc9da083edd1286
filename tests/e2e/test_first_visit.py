"""The first five minutes in a real browser (issue 12): a fresh server with no data set and
no network opens on real pictures, presentation mode is large enough for a projector (read
from the browser, not from our CSS), a lesson can be stepped to its end, and after two
training runs the Keep picker offers (and downloads) the newest one."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from convae.checkpoints import load_checkpoint
from convae.lessons import load_lessons
from pages.glue.page_table import page_paths

from .conftest import _RUN_COUNTER, ROOT, App, running_app


def _pictures(app: App) -> list[dict]:
    """The main area's pictures: alt text and drawn width in CSS px, once all have loaded."""
    # At least one picture drawn first: on a busy machine the frontend can still be mounting
    # the page's HTML when the script run has already finished (CI's fresh pass saw none).
    app.page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stMain\"] .cae-pic img').length > 0"
        " && Array.from(document.images).every(i => i.complete)",
        timeout=60_000,
    )
    return app.main.locator(".cae-pic img").evaluate_all(
        "els => els.map(e => ({alt: e.alt, width: e.getBoundingClientRect().width,"
        " natural: e.naturalWidth}))"
    )


@pytest.mark.e2e
def test_a_fresh_server_without_data_or_network_shows_the_sample(browser, tmp_path, monkeypatch):
    """No ../shared, an empty data root, CONVAE_OFFLINE and no CONVAE_SOURCE: exactly what
    `./dev app` gives on a new machine. Overview and Layers show real CIFAR-10 pictures
    from the embedded sample, and the sidebar says how to get the full set."""
    monkeypatch.delenv("CONVAE_SOURCE", raising=False)
    ckdir = tmp_path / "checkpoints"
    shutil.copytree(ROOT / "checkpoints", ckdir)
    empty = tmp_path / "data"
    empty.mkdir()
    env = {"CONVAE_DATA": str(empty), "CONVAE_CHECKPOINTS": str(ckdir)}
    with running_app(env, tmp_path / "streamlit.log") as url:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.add_init_script(_RUN_COUNTER)
        app = App(context.new_page(), url)
        try:
            app.open()
            app.no_exception()
            alts = [p["alt"] for p in _pictures(app)]
            assert alts[:3] == [
                "test picture 0: airplane",
                "test picture 1: automobile",
                "test picture 2: bird",
            ], alts[:5]
            assert any(a.startswith("test picture 0 (airplane) rebuilt by cifar10-") for a in alts)
            expect(app.sidebar.get_by_text(re.compile("built-in sample"))).to_be_visible()
            expect(app.sidebar.get_by_text(re.compile("No network here"))).to_be_visible()
            # The first screen at 1440x900 shows pictures, not text only.
            first = app.main.locator(".cae-pic img").first.bounding_box()
            assert first is not None and first["y"] + first["height"] < 900
            app.open("layer-by-layer")
            app.no_exception()
            alts = [p["alt"] for p in _pictures(app)]
            assert alts[0] == "input: test airplane #0", alts[:3]
            assert any(a.startswith("test airplane #0 rebuilt by cifar10-") for a in alts)
            assert not (empty / "cifar10-jpeg").exists()  # nothing was fetched
        finally:
            context.close()


def _text_px(app: App) -> tuple[float, float]:
    """(body, smallest): the font size in CSS px that most of the main area's text is
    drawn in, and the smallest size of any visible text there (captions, labels)."""
    return tuple(
        app.page.evaluate(
            """() => {
          const sizes = new Map();
          let least = Infinity;
          const els = document.querySelectorAll(
            '[data-testid="stMain"] p, [data-testid="stMain"] figcaption, '
            + '[data-testid="stMain"] li');
          for (const e of els) {
            const n = (e.innerText || '').trim().length;
            if (!n || !e.getClientRects().length) continue;
            const px = parseFloat(getComputedStyle(e).fontSize);
            sizes.set(px, (sizes.get(px) || 0) + n);
            least = Math.min(least, px);
          }
          const body = [...sizes.entries()].sort((a, b) => b[1] - a[1])[0][0];
          return [body, least];
        }"""
        )
    )


@pytest.mark.e2e
def test_presentation_mode_is_large_on_a_projector(browser, server):
    """At 1920x1080: body text at least 20 px from a ?present=1 link (about 16 px
    without), and the Overview's pictures at least 150 px wide each."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    context.add_init_script(_RUN_COUNTER)
    app = App(context.new_page(), server)
    try:
        app.open()
        # Measure once the page is drawn: when a run has finished the browser may still be
        # mounting its elements (the presentation CSS among them), so wait for the pictures
        # and, for the second look, for the switch that the run sets.
        normal_width = min(p["width"] for p in _pictures(app))
        normal, _ = _text_px(app)
        app.open("", "present=1")
        app.no_exception()
        # The switch is a sidebar toggle too, and it is on after the link.
        expect(app.sidebar.get_by_role("switch", name="Presentation mode")).to_be_checked()
        widths = [p["width"] for p in _pictures(app)]
        present, least = _text_px(app)
        assert present >= 20 > normal, (present, normal)
        assert least >= 20, least  # captions and labels too
        assert min(widths) >= 150, widths
        assert min(widths) > normal_width
        # Nearest-neighbour scaling: the 32 px pictures stay crisp squares of pixels.
        rendering = app.main.locator(".cae-pic img").first.evaluate(
            "e => getComputedStyle(e).imageRendering"
        )
        assert rendering == "pixelated"
    finally:
        context.close()


def _lesson_ids() -> list[str]:
    return [les.id for les in load_lessons(ROOT / "lessons" / "lessons.toml")]


@pytest.mark.e2e
@pytest.mark.parametrize("lesson_id", _lesson_ids())
def test_a_lesson_steps_through_to_its_end(app, lesson_id):
    """Start a lesson from the sidebar in presentation mode, press Next to its last step:
    every step opens its page with its note, the last one has no Next, End closes it."""
    pages = {p for p, _ in page_paths()}  # the Overview's is "" (the app's root)
    lesson = next(
        les for les in load_lessons(ROOT / "lessons" / "lessons.toml", pages) if les.id == lesson_id
    )
    app.open("", "present=1")
    if lesson_id != _lesson_ids()[0]:  # the first is picked already: no run to wait for
        app.pick("stSelectbox", "Lesson", lesson.title, scope=app.sidebar)
    app.click("Start the lesson", scope=app.sidebar)
    banner = app.main.locator(".st-key-lesson_banner")
    n = len(lesson.steps)
    for i, step in enumerate(lesson.steps):
        expect(banner).to_contain_text(f"{lesson.title} · step {i + 1} of {n}")
        first_words = " ".join(step.note.split()[:6])
        expect(banner).to_contain_text(first_words)
        path = urlparse(app.page.url).path.strip("/")
        assert path in ({"", "start"} if step.page == "" else {step.page}), (i, path)
        app.no_exception()
        nxt = banner.get_by_role("button", name="Next ▶")
        if i < n - 1:
            app.act(nxt.click)
        else:
            expect(nxt).to_be_disabled()
    app.click("End lesson", scope=banner)
    expect(app.main.locator(".st-key-lesson_banner")).to_have_count(0)
    app.no_exception()


@pytest.mark.e2e
def test_keep_picker_offers_the_newest_of_two_runs(app, app_data, tmp_path):
    """Two short runs (transpose, then upsample): the Keep picker shows the second, and
    its Download gives the second run's checkpoint (it gave the older one before)."""
    app.open("training")
    app.set_number("Epochs", 1)
    app.set_number("Training pictures", min(500, app_data["n_train"]))
    trained = []
    for decoder in ("transpose", "upsample"):
        if decoder != "transpose":  # the default: clicking it again starts no run
            app.click(decoder)
        app.act(
            app.main.get_by_role("button", name=re.compile(r"Train$")).first.click,
            timeout=300_000,
        )
        app.no_exception()
        trained.append(decoder)
        n = len(trained)
        picker = app.widget("stSelectbox", "Model").get_by_role("combobox")
        expect(picker).to_have_accessible_name("Model")
        expect(picker).to_have_value(re.compile(rf"^run{n}-{decoder}-1ep"))
    with app.page.expect_download(timeout=60_000) as info:
        app.main.get_by_role("button", name=re.compile("Download checkpoint")).click()
    path = Path(info.value.path())
    ck = load_checkpoint(path.read_bytes(), name=info.value.suggested_filename)
    assert info.value.suggested_filename == "run2-upsample-1ep.pt"
    assert ck.config.decoder == "upsample" and len(ck.history) == 1
