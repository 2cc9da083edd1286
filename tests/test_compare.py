"""Decoder comparison (issue 4): spectrum, A/B scores, per-class table, overlap map, and
weight snapshots over training (library and CLI). The grid-artifact measures themselves
are tested in tests/test_artifacts.py; here, that the comparison reports them right."""

import json
import subprocess
from pathlib import Path

import pytest
import torch

from convae.__main__ import main
from convae.checkpoints import load_checkpoint, save_checkpoint, snapshot_models
from convae.compare import (
    METRICS,
    compare_models,
    measure,
    overlap_map,
    per_class_table,
    score_images,
    scores_over_training,
)
from convae.data import load_dataset
from convae.metrics import (
    GREY_LEVELS,
    blockiness,
    checkerboard,
    mse,
    radial_power_spectrum,
    ssim,
    structure_free,
)
from convae.models import AEConfig, ConvAutoencoder
from convae.train import TrainConfig, evaluate, fit
from tests.test_cli import run_cli

CKPT = Path(__file__).resolve().parents[1] / "checkpoints"


@pytest.fixture
def cli(monkeypatch, capsys):
    """The command line's main() in this process, as ``run_cli`` runs it in a new one
    (tests/test_cli.py runs the real ``python -m convae``; here the figures are compared
    with the library's, without a torch import of about 2 CPU seconds a command)."""

    def run(*args: str, data_root: Path) -> subprocess.CompletedProcess:
        monkeypatch.setenv("CONVAE_DATA", str(data_root))
        monkeypatch.setenv("CONVAE_OFFLINE", "1")
        monkeypatch.setenv("CONVAE_THREADS", "1")
        threads = torch.get_num_threads()
        capsys.readouterr()
        try:  # the command sets its threads: put them back after
            code = main(list(args))
        finally:
            torch.set_num_threads(threads)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return run


def checker_pattern(size: int = 32, amplitude: float = 0.1) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return amplitude * (-1.0) ** (xx + yy)


# --- spectrum -------------------------------------------------------------------------


def test_radial_spectrum_peaks_where_the_pattern_is():
    size = 32
    xx = torch.arange(size).float().expand(size, size)
    sine = (0.5 + 0.4 * torch.sin(2 * torch.pi * xx / 4)).expand(2, 3, size, size)  # period 4
    freqs, power = radial_power_spectrum(sine)
    assert freqs.shape == power.shape and (freqs.diff() > 0).all() and freqs[0] == 0
    ac = power[1:]  # leave out the mean brightness
    assert freqs[1:][ac.argmax()] == pytest.approx(0.25)

    freqs, power = radial_power_spectrum(0.5 + checker_pattern(size, 0.2).expand(1, 1, size, size))
    assert freqs[1:][power[1:].argmax()] == pytest.approx(2**0.5 / 2, abs=1 / size)
    assert freqs[-1] == pytest.approx(2**0.5 / 2, abs=1 / size)  # rings reach the corner


def test_radial_spectrum_takes_uint8_like_floats():
    x = torch.randint(
        0, 256, (3, 3, 16, 16), generator=torch.Generator().manual_seed(1), dtype=torch.uint8
    )
    f8, p8 = radial_power_spectrum(x)
    ff, pf = radial_power_spectrum(x.float() / 255)
    assert torch.equal(f8, ff) and torch.allclose(p8, pf, rtol=1e-5)


# --- overlap map ----------------------------------------------------------------------


def _counts_1d(k: int, n: int, s: int = 2) -> torch.Tensor:
    """By hand: output o gets one tap from each input i with 0 <= o - s*i < k."""
    return torch.tensor(
        [sum(0 <= o - s * i < k for i in range(n)) for o in range((n - 1) * s + k)],
        dtype=torch.float32,
    )


@pytest.mark.parametrize("k", [2, 3, 4])
def test_overlap_map_matches_hand_counts(k):
    n = 5
    got = overlap_map(k, stride=2, in_size=n)
    assert got.shape == ((n - 1) * 2 + k,) * 2
    c = _counts_1d(k, n)
    assert torch.equal(got, c[:, None] * c[None, :])


def test_overlap_map_patterns():
    assert torch.equal(overlap_map(2, in_size=4), torch.ones(8, 8))  # no overlap
    k3 = overlap_map(3, in_size=4)
    assert set(k3.unique().tolist()) == {1.0, 2.0, 4.0}
    assert k3[2:4, 2:4].tolist() == [[4.0, 2.0], [2.0, 1.0]]  # the uneven 2x2 pattern
    k4 = overlap_map(4, in_size=4)
    assert torch.equal(k4[2:-2, 2:-2], torch.full((6, 6), 4.0))  # even inside
    assert k4[0, 0] == 1 and k4[0, 3] == 2


# --- A/B comparison and per-class table (tiny trained models) ---------------------------


def test_compare_models_on_tiny_models(tiny_models, tiny_data):
    a, b = tiny_models["transpose"].model, tiny_models["upsample"].model
    before = {k: v.clone() for k, v in a.state_dict().items()}
    a.train()  # a shared model may be in either mode; compare must leave it as it was
    c = compare_models(a, b, tiny_data.test.images[:6])
    assert a.training
    a.eval()
    assert all(torch.equal(v, a.state_dict()[k]) for k, v in before.items())
    assert c.names == ("transpose", "upsample")
    assert c.inputs.shape == c.recon["upsample"].shape == (6, 3, 32, 32)
    assert c.error_max == pytest.approx(max(float(e.max()) for e in c.abs_error.values()))
    with torch.no_grad():
        assert torch.allclose(c.recon["transpose"], a(c.inputs), atol=1e-5)
    summary = {r["model"]: r for r in c.summary()}
    ref = evaluate(b, tiny_data.test.head(6))
    assert summary["upsample"]["psnr"] == pytest.approx(ref["psnr"], abs=1e-3)
    assert summary["upsample"]["ssim"] == pytest.approx(ref["ssim"], abs=1e-4)
    rows = c.per_image()
    assert len(rows) == 12 and set(METRICS) <= set(rows[0])
    # the grid-artifact figures are the metrics' own, image by image and pooled
    y, x = c.recon["transpose"], c.inputs
    s = c.scores["transpose"]
    shuffled = structure_free(y, x, torch.Generator().manual_seed(0))  # what _run uses
    # (to a thousandth of a grey level: the page's pass runs in channels-last memory, so
    # its float32 sums add in another order)
    for p in (2, 4):
        assert torch.allclose(getattr(s, f"blockiness{p}"), blockiness(y, x, p), atol=1e-3)
        assert torch.allclose(
            getattr(s, f"blockiness{p}_floor"), blockiness(shuffled, x, p), atol=1e-3
        )
    per_image, per_image_floor = checkerboard(y, x)
    assert torch.allclose(s.checkerboard, per_image) and torch.allclose(
        s.checkerboard_floor, per_image_floor
    )
    pooled, pooled_floor = checkerboard(y, x, pooled=True)
    assert summary["transpose"]["checkerboard"] == pytest.approx(float(pooled), abs=1e-9)
    assert summary["transpose"]["checkerboard_floor"] == pytest.approx(float(pooled_floor))
    assert summary["transpose"]["blockiness4"] == pytest.approx(float(s.blockiness4.mean()))
    assert rows[2]["blockiness4"] == pytest.approx(float(s.blockiness4[1]))  # image 1, A
    assert compare_models(a, a, tiny_data.test).names == ("transpose (A)", "transpose (B)")


def test_compare_models_rejects_what_a_model_cannot_take(tiny_models):
    a, b = tiny_models["transpose"].model, tiny_models["upsample"].model
    with pytest.raises(ValueError, match="channel"):
        compare_models(a, b, torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="no images"):
        compare_models(a, b, torch.rand(0, 3, 32, 32))


def test_per_class_table_matches_evaluate(tiny_models, tiny_data):
    models = {k: r.model for k, r in tiny_models.items()}
    rows = per_class_table(models, tiny_data.test, batch_size=7)  # batches split classes
    classes = tiny_data.test.classes
    assert len(rows) == len(classes) * 2 + 2
    assert [r["class"] for r in rows[::2]] == [*classes, "all"]
    for name, model in models.items():
        ref = evaluate(model, tiny_data.test, per_class=True)
        mine = {r["class"]: r for r in rows if r["model"] == name}
        assert mine["all"]["n"] == ref["n"] == sum(mine[c]["n"] for c in classes)
        for cls in classes:
            assert mine[cls]["psnr"] == pytest.approx(ref["per_class"][cls]["psnr"], abs=1e-3)
            assert mine[cls]["ssim"] == pytest.approx(ref["per_class"][cls]["ssim"], abs=1e-4)
        # the artifact measures per class: blockiness is the class's mean, the
        # checkerboard is pooled over the class's images (not a mean of per-image values)
        x = tiny_data.test.floats()
        with torch.no_grad():
            y = model(x)
        for c, cls in enumerate(classes):
            keep = tiny_data.test.labels == c
            b4 = float(blockiness(y[keep], x[keep], 4).mean())
            cb, cb_floor = checkerboard(y[keep], x[keep], pooled=True)
            assert mine[cls]["blockiness4"] == pytest.approx(b4, abs=1e-4)
            assert mine[cls]["checkerboard"] == pytest.approx(float(cb), abs=1e-4)
            assert mine[cls]["checkerboard_floor"] == pytest.approx(float(cb_floor), rel=1e-4)


def test_scores_of_a_set_pool_the_checkerboard_but_average_blockiness():
    g = torch.Generator().manual_seed(0)
    x = 0.3 + 0.4 * torch.rand(4, 3, 32, 32, generator=g)
    signs = torch.tensor([1.0, -1.0, 1.0, -1.0])[:, None, None, None]
    y = x + signs * checker_pattern(amplitude=0.02)  # the pattern's phase flips per image

    s = measure(y, x, torch.Generator().manual_seed(0))
    assert torch.allclose(s.checkerboard.float(), torch.full((4,), 0.02 * GREY_LEVELS), rtol=0.02)
    both = s.mean()
    assert both["checkerboard"] < 0.5  # opposite phases cancel: no fixed pattern
    assert s.select(torch.tensor([0, 2])).mean()["checkerboard"] == pytest.approx(5.1, rel=0.02)
    assert both["blockiness4"] == pytest.approx(float(blockiness(y, x, 4).mean()))
    assert both["mse"] == pytest.approx(float(mse(y, x).mean()))
    assert both["ssim"] == pytest.approx(float(ssim(y, x).mean()))


# --- snapshots over training ---------------------------------------------------------


def test_snapshots_cover_the_run_from_init_to_final(tiny_data):
    cfg = TrainConfig(decoder="transpose", epochs=2, batch_size=16, seed=5, warmup_steps=2)
    r = fit(cfg, tiny_data, snapshots=3)
    steps = [s["step"] for s in r.snapshots]
    assert steps == [0, 3, 7, 10]  # 72 images / 16 = 5 steps an epoch, 10 in all
    assert [s["epoch"] for s in r.snapshots] == [0, 1, 2, 2]
    torch.manual_seed(cfg.seed)
    init = ConvAutoencoder(AEConfig(3, 32, "transpose")).state_dict()
    assert all(torch.equal(init[k], v) for k, v in r.snapshots[0]["state_dict"].items())
    final = r.model.state_dict()
    assert all(torch.equal(final[k], v) for k, v in r.snapshots[-1]["state_dict"].items())
    assert not torch.equal(
        r.snapshots[1]["state_dict"]["t_conv2.weight"],
        r.snapshots[2]["state_dict"]["t_conv2.weight"],
    )
    assert all(
        v.device.type == "cpu" and v.is_contiguous()
        for s in r.snapshots
        for v in s["state_dict"].values()
    )
    assert fit(cfg, tiny_data).snapshots == []  # off by default
    # more snapshots than steps: one per step
    assert [s["step"] for s in fit(cfg, tiny_data, snapshots=50).snapshots] == list(range(11))


def test_snapshots_of_a_stopped_run_end_at_the_kept_model(tiny_data):
    cfg = TrainConfig(epochs=3, batch_size=16, warmup_steps=2)
    r = fit(cfg, tiny_data, lambda ev: ev.kind == "step" and ev.step == 8, snapshots=15)
    assert r.stopped and r.epochs_done == 1
    assert [s["step"] for s in r.snapshots] == [0, 1, 2, 3, 4, 5]
    final = r.model.state_dict()
    assert all(torch.equal(final[k], v) for k, v in r.snapshots[-1]["state_dict"].items())


def test_snapshot_models_rebuild_the_weights(tiny_data, tmp_path):
    r = fit(TrainConfig(decoder="upsample", epochs=1, batch_size=16), tiny_data, snapshots=2)
    path = save_checkpoint(tmp_path / "s.pt", r.model, snapshots=r.snapshots)
    blob = torch.load(path, weights_only=True)
    assert [s["step"] for s in blob["snapshots"]] == [0, 2, 5]
    ck = load_checkpoint(path)
    models = snapshot_models(ck.snapshots, ck.config)
    assert [m.step for m in models] == [0, 2, 5]
    x = tiny_data.test.images[:4].float() / 255
    with torch.no_grad():
        assert torch.allclose(models[-1].model(x), r.model(x))
        assert not torch.allclose(models[0].model(x), r.model(x))
    # a checkpoint without snapshots still loads, with none
    assert load_checkpoint(save_checkpoint(tmp_path / "n.pt", r.model)).snapshots == []


def test_cli_train_snapshots_writes_weights_only_snapshots(image_tree, tmp_path, cli):
    ckpt = tmp_path / "snap.pt"
    r = cli(
        "train",
        "--data",
        f"folder:{image_tree}",
        "--decoder",
        "transpose",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--snapshots",
        "4",
        "--quiet",
        "--out",
        str(ckpt),
        data_root=tmp_path / "root",
    )
    assert r.returncode == 0, r.stderr
    blob = torch.load(ckpt, weights_only=True)  # plain tensors and numbers only
    snaps = blob["snapshots"]
    assert len(snaps) == 5 and snaps[0]["step"] == 0
    assert snaps[-1]["step"] == blob["history"][-1]["step"]
    assert all(torch.equal(blob["state_dict"][k], v) for k, v in snaps[-1]["state_dict"].items())
    ck = load_checkpoint(ckpt)
    assert [s.step for s in snapshot_models(ck.snapshots, ck.config)] == [s["step"] for s in snaps]
    info = cli("info", str(ckpt), data_root=tmp_path / "root")
    assert '"snapshot_steps"' in info.stdout


def test_cli_compare_prints_the_per_class_table(tiny_models, image_tree, tmp_path, cli):
    paths = [save_checkpoint(tmp_path / f"{dec}.pt", r.model) for dec, r in tiny_models.items()]
    r = cli(
        "compare",
        *map(str, paths),
        "--data",
        f"folder:{image_tree}",
        "--json",
        data_root=tmp_path / "root",
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    rows = {(row["class"], row["model"]): row for row in res["rows"]}
    assert len(rows) == 8 and rows[("all", "upsample")]["n"] == 18 and res["seconds"] > 0
    # the same figures as the library's on the same data, floors included
    data = load_dataset(f"folder:{image_tree}", root=tmp_path / "root")
    ref = per_class_table({k: v.model for k, v in tiny_models.items()}, data.test)
    for want in ref:
        got = rows[(want["class"], want["model"])]
        for key in METRICS[2:]:
            assert got[key] == pytest.approx(want[key], abs=1e-6), key
    assert "grey levels" in res["units"]
    table = cli(
        "compare",
        *map(str, paths),
        "--data",
        f"folder:{image_tree}",
        "--classes",
        "square",
        data_root=tmp_path / "root",
    ).stdout
    assert "square" in table and "circle" not in table and "transpose" in table
    assert "tiles4 (floor)" in table and "checker (floor)" in table
    bad = cli("compare", str(paths[0]), str(tmp_path / "none.pt"), data_root=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error:")


@pytest.mark.slow
def test_cli_compare_baselines_fits_pca_once_and_caches_it(tiny_models, image_tree, tmp_path):
    paths = [save_checkpoint(tmp_path / f"{dec}.pt", r.model) for dec, r in tiny_models.items()]
    args = ("compare", *map(str, paths), "--data", f"folder:{image_tree}", "--baselines", "--json")
    r = run_cli(*args, data_root=tmp_path / "root")
    assert r.returncode == 0, r.stderr
    models = {row["model"] for row in json.loads(r.stdout)["rows"]}
    assert models == {"transpose", "upsample", "PCA 256", "downsample 9x9x3"}
    cached = list((tmp_path / "root" / "cache").glob("pca256-3x32-*.pt"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again = run_cli(*args, data_root=tmp_path / "root")
    assert again.returncode == 0, again.stderr
    assert cached[0].stat().st_mtime_ns == stamp  # read back, not refitted
    first = {(x["class"], x["model"]): x["psnr"] for x in json.loads(r.stdout)["rows"]}
    second = {(x["class"], x["model"]): x["psnr"] for x in json.loads(again.stdout)["rows"]}
    assert first == second


def test_cli_evaluate_reports_artifacts_overall_and_per_class(
    tiny_models, image_tree, tmp_path, cli
):
    path = save_checkpoint(
        tmp_path / "t.pt", tiny_models["transpose"].model, data_source=f"folder:{image_tree}"
    )
    r = cli("evaluate", str(path), "--json", data_root=tmp_path / "root")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    data = load_dataset(f"folder:{image_tree}", root=tmp_path / "root")
    s = score_images(tiny_models["transpose"].model, data.test)
    want = s.mean()
    for key in METRICS:
        assert res[key] == pytest.approx(want[key], abs=1e-6), key
    square = data.test.classes.index("square")
    want_sq = s.select(data.test.labels == square).mean()
    assert res["per_class"]["square"]["checkerboard"] == pytest.approx(want_sq["checkerboard"])
    assert res["per_class"]["square"]["blockiness2_floor"] == pytest.approx(
        want_sq["blockiness2_floor"]
    )
    table = cli("evaluate", str(path), data_root=tmp_path / "root").stdout
    assert "tiles4 (floor)" in table and table.count("\n") >= 5


def test_scores_over_training_follow_the_snapshots(tiny_data):
    r = fit(TrainConfig(decoder="transpose", epochs=1, batch_size=16), tiny_data, snapshots=2)
    snaps = snapshot_models(r.snapshots, r.model.config)
    x = tiny_data.test.images[:8]
    points = scores_over_training(snaps, x)
    assert [p["step"] for p in points] == [s["step"] for s in r.snapshots]
    last = score_images(r.model, x).mean()
    assert all(points[-1][k] == pytest.approx(v) for k, v in last.items())
    assert points[0]["psnr"] != pytest.approx(points[-1]["psnr"])


@pytest.mark.shared_data
def test_shipped_pair_carries_snapshots_and_tiles_grow_over_training(cifar):
    x = cifar.test.images[:200]
    tiles = {}
    for decoder in ("transpose", "upsample"):
        ck = load_checkpoint(CKPT / f"cifar10-{decoder}.pt")
        snaps = snapshot_models(ck.snapshots, ck.config)
        assert [s.step for s in snaps][0] == 0 and len(snaps) >= 9
        assert snaps[-1].step == ck.history[-1]["step"]
        final = ck.model.state_dict()
        assert all(torch.equal(final[k], v) for k, v in snaps[-1].model.state_dict().items())
        tiles[decoder] = [p["blockiness4"] for p in scores_over_training(snaps, x)]
    # the transpose decoder's tiles form during training and stay; the upsample decoder's
    # never do
    assert tiles["transpose"][-1] > 3 and tiles["transpose"][0] < 1
    assert max(tiles["upsample"]) < 1


def test_compare_figures_show_each_measure_with_its_floor(tiny_models, tiny_data):
    from convae.figures.compare import (
        CLASS_METRICS,
        MEASURES,
        artifact_sentence,
        measure_text,
        per_class_bars,
        per_class_rows,
        per_image_table,
        snapshot_curves,
    )

    models = {k: r.model for k, r in tiny_models.items()}
    rows = per_class_table(models, tiny_data.test)
    shown = per_class_rows(rows)
    assert list(shown[0])[:5] == ["class", "model", "images", "PSNR (dB)", "SSIM"]
    for key, (label, _) in MEASURES.items():
        floor_label = label.replace(" (grey levels)", " floor")
        assert [r[label] for r in shown] == [r[key] for r in rows]
        assert [r[floor_label] for r in shown] == [r[f"{key}_floor"] for r in rows]
    fig = per_class_bars(rows, "blockiness4")
    assert list(fig.data[0].y) == [r["blockiness4"] for r in rows if r["model"] == "transpose"][:-1]
    overall = {r["model"]: r for r in rows if r["class"] == "all"}
    lines = sorted(round(s.y0, 9) for s in fig.layout.shapes)
    want = sorted(
        round(overall[m][k], 9) for m in models for k in ("blockiness4", "blockiness4_floor")
    )
    assert lines == want  # a dashed "all" line and a dotted floor per model
    assert set(CLASS_METRICS) == {"psnr", "ssim", *MEASURES}
    with pytest.raises(ValueError, match="metric must be one of"):
        per_class_bars(rows, "checker")

    c = compare_models(models["transpose"], models["upsample"], tiny_data.test.images[:3])
    table = per_image_table(c.names, c.scores, ["a", "b", "c"], first_index=5)
    assert table[1]["image"] == 6
    assert table[1]["tiles 4 A"] == pytest.approx(float(c.scores["transpose"].blockiness4[1]))
    assert table[2]["checker floor B"] == pytest.approx(
        float(c.scores["upsample"].checkerboard_floor[2])
    )
    a, b = c.summary()
    text = artifact_sentence([a, b])
    assert f"{a['blockiness4']:.2f}" in text and f"{b['blockiness4_floor']:.2f}" in text
    assert measure_text(a, "checkerboard") == (
        f"{a['checkerboard']:.2f} (floor {a['checkerboard_floor']:.2f})"
    )
    pts = {"t": [{"step": 0, **a}, {"step": 5, **b}]}
    fig = snapshot_curves(pts, [5], measure="blockiness2")
    assert list(fig.data[1].y) == [a["blockiness2"], b["blockiness2"]]
    assert list(fig.data[2].y) == [a["blockiness2_floor"], b["blockiness2_floor"]]
