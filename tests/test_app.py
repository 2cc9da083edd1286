"""The Streamlit app driven with AppTest: every page renders, and the main widgets change
what a user sees (class filter, layer stepper, colour mode, training, uploads).

The app reads a synthetic 3-class folder tree (``$CONVAE_SOURCE=folder:...``) and two
tiny checkpoints written here (``$CONVAE_CHECKPOINTS``), so no real data set is needed.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from .apptools import (
    APP,
    TIMEOUT,
    array,
    html_text,
    open_page,
    pictures,
    plotly,
    png_bytes,
    start,
)
from .fixtures import save_tiny_models


@pytest.fixture(scope="module")
def app_env(tiny_data, tiny_models, tmp_path_factory) -> dict:
    """Environment for the app: the tiny folder source and a checkpoints dir."""
    ckdir = save_tiny_models(tmp_path_factory.mktemp("app_checkpoints"), tiny_models, tiny_data)
    return {
        "CONVAE_SOURCE": tiny_data.source,
        "CONVAE_CHECKPOINTS": str(ckdir),
        # The loader's disk cache for this tree lives next to it (see conftest).
        "CONVAE_DATA": str(Path(tiny_data.source[7:]).parent / "root"),
    }


@pytest.fixture
def app(app_env, monkeypatch) -> AppTest:
    return start(app_env, monkeypatch)


_open = open_page  # test_app_tasks.py and test_links.py import it under this name


def _original(p) -> bool:
    return p.alt.startswith("test picture") and "rebuilt" not in p.alt


def _maps(at: AppTest) -> list:
    """The Layers maps of the shown step (the block titled '<step>: channel maps')."""
    return [p for p in pictures(at) if p.alt.split(",")[0] == at.session_state["layers_step"]]


# ---------------------------------------------------------------------- tests


@pytest.mark.parametrize("page", ["overview", "reconstructions", "layers", "train"])
def test_every_page_renders_with_the_shared_sidebar(app, page):
    _open(app, page)
    assert not app.error, [e.value for e in app.error]
    picker = app.sidebar.multiselect(key="sidebar_models")
    # Both fixture models are picked by default (one per decoder) and the data set shows.
    assert sorted(picker.value) == ["shipped:shapes-transpose.pt", "shipped:shapes-upsample.pt"]
    assert any(
        "training and" in c.value and "test pictures" in c.value for c in app.sidebar.caption
    )
    if page != "train":
        assert pictures(app), "every Explore page shows pictures"


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


def test_class_filter_changes_the_pictures(app):
    before = pictures(app)
    originals = [p.caption for p in before if _original(p)]
    assert {"circle", "square", "stripes"} <= set(originals)
    app.sidebar.multiselect(key="sidebar_classes").set_value(["stripes"]).run()
    after = pictures(app)
    assert {p.caption for p in after if _original(p)} == {"stripes"}
    assert [p.png for p in after] != [p.png for p in before]  # other pictures, not captions


def test_overview_shows_pictures_first_then_the_architecture(app):
    pics = pictures(app)
    # originals, then one row per picked model with its PSNR under each picture
    rebuilt = [p for p in pics if "rebuilt by" in p.alt]
    assert len(rebuilt) == 2 * len([p for p in pics if _original(p)])
    assert all(p.caption.endswith(" dB") for p in rebuilt)
    assert "256 numbers" in html_text(app)
    table = next(m.value for m in app.markdown if m.value.startswith("| step |"))
    assert "| pool2 **(code)** | MaxPool2d(2, 2) | 4 x 8 x 8 | 0 |" in table
    assert "| conv1 | Conv2d(3, 16, 3, pad 1) | 16 x 32 x 32 | 448 |" in table
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Code"] == "256 numbers" and metrics["Compression"] == "12x smaller"
    assert metrics["Weights"] in ("1,495", "2,055")


def test_layer_stepper_changes_the_maps(app):
    _open(app, "layers")
    assert app.session_state["layers_step"] == "conv1"
    before = _maps(app)
    assert len(before) == 16  # conv1 has 16 channels
    app.button(key="layers_next").click().run()
    after = _maps(app)
    assert app.session_state["layers_step"] == "relu1"
    assert [p.png for p in after] != [p.png for p in before]
    app.select_slider(key="layers_step").set_value("pool2").run()
    code = _maps(app)
    assert len(code) == 4 and code[0].array().shape[:2] == (8, 8)
    app.button(key="layers_prev").click().run()
    assert app.session_state["layers_step"] == "relu2"
    app.toggle(key="layers_values").set_value(True).run()
    stats = app.dataframe[0].value
    assert list(stats.columns) == ["channel", "min", "max", "mean", "zeros"]
    assert (stats["zeros"].between(0, 1)).all()  # after a ReLU the share is reported


def test_last_step_shows_the_rebuilt_picture_next_to_the_input(app):
    _open(app, "layers")
    top = pictures(app)[:2]
    assert top[0].alt.startswith("input:") and "rebuilt by" in top[1].alt
    app.select_slider(key="layers_step").set_value("sigmoid").run()
    planes = _maps(app)
    assert [p.caption for p in planes] == ["red plane", "green plane", "blue plane"]
    assert "colour planes" in html_text(app)  # the legend says what the colours mean


def test_colour_mode_changes_the_legend(app):
    _open(app, "layers")
    app.select_slider(key="layers_step").set_value("relu1").run()

    def ends() -> tuple[float, float]:
        """The two numbers at the ends of the colour bar."""
        block = next(h.proto.body for h in app.get("html") if "cae-legend" in h.proto.body)
        text = re.sub(r"<[^>]+>", " ", block[block.index('<div class="cae-legend"') :])
        nums = text[: text.index("Colours (")].split()
        return float(nums[0]), float(nums[1])

    per_layer = ends()
    maps_layer = [p.png for p in _maps(app)]
    app.segmented_control(key="layers_colour").set_value("model").run()
    whole_model = ends()
    assert [p.png for p in _maps(app)] != maps_layer
    app.segmented_control(key="layers_colour").set_value("channel").run()
    assert "smallest" in html_text(app) and "largest" in html_text(app)
    # The whole model spans every step, so it covers at least this layer's values.
    assert whole_model[1] > per_layer[1] and whole_model[0] <= per_layer[0]


def test_non_image_upload_gives_an_error_and_the_page_keeps_working(app):
    _open(app, "layers")
    app.radio(key="layers_source").set_value("your photo").run()
    app.file_uploader(key="layers_upload").upload(
        "notes.png", b"this is not an image", "image/png"
    ).run()
    assert not app.exception
    assert any("not an image" in e.value for e in app.error)
    app.button(key="layers_next").click().run()  # still usable: falls back to a test picture
    assert not app.exception and _maps(app)
    app.file_uploader(key="layers_upload").set_value(("photo.png", png_bytes(), "image/png"))
    app.run()
    assert not app.error
    assert any("cropped and resized to 32px" in p.alt for p in pictures(app))


def test_bad_checkpoint_upload_is_an_error_not_a_crash(app):
    app.sidebar.file_uploader(key="sidebar_upload").upload(
        "model.pt", b"garbage", "application/octet-stream"
    ).run()
    assert not app.exception
    assert any("not a readable PyTorch file" in e.value for e in app.sidebar.error)


def test_reconstructions_sort_and_psnr(app):
    _open(app, "reconstructions")
    app.slider(key="recon_n").set_value(6).run()
    pics = pictures(app)
    assert len(pics) == 3 * 6  # originals + one row per picked model
    first_model = [float(p.caption.split()[0]) for p in pics[6:12]]
    app.segmented_control(key="recon_sort").set_value("worst").run()
    worst = [float(p.caption.split()[0]) for p in pictures(app)[6:12]]
    assert worst == sorted(worst) and worst[0] <= min(first_model)
    assert app.get("download_button")


def _train(at: AppTest, epochs: int = 1, limit: int = 24, seed: int | None = None) -> None:
    at.number_input(key="train_epochs").set_value(epochs)
    at.number_input(key="train_limit").set_value(limit)
    at.selectbox(key="train_batch").set_value(16)
    if seed is not None:
        at.number_input(key="train_seed").set_value(seed)
    at.button(key="train_start").click().run()
    assert not at.exception, [e.value for e in at.exception]


def test_a_training_waits_for_its_turn_in_the_servers_queue(app):
    """Other trainings hold every slot of the server's queue: Train waits in line (the
    queue lists it, 1st), trains once a slot is free, and frees its slot when done."""
    from convae.training_queue import training_queue

    _open(app, "train")
    queue = training_queue()
    others = [queue.ticket("another student") for _ in range(queue.limit)]  # every slot
    assert all(t.running for t in others)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (_train(app), done.set()), daemon=True)
    try:
        worker.start()
        deadline = time.monotonic() + 30
        while queue.snapshot()["waiting"] != ["train: transpose"]:
            assert time.monotonic() < deadline, queue.snapshot()
            time.sleep(0.05)
        time.sleep(1.0)
        assert not done.is_set()  # still waiting: no training while the slot is taken
        assert queue.snapshot()["running"] == ["another student"] * queue.limit
    finally:
        for t in others:
            t.release()
    worker.join(60)
    assert done.is_set()
    assert queue.snapshot() == {"limit": queue.limit, "running": [], "waiting": []}
    assert app.session_state["train_last"][0]["epochs_done"] == 1


@pytest.mark.parametrize(
    ("name", "value"), [("CONVAE_MAX_TRAININGS", "many"), ("CONVAE_TRAINING_NICE", "99")]
)
def test_a_wrong_training_setting_is_said_and_nothing_trains(app, monkeypatch, name, value):
    """A server started with a training setting that makes no sense: Train says which
    one and why, trains nothing, and the page keeps working."""
    monkeypatch.setenv(name, value)
    monkeypatch.setattr("convae.training_queue._QUEUE", None)  # made afresh, as at a server start
    _open(app, "train")
    _train(app)
    errors = [e.value for e in app.error]
    assert any("training settings are wrong" in e and name in e for e in errors), errors
    picker = app.sidebar.multiselect(key="sidebar_models")
    assert not any("(yours)" in o for o in picker.options), picker.options


def test_training_adds_a_model_without_changing_the_picks(app):
    _open(app, "train")
    before = list(app.sidebar.multiselect(key="sidebar_models").value)
    _train(app)
    picker = app.sidebar.multiselect(key="sidebar_models")
    # The picks pages depend on stay first, in their order; the new model follows them.
    assert picker.value == [*before, "trained:1"]
    assert any(o.startswith("run1-transpose-1ep") and "(yours)" in o for o in picker.options)
    assert app.get("plotly_chart")  # the curves of the run
    trained = [p for p in pictures(app) if "rebuilt by run1" in p.alt]
    assert len(trained) == 8  # the test pictures as the trained model rebuilds them
    # A one-epoch run still draws a test-PSNR line, measured at several steps, not one dot
    # (this tiny run has only 2 steps).
    psnr = [t for t in plotly(app)["data"] if t.get("xaxis") == "x2"][0]
    assert len(array(psnr["x"])) == 2


def test_train_page_opens_on_the_pictures_it_will_rebuild(app, tiny_data):
    _open(app, "train")
    shown = pictures(app)
    want = tiny_data.test.floats(slice(0, len(shown)))
    assert len(shown) == min(8, len(tiny_data.test))
    assert [p.alt for p in shown][:2] == [
        f"test picture {i}: {tiny_data.test.classes[int(tiny_data.test.labels[i])]}"
        for i in range(2)
    ]
    for p, x in zip(shown, want, strict=True):
        assert (p.array() == (x * 255).round().byte().permute(1, 2, 0).numpy()).all()


def test_keep_picker_offers_the_newest_run_first(app):
    _open(app, "train")
    _train(app, seed=0)
    _train(app, seed=1)
    keep = app.selectbox(key="train_keep_model")
    assert keep.value == "trained:2" and keep.options[0].startswith("run2")


def test_saving_for_everyone_needs_the_teacher_key(app, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVAE_CHECKPOINTS", str(tmp_path))
    monkeypatch.setenv("CONVAE_TEACHER_KEY", "save-test-teacher-key-01234")
    monkeypatch.setenv("CONVAE_TEACHER", "1")  # the old server-wide switch opens nothing
    _open(app, "train")
    _train(app)
    assert not [b for b in app.button if b.key == "train_save"]  # download only
    assert any("sign in with the teacher key" in c.value for c in app.caption)
    app.sidebar.text_input(key="class_key_side").set_value("save-test-teacher-key-01234")
    app.sidebar.button(key="class_sign_in_side").click().run()
    app.text_input(key="train_save_name").set_value("bad name/..").run()
    app.button(key="train_save").click().run()
    assert any("Give a name" in e.value for e in app.error)
    app.text_input(key="train_save_name").set_value("my-model").run()
    app.button(key="train_save").click().run()
    assert (tmp_path / "my-model.pt").is_file()


def test_both_decoders_train_as_a_pair(app):
    _open(app, "train")
    app.segmented_control(key="train_decoder").set_value("both")
    _train(app, limit=16)
    assert [r["label"].split("-")[1] for r in app.session_state["train_last"]] == [
        "transpose",
        "upsample",
    ]
    curves = plotly(app)
    assert len({t["name"] for t in curves["data"]}) == 2  # overlaid, one colour per decoder


def test_app_is_useful_without_a_data_set(app_env, monkeypatch, tmp_path):
    env = {**app_env, "CONVAE_SOURCE": f"folder:{tmp_path / 'nowhere'}"}
    at = start(env, monkeypatch)
    assert any("not on this machine" in e.value for e in at.sidebar.error)
    assert any("No pictures to show" in i.value for i in at.info)
    _open(at, "layers")
    at.file_uploader(key="layers_upload").set_value(("me.png", png_bytes(), "image/png")).run()
    assert not at.exception
    assert any("rebuilt by" in p.alt for p in pictures(at))


def test_a_data_cache_that_cannot_be_written_is_said_in_the_sidebar(app_env, monkeypatch, tmp_path):
    """A full or blocked disk: the pictures come from memory and the sidebar says why the
    next start will decode again (DataSet.notice), instead of failing or keeping quiet."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "cache").write_text("a file where the cache folder should be")
    at = start({**app_env, "CONVAE_DATA": str(root)}, monkeypatch)
    notes = [c.value for c in at.sidebar.caption if "could not be written" in c.value]
    assert len(notes) == 1 and "FileExistsError" in notes[0]
    assert [p for p in pictures(at) if _original(p)]  # and the pictures are there


def test_a_fresh_machine_opens_on_the_built_in_sample(app_env, monkeypatch, tmp_path):
    """No data set, no network, no CONVAE_SOURCE: real CIFAR-10 pictures from the sample."""
    env = {
        "CONVAE_DATA": str(tmp_path / "empty"),
        "CONVAE_OFFLINE": "1",
        "CONVAE_CHECKPOINTS": str(Path(APP).parent / "checkpoints"),
    }
    monkeypatch.delenv("CONVAE_SOURCE", raising=False)
    at = start(env, monkeypatch)
    assert at.sidebar.selectbox(key="sidebar_source").value == "cifar10-sample"
    originals = [p for p in pictures(at) if _original(p)]
    assert [p.caption for p in originals[:3]] == ["airplane", "automobile", "bird"]
    assert any("built-in sample" in i.value for i in at.sidebar.info)
    assert any("No network here" in c.value for c in at.sidebar.caption)


def test_presentation_mode_from_a_link_hides_the_details(app_env, monkeypatch):
    for k, v in app_env.items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["present"] = "1"
    at.run()
    assert at.sidebar.toggle(key="ui_present").value is True
    css = " ".join(h.proto.body for h in at.get("html") if "<style>" in h.proto.body)
    assert "html {font-size: 22px;}" in css
    assert not at.main.expander  # advanced tables and charts are left out
    # The sidebar's pickers fold into one expander, so the sidebar does not scroll.
    assert [e.label for e in at.sidebar.expander] == ["Join a class", "Data set, models, classes"]
    assert at.sidebar.multiselect(key="sidebar_models").value  # still there, folded
    at.sidebar.toggle(key="ui_present").set_value(False).run()
    assert at.main.expander and "22px" not in " ".join(h.proto.body for h in at.get("html"))
    assert "Data set, models, classes" not in [e.label for e in at.sidebar.expander]


def test_default_models_are_the_plain_autoencoders():
    """Task checkpoints (cifar10-colorize-*, ...) sort first by name but are not the default."""
    from convae.catalog import ModelEntry, default_selection
    from convae.checkpoints import load_checkpoint

    ckdir = Path(__file__).resolve().parents[1] / "checkpoints"
    models = {}
    for f in sorted(ckdir.glob("cifar10-*.pt")):
        models[f.name] = ModelEntry(f.name, f.stem, "shipped", load_checkpoint(f))
    assert "cifar10-colorize-transpose.pt" in models  # sorts before the plain ones
    assert default_selection(models, None) == ["cifar10-transpose.pt", "cifar10-upsample.pt"]
