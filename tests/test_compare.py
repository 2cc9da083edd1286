"""Decoder comparison (issue 4): checkerboard meter, spectrum, A/B scores, per-class
table, overlap map, and weight snapshots over training (library and CLI)."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from convae.checkpoints import load_checkpoint, save_checkpoint, snapshot_models
from convae.compare import compare_models, overlap_map, per_class_table, score_images
from convae.metrics import checkerboard_score, radial_power_spectrum
from convae.models import AEConfig, ConvAutoencoder
from convae.train import TrainConfig, evaluate, fit
from tests.test_cli import run_cli

CKPT = Path(__file__).resolve().parents[1] / "checkpoints"


def smooth_images(n: int = 4, size: int = 32) -> torch.Tensor:
    """Slowly varying colour images in [0.2, 0.8], different per image and channel."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = torch.empty(n, 3, size, size)
    for i in range(n):
        for c in range(3):
            out[i, c] = 0.5 + 0.3 * torch.sin(xx / (5 + i + c)) * torch.cos(yy / (7 + c))
    return out


def checkerboard(size: int = 32, amplitude: float = 0.1) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return amplitude * (-1.0) ** (xx + yy)


# --- checkerboard score ---------------------------------------------------------------


def test_checkerboard_added_to_an_image_scores_its_amplitude():
    x = smooth_images()
    for amp in (0.02, 0.1):
        score = checkerboard_score(x + checkerboard(amplitude=amp), x)
        assert torch.allclose(score, torch.full((4,), amp), atol=1e-4)
    # period-2 stripes (the other two Nyquist frequencies) count too
    stripes = 0.05 * (-1.0) ** torch.arange(32)
    assert torch.allclose(checkerboard_score(x + stripes, x), torch.full((4,), 0.05), atol=1e-4)
    assert torch.allclose(
        checkerboard_score(x + stripes[:, None], x), torch.full((4,), 0.05), atol=1e-4
    )


def test_exact_copy_and_smooth_errors_score_near_zero():
    x = smooth_images()
    assert checkerboard_score(x, x.clone()).abs().max() < 1e-7
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    noisy = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    cb = checkerboard_score(x + checkerboard(amplitude=0.02), x)
    # errors of the same size that are not locked to the 2x2 grid score far lower
    assert (checkerboard_score(blurred, x) < cb / 10).all()
    assert (checkerboard_score(noisy, x) < cb / 4).all()


def test_brightness_shift_does_not_change_the_score():
    x = smooth_images()
    recon = x + checkerboard(amplitude=0.03)
    base = checkerboard_score(recon, x)
    assert torch.allclose(checkerboard_score(recon + 0.15, x), base, atol=1e-6)
    assert torch.allclose(checkerboard_score(recon - 0.1, x - 0.1), base, atol=1e-6)
    assert checkerboard_score(x + 0.2, x).abs().max() < 1e-7


def test_checkerboard_score_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        checkerboard_score(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 6))


# --- spectrum -------------------------------------------------------------------------


def test_radial_spectrum_peaks_where_the_pattern_is():
    size = 32
    xx = torch.arange(size).float().expand(size, size)
    sine = (0.5 + 0.4 * torch.sin(2 * torch.pi * xx / 4)).expand(2, 3, size, size)  # period 4
    freqs, power = radial_power_spectrum(sine)
    assert freqs.shape == power.shape and (freqs.diff() > 0).all() and freqs[0] == 0
    ac = power[1:]  # leave out the mean brightness
    assert freqs[1:][ac.argmax()] == pytest.approx(0.25)

    freqs, power = radial_power_spectrum(0.5 + checkerboard(size, 0.2).expand(1, 1, size, size))
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
    assert len(rows) == 12 and {"mse", "psnr", "ssim", "checkerboard"} <= set(rows[0])
    assert all(torch.isfinite(torch.tensor(r["checkerboard"])) for r in rows)
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
            assert mine[cls]["checkerboard"] >= 0


# --- shipped checkpoints on the real test split ----------------------------------------


@pytest.mark.shared_data
@pytest.mark.parametrize("decoder", ["transpose", "upsample"])
def test_shipped_checkerboard_is_finite_and_stable(decoder, cifar):
    path = CKPT / f"cifar10-{decoder}.pt"
    if not path.is_file():
        pytest.skip(
            f"shipped checkpoint {path} is missing (train it with python -m convae "
            f"train --decoder {decoder})"
        )
    scores = score_images(load_checkpoint(path).model, cifar.test)
    assert len(scores) == 10000
    cb = scores.checkerboard
    assert torch.isfinite(cb).all() and (cb >= 0).all()
    # a trained model's artifacts are small, but it is not a perfect copy: between
    # 0.01 and 10 grey levels of 255
    assert 0.01 / 255 < cb.mean() < 10 / 255
    # stable: two disjoint halves of the split (every class in both) agree within 10%
    first, second = cb[:5000].mean(), cb[5000:].mean()
    assert abs(first - second) / cb.mean() < 0.10
    assert scores.mean()["psnr"] > 18


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


def test_cli_train_snapshots_writes_weights_only_snapshots(image_tree, tmp_path):
    ckpt = tmp_path / "snap.pt"
    r = run_cli(
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
    info = run_cli("info", str(ckpt), data_root=tmp_path / "root")
    assert '"snapshot_steps"' in info.stdout


def test_cli_compare_prints_the_per_class_table(tiny_models, image_tree, tmp_path):
    paths = [save_checkpoint(tmp_path / f"{dec}.pt", r.model) for dec, r in tiny_models.items()]
    r = run_cli(
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
    assert rows[("circle", "transpose")]["checkerboard"] >= 0
    table = run_cli(
        "compare",
        *map(str, paths),
        "--data",
        f"folder:{image_tree}",
        "--classes",
        "square",
        data_root=tmp_path / "root",
    ).stdout
    assert "square" in table and "circle" not in table and "transpose" in table
    bad = run_cli("compare", str(paths[0]), str(tmp_path / "none.pt"), data_root=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error:")
