"""The Compare page driven with AppTest: it renders, and its controls change what a
teacher sees (classes, A/B toggle, kernel size, snapshot scrubber, per-class table).

Like tests/test_app.py it reads the synthetic 3-class folder tree; the checkpoints
folder holds a plain pair (picked by default) and a pair trained with
``fit(snapshots=3)`` for the "Over training" tab.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from convae.checkpoints import load_checkpoint, save_checkpoint
from convae.metrics import ssim
from convae.train import TrainConfig, fit

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 60
SNAP_KEYS = ["shipped:snap-transpose.pt", "shipped:snap-upsample.pt"]


@pytest.fixture(scope="module")
def compare_env(tiny_data, tiny_models, tmp_path_factory) -> dict:
    ckdir = tmp_path_factory.mktemp("compare_checkpoints")
    for dec, res in tiny_models.items():
        save_checkpoint(
            ckdir / f"shapes-{dec}.pt",
            res.model,
            res.train_config.to_dict(),
            res.history,
            res.test_metrics,
            res.data_fingerprint,
            tiny_data.source,
        )
    for dec in ("transpose", "upsample"):
        res = fit(
            TrainConfig(decoder=dec, epochs=2, batch_size=16, warmup_steps=2),
            tiny_data,
            snapshots=3,
        )
        save_checkpoint(
            ckdir / f"snap-{dec}.pt",
            res.model,
            res.train_config.to_dict(),
            res.history,
            res.test_metrics,
            res.data_fingerprint,
            tiny_data.source,
            snapshots=res.snapshots,
        )
    return {
        "CONVAE_SOURCE": tiny_data.source,
        "CONVAE_CHECKPOINTS": str(ckdir),
        "CONVAE_DATA": str(Path(tiny_data.source[7:]).parent / "root"),
    }


def _start(env: dict, monkeypatch) -> AppTest:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/compare.py").run()
    _ok(at)
    return at


@pytest.fixture
def app(compare_env, monkeypatch) -> AppTest:
    return _start(compare_env, monkeypatch)


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _tab(at: AppTest, name: str) -> AppTest:
    at.session_state["compare_tab"] = name
    at.run()
    _ok(at)
    return at


def _images(at: AppTest) -> list[tuple[str, str]]:
    return [(u, c) for im in at.get("image") for u, c in zip(im.value, im.captions, strict=True)]


def _plotly(at: AppTest, key: str) -> dict:
    chart = next(c for c in at.get("plotly_chart") if key in c.proto.id)
    return json.loads(chart.proto.spec)


def _array(v) -> np.ndarray:
    """A plotly figure's data array, plain or binary-encoded ({"dtype", "bdata", "shape"})."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        return a.reshape([int(d) for d in str(v.get("shape", len(a))).split(",")])
    return np.asarray(v)


def test_page_shows_both_models_side_by_side(app, compare_env, tiny_data):
    imgs = _images(app)
    n = app.slider(key="compare_n").value
    # input, A, B, |A - input|, |B - input| rows (then the close-up pictures).
    assert len(imgs) >= 5 * n
    assert [c for _, c in imgs[:n]] and all(c.endswith("dB") for _, c in imgs[n : 3 * n])
    assert all(c.startswith("cb ") for _, c in imgs[3 * n : 5 * n])
    summary = app.dataframe[0].value
    assert list(summary["model"]) == ["A: shapes-transpose", "B: shapes-upsample"]
    # The figures are those of these models on these images, computed here directly:
    # the first n test images of all classes, PSNR of the mean MSE (peak 1).
    x = tiny_data.test.floats(slice(0, n))
    ckdir = Path(compare_env["CONVAE_CHECKPOINTS"])
    for i, (row, dec) in enumerate(
        zip(summary.to_dict("records"), ("transpose", "upsample"), strict=True)
    ):
        model = load_checkpoint(ckdir / f"shapes-{dec}.pt").model
        with torch.no_grad():
            y = model(x)
        err = (y - x).pow(2).flatten(1).mean(1)  # per-image MSE
        mean = float(err.mean())
        assert row["MSE"] == pytest.approx(mean, rel=1e-4)
        assert row["PSNR (dB)"] == pytest.approx(10 * math.log10(1 / mean), abs=1e-3)
        assert row["SSIM"] == pytest.approx(float(ssim(y, x).mean()), abs=1e-4)
        # and under each reconstruction, that image's own PSNR (one decimal)
        shown = [float(c.split()[0]) for _, c in imgs[(i + 1) * n : (i + 2) * n]]
        assert shown == pytest.approx([10 * math.log10(1 / float(e)) for e in err], abs=0.051)
    per_image = app.dataframe[1].value
    assert len(per_image) == n and "PSNR B - A" in per_image.columns
    spectrum = _plotly(app, "compare_spectrum")
    names = list(dict.fromkeys(t["name"] for t in spectrum["data"]))
    assert names[:3] == ["input", "A: shapes-transpose", "B: shapes-upsample"]
    assert _array(spectrum["data"][0]["x"]).min() > 0  # the DC term is left out
    assert spectrum["layout"]["yaxis"]["type"] == "log"


def test_class_filter_changes_the_images(app):
    before = _images(app)
    assert {"circle", "square", "stripes"} <= {c for _, c in before}
    app.sidebar.multiselect(key="sidebar_classes").set_value(["stripes"]).run()
    _ok(app)
    n = app.slider(key="compare_n").value
    after = _images(app)
    assert {c for _, c in after[:n]} == {"stripes"}
    assert [u for u, _ in after] != [u for u, _ in before]


def test_toggle_switches_between_a_and_b(app):
    app.slider(key="compare_n").set_value(2).run()

    def close_up() -> tuple[str, str]:
        url, cap = next((u, c) for u, c in _images(app) if c.startswith("shapes-"))
        return url, cap

    swipe = close_up()
    assert swipe[1] == "shapes-transpose | shapes-upsample"
    app.segmented_control(key="compare_ab").set_value("A").run()
    a = close_up()
    app.segmented_control(key="compare_ab").set_value("B").run()
    b = close_up()
    assert (a[1], b[1]) == ("shapes-transpose", "shapes-upsample")
    assert len({swipe[0], a[0], b[0]}) == 3  # three different pictures


def test_kernel_size_changes_the_overlap_map(app):
    _tab(app, "Why checkerboards?")

    def counts() -> np.ndarray:
        return _array(_plotly(app, "compare_overlap")["data"][0]["z"])

    uneven = counts()  # kernel 3 by default
    assert uneven.shape == (9, 9) and set(uneven.flatten().tolist()) == {1, 2, 4}
    app.segmented_control(key="compare_kernel").set_value(2).run()
    even = counts()
    assert even.shape == (8, 8) and set(even.flatten().tolist()) == {1}
    assert any("even coverage" in i.value for i in app.info)
    app.segmented_control(key="compare_kernel").set_value(4).run()
    assert counts().shape == (10, 10)


def test_per_class_table_covers_every_class_and_both_models(app):
    _tab(app, "Per class")
    rows = app.dataframe[0].value
    assert len(rows) == 2 * (3 + 1)  # 3 classes + "all", each for both models
    assert set(rows["model"]) == {"shapes-transpose", "shapes-upsample"}
    assert any("computed in" in c.value for c in app.caption)
    bars = _plotly(app, "compare_class_bars")
    assert [t["name"] for t in bars["data"]] == ["shapes-transpose", "shapes-upsample"]
    app.segmented_control(key="compare_metric").set_value("checkerboard").run()
    _ok(app)
    assert "checkerboard" in _plotly(app, "compare_class_bars")["layout"]["yaxis"]["title"]["text"]


def test_snapshot_scrubber_changes_the_shown_snapshot(app):
    _tab(app, "Over training")
    assert app.button(key="compare_train_pair")  # the plain pair has no snapshots
    app.sidebar.multiselect(key="sidebar_models").set_value(SNAP_KEYS).run()
    _ok(app)
    scrub = app.select_slider(key="compare_snapshot")
    assert len(scrub.options) == 4  # step 0 and 3 snapshots
    last = _images(app)
    assert any("step" in c for _, c in last)
    scrub.set_value(0).run()
    _ok(app)
    first = _images(app)
    assert any(c.startswith("A, step 0:") for _, c in first)
    assert [u for u, _ in first] != [u for u, _ in last]
    curves = _plotly(app, "compare_snapshot_curves")
    assert len(_array(curves["data"][0]["x"])) == 4


def test_train_pair_button_adds_a_snapshot_pair(app):
    _tab(app, "Over training")
    app.button(key="compare_train_pair").click().run()
    _ok(app)
    picked = app.sidebar.multiselect(key="sidebar_models").value
    assert picked[:2] == ["trained:1", "trained:2"]
    assert app.select_slider(key="compare_snapshot")  # the scrubber replaces the button


def test_fewer_than_two_models_says_so(app):
    app.sidebar.multiselect(key="sidebar_models").set_value(SNAP_KEYS[:1]).run()
    assert not app.exception
    assert any("Pick two models" in i.value for i in app.info)


@pytest.mark.shared_data
def test_shipped_models_on_the_real_test_split(monkeypatch, shared_root):
    ck = ROOT / "checkpoints"
    if not (ck / "cifar10-transpose.pt").is_file():
        pytest.skip("the shipped checkpoints are missing")
    at = _start(
        {
            "CONVAE_SOURCE": "cifar10",
            "CONVAE_DATA": str(shared_root),
            "CONVAE_CHECKPOINTS": str(ck),
        },
        monkeypatch,
    )
    at.sidebar.multiselect(key="sidebar_models").set_value(
        ["shipped:cifar10-transpose.pt", "shipped:cifar10-upsample.pt"]
    ).run()
    _ok(at)
    summary = at.dataframe[0].value
    assert list(summary["model"]) == ["A: cifar10-transpose", "B: cifar10-upsample"]
    # The first 8 test images: the upsample decoder is the sharper and the smoother one.
    psnr, cb = summary["PSNR (dB)"].tolist(), summary["checkerboard (grey levels)"].tolist()
    assert 15 < psnr[0] < psnr[1] < 35
    assert cb[1] < cb[0]


def test_models_trained_on_the_train_page_carry_snapshots(app):
    app.switch_page("pages/train.py").run()
    app.segmented_control(key="train_decoder").set_value("both")
    app.number_input(key="train_epochs").set_value(1)
    app.number_input(key="train_limit").set_value(32)
    app.button(key="train_start").click().run()
    _ok(app)
    app.switch_page("pages/compare.py").run()
    _tab(app, "Over training")
    assert app.select_slider(key="compare_snapshot").options  # no "train a pair" button
    assert not app.get("button") or not any(
        b.key == "compare_train_pair" for b in app.get("button")
    )


def test_layers_compare_mode_draws_both_models_on_one_scale(app):
    app.switch_page("pages/layers.py").run()
    _ok(app)
    app.select_slider(key="layers_step").set_value("t_conv1").run()
    assert len(app.get("plotly_chart")) == 1
    app.toggle(key="layers_compare").set_value(True).run()
    _ok(app)
    a, b = (json.loads(c.proto.spec) for c in app.get("plotly_chart")[:2])
    assert a["layout"]["title"]["text"] == "shapes-transpose: t_conv1"
    assert b["layout"]["title"]["text"] == "shapes-upsample: conv4"  # same job, other name
    scale = (a["data"][0]["zmin"], a["data"][0]["zmax"])
    assert scale == (b["data"][0]["zmin"], b["data"][0]["zmax"])
    za, zb = _array(a["data"][0]["z"]), _array(b["data"][0]["z"])
    assert za.shape == zb.shape and not np.array_equal(za, zb, equal_nan=True)
