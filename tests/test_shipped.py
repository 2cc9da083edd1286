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
        ("cifar10-transpose.pt", 21.5, 1495),
        ("cifar10-upsample.pt", 22.5, 2055),
    ],
)
def test_cifar10_checkpoints_reach_target(name, floor, params, cifar):
    ck = load_checkpoint(CKPT / name)
    assert count_parameters(ck.model) == params
    assert ck.data_fingerprint == cifar.fingerprint  # trained on this very data
    res = evaluate(ck.model, cifar.test)
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
