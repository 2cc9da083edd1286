"""Two people training at the same time in two browsers: each sees only its own model,
its own curves and its own picker entry (no cross-talk through shared state)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import App


def _set_up(app: App, decoder: str, seed: int, n_train: int) -> None:
    app.open("training")
    if decoder != "transpose":  # the default: clicking it again changes nothing, no rerun
        app.click(decoder)
    app.set_number("Seed", seed)
    app.set_number("Training images", min(1024, n_train))
    app.set_number("Epochs", 1)


@pytest.mark.e2e
def test_two_sessions_train_at_once_without_cross_talk(app, app2, app_data):
    _set_up(app, "transpose", 11, app_data["n_train"])
    _set_up(app2, "upsample", 22, app_data["n_train"])
    runs = (app.runs(), app2.runs())
    # Both clicks go out before either run finishes: the two fits overlap on the server.
    app.main.get_by_role("button", name="Train", exact=True).click()
    app2.main.get_by_role("button", name="Train", exact=True).click()
    expect(app.main.get_by_text("Last training run")).to_be_visible(timeout=120_000)
    expect(app2.main.get_by_text("Last training run")).to_be_visible(timeout=120_000)
    app.wait_runs(runs[0])
    app2.wait_runs(runs[1])
    mine = {app: "transpose-mse-1ep-seed11", app2: "upsample-mse-1ep-seed22"}
    for a, other in ((app, app2), (app2, app)):
        a.no_exception()
        picker = a.widget("stMultiSelect", "Models", a.sidebar)
        expect(picker).to_contain_text(mine[a])
        expect(picker).not_to_contain_text(mine[other])
        curves = a.main.locator('[data-testid="stPlotlyChart"]')
        expect(curves).to_have_count(1)
        expect(curves).to_contain_text(mine[a])
        expect(curves).not_to_contain_text(mine[other])
