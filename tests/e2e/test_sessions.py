"""Two people training at the same time in two browsers: each sees only its own model,
its own curves, its own pictures and its own picker entry, and downloads its own
checkpoint (no cross-talk through shared state). The server's training queue lets them
take turns (convae/training_queue.py); each still gets its own run."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from convae.checkpoints import load_checkpoint
from convae.training_queue import default_limit

from .conftest import App
from .test_exports import download, expand

# Keeps the first "you are ... in line" the page showed in window.__inLine: the queue's
# message lasts only while the other training runs, so it is caught when it appears.
_QUEUE_WATCH = """
window.__inLine = null;
new MutationObserver((records) => {
  for (const r of records) {
    const nodes = r.type === 'characterData' ? [r.target] : Array.from(r.addedNodes);
    for (const n of nodes) {
      const m = (n.textContent || '').match(/you are \\w+ in line/);
      if (m && !window.__inLine) window.__inLine = m[0];
    }
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def _set_up(app: App, decoder: str, seed: int, n_train: int) -> None:
    app.page.add_init_script(_QUEUE_WATCH)
    app.open("training")
    if decoder != "transpose":  # the default: clicking it again changes nothing, no rerun
        app.click(decoder)
    expand(app, "More settings")
    app.set_number("Seed", seed)
    app.set_number("Training pictures", min(1024, n_train))
    app.set_number("Epochs", 1)


@pytest.mark.e2e
def test_two_sessions_train_at_once_without_cross_talk(app, app2, app_data):
    _set_up(app, "transpose", 11, app_data["n_train"])
    _set_up(app2, "upsample", 22, app_data["n_train"])
    runs = (app.runs(), app2.runs())
    # Both clicks go out before either run finishes: both sessions' runs are on the
    # server at once, and one waits in the training queue while the other trains (or,
    # where the server runs several trainings at once, both train together).
    app.main.get_by_role("button", name="Train", exact=True).click()
    app2.main.get_by_role("button", name="Train", exact=True).click()
    expect(app.main.get_by_text("Last training run")).to_be_visible(timeout=240_000)
    expect(app2.main.get_by_text("Last training run")).to_be_visible(timeout=240_000)
    app.wait_runs(runs[0])
    app2.wait_runs(runs[1])
    # Names count a session's own runs: each session's first model is its run1.
    queued = [a.page.evaluate("window.__inLine") for a in (app, app2)]
    if default_limit() == 1:  # the server's limit: the same environment as this process
        assert sorted(queued, key=str) == [None, "you are 1st in line"], queued
    else:
        assert queued == [None, None], queued
    mine = {app: "run1-transpose-1ep", app2: "run1-upsample-1ep"}
    seeds = {app: 11, app2: 22}
    for a, other in ((app, app2), (app2, app)):
        a.no_exception()
        picker = a.widget("stMultiSelect", "Models", a.sidebar)
        expect(picker).to_contain_text(f"{mine[a]} (yours)")
        expect(picker).not_to_contain_text(mine[other])
        curves = a.main.locator('[data-testid="stPlotlyChart"]')
        expect(curves).to_have_count(1)
        expect(curves).to_contain_text(mine[a])
        expect(curves).not_to_contain_text(mine[other])
        labels = a.main.locator(".cae-row-label")
        expect(labels).to_have_text(["test pictures", mine[a]])
        # the checkpoint it downloads is its own run: its decoder and its seed
        ck = load_checkpoint(download(a, "Download checkpoint (.pt)"), name="download.pt")
        assert ck.config.decoder == mine[a].split("-")[1]
        assert ck.train_config["seed"] == seeds[a] and len(ck.history) == 1
