"""How fast the app answers: a rerun after each main interaction, and the cold start.

Interactions are timed with Streamlit's AppTest (the same script runs as in a browser,
without the websocket and the browser's drawing) against warm caches: the first run of
each page is done and thrown away, then every interaction is repeated and the median is
reported. Cold start is a real ``streamlit run`` subprocess (serve.py, as ``./dev app``),
started afresh ``--cold-repeats`` times (default 5) and reported as the median: the time
from launch to /_stcore/health answering, plus the time from opening the page in
headless Chromium (Playwright) until the Overview's last image (the 10th
reconstruction) is drawn; the browser's own launch is not counted. Without Playwright
only the health time is given.

Usage::

    python bench/app_speed.py                 # real data (./data) and ./checkpoints
    python bench/app_speed.py --repeats 7 --source folder:/path/to/tree

Writes bench/results/app_speed.json (every timing, the medians, the load average).

Targets on a 2-core CPU: a layer step <= 0.3 s, cold start <= 6 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import add_out_argument, free_port, wait_healthy, write_results  # noqa: E402

TARGETS = {"layers: next step": 0.3, "cold start: first page rendered": 6.0}


def _median_rerun(at, action: Callable, repeats: int) -> float:
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        action(at, i)
        times.append(time.perf_counter() - t)
        if at.exception:
            raise RuntimeError(f"app raised: {[e.value for e in at.exception]}")
    return statistics.median(times)


def interactions(repeats: int) -> list[tuple[str, float]]:
    """Median seconds of a full rerun after each main interaction, per page."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()  # warm: imports, data cache, shipped models
    rows: list[tuple[str, float]] = []

    def page(name: str) -> None:
        at.switch_page(f"pages/{name}.py").run()
        at.run()  # a second run so caches and figures are warm

    def measure(name: str, action: Callable, n: int = repeats) -> None:
        rows.append((name, _median_rerun(at, action, n)))

    classes = at.sidebar.multiselect(key="sidebar_classes").options
    measure("overview: plain rerun", lambda a, i: a.run())
    measure(
        "overview: change classes",
        lambda a, i: (
            a.sidebar.multiselect(key="sidebar_classes")
            .set_value([classes[i % len(classes)]])
            .run()
        ),
    )
    at.sidebar.multiselect(key="sidebar_classes").set_value([]).run()

    page("layers")
    names = at.select_slider(key="layers_step").options

    def step(a, i):
        # next, and back to the start at the end, so every step is measured
        if a.session_state["layers_step"] == names[-1]:
            a.select_slider(key="layers_step").set_value(names[1]).run()
        else:
            a.button(key="layers_next").click().run()

    measure("layers: next step", step, max(repeats, len(names)))
    measure(
        "layers: slider jump",
        lambda a, i: (
            a.select_slider(key="layers_step").set_value(names[(3 * i + 2) % len(names)]).run()
        ),
    )
    modes = ["model", "channel", "layer"]
    measure(
        "layers: colour mode",
        lambda a, i: a.segmented_control(key="layers_colour").set_value(modes[i % 3]).run(),
    )
    measure(
        "layers: other image",
        lambda a, i: a.number_input(key="layers_index").set_value(i + 1).run(),
    )

    page("reconstructions")
    measure(
        "reconstructions: image count",
        lambda a, i: a.slider(key="recon_n").set_value(8 + 2 * (i % 6)).run(),
    )
    sorts = ["worst", "best", "order"]
    measure(
        "reconstructions: sort",
        lambda a, i: a.segmented_control(key="recon_sort").set_value(sorts[i % 3]).run(),
    )

    page("train")
    measure(
        "train: change a setting",
        lambda a, i: a.number_input(key="train_epochs").set_value(2 + i % 3).run(),
    )
    return rows


def cold_start_once(extra: Sequence[str] = ()) -> dict[str, float]:
    """Launch the app as ``./dev app`` does (serve.py) and time health, then the first
    page's full render. ``extra``: more ``streamlit run`` options.

    Returns:
        {"cold start: server healthy": s, "cold start: first page rendered": s} (the
        second only with Playwright).
    """
    port = free_port()
    env = dict(os.environ)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "serve.py"),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    out: dict[str, float] = {}
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, 120, poll_s=0.05)
        healthy = time.perf_counter() - t0
        out["cold start: server healthy"] = healthy
        rendered = _first_render(port)
        if rendered is not None:
            out["cold start: first page rendered"] = rendered + healthy
    finally:
        proc.terminate()
        proc.wait(10)
    return out


def cold_start(repeats: int = 5, extra: Sequence[str] = ()) -> tuple[list, dict]:
    """``repeats`` fresh starts (issue 13: a median, not one start).

    Returns:
        ([(name, median seconds)], {name: [every start's seconds]}).
    """
    runs: dict[str, list[float]] = {}
    for i in range(repeats):
        for name, sec in cold_start_once(extra).items():
            runs.setdefault(name, []).append(sec)
        print(
            f"cold start {i + 1}/{repeats}: "
            + ", ".join(f"{k.split(': ')[1]} {v[-1]:.2f} s" for k, v in runs.items()),
            flush=True,
        )
    return [(name, statistics.median(v)) for name, v in runs.items()], runs


def _first_render(port: int) -> float | None:
    """Seconds from opening the page in headless Chromium until the Overview's images
    are all drawn, or None without Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("(playwright not installed: cold start measured to health only)")
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        t = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/")
        # The Overview is done when its picture rows are drawn: the app draws pictures
        # as HTML rows (convae/figures/html.py), 8 test pictures over 8 of each of the
        # two picked models' reconstructions, so the 24th <img> of a row is the last.
        page.wait_for_selector(".cae-row img >> nth=23", timeout=120_000)
        elapsed = time.perf_counter() - t
        browser.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="runs per interaction (default 5)")
    ap.add_argument(
        "--cold-repeats", type=int, default=5, help="fresh server starts (default 5; median)"
    )
    ap.add_argument("--source", help="data source for the app ($CONVAE_SOURCE; default cifar10)")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-start timing")
    add_out_argument(ap, "app_speed.json")
    args = ap.parse_args()
    if args.source:
        os.environ["CONVAE_SOURCE"] = args.source
    os.chdir(ROOT)
    load_before = os.getloadavg()
    rows, cold_runs = ([], {}) if args.no_cold else cold_start(args.cold_repeats)
    rows += interactions(args.repeats)
    print(f"\n{'interaction':40s} {'seconds':>8s} {'target':>7s}")
    for name, sec in rows:
        target = TARGETS.get(name)
        mark = (
            "" if target is None else (f"<= {target:.1f}" + (" ok" if sec <= target else " MISSED"))
        )
        print(f"{name:40s} {sec:8.3f} {mark}")
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": vars(args),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "medians_s": dict(rows),
        "targets_s": TARGETS,
        "cold_start_runs_s": cold_runs,
    }
    write_results(args.out, result, indent=1)


if __name__ == "__main__":
    main()
