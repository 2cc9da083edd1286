"""Real Chromium sessions doing what :class:`LayersStudent` does, to check the simulation.

``bench/capacity.py --validate`` runs this in a niced subprocess: N browser contexts (N
Streamlit sessions) in one headless Chromium (Debian's, args as tests/e2e/conftest.py's),
each opening Layers and pressing Next every 2-4 s (Prev on the way back from the last
step), the same schedule as the Locust user. Once every session has opened, the same
window as the Locust run's (meter.py) measures the server's CPU and the browsers' (every
process under this one: Chromium and Playwright's driver) over ``--seconds``.

A click's run is awaited as bench/classroom.py does: the app root's
``data-test-script-state`` back to ``notRunning`` after the run counter moved, or the
pictures' alt texts changed. It also records the ``rerun_script`` each browser sent (the
first session's first Next), decoded, so that capacity.py can compare it with the
simulated student's.

For the live class (``bench/capacity.py --scenario class --validate``), ``--class-code``
makes the N sessions students who join that class (``/class?join=CODE``) and follow its
teacher: the browser's own timer reruns the poll fragment, and each teacher step reruns
the page on the teacher's view. The teacher is capacity.py's; this process writes the
``--ready`` file once every session shows it sits in the class, then keeps the pages open
until the ``--until`` file exists.

Usage: ``python -m bench.students.chromium URL --sessions 5 --seconds 60 --server-pid PID
--out result.json``, or ``python -m bench.students.chromium URL --sessions 5
--class-code CODE --ready FILE --until FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.classroom import _RUN_END, _SHOWN  # noqa: E402  (the page-side run clock)
from bench.students.meter import Window, tree_cpu_s  # noqa: E402
from tests.e2e.conftest import _RUN_COUNTER, CHROMIUM_ARGS, chromium_path  # noqa: E402

PAGE = "layer-by-layer"
NEXT, PREV = "Next ▶", "◀ Prev"
STEPS = 11  # input .. sigmoid on Layers; the page opens at step 1
TIMEOUT_MS = 120_000
SETTLE_S = 2.0  # as the locustfile's
_FINISHED = """([n, sig]) => {
  const st = document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState;
  if (st !== 'notRunning') return false;
  if (window.__stRuns > n) return window.__stRunEnd || performance.now();
  return (SHOWN)() !== sig ? performance.now() : false;
}""".replace("SHOWN", _SHOWN)


async def _open(browser, url: str, sent: list[bytes]):
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
    await ctx.add_init_script(_RUN_COUNTER)
    await ctx.add_init_script(_RUN_END)
    page = await ctx.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("websocket", lambda ws: ws.on("framesent", lambda p: sent.append(p)))
    await page.goto(f"{url}/{PAGE}")
    await page.wait_for_function(
        "() => window.__stRuns > 0 && document.querySelector('[data-testid=\"stApp\"]')"
        "?.dataset.testScriptState === 'notRunning'"
    )
    return ctx, page


async def _click(page, name: str) -> float:
    """Click a button in the main area; seconds until its run has finished."""
    before = await page.evaluate("window.__stRuns || 0")
    sig = await page.evaluate(_SHOWN)
    t0 = await page.evaluate("performance.now()")
    await (
        page.locator('[data-testid="stMain"]')
        .get_by_role("button", name=name, exact=True)
        .first.click()
    )
    end = await page.wait_for_function(_FINISHED, arg=[before, sig])
    return (await end.json_value() - t0) / 1000


async def run(url: str, sessions: int, seconds: float, server_pid: int) -> dict:
    """Open ``sessions`` browser sessions on Layers and click for ``seconds``."""
    from playwright.async_api import async_playwright

    rng = random.Random(0)
    sent: list[list[bytes]] = [[] for _ in range(sessions)]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        opened = [await _open(browser, url, sent[i]) for i in range(sessions)]
        await asyncio.sleep(SETTLE_S)
        window = Window(server_pid, lambda: tree_cpu_s(os.getpid()))
        window.start()
        end_at = time.perf_counter() + seconds
        latencies: list[float] = []
        first_next: dict = {}

        async def student(k: int, page) -> None:
            step, forward = 1, True
            while time.perf_counter() < end_at:
                if step == STEPS - 1:
                    forward = False
                elif step <= 1:
                    forward = True
                mark = len(sent[k])
                took = await _click(page, NEXT if forward else PREV)
                step += 1 if forward else -1
                if time.perf_counter() < end_at:
                    latencies.append(took)
                if k == 0 and not first_next:
                    first_next["frames"] = sent[k][mark:]
                await asyncio.sleep(rng.uniform(2, 4))

        async def close_window() -> dict:
            # At end_at exactly, as the Locust run's: clicks still running are not counted.
            await asyncio.sleep(end_at - time.perf_counter())
            return window.stop(len(latencies))

        closing = asyncio.create_task(close_window())
        await asyncio.gather(*(student(k, pg) for k, (_, pg) in enumerate(opened)))
        result = await closing
        result["users"] = sessions
        ordered = sorted(latencies) or [float("nan")]
        result["clicks_ms"] = {
            "count": len(latencies),
            "p50_ms": 1000 * statistics.median(ordered),
            "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
            "max_ms": 1000 * ordered[-1],
        }
        frames = first_next.get("frames", [])
        result["first_next_backmsg"] = [f.hex() if isinstance(f, bytes) else f for f in frames]
        for ctx, _ in opened:
            await ctx.close()
        await browser.close()
    return result


async def follow(url: str, code: str, sessions: int, ready: Path, until: Path) -> None:
    """Open ``sessions`` students of class ``code`` and keep them open (see the module
    docstring)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        pages = []
        for _ in range(sessions):
            ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
            page = await ctx.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(f"{url}/class?join={code}")
            pages.append(page)
        for page in pages:  # the sidebar's line: "In class CODE: following the teacher"
            await page.wait_for_function(
                "c => document.body.innerText.includes('In class ' + c)", arg=code
            )
        ready.write_text("ready\n")
        while not until.exists():
            await asyncio.sleep(0.5)
        await browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url")
    ap.add_argument("--sessions", type=int, default=5, help="browser sessions (default 5)")
    ap.add_argument("--seconds", type=float, default=60, help="measurement window (default 60)")
    ap.add_argument("--server-pid", type=int, help="the app server's pid")
    ap.add_argument("--out", help="where the JSON result goes")
    ap.add_argument("--class-code", help="join this class and follow its teacher")
    ap.add_argument("--ready", type=Path, help="--class-code: written once all have joined")
    ap.add_argument("--until", type=Path, help="--class-code: stay until this file exists")
    args = ap.parse_args()
    if chromium_path() is None:
        ap.error("no Chromium (/usr/bin/chromium or $CONVAE_CHROMIUM)")
    if args.class_code:
        if not (args.ready and args.until):
            ap.error("--class-code needs --ready and --until")
        asyncio.run(follow(args.url, args.class_code, args.sessions, args.ready, args.until))
        return
    if not (args.server_pid and args.out):
        ap.error("--server-pid and --out are required (without --class-code)")
    result = asyncio.run(run(args.url, args.sessions, args.seconds, args.server_pid))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
