"""Screenshots of every page, as a user sees them: the app started as ``./dev app`` starts it,
opened in Debian's headless Chromium through Playwright.

Usage::

    .venv/bin/python docs/screenshots.py                 # docs/screenshots/*.png
    .venv/bin/python docs/screenshots.py --out /tmp/shots --pages layers,decoders
    .venv/bin/python docs/screenshots.py --full          # whole pages, not the first screen

Each page is taken at 1440x900 (a laptop) and, in presentation mode, at 1920x1080 (a
projector). The first screen only, unless ``--full``: what a user sees before scrolling is
the point of these pictures.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pages.glue.page_table import PAGES  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SIZES = {
    "laptop": (1440, 900),
    "projector": (1920, 1080),
    "phone": (390, 844),
    "tablet": (768, 1024),
}


def page_paths() -> list[tuple[str, str]]:
    """(address, title) of every page of the app's page table ("" for the default page,
    which is served at the app's root)."""
    return [(p.address, p.title) for p in PAGES]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
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
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
