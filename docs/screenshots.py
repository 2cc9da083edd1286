"""Screenshots of every page, as a user sees them: the app started as ``./dev app`` starts it,
opened in Debian's headless Chromium through Playwright.

Usage::

    .venv/bin/python docs/screenshots.py                 # docs/screenshots/*.png
    .venv/bin/python docs/screenshots.py --out /tmp/shots --pages layers,decoders
    .venv/bin/python docs/screenshots.py --full          # whole pages, not the first screen
    .venv/bin/python docs/screenshots.py --sizes phone --pages start,layer-by-layer,decoders \
        --class-question tiles-airplane                  # + a live class's question

Each page is taken at 1440x900 (a laptop) and, in presentation mode, at 1920x1080 (a
projector); ``--sizes phone`` (390x844) and ``tablet`` (768x1024) as a touch screen. The
first screen only, unless ``--full``: what a user sees before scrolling is the point of
these pictures. ``--class-question ID`` also runs a live class: a teacher (presenting, on
the projector) starts it and asks the question ID of lessons/questions.toml, a student
joins with the code and answers A; it saves the teacher's screen
(``class-teacher-projector.png``) and the student's at each size
(``class-question-<size>.png``).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import free_port  # noqa: E402
from pages.glue.page_table import page_paths  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SIZES = {
    "laptop": (1440, 900),
    "projector": (1920, 1080),
    "phone": (390, 844),
    "tablet": (768, 1024),
}


def _wait_idle(page, timeout_ms: int = 120_000) -> None:
    """Until Streamlit has finished the run and drawn (no running indicator)."""
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState"
        " === 'notRunning'",
        timeout=timeout_ms,
    )
    # Pictures are data URIs and charts draw in the browser: wait until every <img> is
    # decoded, no skeleton placeholder is left, then give plotly a moment.
    page.wait_for_function(
        "() => Array.from(document.images).every(i => i.complete)"
        " && !document.querySelector('[data-testid=\"stSkeleton\"]')",
        timeout=timeout_ms,
    )
    page.wait_for_timeout(1000)


def _class_question(browser, base: str, key: str, qid: str, sizes: list[str], out: Path):
    """A teacher on the projector asks question ``qid``; a student of each size answers A."""
    teacher = browser.new_context(viewport={"width": 1920, "height": 1080}).new_page()
    teacher.goto(f"{base}/class?teacher={key}&present=1")
    _wait_idle(teacher)
    teacher.get_by_role("button", name="Start a class").click()
    _wait_idle(teacher)
    code = teacher.locator(".cae-code").inner_text().replace(" ", "")
    box = teacher.locator('[data-testid="stSelectbox"]').filter(has_text="Question")
    box.locator("input").click()
    box.locator("input").fill(qid)
    teacher.keyboard.press("Enter")
    _wait_idle(teacher)
    teacher.get_by_role("button", name="Ask it").click()
    _wait_idle(teacher)
    for size in sizes:
        w, h = SIZES[size]
        touch = size in ("phone", "tablet")
        ctx = browser.new_context(
            viewport={"width": w, "height": h}, has_touch=touch, is_mobile=touch
        )
        page = ctx.new_page()
        page.goto(f"{base}/class?join={code}")
        page.get_by_role("button", name="A", exact=True).wait_for(timeout=120_000)
        _wait_idle(page)
        button = page.get_by_role("button", name="A", exact=True)
        button.tap() if touch else button.click()
        page.get_by_text(re.compile("Your answer: A")).wait_for(timeout=120_000)
        _wait_idle(page)
        page.locator('[data-testid="stMain"]').evaluate("m => m.scrollTo(0, 0)")
        page.wait_for_timeout(500)
        page.screenshot(path=str(out / f"class-question-{size}.png"))
        print(out / f"class-question-{size}.png", flush=True)
        ctx.close()
    teacher.wait_for_timeout(3000)  # the live tally's next refresh shows the answers
    _wait_idle(teacher)
    teacher.locator('[data-testid="stMain"]').evaluate("m => m.scrollTo(0, 0)")
    teacher.wait_for_timeout(500)
    teacher.screenshot(path=str(out / "class-teacher-projector.png"))
    print(out / "class-teacher-projector.png", flush=True)
    teacher.context.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "screenshots"), help="folder")
    p.add_argument("--pages", default="", help="comma-separated url paths (default: all)")
    p.add_argument(
        "--sizes",
        default="laptop,projector",
        help="laptop, projector, phone, tablet (comma-separated)",
    )
    p.add_argument("--full", action="store_true", help="whole pages, not the first screen")
    p.add_argument("--query", default="", help="extra query string for every page")
    p.add_argument(
        "--class-question",
        default="",
        help="also photograph a live class asking this question (an id of questions.toml)",
    )
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    key = secrets.token_urlsafe(24)  # the teacher key of this run's server
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONVAE_TEACHER_KEY": key}
    proc = subprocess.Popen(
        [sys.executable, "serve.py", "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        wanted = {w for w in args.pages.split(",") if w}
        pages = [(u, t) for u, t in page_paths() if not wanted or (u or "start") in wanted]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for size in [s for s in args.sizes.split(",") if s]:
                w, h = SIZES[size]
                touch = size in ("phone", "tablet")  # a phone's browser: touch, small screen
                ctx = browser.new_context(
                    viewport={"width": w, "height": h}, has_touch=touch, is_mobile=touch
                )
                page = ctx.new_page()
                for url, _title in pages:
                    query = args.query
                    if size == "projector":
                        query = "&".join(q for q in (query, "present=1") if q)
                    page.goto(f"{base}/{url}{'?' + query if query else ''}")
                    _wait_idle(page)
                    name = f"{(url or 'start')}-{size}.png"
                    page.screenshot(path=str(out / name), full_page=args.full)
                    print(out / name, flush=True)
                ctx.close()
            if args.class_question:
                sizes = [s for s in args.sizes.split(",") if s]
                _class_question(browser, base, key, args.class_question, sizes, out)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
