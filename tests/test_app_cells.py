"""The Code cells page and the baselines in the app (AppTest): a code cell's footprint in
both decoders, its receptive field, one output pixel's arithmetic that adds up to the
model's own pixel, and the PCA / downsample rows next to the models."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from convae.cells import encode_image
from convae.checkpoints import load_checkpoint
from convae.data import load_dataset

from .apptools import open_page, pictures, plotly, start
from .test_app import app_env  # noqa: F401  (fixture)


@pytest.fixture
def app(app_env, monkeypatch):  # noqa: F811
    return start(app_env, monkeypatch, "cells")


def _changed(fig: dict) -> list[tuple[int, int]]:
    """(rows, cols) with a non-zero change in each footprint heatmap."""
    from .apptools import array

    out = []
    for trace in fig["data"]:
        if trace["type"] != "heatmap":
            continue
        z = array(trace["z"])
        nz = (abs(z) > 1e-9).nonzero()
        out.append((len(set(nz[0].tolist())), len(set(nz[1].tolist()))))
    return out


def test_a_code_cell_paints_a_hard_tile_in_transpose_and_a_soft_patch_in_upsample(app):
    assert not app.error
    fig = plotly(app, "cells_footprint")
    sizes = _changed(fig)
    assert sizes[0] == (4, 4)  # transpose: exactly the cell's own 4x4 block
    assert sizes[1][0] > 4 and sizes[1][1] > 4  # upsample: spills over its neighbours
    before = fig
    app.selectbox(key="cells_row").set_value(0).run()
    app.selectbox(key="cells_col").set_value(7).run()
    after = plotly(app, "cells_footprint")
    assert after != before and _changed(after)[0] == (4, 4)
    assert plotly(app, "cells_field")  # the receptive field of that cell
    captions = [c.value for c in app.caption]
    assert any("rows 0-3, columns 28-31" in c for c in captions), captions
    pics = pictures(app)
    assert [p.caption for p in pics][-4:] == [
        "transpose",
        "transpose, cell nudged",
        "upsample",
        "upsample, cell nudged",
    ]


def test_one_pixels_arithmetic_adds_up_to_the_models_own_pixel(app, app_env):  # noqa: F811
    app.number_input(key="cells_px_row").set_value(5).run()
    app.number_input(key="cells_px_col").set_value(9).run()
    app.selectbox(key="cells_px_channel").set_value(2).run()
    assert not app.exception
    tables = [d.value for d in app.dataframe]
    assert len(tables) == 2  # one per decoder, transpose first
    data = load_dataset(app_env["CONVAE_SOURCE"], root=app_env["CONVAE_DATA"])
    x = data.test.floats(slice(0, 1))  # the page's test picture 0
    for table, dec in zip(tables, ("transpose", "upsample"), strict=True):
        model = load_checkpoint(Path(app_env["CONVAE_CHECKPOINTS"]) / f"shapes-{dec}.pt").model
        products = table["product"].tolist()
        terms, bias, total, out = products[:-3], products[-3], products[-2], products[-1]
        assert math.isclose(sum(terms) + bias, total, rel_tol=1e-9, abs_tol=1e-9)
        assert math.isclose(out, 1 / (1 + math.exp(-total)), rel_tol=1e-9)
        with torch.no_grad():
            pixel = float(model.decode(encode_image(model, x[0])[None])[0, 2, 5, 9])
        assert math.isclose(out, pixel, abs_tol=1e-5), dec  # the model's own output


def test_baselines_join_the_reconstructions(app):
    open_page(app, "reconstructions")
    n_rows = len(
        {
            p.alt.split(" rebuilt by ")[1].split(",")[0]
            for p in pictures(app)
            if " rebuilt by " in p.alt
        }
    )
    app.toggle(key="recon_baselines").set_value(True).run()
    assert not app.exception
    labels = {
        p.alt.split(" rebuilt by ")[1].split(",")[0]
        for p in pictures(app)
        if " rebuilt by " in p.alt
    }
    assert len(labels) == n_rows + 2
    assert any(label.startswith("PCA ") for label in labels)
    assert any(label.startswith("downsample ") for label in labels)
