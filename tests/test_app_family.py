"""Every page where a decoder is picked, with the decoder family's shipped checkpoints
(AppTest): Compare (any pair, the "Decoder family" tab, the checkerboard case in "Tiles and
checkerboards"), Layers' compare mode, Code cells and the Overview's layer table.

The app reads the synthetic 3-class folder tree (3-channel 32x32 pictures, which the
CIFAR-10 checkpoints take) and a checkpoints folder holding a copy of the seven shipped
``cifar10-<decoder>.pt`` files, so no data set is needed; every figure a page shows is
checked against the same models run here on the same pictures.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from convae.cells import cell_footprint, encode_image
from convae.checkpoints import load_checkpoint
from convae.family import family_table
from convae.metrics import checkerboard
from convae.models import DECODERS
from convae.summary import architecture

from .apptools import html_text, ok, open_page, pictures, start

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def family_env(tiny_data, tmp_path_factory) -> dict:
    ckdir = tmp_path_factory.mktemp("family_checkpoints")
    for decoder in DECODERS:
        shutil.copy(ROOT / "checkpoints" / f"cifar10-{decoder}.pt", ckdir)
    return {
        "CONVAE_SOURCE": tiny_data.source,
        "CONVAE_CHECKPOINTS": str(ckdir),
        "CONVAE_DATA": str(Path(tiny_data.source[7:]).parent / "root"),
    }


@pytest.fixture(scope="module")
def family() -> dict:
    return {d: load_checkpoint(ROOT / "checkpoints" / f"cifar10-{d}.pt").model for d in DECODERS}


def _pick(at: AppTest, *decoders: str) -> AppTest:
    keys = [f"shipped:cifar10-{d}.pt" for d in decoders]
    at.sidebar.multiselect(key="sidebar_models").set_value(keys).run()
    ok(at)
    assert not at.error, [e.value for e in at.error]
    return at


def _tab(at: AppTest, name: str) -> AppTest:
    at.session_state["compare_tab"] = name
    at.run()
    ok(at)
    assert not at.error, [e.value for e in at.error]
    return at


def test_compare_any_pair_says_what_the_figures_found(family_env, monkeypatch, tiny_data, family):
    at = _pick(start(family_env, monkeypatch, "compare"), "transpose3", "subpixel")
    text = html_text(at)
    n = at.slider(key="compare_n").value
    x = tiny_data.test.floats(slice(0, n))
    with torch.no_grad():
        rows = {d: checkerboard(family[d](x), x, pooled=True) for d in ("transpose3", "subpixel")}
    (a, fa), (b, fb) = (tuple(float(v) for v in r) for r in rows.values())
    values = f"A {a:.2f}, B {b:.2f} grey levels (floors {fa:.2f} and {fb:.2f})"
    assert f"rebuilds these {n} pictures" in text
    assert values in text  # the checkerboard half of the finding, both models' figures
    assert "4x4 tile" in text


def test_decoder_family_tab_shows_every_shipped_decoder(family_env, monkeypatch, tiny_data, family):
    at = _tab(
        _pick(start(family_env, monkeypatch, "compare"), "transpose", "upsample"), "Decoder family"
    )
    table = at.dataframe[-1].value
    assert list(table["decoder"]) == list(DECODERS)
    want = family_table(family, tiny_data.test)
    assert table["parameters"].tolist() == [r["parameters"] for r in want]
    assert table["PSNR (dB)"].tolist() == pytest.approx([r["psnr"] for r in want], abs=1e-6)
    assert table["checker"].tolist() == pytest.approx([r["checkerboard"] for r in want], abs=1e-6)
    assert table["tiles 4 floor"].tolist() == pytest.approx(
        [r["blockiness4_floor"] for r in want], abs=1e-6
    )
    sentences = at.markdown[-1].value
    assert all(r["sentence"] in sentences for r in want)
    row = [p for p in pictures(at) if " rebuilt by cifar10-" in p.alt]
    assert [p.caption.split(":")[0] for p in row] == list(DECODERS)
    assert "(sub-pixel conv, ICNR init)" in row[-1].alt
    assert any(f"all {len(tiny_data.test):,} test pictures" in c.value for c in at.caption)


def test_tiles_tab_shows_the_trained_checkerboard_case(family_env, monkeypatch, tiny_data, family):
    at = _tab(start(family_env, monkeypatch, "compare"), "Tiles and checkerboards")
    shown = [p for p in pictures(at) if "cifar10-transpose3" in p.alt]
    patterns = [p for p in shown if p.alt.startswith("the period-2 pattern")]
    assert patterns and any(p.alt.startswith("test picture 0") for p in shown)
    pool = tiny_data.test.floats()[:200]
    with torch.no_grad():
        amp, floor = checkerboard(family["transpose3"](pool), pool, pooled=True)
    trained = next(p for p in patterns if "(trained)" in p.alt)
    assert f"{float(amp):.2f} grey levels (floor {float(floor):.2f})" in trained.alt
    caption = next(c.value for c in at.caption if "A real kernel-3 decoder" in c.value)
    assert "trained:" in caption


def test_layers_compare_mode_matches_the_steps_of_any_two(family_env, monkeypatch):
    at = open_page(_pick(start(family_env, monkeypatch), "transpose3", "subpixel-icnr"), "layers")
    at.select_slider(key="layers_step").set_value("t_conv1").run()
    at.toggle(key="layers_compare").set_value(True).run()
    ok(at)
    titles = [m.value for m in at.markdown]
    assert "**cifar10-transpose3** at t_conv1" in titles
    assert "**cifar10-subpixel-icnr** at sp_conv1" in titles  # its first layer with weights


def test_code_cells_footprints_of_family_decoders(family_env, monkeypatch, tiny_data, family):
    at = open_page(_pick(start(family_env, monkeypatch), "transpose3", "bilinear"), "cells")
    x = tiny_data.test.images[0]
    summary = " ".join(c.value for c in at.caption)
    for d in ("transpose3", "bilinear"):
        m = family[d]
        fp = cell_footprint(m, encode_image(m, x), (0, 4, 4), 1.0)
        b = fp.changed_box(1e-6)
        assert f"{d}: the nudge changes the pixels in rows {b[0]}-{b[2] - 1}" in summary
    infos = " ".join(i.value for i in at.info)
    assert "worked out by hand for the course's two decoders" in infos


def test_overview_layer_table_of_a_sub_pixel_decoder(family_env, monkeypatch, family):
    at = open_page(_pick(start(family_env, monkeypatch), "subpixel"), "overview")
    table = next(m.value for m in at.markdown if m.value.startswith("| step |"))
    for r in architecture(family["subpixel"]):
        if r["part"] == "decoder":
            assert f"| {r['step']} | {r['layer']} | {r['output shape']} |" in table
    assert "| shuffle1 | PixelShuffle(x2) | 16 x 16 x 16 | 0 |" in table
    assert "| sp_conv1 | Conv2d(4, 64, 3, pad 1) | 64 x 8 x 8 | 2,368 |" in table
    assert any("5,136 trainable parameters" in c.value for c in at.caption)


def test_every_page_renders_with_family_decoders_picked(family_env, monkeypatch):
    at = _pick(start(family_env, monkeypatch), "transpose4", "bilinear", "subpixel-icnr")
    for page in ("overview", "reconstructions", "layers", "cells", "compare", "train"):
        open_page(at, page)
        assert not at.error, (page, [e.value for e in at.error])
    at.session_state["compare_tab"] = "Over training"
    open_page(at, "compare")
    assert not at.error, [e.value for e in at.error]
    at.segmented_control(key="compare_curve_measure").set_value("checkerboard").run()
    ok(at)
    assert "checkerboard over training" in str(at.get("plotly_chart")[0].proto.spec)
