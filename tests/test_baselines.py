"""Baselines at the code's size (issue 11, item 5): PCA fitted exactly and cached by the
data's fingerprint, a downsample that keeps as many numbers, and both measured by the
same comparison code as the autoencoders."""

from __future__ import annotations

import pytest
import torch

from convae.baselines import (
    BaselineConfig,
    DownsampleBaseline,
    PCABaseline,
    baselines_for,
    downsample_config,
    fit_pca,
    pca_baseline,
    pca_config,
)
from convae.compare import compare_models, per_class_table, score_images
from convae.data import DataSet, ImageSet
from convae.metrics import psnr


def subspace_set(n: int = 300, k: int = 5, size: int = 8, seed: int = 0) -> ImageSet:
    """uint8 images (3, size, size) that lie exactly in a k-dimensional affine subspace:
    100 + sum_i a_i * b_i with small integer coefficients and basis images."""
    g = torch.Generator().manual_seed(seed)
    d = 3 * size * size
    basis = torch.randint(-2, 3, (k, d), generator=g)
    coef = torch.randint(-5, 6, (n, k), generator=g)
    flat = 100 + coef @ basis
    assert flat.min() >= 0 and flat.max() <= 255
    images = flat.to(torch.uint8).reshape(n, 3, size, size)
    return ImageSet(images, torch.arange(n) % 2, ["even", "odd"])


def data_set(train: ImageSet, test: ImageSet, fingerprint: str = "f00d") -> DataSet:
    return DataSet("folder:synthetic", train, test, fingerprint)


# --- sizes ---------------------------------------------------------------------------


def test_sizes_match_the_code_for_colour_and_greyscale():
    assert pca_config(3, 32).numbers == 256  # the 4x8x8 code
    assert downsample_config(3, 32).numbers == 243 and downsample_config(3, 32).side == 9
    assert pca_config(1, 28).numbers == 196  # the 4x7x7 code
    assert downsample_config(1, 28).numbers == 196 and downsample_config(1, 28).side == 14
    assert downsample_config(3, 32).label == "downsample 9x9x3"
    assert pca_config().label == "PCA 256"
    with pytest.raises(ValueError, match="side\\*side"):
        BaselineConfig("downsample", 3, 32, 256)
    with pytest.raises(ValueError, match="kind"):
        BaselineConfig("jpeg")


# --- downsample ------------------------------------------------------------------------


def test_downsample_keeps_243_numbers_and_rebuilds_flat_and_smooth_images():
    b = DownsampleBaseline()
    flat = torch.full((2, 3, 32, 32), 0.37)
    assert b.encode(flat).shape == (2, 243)
    assert torch.allclose(b(flat), flat, atol=1e-6)  # a flat picture survives exactly
    # each kept number is the mean of its patch (adaptive average pooling)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    code = b.encode(x).reshape(1, 3, 9, 9)
    assert code[0, 1, 0, 0] == pytest.approx(float(x[0, 1, 0:4, 0:4].mean()), abs=1e-6)
    # smooth images lose little, noise loses a lot
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    smooth = (0.5 + 0.3 * torch.sin(xx / 9) * torch.cos(yy / 11)).expand(1, 3, 32, 32)
    assert float(psnr(b(smooth), smooth)) > 35
    assert float(psnr(b(x), x)) < 15
    with pytest.raises(ValueError, match="takes images"):
        b(torch.rand(1, 1, 28, 28))


# --- PCA -------------------------------------------------------------------------------


def test_pca_recovers_an_exact_subspace_and_no_more():
    train, test = subspace_set(300, k=5), subspace_set(40, k=5, seed=0)
    pca5 = fit_pca(train, 5)
    x = test.floats()
    assert torch.allclose(pca5(x), x, atol=1e-5)  # 5 components span the images exactly
    assert pca5.explained_variance() == pytest.approx(1.0, abs=1e-6)
    rows = pca5.components
    assert torch.allclose(rows @ rows.T, torch.eye(5), atol=1e-5)  # orthonormal
    assert (pca5.variance[:-1] >= pca5.variance[1:]).all()  # largest first
    pca4 = fit_pca(train, 4)
    assert float(psnr(pca4(x), x).mean()) < 60 and pca4.explained_variance() < 0.999


def test_pca_both_fitting_routes_agree_with_an_svd_reference():
    # fewer images than values (SVD route) and more (covariance route) give the same
    # subspace as numpy's SVD of the centred data, and the same variances
    for n in (60, 400):
        train = subspace_set(n, k=12, seed=3)
        # add a little full-rank noise so every direction has some variance
        g = torch.Generator().manual_seed(n)
        noisy = train.images.float() + torch.randint(-1, 2, train.images.shape, generator=g)
        train = ImageSet(noisy.clamp(0, 255).to(torch.uint8), train.labels, train.classes)
        pca = fit_pca(train, 8)
        flat = train.images.reshape(n, -1).double() / 255
        centred = flat - flat.mean(0)
        _, s, vh = torch.linalg.svd(centred, full_matrices=False)
        ref = vh[:8]
        proj, proj_ref = pca.components.double().T @ pca.components.double(), ref.T @ ref
        assert torch.allclose(proj, proj_ref, atol=2e-4), n
        assert torch.allclose(pca.variance.double(), s[:8] ** 2 / (n - 1), rtol=1e-4), n


def test_pca_with_fewer_images_than_components_keeps_zero_rows():
    train = subspace_set(10, k=5)
    pca = fit_pca(train, 20)
    assert pca.components.shape == (20, 192)
    assert (pca.components[9:] == 0).all()  # 10 centred images span at most 9 directions
    x = train.floats()
    assert torch.allclose(pca(x), x, atol=1e-5)


def test_pca_is_cached_by_fingerprint_and_refitted_when_the_cache_is_bad(tmp_path):
    data = data_set(subspace_set(300, k=5), subspace_set(20, k=5))
    first = pca_baseline(data, root=tmp_path)
    files = list((tmp_path / "cache").glob("pca16-3x8-f00d-v*.pt"))
    assert len(files) == 1  # default size: the 4x2x2 code of 8x8 images
    blob = torch.load(files[0], weights_only=True)  # plain tensors and numbers only
    assert blob["config"] == first.config.to_dict()
    stamp = files[0].stat().st_mtime_ns
    again = pca_baseline(data, root=tmp_path)
    assert files[0].stat().st_mtime_ns == stamp and again.fit_seconds == first.fit_seconds
    assert torch.equal(again.components, first.components)
    # another data set (fingerprint) gets its own file
    other = data_set(subspace_set(300, k=5, seed=9), subspace_set(20, k=5), fingerprint="beef")
    pca_baseline(other, root=tmp_path)
    assert len(list((tmp_path / "cache").glob("pca16-*.pt"))) == 2
    # a corrupt file is refitted and rewritten, not an error
    files[0].write_bytes(b"not a checkpoint")
    fixed = pca_baseline(data, root=tmp_path)
    assert torch.allclose(fixed.components, first.components)
    assert torch.load(files[0], weights_only=True)["config"] == first.config.to_dict()


def test_pca_fit_still_works_when_the_cache_cannot_be_written(tmp_path):
    # "cache" is a file here, so no cache folder can be made (like a read-only data
    # root, but also as root, who may write anywhere): the fit is used from memory.
    (tmp_path / "cache").write_text("in the way")
    data = data_set(subspace_set(300), subspace_set(20))
    pca = pca_baseline(data, root=tmp_path)
    x = data.test.floats()
    assert isinstance(pca, PCABaseline) and torch.allclose(pca(x), x, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # nothing else written


# --- measured like a model ------------------------------------------------------------


def test_baselines_are_scored_and_compared_like_models(tiny_data, tiny_models, tmp_path):
    base = baselines_for(tiny_data, root=tmp_path)
    assert list(base) == ["PCA 256", "downsample 9x9x3"]
    pca = base["PCA 256"]
    before = pca.components.clone()
    s = score_images(pca, tiny_data.test)
    x = tiny_data.test.floats()
    with torch.no_grad():
        assert s.psnr.tolist() == pytest.approx(psnr(pca(x), x).tolist(), abs=1e-4)
    assert torch.equal(pca.components, before)
    c = compare_models(tiny_models["transpose"].model, base["downsample 9x9x3"], x[:4])
    assert c.names == ("transpose", "downsample 9x9x3")
    rows = per_class_table({"upsample": tiny_models["upsample"].model, **base}, tiny_data.test)
    assert {r["model"] for r in rows} == {"upsample", "PCA 256", "downsample 9x9x3"}
    assert all("blockiness4_floor" in r and "checkerboard" in r for r in rows)
    pca_all = next(r for r in rows if r["model"] == "PCA 256" and r["class"] == "all")
    assert pca_all["psnr"] == pytest.approx(s.mean()["psnr"], abs=1e-6)
    with pytest.raises(ValueError, match="made for 32x32"):
        score_images(pca, torch.rand(2, 3, 28, 28))
