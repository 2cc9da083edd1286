"""The checkpoints shipped in checkpoints/ load and reach their PSNR on the real test split."""

from pathlib import Path

import pytest

from convae.checkpoints import load_checkpoint
from convae.data import load_dataset
from convae.models import count_parameters
from convae.train import evaluate

CKPT = Path(__file__).resolve().parents[1] / "checkpoints"

pytestmark = pytest.mark.shared_data


@pytest.mark.parametrize(
    ("name", "floor", "params"),
    [
        ("cifar10-transpose.pt", 22.0, 1495),
        ("cifar10-upsample.pt", 23.0, 2055),
    ],
)
def test_cifar10_checkpoints_reach_target(name, floor, params, cifar, shipped_test_scores):
    ck = load_checkpoint(CKPT / name)
    assert count_parameters(ck.model) == params
    assert ck.data_fingerprint == cifar.fingerprint  # trained on this very data
    # score_images' set figures are evaluate()'s (PSNR of the mean MSE, mean SSIM); the
    # session computes them once for this test and test_artifacts' tile measures
    res = shipped_test_scores(name).mean()
    assert res["n"] == 10000
    assert res["psnr"] >= floor
    # the figures stored in the checkpoint (and the README) are what it really does
    assert res["psnr"] == pytest.approx(ck.test_metrics["psnr"], abs=0.02)
    assert res["ssim"] == pytest.approx(ck.test_metrics["ssim"], abs=0.002)


def test_both_cifar10_checkpoints_share_one_recipe():
    a = load_checkpoint(CKPT / "cifar10-transpose.pt").train_config
    b = load_checkpoint(CKPT / "cifar10-upsample.pt").train_config
    assert {k: v for k, v in a.items() if k != "decoder"} == {
        k: v for k, v in b.items() if k != "decoder"
    }


@pytest.mark.parametrize("decoder", ["transpose", "upsample"])
def test_fashion_mnist_checkpoints(decoder, shared_root):
    if not (shared_root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").is_file():
        pytest.skip("Fashion-MNIST not unpacked in this data root (./dev test does it)")
    ck = load_checkpoint(CKPT / f"fashion-mnist-{decoder}.pt")
    assert ck.config.in_channels == 1 and ck.config.image_size == 28
    res = evaluate(ck.model, load_dataset("fashion-mnist", root=shared_root).test)
    assert res["psnr"] == pytest.approx(ck.test_metrics["psnr"], abs=0.02)
    assert res["psnr"] > 19


FAMILY = [
    ("cifar10-transpose3.pt", 2055),
    ("cifar10-transpose4.pt", 2839),
    ("cifar10-bilinear.pt", 2055),
    ("cifar10-subpixel.pt", 5136),
    ("cifar10-subpixel-icnr.pt", 5136),
]


@pytest.mark.parametrize(("name", "params"), FAMILY)
def test_family_checkpoints_score_what_they_say(name, params, cifar):
    """The rest of the decoder family: each loads, takes the seed pair's encoder and code,
    and its stored test figures are what it does on the real test split (0.01 dB)."""
    ck = load_checkpoint(CKPT / name)
    assert count_parameters(ck.model) == params
    assert ck.config.code_shape == (4, 8, 8) and ck.data_fingerprint == cifar.fingerprint
    res = evaluate(ck.model, cifar.test)
    assert res["n"] == 10000
    assert res["psnr"] == pytest.approx(ck.test_metrics["psnr"], abs=0.01)
    assert res["ssim"] == pytest.approx(ck.test_metrics["ssim"], abs=0.001)
    assert res["psnr"] > 21  # every one of them learned (the family recipe's transpose3: 22.31)


def test_the_family_shares_one_recipe_and_seed():
    configs = [load_checkpoint(CKPT / name).train_config for name, _ in FAMILY]
    recipes = [{k: v for k, v in c.items() if k != "decoder"} for c in configs]
    assert all(r == recipes[0] for r in recipes) and recipes[0]["seed"] == 0
    assert [c["decoder"] for c in configs] == [n[8:-3] for n, _ in FAMILY]
