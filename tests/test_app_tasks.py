"""The Uses pages (Denoise, Repair, Code, Style) driven with AppTest: each renders on the
synthetic folder tree with tiny plain and task checkpoints, and its main control changes
what the user sees; bad uploads give an error while the page keeps working."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from .apptools import array, html_text, pictures, plotly
from .fixtures import save_tiny_models, save_trained, train_tiny
from .test_app import _open

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 90  # seconds per run: a first run imports torch and plotly on a busy 2-core box
TASKS = {
    "denoise": "gauss:0-0.4,saltpepper:0-0.3",
    "inpaint": "mask:4-16",
    "colorize": "grey,drop:any",
}


@pytest.fixture(scope="module")
def tasks_env(tiny_data, tiny_models, tmp_path_factory) -> dict:
    """Plain models for both decoders and one tiny task model per task (transpose)."""
    ckdir = save_tiny_models(tmp_path_factory.mktemp("task_checkpoints"), tiny_models, tiny_data)
    for task, spec in TASKS.items():
        res = train_tiny(tiny_data, decoder="transpose", epochs=1, corruption=spec)
        save_trained(ckdir / f"shapes-{task}-transpose.pt", res, tiny_data)
    return {
        "CONVAE_SOURCE": tiny_data.source,
        "CONVAE_CHECKPOINTS": str(ckdir),
        "CONVAE_DATA": str(Path(tiny_data.source[7:]).parent / "root"),
    }


@pytest.fixture
def app(tasks_env, monkeypatch) -> AppTest:
    for k, v in tasks_env.items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _images(at: AppTest) -> list[str]:
    return [p.png for p in pictures(at)]


def _captions(at: AppTest) -> list[str]:
    return [p.caption for p in pictures(at)]


def _plotly(at: AppTest, key: str) -> dict:
    return plotly(at, key)


def test_denoise_shows_plain_and_denoiser_and_strength_changes_them(app):
    _open(app, "denoise")
    assert not app.error
    pics = pictures(app)
    labels = {
        p.alt.split(" rebuilt by ")[1].split(" (")[0] for p in pics if " rebuilt by " in p.alt
    }
    assert {"plain: shapes-transpose", "denoiser: shapes-denoise-transpose"} <= labels, labels
    # Opens where the denoiser should win: salt and pepper on a fifth of the pixels.
    assert app.segmented_control(key="denoise_kind").value == "saltpepper"
    assert app.slider(key="denoise_strength_saltpepper").value == 0.2
    summary = html_text(app)
    assert "the denoiser gets" in summary and "the noisy input" in summary
    curve = _plotly(app, "denoise_curve")
    names = [t["name"] for t in curve["data"]]
    assert {"noisy input", "plain transpose", "denoiser transpose", "plain upsample"} <= set(names)
    before = (_images(app), summary)
    app.slider(key="denoise_strength_saltpepper").set_value(0.45).run()
    _ok(app)
    assert html_text(app) != before[1] and _images(app) != before[0]
    app.segmented_control(key="denoise_kind").set_value("gauss").run()
    _ok(app)
    assert "sigma" in _plotly(app, "denoise_curve")["layout"]["xaxis"]["title"]["text"]
    # The upsample decoder has no denoiser here: a clear warning, the page still works.
    app.selectbox(key="denoise_decoder").set_value("upsample").run()
    _ok(app)
    assert any("No denoiser with the upsample decoder" in w.value for w in app.warning)


def test_repair_mask_placement_and_colour_modes(app):
    _open(app, "repair")
    assert not app.error
    caps = _captions(app)
    assert any(c.startswith("repair: shapes-inpaint-transpose") and "hole" in c for c in caps)
    table = app.dataframe[0].value
    assert list(table["output"]) == ["corrupted input", "plain transpose", "inpaint transpose"]
    before_img, before_tab = _images(app), table["PSNR of the hole (dB)"].tolist()
    app.slider(key="repair_left").set_value(20).run()
    _ok(app)
    assert _images(app)[1] != before_img[1]  # the hole moved in the input picture
    assert app.dataframe[0].value["PSNR of the hole (dB)"].tolist() != before_tab
    app.segmented_control(key="repair_mode").set_value("colour").run()
    _ok(app)
    assert any(c.startswith("repair: shapes-colorize-transpose") for c in _captions(app))
    grey = _images(app)
    app.radio(key="repair_colour").set_value("drop:g").run()
    _ok(app)
    assert _images(app)[1] != grey[1]
    assert list(app.dataframe[0].value.columns) == ["output", "PSNR whole (dB)"]


def test_code_edit_interpolation_and_ledger(app):
    _open(app, "code")
    assert not app.error
    code = [p for p in pictures(app) if p.alt.startswith("edited code, channel")]
    assert len(code) == 4 and code[0].array().shape[:2] == (8, 8)
    edited_before = _images(app)[2]
    assert any(c.value.startswith("The code after your edit: 0 of 256") for c in app.caption)
    app.toggle(key="code_paint").set_value(True).run()
    app.slider(key="code_value").set_value(app.slider(key="code_value").max).run()
    _ok(app)
    assert _images(app)[2] != edited_before  # decoded from the painted code
    assert any(c.value.startswith("The code after your edit: 4 of 256") for c in app.caption)
    ledger = app.dataframe[0].value
    assert list(ledger["bytes"][:4]) == [3072, 1024, 512, 264]
    assert ledger["stored as"].iloc[-1].startswith("JPEG")
    assert ledger["vs raw"].iloc[3] == f"{3072 / 264:.1f}x smaller"
    frames = len([p for p in pictures(app) if "pixel mix" in p.alt])
    app.slider(key="code_frames").set_value(4).run()
    _ok(app)
    assert len([p for p in pictures(app) if "pixel mix" in p.alt]) == frames - 4
    rd = _plotly(app, "code_rd")
    assert [t["name"] for t in rd["data"]][:3] == [
        "autoencoder code",
        "JPEG (scan only)",
        "JPEG (whole file)",
    ]


def test_style_grams_and_transfer_runs(app):
    _open(app, "style")
    assert not app.error
    gram = _plotly(app, "style_gram")
    assert "relu1 (16 x 16)" in gram["layout"]["title"]["text"]
    app.selectbox(key="style_gram_layer").set_value("pool2").run()
    _ok(app)
    assert "pool2 (4 x 4)" in _plotly(app, "style_gram")["layout"]["title"]["text"]
    app.slider(key="style_steps").set_value(20).run()
    app.button(key="style_run").click().run()
    _ok(app)
    assert not app.error
    assert "result" in _captions(app)
    loss = _plotly(app, "style_loss")
    total = array(loss["data"][0]["y"])
    assert len(total) == 20 and total[-1] < total[0]


def test_style_bad_upload_gives_an_error_and_the_page_keeps_working(app):
    _open(app, "style")
    app.file_uploader(key="style_style_upload").upload(
        "notes.png", b"not an image", "image/png"
    ).run()
    _ok(app)
    assert any("not an image" in e.value for e in app.error)
    app.selectbox(key="style_gram_layer").set_value("conv2").run()  # still works
    _ok(app)
