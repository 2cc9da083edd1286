"""The Code space page driven with AppTest: the maps of the test split's codes and raw
pixels, a selection's pictures, the neighbours, the queued probe and channel report, a
link's view, a too-small split's sentence, and a 1-channel 28x28 model (4x7x7 code).

The app reads the tiny synthetic folder tree (3 classes, 72 training and 24 test
pictures) and the two tiny models of tests/conftest.py, with a data root of this module's
own, so the code-space cache it writes (``<data root>/cache/codespace``) is this
module's alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from convae.data import load_dataset

from .apptools import APP, TIMEOUT, array, html_text, open_page, pictures, plotly, start
from .conftest import make_fashion_mnist_root
from .fixtures import save_tiny_models, save_trained, train_tiny

PAGE = "codespace"


@pytest.fixture(scope="module")
def env(tiny_data, tiny_models, tmp_path_factory) -> dict:
    ckdir = save_tiny_models(tmp_path_factory.mktemp("cs_checkpoints"), tiny_models, tiny_data)
    return {
        "CONVAE_SOURCE": tiny_data.source,
        "CONVAE_CHECKPOINTS": str(ckdir),
        "CONVAE_DATA": str(tmp_path_factory.mktemp("cs_root")),
    }


@pytest.fixture
def app(env, monkeypatch):
    return start(env, monkeypatch, PAGE)


def _tab(at, title: str):
    at.session_state["codespace_tab"] = title  # tabs run lazily: only the open one draws
    return at


def _points(fig: dict) -> int:
    return sum(len(array(t["customdata"])) for t in fig["data"])


def test_the_map_shows_every_test_code_beside_the_raw_pixels(app, env):
    assert not app.error, [e.value for e in app.error]
    code, pixels = plotly(app, "codespace_map_code"), plotly(app, "codespace_map_pixels")
    # one WebGL trace per class, every test picture once, its split index as customdata
    assert [t["type"] for t in code["data"]] == ["scattergl"] * 3
    assert [t["name"] for t in code["data"]] == ["circle", "square", "stripes"]
    assert _points(code) == _points(pixels) == 24
    assert code["layout"]["xaxis"]["title"]["text"].endswith("% of the variance")
    summary = " ".join(c.value for c in app.caption)
    assert "24 test pictures, one point each, from the 256-number codes of shapes-" in summary
    assert "from the 3,072 raw pixel values" in summary
    assert "circle: black circle; square: orange square; stripes: sky blue diamond" in summary
    # results are on disk in the data root, keyed by content
    files = {
        p.name.split("-")[0] for p in (Path(env["CONVAE_DATA"]) / "cache" / "codespace").iterdir()
    }
    assert {"map", "pixel"} <= files


def test_colouring_by_psnr_uses_viridis_with_its_title(app):
    app.selectbox(key="codespace_colour").set_value("psnr-B").run()
    for key in ("codespace_map_code", "codespace_map_pixels"):  # both maps alike
        axis = plotly(app, key)["layout"]["coloraxis"]
        assert axis["colorbar"]["title"]["text"] == "PSNR of B (dB)"
        assert axis["colorscale"][0][1] == "#440154"  # viridis' dark purple end
    assert any("Colour shows PSNR of B (dB): from" in c.value for c in app.caption)


def test_a_selection_shows_the_pictures_with_both_models_reconstructions(app):
    app.session_state["codespace_chosen"] = [3, 17, 5]
    app.run()
    pics = pictures(app)
    originals = [p for p in pics if p.alt.startswith("test picture") and "rebuilt" not in p.alt]
    assert [p.alt.split(":")[0] for p in originals] == [
        "test picture 3",
        "test picture 17",
        "test picture 5",
    ]
    rebuilt = [p for p in pics if "rebuilt by" in p.alt]
    assert len(rebuilt) == 6 and all(p.caption.endswith(" dB") for p in rebuilt)
    assert {p.alt.split(" rebuilt by ")[1].split(",")[0] for p in rebuilt} == {
        "A: shapes-transpose",
        "B: shapes-upsample",
    }
    assert any("3 pictures selected" in m.value for m in app.markdown)


def test_neighbours_of_a_picture_in_code_and_pixels_then_over_the_split(app):
    _tab(app, "Neighbours").run()
    app.number_input(key="codespace_picture").set_value(4).run()
    pics = pictures(app)
    code = [p for p in pics if p.alt.startswith("code neighbour")]
    pixel = [p for p in pics if p.alt.startswith("raw pixels neighbour")]
    assert len(code) == len(pixel) == 8
    assert all("of test picture 4:" in p.alt for p in code)
    assert not any(p.alt.endswith("test picture 4, circle") for p in code)  # never itself
    # the whole split's table is queued; once computed, PCA of the pixels joins in
    app.button(key="codespace_go_neighbours").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert "neighbours share the picture's class" in html_text(app)
    assert len([p for p in pictures(app) if p.alt.startswith("PCA of the pixels")]) == 8


def test_the_probe_is_queued_then_shows_its_table_and_chart(app):
    _tab(app, "Does the code know the class?").run()
    assert any("training queue" in i.value for i in app.info)
    app.button(key="codespace_go_probe").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert "A linear classifier on the code gets" in html_text(app)
    table = app.dataframe[0].value
    assert list(table["probe on"])[:3] == ["code", "pixels", "PCA 256 of pixels"]
    assert list(table["trained on"])[:1] == ["72 pictures"]
    fig = plotly(app, "codespace_probe")
    assert [t["type"] for t in fig["data"]] == ["bar"] * 3


def test_channels_switch_off_and_swap(app):
    _tab(app, "Channels").run()
    swap = [p for p in pictures(app) if "with the other's channel 0" in p.alt]
    assert len(swap) == 4  # two pictures, two models; the swap needs no report
    app.button(key="codespace_go_channels").click().run()
    assert not app.exception, [e.value for e in app.exception]
    app.selectbox(key="codespace_channel").set_value(2).run()
    off = [p for p in pictures(app) if "channel 2 off" in p.alt]
    assert len(off) == 16  # 8 pictures, two models
    table = app.dataframe[0].value  # then one correlation table per model
    assert list(table["channel"]) == [0, 1, 2, 3]
    assert "A: PSNR drop (dB)" in table.columns and "B: PSNR drop (dB)" in table.columns


def test_tsne_on_a_split_too_small_gives_one_sentence(app):
    app.session_state["codespace_method"] = "tsne"
    app.run()
    app.button(key="codespace_go_tsne").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("too few for a t-SNE map (it needs at least 92)" in i.value for i in app.info)


def test_a_link_opens_the_view_it_names(env, monkeypatch):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"part": "neighbours", "of": "B", "pic": "7", "by": "tiles-A"})
    at.run()
    open_page(at, PAGE)
    assert at.session_state["codespace_part"] == "neighbours"
    assert at.session_state["codespace_colour"] == "tiles-A"
    assert at.number_input(key="codespace_picture").value == 7
    assert any("The code is B: shapes-upsample's." in c.value for c in at.caption)
    assert not at.get("plotly_chart")  # only the open part runs


@pytest.fixture(scope="module")
def grey_env(tmp_path_factory) -> dict:
    root = make_fashion_mnist_root(tmp_path_factory.mktemp("cs_grey_root"))
    data = load_dataset("fashion-mnist", root=root)
    ckdir = tmp_path_factory.mktemp("cs_grey_checkpoints")
    save_trained(ckdir / "grey-upsample.pt", train_tiny(data, decoder="upsample", epochs=1), data)
    return {
        "CONVAE_SOURCE": "fashion-mnist",
        "CONVAE_DATA": str(root),
        "CONVAE_CHECKPOINTS": str(ckdir),
    }


def test_a_grey_28px_model_maps_its_4x7x7_code(grey_env, monkeypatch):
    at = start(grey_env, monkeypatch, PAGE)
    assert not at.error, [e.value for e in at.error]
    summary = " ".join(c.value for c in at.caption)
    assert "from the 196-number codes of grey-upsample" in summary
    assert "from the 784 raw pixel values" in summary
    assert _points(plotly(at, "codespace_map_code")) == 12
    open_page(at, PAGE)
    _tab(at, "Channels").run()
    at.button(key="codespace_go_channels").click().run()
    assert not at.exception, [e.value for e in at.exception]
    corr = at.dataframe[1].value  # after the switch-off table
    assert list(corr.columns) == ["channel", "brightness", "edge energy"]  # grey: no colour
