"""The Streamlit app driven with AppTest: every page renders, and the main widgets change
what a user sees (class filter, layer stepper, colour mode, training, uploads).

The app reads a synthetic 3-class folder tree (``$CONVAE_SOURCE=folder:...``) and two
tiny checkpoints written here (``$CONVAE_CHECKPOINTS``), so no real data set is needed.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from convae.checkpoints import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 60  # seconds per run: a first run imports torch and plotly on a busy 2-core box


@pytest.fixture(scope="module")
def app_env(tiny_data, tiny_models, tmp_path_factory) -> dict:
    """Environment for the app: the tiny folder source and a checkpoints dir."""
    ckdir = tmp_path_factory.mktemp("app_checkpoints")
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
    return {
        "CONVAE_SOURCE": tiny_data.source,
        "CONVAE_CHECKPOINTS": str(ckdir),
        # The loader's disk cache for this tree lives next to it (see conftest).
        "CONVAE_DATA": str(Path(tiny_data.source[7:]).parent / "root"),
    }


@pytest.fixture
def app(app_env, monkeypatch) -> AppTest:
    for k, v in app_env.items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _open(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _plotly(at: AppTest, index: int = 0) -> dict:
    charts = at.get("plotly_chart")
    return json.loads(charts[index].proto.spec)


def _images(at: AppTest) -> list[tuple[str, str]]:
    """(url, caption) of every image on the page, in order."""
    return [(u, c) for im in at.get("image") for u, c in zip(im.value, im.captions, strict=True)]


def _png(size: int = 40) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size * 2, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------- tests


@pytest.mark.parametrize("page", ["overview", "reconstructions", "layers", "train"])
def test_every_page_renders_with_the_shared_sidebar(app, page):
    _open(app, page)
    assert not app.error, [e.value for e in app.error]
    picker = app.sidebar.multiselect(key="sidebar_models")
    # Both fixture models are picked by default (one per decoder) and the data set shows.
    assert sorted(picker.value) == ["shipped:shapes-transpose.pt", "shipped:shapes-upsample.pt"]
    assert any("train" in c.value and "test images" in c.value for c in app.sidebar.caption)


def test_choices_persist_across_pages(app):
    app.sidebar.multiselect(key="sidebar_classes").set_value(["square"]).run()
    _open(app, "layers")
    assert app.selectbox(key="layers_class").value == "square"  # follows the sidebar
    app.button(key="layers_next").click().run()
    _open(app, "reconstructions")
    app.slider(key="recon_n").set_value(5).run()
    _open(app, "layers")  # page widgets come back as they were left
    assert app.session_state["layers_step"] == "relu1"
    _open(app, "reconstructions")
    assert app.slider(key="recon_n").value == 5
    assert app.sidebar.multiselect(key="sidebar_classes").value == ["square"]


def test_class_filter_changes_the_images(app):
    before = _images(app)[1:]  # after the architecture diagram
    assert {c for _, c in before[:3]} == {"circle", "square", "stripes"}
    app.sidebar.multiselect(key="sidebar_classes").set_value(["stripes"]).run()
    after = _images(app)[1:]
    originals = [c for _, c in after if c != "reconstruction"]
    assert originals and set(originals) == {"stripes"}
    assert [u for u, _ in after] != [u for u, _ in before]  # other pictures, not captions


def test_overview_shows_the_architecture(app):
    table = next(m.value for m in app.markdown if m.value.startswith("| step |"))
    assert "| pool2 **(code)** | MaxPool2d(2, 2) | 4 x 8 x 8 | 0 |" in table
    assert "| conv1 | Conv2d(3, 16, 3, pad 1) | 16 x 32 x 32 | 448 |" in table
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Code"] == "256 values" and metrics["Compression"] == "12x smaller"
    assert metrics["Parameters"] in ("1,495", "2,055")


def test_layer_stepper_changes_the_maps(app):
    _open(app, "layers")
    before = _plotly(app)
    assert "conv1" in before["layout"]["title"]["text"]
    app.button(key="layers_next").click().run()
    after = _plotly(app)
    assert app.session_state["layers_step"] == "relu1"
    assert "relu1" in after["layout"]["title"]["text"]
    assert after["data"][0]["z"] != before["data"][0]["z"]
    app.select_slider(key="layers_step").set_value("pool2").run()
    code = _plotly(app)
    assert "4 channels of 8x8" in code["layout"]["title"]["text"]
    app.button(key="layers_prev").click().run()
    assert app.session_state["layers_step"] == "relu2"
    stats = app.dataframe[0].value
    assert list(stats.columns) == ["channel", "min", "max", "mean", "zeros"]
    assert (stats["zeros"].between(0, 1)).all()  # after a ReLU the share is reported


def test_colour_mode_changes_the_scale(app):
    _open(app, "layers")
    app.select_slider(key="layers_step").set_value("relu1").run()

    def scale() -> tuple[float, float]:
        trace = _plotly(app)["data"][0]
        return trace["zmin"], trace["zmax"]

    per_layer = scale()
    app.segmented_control(key="layers_colour").set_value("model").run()
    whole_model = scale()
    app.segmented_control(key="layers_colour").set_value("channel").run()
    per_channel = scale()
    assert per_channel == (0, 1)
    assert whole_model != per_layer
    # The whole model spans every step, so it covers at least this layer's values.
    assert whole_model[1] >= per_layer[1]


def test_non_image_upload_gives_an_error_and_the_page_keeps_working(app):
    _open(app, "layers")
    app.radio(key="layers_source").set_value("your photo").run()
    app.file_uploader(key="layers_upload").upload(
        "notes.png", b"this is not an image", "image/png"
    ).run()
    assert not app.exception
    assert any("not an image" in e.value for e in app.error)
    app.button(key="layers_next").click().run()  # still usable: falls back to a test image
    assert not app.exception and app.get("plotly_chart")
    app.file_uploader(key="layers_upload").set_value(("photo.png", _png(), "image/png")).run()
    assert not app.error
    assert any("cropped and resized to 32px" in c for _, c in _images(app))


def test_bad_checkpoint_upload_is_an_error_not_a_crash(app):
    app.sidebar.file_uploader(key="sidebar_upload").upload(
        "model.pt", b"garbage", "application/octet-stream"
    ).run()
    assert not app.exception
    assert any("not a readable PyTorch file" in e.value for e in app.sidebar.error)


def test_reconstructions_sort_and_psnr(app):
    _open(app, "reconstructions")
    app.slider(key="recon_n").set_value(6).run()
    captions = [c for _, c in _images(app)]
    assert len(captions) == 3 * 6  # originals + one row per picked model
    first_model = [float(c.split()[0]) for c in captions[6:12]]
    app.segmented_control(key="recon_sort").set_value("worst").run()
    worst = [float(c.split()[0]) for _, c in _images(app)[6:12]]
    assert worst == sorted(worst) and worst[0] <= min(first_model)
    assert app.get("download_button")


def test_training_adds_a_model_to_the_picker(app, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVAE_CHECKPOINTS", str(tmp_path))
    _open(app, "train")
    app.number_input(key="train_epochs").set_value(1)
    app.number_input(key="train_limit").set_value(24)
    app.selectbox(key="train_batch").set_value(16)
    app.button(key="train_start").click().run()
    assert not app.exception, [e.value for e in app.exception]
    picker = app.sidebar.multiselect(key="sidebar_models")
    assert picker.value[0] == "trained:1"  # the new model is picked first
    assert any(
        o.startswith("transpose-mse-1ep-seed0") and "trained here" in o for o in picker.options
    )
    assert app.get("plotly_chart")  # the curves of the run
    # Save under an invalid, then a valid name.
    app.text_input(key="train_save_name").set_value("bad name/..").run()
    app.button(key="train_save").click().run()
    assert any("Give a name" in e.value for e in app.error)
    app.text_input(key="train_save_name").set_value("my-model").run()
    app.button(key="train_save").click().run()
    assert (tmp_path / "my-model.pt").is_file()


def test_both_decoders_train_as_a_pair(app):
    _open(app, "train")
    app.segmented_control(key="train_decoder").set_value("both")
    app.number_input(key="train_epochs").set_value(1)
    app.number_input(key="train_limit").set_value(16)
    app.button(key="train_start").click().run()
    assert not app.exception
    assert [r["label"].split("-")[0] for r in app.session_state["train_last"]] == [
        "transpose",
        "upsample",
    ]
    curves = _plotly(app)
    assert len({t["name"] for t in curves["data"]}) == 2  # overlaid, one colour per decoder


def test_app_is_useful_without_a_data_set(app_env, monkeypatch, tmp_path):
    for k, v in app_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("CONVAE_SOURCE", f"folder:{tmp_path / 'nowhere'}")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("does not exist" in e.value for e in at.sidebar.error)
    assert any(m.value.startswith("| step |") for m in at.markdown)  # architecture shows
    _open(at, "layers")
    at.file_uploader(key="layers_upload").set_value(("me.png", _png(), "image/png")).run()
    assert not at.exception and at.get("plotly_chart")


def test_default_models_are_the_plain_autoencoders():
    """Task checkpoints (cifar10-colorize-*, ...) sort first by name but are not the default."""
    from pathlib import Path

    from convae.checkpoints import load_checkpoint
    from pages.common import ModelChoice, _default_selection

    ckdir = Path(__file__).resolve().parents[1] / "checkpoints"
    models = {}
    for f in sorted(ckdir.glob("cifar10-*.pt")):
        models[f.name] = ModelChoice(f.name, f.stem, "shipped", load_checkpoint(f))
    assert "cifar10-colorize-transpose.pt" in models  # sorts before the plain ones
    assert _default_selection(models, None) == ["cifar10-transpose.pt", "cifar10-upsample.pt"]
