"""The Compare page driven with AppTest: it renders, and its controls change what a
teacher sees (classes, A/B close-up, kernel size, snapshot scrubber, per-class table).

Like tests/test_app.py it reads the synthetic 3-class folder tree; the checkpoints
folder holds a plain pair (picked by default) and a pair trained with
``fit(snapshots=3)`` for the "Over training" tab. The figures the page shows are checked
against the same models run here directly on the same pictures.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from convae.baselines import DownsampleBaseline, downsample_config
from convae.checkpoints import load_checkpoint, snapshot_models
from convae.figures import to_uint8
from convae.metrics import GREY_LEVELS, blockiness, ssim
from convae.models import trace

from .apptools import array, html_text, ok, open_page, pictures, plotly, start
from .fixtures import save_tiny_models, save_trained, train_tiny

ROOT = Path(__file__).resolve().parents[1]
PLAIN_KEYS = ["shipped:shapes-transpose.pt", "shipped:shapes-upsample.pt"]
SNAP_KEYS = ["shipped:snap-transpose.pt", "shipped:snap-upsample.pt"]
DECODERS = ("transpose", "upsample")


@pytest.fixture(scope="module")
def compare_env(tiny_data, tiny_models, tmp_path_factory) -> dict:
    ckdir = save_tiny_models(tmp_path_factory.mktemp("compare_checkpoints"), tiny_models, tiny_data)
    for dec in DECODERS:
        res = train_tiny(tiny_data, snapshots=3, decoder=dec)
        save_trained(ckdir / f"snap-{dec}.pt", res, tiny_data)
    return {
        "CONVAE_SOURCE": tiny_data.source,
        "CONVAE_CHECKPOINTS": str(ckdir),
        "CONVAE_DATA": str(Path(tiny_data.source[7:]).parent / "root"),
    }


@pytest.fixture(scope="module")
def plain(compare_env) -> dict:
    """The default pair as the app loads it: decoder -> model."""
    ckdir = Path(compare_env["CONVAE_CHECKPOINTS"])
    return {dec: load_checkpoint(ckdir / f"shapes-{dec}.pt").model.eval() for dec in DECODERS}


@pytest.fixture
def app(compare_env, monkeypatch) -> AppTest:
    return start(compare_env, monkeypatch, "compare")


def _ok(at: AppTest) -> None:
    ok(at)
    assert not at.error, [e.value for e in at.error]


def _tab(at: AppTest, name: str) -> AppTest:
    at.session_state["compare_tab"] = name
    at.run()
    _ok(at)
    return at


def _rebuild(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A model's reconstructions of ``x`` and their per-image MSE, computed here."""
    with torch.no_grad():
        y = model(x)
    return y, (y - x).pow(2).flatten(1).mean(1)


def _psnr(mse: float) -> float:
    return 10 * math.log10(1 / mse)


def _row(at: AppTest, tag: str) -> list:
    """The pictures of one row of the side-by-side view: "input", "A", "B", "error A"..."""
    pics = pictures(at)
    if tag == "input":
        return [p for p in pics if p.alt.startswith("input: picture ")]
    if tag in ("A", "B"):
        return [p for p in pics if f" rebuilt by {tag}, " in p.alt]
    return [p for p in pics if p.alt.startswith(f"error map of {tag[-1]} for ")]


def _close_up(at: AppTest):
    """The large picture of the "One picture up close" view (A, B or the swipe)."""
    return next(p for p in pictures(at) if p.alt.startswith(("A: ", "B: ", "A | B: ")))


def _near(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal pictures up to one grey level (the page runs a channels-last copy)."""
    return a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def _taps(kernel: int, stride: int = 2, in_size: int = 4) -> np.ndarray:
    """Kernel taps per output pixel of a stride-2 transpose convolution, counted by hand."""
    line = np.zeros((in_size - 1) * stride + kernel, dtype=int)
    for i in range(in_size):
        line[i * stride : i * stride + kernel] += 1
    return np.outer(line, line)


def _legends(at: AppTest) -> dict[str, tuple[str, str]]:
    """Layers: each map block's name (its aria-label) -> the two ends of its colour bar."""
    out = {}
    for h in at.get("html"):
        body = h.proto.body
        name = re.search(r'aria-label="([^"]*: channel maps)"', body)
        if name is None or '<div class="cae-legend"' not in body:
            continue
        legend = re.sub(r"<[^>]+>", " ", body[body.index('<div class="cae-legend"') :])
        ends = legend[: legend.index("Colours (")].split()
        out[name.group(1)] = (ends[0], ends[1])
    return out


def _layer_range(act: torch.Tensor) -> tuple[str, str]:
    """The per-layer colour bar's ends for one activation: centred on 0 when signed."""
    lo, hi = float(act.min()), float(act.max())
    if lo < 0 < hi:
        lo, hi = -max(-lo, hi), max(-lo, hi)
    return f"{lo:.3g}", f"{hi:.3g}"


# ---------------------------------------------------------------------- side by side


def test_page_shows_both_models_side_by_side(app, plain, tiny_data):
    n = app.slider(key="compare_n").value
    x = tiny_data.test.floats(slice(0, n))  # all classes, the first n test pictures
    classes = [tiny_data.test.classes[i] for i in tiny_data.test.labels[:n].tolist()]
    (ya, ea), (yb, eb) = (_rebuild(plain[d], x) for d in DECODERS)
    psnr_a, psnr_b = _psnr(float(ea.mean())), _psnr(float(eb.mean()))

    # The picture rows: input, A, B and both error maps, n pictures each.
    rows = {t: _row(app, t) for t in ("input", "A", "B", "error A", "error B")}
    assert [len(r) for r in rows.values()] == [n] * 5
    assert [p.caption for p in rows["input"]] == classes
    for i, p in enumerate(rows["input"]):
        assert np.array_equal(p.array(), to_uint8(x[i]))
    for tag, y, err in (("A", ya, ea), ("B", yb, eb)):
        assert all(_near(p.array(), to_uint8(y[i])) for i, p in enumerate(rows[tag]))
        shown = [float(p.caption.removesuffix(" dB")) for p in rows[tag]]
        assert shown == pytest.approx([_psnr(float(e)) for e in err], abs=0.051)
        tiles = [float(p.caption.removeprefix("tiles ")) for p in rows[f"error {tag}"]]
        assert tiles == pytest.approx(blockiness(y, x, 4).tolist(), abs=0.051)
    # Both error maps on one colour scale: the larger error of either model on top.
    top = GREY_LEVELS * max(float((ya - x).abs().max()), float((yb - x).abs().max()))
    assert any(f"bright yellow is {top:.0f} grey levels" in c.value for c in app.caption)
    assert all(f"(0 to {top:.0f} grey levels)" in p.alt for p in rows["error A"] + rows["error B"])

    # The one-sentence finding on top names the closer model with these PSNRs.
    best, other = ("B", "shapes-upsample", psnr_b), ("A", "shapes-transpose", psnr_a)
    if psnr_a >= psnr_b:
        best, other = other, best
    text = html_text(app)
    finding = (
        f"{best[0]} ({best[1]}) rebuilds these {n} pictures {abs(psnr_b - psnr_a):.1f} dB "
        f"closer than {other[0]} ({other[1]}) ({best[2]:.1f} against {other[2]:.1f} dB)"
    )
    assert finding in text
    rest = text[text.index(finding) : text.index(finding) + 400]
    for y in (ya, yb):
        assert f"{float(blockiness(y, x, 4).mean()):.1f}" in rest

    # The numbers (in the "Numbers" expander): PSNR of the mean MSE, SSIM, tiles, MSE.
    summary = app.dataframe[0].value
    assert list(summary["model"]) == ["A: shapes-transpose", "B: shapes-upsample"]
    for row, y, err in zip(summary.to_dict("records"), (ya, yb), (ea, eb), strict=True):
        assert row["pictures"] == n
        assert row["MSE"] == pytest.approx(float(err.mean()), rel=1e-4)
        assert row["PSNR (dB)"] == pytest.approx(_psnr(float(err.mean())), abs=1e-3)
        assert row["SSIM"] == pytest.approx(float(ssim(y, x).mean()), abs=1e-4)
        tiles = float(blockiness(y, x, 4).mean())
        assert row["4x4 tile edges (grey levels)"] == pytest.approx(tiles, abs=1e-3)
    per_image = app.dataframe[1].value
    assert list(per_image["class"]) == classes
    diff = [_psnr(float(b)) - _psnr(float(a)) for a, b in zip(ea, eb, strict=True)]
    assert per_image["PSNR B - A"].tolist() == pytest.approx(diff, abs=1e-3)
    spectrum = plotly(app, "compare_spectrum")
    names = list(dict.fromkeys(t["name"] for t in spectrum["data"]))
    assert names[:3] == ["input", "A: shapes-transpose", "B: shapes-upsample"]
    assert array(spectrum["data"][0]["x"]).min() > 0  # the DC term is left out
    assert spectrum["layout"]["yaxis"]["type"] == "log"


def test_class_filter_changes_the_images(app, tiny_data):
    before = _row(app, "input")
    assert {"circle", "square", "stripes"} <= {p.caption for p in before}
    rebuilt_before = [p.png for p in _row(app, "A")]
    app.sidebar.multiselect(key="sidebar_classes").set_value(["stripes"]).run()
    _ok(app)
    n = app.slider(key="compare_n").value
    stripes = tiny_data.test.filter(["stripes"])
    after = _row(app, "input")
    assert [p.caption for p in after] == ["stripes"] * n
    assert all(
        np.array_equal(p.array(), to_uint8(stripes.floats()[i])) for i, p in enumerate(after)
    )
    assert [p.png for p in _row(app, "A")] != rebuilt_before  # rebuilt anew, not relabelled
    # "First picture" counts within the chosen classes.
    app.number_input(key="compare_start").set_value(3).run()
    _ok(app)
    first = _row(app, "input")[0]
    assert first.alt == "input: picture 3 (stripes)"
    assert np.array_equal(first.array(), to_uint8(stripes.floats()[3]))


def test_toggle_switches_between_a_and_b(app):
    app.slider(key="compare_n").set_value(2).run()
    _ok(app)
    a_row, b_row = _row(app, "A"), _row(app, "B")
    swipe = _close_up(app)
    assert swipe.caption == "A | B: shapes-transpose | shapes-upsample"
    assert app.slider(key="compare_swipe").value == 16  # the divider starts in the middle
    # Left of the divider is A's picture, right of it B's, with a white line between.
    s, a0, b0 = swipe.array(), a_row[0].array(), b_row[0].array()
    assert np.array_equal(s[:, :15], a0[:, :15]) and np.array_equal(s[:, 17:], b0[:, 17:])
    assert (s[:, 15:17] == 255).all()
    app.slider(key="compare_swipe").set_value(8).run()
    s = _close_up(app).array()
    assert np.array_equal(s[:, :7], a0[:, :7]) and np.array_equal(s[:, 9:], b0[:, 9:])

    app.segmented_control(key="compare_ab").set_value("A").run()
    _ok(app)
    a = _close_up(app)
    app.segmented_control(key="compare_ab").set_value("B").run()
    b = _close_up(app)
    assert (a.caption, b.caption) == ("A: shapes-transpose", "B: shapes-upsample")
    assert a.png == a_row[0].png and b.png == b_row[0].png  # the whole picture of each
    assert len({swipe.png, a.png, b.png}) == 3
    # The close-up follows the picked picture, and that picture is outlined in the row.
    app.selectbox(key="compare_focus").set_value(1).run()
    _ok(app)
    assert _close_up(app).png == b_row[1].png
    row_html = next(h.proto.body for h in app.get("html") if "input: picture 1" in h.proto.body)
    assert re.search(r'cae-pic cae-marked"><img [^>]*alt="input: picture 1 ', row_html)


# ----------------------------------------------------------------- tiles and checkerboards


def test_kernel_size_changes_the_overlap_map(app):
    _tab(app, "Tiles and checkerboards")

    def counts() -> np.ndarray:
        return array(plotly(app, "compare_overlap")["data"][0]["z"])

    even = counts()  # kernel 2 by default: tiles, one tap everywhere
    assert np.array_equal(even, _taps(2)) and set(even.flatten().tolist()) == {1}
    assert any("1 taps: even coverage" in i.value for i in app.info)
    app.segmented_control(key="compare_kernel").set_value(3).run()
    _ok(app)
    uneven = counts()
    assert np.array_equal(uneven, _taps(3)) and set(uneven.flatten().tolist()) == {1, 2, 4}
    assert any("uneven coverage, a checkerboard is built in" in i.value for i in app.info)
    assert "kernel 3, stride 2" in plotly(app, "compare_overlap")["layout"]["title"]["text"]
    app.segmented_control(key="compare_kernel").set_value(4).run()
    assert np.array_equal(counts(), _taps(4))
    assert any("gets 4 taps: even coverage" in i.value for i in app.info)


# --------------------------------------------------------------------------- per class


def test_per_class_table_covers_every_class_and_both_models(app, plain, tiny_data):
    _tab(app, "Per class")
    test = tiny_data.test
    rows = app.dataframe[0].value
    assert len(rows) == 2 * (3 + 1)  # 3 classes + "all", each for both models
    assert list(rows["class"]) == ["circle"] * 2 + ["square"] * 2 + ["stripes"] * 2 + ["all"] * 2
    assert list(rows["model"]) == ["shapes-transpose", "shapes-upsample"] * 4
    # Each class's PSNR is that of its mean MSE over all its test pictures, computed here.
    expected = {}
    for dec in DECODERS:
        y, err = _rebuild(plain[dec], test.floats())
        for c, cls in enumerate(test.classes):
            keep = test.labels == c
            expected[cls, f"shapes-{dec}"] = (
                int(keep.sum()),
                _psnr(float(err[keep].mean())),
                float(ssim(y[keep], test.floats()[keep]).mean()),
            )
        expected["all", f"shapes-{dec}"] = (
            len(test),
            _psnr(float(err.mean())),
            float(ssim(y, test.floats()).mean()),
        )
    for r in rows.to_dict("records"):
        count, psnr, mean_ssim = expected[r["class"], r["model"]]
        assert r["images"] == count and r["PSNR (dB)"] == pytest.approx(psnr, abs=1e-3)
        assert r["SSIM"] == pytest.approx(mean_ssim, abs=1e-4)
    worst = min(test.classes, key=lambda c: expected[c, "shapes-transpose"][1])
    hardest = f"Hardest class for A: {worst} ({expected[worst, 'shapes-transpose'][1]:.1f} dB)"
    assert any(hardest in c.value for c in app.caption)

    bars = plotly(app, "compare_class_bars")
    assert [t["name"] for t in bars["data"]] == ["shapes-transpose", "shapes-upsample"]
    for t in bars["data"]:
        want = [expected[c, t["name"]][1] for c in test.classes]
        assert array(t["y"]).tolist() == pytest.approx(want, abs=1e-3)
    dashed = sorted(s["y0"] for s in bars["layout"]["shapes"])
    assert dashed == pytest.approx(sorted(expected["all", m][1] for m in rows["model"][:2]))

    app.segmented_control(key="compare_metric").set_value("checkerboard").run()
    _ok(app)
    bars = plotly(app, "compare_class_bars")
    assert bars["layout"]["yaxis"]["title"]["text"] == "checkerboard (grey levels)"
    for i, t in enumerate(bars["data"]):  # the table's checkerboard of each class
        want = rows["checkerboard (grey levels)"][i:6:2].tolist()
        assert array(t["y"]).tolist() == pytest.approx(want, abs=1e-6)
    assert len(bars["layout"]["shapes"]) == 4  # each model's "all" value and its floor

    # The baselines join the table, the models' own rows unchanged.
    app.toggle(key="compare_baselines").set_value(True).run()
    _ok(app)
    more = app.dataframe[0].value
    down = DownsampleBaseline(downsample_config(3, 32))
    names = ["shapes-transpose", "shapes-upsample", next(m for m in more["model"] if "PCA" in m)]
    assert list(dict.fromkeys(more["model"])) == [*names, down.config.label]
    assert len(more) == 4 * (3 + 1)
    mine = more[more["model"].isin(names[:2])].reset_index(drop=True)
    assert mine["PSNR (dB)"].tolist() == pytest.approx(rows["PSNR (dB)"].tolist())
    _, err = _rebuild(down, test.floats())
    row = more[(more["class"] == "all") & (more["model"] == down.config.label)]
    assert float(row["PSNR (dB)"].iloc[0]) == pytest.approx(_psnr(float(err.mean())), abs=1e-3)


# ---------------------------------------------------------------------- over training


def test_snapshot_scrubber_changes_the_shown_snapshot(app, compare_env, tiny_data):
    _tab(app, "Over training")
    assert app.button(key="compare_train_pair")  # the plain pair has no snapshots
    assert any("carry no training snapshots" in i.value for i in app.info)
    app.sidebar.multiselect(key="sidebar_models").set_value(SNAP_KEYS).run()
    _ok(app)
    ckdir = Path(compare_env["CONVAE_CHECKPOINTS"])
    snaps = {}
    for dec in DECODERS:
        ck = load_checkpoint(ckdir / f"snap-{dec}.pt")
        snaps[dec] = snapshot_models(ck.snapshots, ck.config)
    steps = [s.step for s in snaps["transpose"]]
    assert len(steps) == 4 and steps[0] == 0  # step 0 and 3 snapshots
    scrub = app.select_slider(key="compare_snapshot")
    assert scrub.options == [f"{i}: step {s}" + " (start)" * (s == 0) for i, s in enumerate(steps)]
    assert scrub.value == 3  # the final model first

    x = tiny_data.test.floats(slice(0, 1))  # the close-up picture: the first test picture

    def shown() -> list[tuple[str, float]]:
        pics = [p for p in pictures(app) if ", step " in p.caption]
        return [(p.caption.split(":")[0], float(p.caption.split()[-2])) for p in pics]

    def expect(i: int) -> list[tuple[str, float]]:
        return [
            (f"{tag}, step {steps[i]}", _psnr(float(_rebuild(snaps[dec][i].model, x)[1][0])))
            for tag, dec in zip("AB", DECODERS, strict=True)
        ]

    last = pictures(app)
    assert [(t, pytest.approx(v, abs=0.051)) for t, v in shown()] == expect(3)
    scrub.set_value(0).run()
    _ok(app)
    assert [(t, pytest.approx(v, abs=0.051)) for t, v in shown()] == expect(0)
    assert [p.png for p in pictures(app)] != [p.png for p in last]
    # The curves: every snapshot's PSNR over the chosen pictures (all 24 here), the
    # shown step marked.
    curves = plotly(app, "compare_snapshot_curves")
    pool = tiny_data.test.floats()
    for dec in DECODERS:
        trace_ = next(t for t in curves["data"] if t["name"] == f"snap-{dec}")
        assert array(trace_["x"]).tolist() == steps
        want = [_psnr(float(_rebuild(s.model, pool)[1].mean())) for s in snaps[dec]]
        assert array(trace_["y"]).tolist() == pytest.approx(want, abs=1e-3)
    assert {s["x0"] for s in curves["layout"]["shapes"]} == {0}


def _trained_snapshot_steps(at: AppTest, key: str) -> list[int]:
    entry = at.session_state["trained_models"][key]
    return sorted(s["step"] for s in entry.checkpoint.snapshots)


def test_train_pair_button_adds_a_snapshot_pair(app):
    _tab(app, "Over training")
    app.button(key="compare_train_pair").click().run()
    _ok(app)
    # Both decoders, same seed, each with its snapshots; picked before the plain pair,
    # so they are A and B (test_train_pair_button_makes_the_new_pair_a_and_b).
    picked = app.sidebar.multiselect(key="sidebar_models").value
    assert picked == ["trained:1", "trained:2", *PLAIN_KEYS]
    trained = app.session_state["trained_models"]
    assert [trained[k].name for k in ("trained:1", "trained:2")] == [
        "transpose-snap8-seed0",
        "upsample-snap8-seed0",
    ]
    assert {trained[k].checkpoint.train_config["seed"] for k in trained} == {0}
    steps = _trained_snapshot_steps(app, "trained:1")
    assert steps[0] == 0 and len(steps) > 2
    assert steps == _trained_snapshot_steps(app, "trained:2")  # same data, same steps
    # With the new pair as A and B the scrubber replaces the button.
    assert len(app.select_slider(key="compare_snapshot").options) == len(steps)
    assert not [b for b in app.button if b.key == "compare_train_pair"]


def test_train_pair_button_makes_the_new_pair_a_and_b(app):
    _tab(app, "Over training")
    app.button(key="compare_train_pair").click().run()
    _ok(app)
    assert app.sidebar.multiselect(key="sidebar_models").value[:2] == ["trained:1", "trained:2"]
    assert app.select_slider(key="compare_snapshot").options


def test_fewer_than_two_models_says_so(app):
    app.sidebar.multiselect(key="sidebar_models").set_value(SNAP_KEYS[:1]).run()
    assert not app.exception
    assert any("Pick two models" in i.value for i in app.info)
    assert not pictures(app) and not app.get("plotly_chart")


def test_models_trained_on_the_train_page_carry_snapshots(app):
    open_page(app, "train")
    app.segmented_control(key="train_decoder").set_value("both")
    app.number_input(key="train_epochs").set_value(1)
    app.number_input(key="train_limit").set_value(32)
    app.selectbox(key="train_batch").set_value(16)
    app.button(key="train_start").click().run()
    _ok(app)
    picked = app.sidebar.multiselect(key="sidebar_models").value
    assert picked == [*PLAIN_KEYS, "trained:1", "trained:2"]  # after the picks, as said
    app.sidebar.multiselect(key="sidebar_models").set_value(["trained:1", "trained:2"]).run()
    open_page(app, "compare")
    _tab(app, "Over training")
    steps = _trained_snapshot_steps(app, "trained:1")
    assert steps[0] == 0 and len(steps) > 1  # 1 epoch of 2 steps: the start and each step
    scrub = app.select_slider(key="compare_snapshot")
    assert scrub.options == [f"{i}: step {s}" + " (start)" * (s == 0) for i, s in enumerate(steps)]
    assert not [b for b in app.button if b.key == "compare_train_pair"]  # no "train a pair"


# --------------------------------------------------------------------- real CIFAR-10


@pytest.mark.shared_data
def test_shipped_models_on_the_real_test_split(monkeypatch, shared_root, cifar):
    ck = ROOT / "checkpoints"
    if not (ck / "cifar10-transpose.pt").is_file():
        pytest.skip("the shipped checkpoints are missing")
    env = {
        "CONVAE_SOURCE": "cifar10",
        "CONVAE_DATA": str(shared_root),
        "CONVAE_CHECKPOINTS": str(ck),
    }
    at = start(env, monkeypatch, "compare")
    at.sidebar.multiselect(key="sidebar_models").set_value(
        ["shipped:cifar10-transpose.pt", "shipped:cifar10-upsample.pt"]
    ).run()
    _ok(at)
    summary = at.dataframe[0].value
    assert list(summary["model"]) == ["A: cifar10-transpose", "B: cifar10-upsample"]
    # The first 8 test pictures through the shipped files, here: the page's figures.
    n = at.slider(key="compare_n").value
    x = cifar.test.floats(slice(0, n))
    psnr, tiles = [], []
    for dec in DECODERS:
        y, err = _rebuild(load_checkpoint(ck / f"cifar10-{dec}.pt").model.eval(), x)
        psnr.append(_psnr(float(err.mean())))
        tiles.append(float(blockiness(y, x, 4).mean()))
    assert summary["PSNR (dB)"].tolist() == pytest.approx(psnr, abs=1e-3)
    assert summary["4x4 tile edges (grey levels)"].tolist() == pytest.approx(tiles, abs=1e-3)
    # The upsample decoder is the closer and the smoother one, and the page says so: the
    # transpose decoder's 4x4 tiles stand out above their floor, the upsample's do not.
    assert psnr[0] < psnr[1]
    floors = summary["4x4 tile edges (grey levels), floor"].tolist()
    assert tiles[0] - floors[0] > 1 > tiles[1] - floors[1]
    cb = summary["checkerboard (grey levels)"].tolist()
    assert cb[1] < cb[0]
    text = html_text(at)
    assert f"B (cifar10-upsample) rebuilds these {n} pictures" in text
    assert f"and A draws tiles: its pictures step {tiles[0]:.1f} grey levels more" in text


# ------------------------------------------------------------------- layers compare mode


def test_layers_compare_mode_draws_both_models_side_by_side(app, plain, tiny_data):
    open_page(app, "layers")
    app.select_slider(key="layers_step").set_value("t_conv1").run()
    _ok(app)
    assert list(_legends(app)) == ["t_conv1: channel maps"]  # one model
    app.toggle(key="layers_compare").set_value(True).run()
    _ok(app)
    titles = [m.value for m in app.markdown]
    assert "**shapes-transpose** at t_conv1" in titles
    assert "**shapes-upsample** at conv4" in titles  # same job, other name
    maps_a = [p for p in pictures(app) if p.alt.startswith("t_conv1, ch ")]
    maps_b = [p for p in pictures(app) if p.alt.startswith("conv4, ch ")]
    assert len(maps_a) == len(maps_b) == 16
    assert maps_a[0].array().shape == maps_b[0].array().shape == (16, 16, 3)
    assert [p.png for p in maps_a] != [p.png for p in maps_b]
    # The colour bars span both models' values at these steps for this picture (the first
    # test circle), not each model's own (test_..._on_one_scale checks the joint range).
    x = tiny_data.test.filter(["circle"]).floats(slice(0, 1))
    act_a = dict(trace(plain["transpose"], x))["t_conv1"]
    act_b = dict(trace(plain["upsample"], x))["conv4"]
    legends = _legends(app)
    assert _layer_range(act_a) != _layer_range(act_b)
    assert legends["t_conv1: channel maps"] == legends["conv4: channel maps"]


def test_layers_compare_mode_draws_both_models_on_one_scale(app, plain, tiny_data):
    open_page(app, "layers")
    app.select_slider(key="layers_step").set_value("t_conv1").run()
    app.toggle(key="layers_compare").set_value(True).run()
    _ok(app)
    x = tiny_data.test.filter(["circle"]).floats(slice(0, 1))
    joint = torch.cat(
        [
            dict(trace(plain["transpose"], x))["t_conv1"].flatten(),
            dict(trace(plain["upsample"], x))["conv4"].flatten(),
        ]
    )
    legends = _legends(app)
    assert legends["t_conv1: channel maps"] == legends["conv4: channel maps"] == _layer_range(joint)
