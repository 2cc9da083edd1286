"""The code space (issue 23): maps, neighbours, the linear probe and the channel measures,
each checked on small data made here whose answer is known, plus the disk cache and the
`probe` command (on the real CIFAR-10 copy too)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from convae.atomic import write_atomic
from convae.codespace import CodeSpace, TooSmallError
from convae.codespace import cache as cs_cache
from convae.codespace.channels import (
    STRONG_R,
    channel_correlations,
    channel_means,
    picture_properties,
    strongest_sentence,
    swapped,
    switch_off_table,
)
from convae.codespace.neighbours import (
    agreement_sentence,
    chance_agreement,
    class_agreement,
    nearest,
    nearest_to,
    neighbour_table,
)
from convae.codespace.probe import fit_logistic, linear_probe, standardise, training_subset
from convae.codespace.projection import TSNESettings, pca_map, principal_axes, tsne_map
from convae.codespace.selection import select, swap_pictures, switch_off_pictures
from convae.data import DataSet, ImageSet
from convae.models import AEConfig, ConvAutoencoder

ROOT = Path(__file__).resolve().parents[1]


def two_blobs(n: int = 60, d: int = 12, gap: float = 6.0, seed: int = 0):
    """Two Gaussian clouds ``gap`` apart along the first axis; labels 0 and 1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = torch.arange(n) % 2
    x[:, 0] += gap * y
    return x, y


def tiny_set(n: int, channels: int = 3, size: int = 32, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)
    return ImageSet(images, torch.arange(n) % 3, ["a", "b", "c"])


# ------------------------------------------------------------------ projection


def test_pca_map_finds_the_planted_axes():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, generator=g), torch.randn(200, generator=g)
    a, b = a - a.mean(), b - b.mean()
    b = b - (a @ b) / (a @ a) * a  # uncorrelated in the sample, so the axes are exactly these
    e = torch.linalg.qr(torch.randn(20, 20, generator=g))[0]  # orthonormal columns
    rows = 10 * a[:, None] * e[:, 0] + 3 * b[:, None] * e[:, 1] + 5.0
    coords, shares = pca_map(rows)
    # Up to sign, the coordinates are the planted ones (centred).
    for col, truth in ((0, 10 * a), (1, 3 * b)):
        got = coords[:, col].double()
        r = torch.corrcoef(torch.stack([got, truth.double()]))[0, 1]
        assert abs(float(r)) > 0.9999
    want = float((100 * a.var()) / (100 * a.var() + 9 * b.var()))
    assert shares[0] == pytest.approx(want, abs=1e-4) and sum(shares) == pytest.approx(1, abs=1e-4)


def test_randomized_pca_of_many_numbers_matches_the_exact_axes():
    # More than EXACT_MAX_DIM numbers per row: the randomized branch; its axes must be the
    # exact eigenvectors (cosine ~1), as claimed for the 3,072 raw pixels.
    g = torch.Generator().manual_seed(1)
    # Two strong directions, then a slow decay: a gap like the pixels' spectrum has.
    scales = torch.cat([torch.tensor([6.0, 4.0]), torch.linspace(2, 0.1, 598)])
    rows = torch.randn(300, 600, generator=g) * scales
    (_, axes), _ = principal_axes(rows, 2)
    x = rows.double() - rows.double().mean(0)
    _, vectors = torch.linalg.eigh(x.T @ x)
    exact = vectors[:, -2:].flip(1).T
    cos = (axes * exact).sum(1).abs()
    assert torch.all(cos > 1 - 1e-4), cos


def test_pca_map_is_the_same_every_time():
    x, _ = two_blobs()
    assert torch.equal(pca_map(x)[0], pca_map(x.clone())[0])


def test_tsne_keeps_two_clouds_apart():
    x, y = two_blobs(n=90, d=10)
    settings = TSNESettings(perplexity=10, early_iters=50, main_iters=50)
    seen = []
    coords = tsne_map(x, settings, progress=lambda d, t, w: seen.append((d, t)))
    assert coords.shape == (90, 2) and torch.isfinite(coords).all()
    idx, _ = nearest(coords, k=5)
    assert class_agreement(idx, y) > 0.95
    assert seen[-1][0] == seen[-1][1]  # the bar ends full


def test_too_small_for_a_map_is_one_sentence():
    with pytest.raises(TooSmallError, match="too few for a PCA map"):
        pca_map(torch.randn(2, 5))
    with pytest.raises(TooSmallError, match=r"2 number\(s\) per picture"):
        pca_map(torch.randn(50, 2))
    with pytest.raises(TooSmallError, match="too few for a t-SNE map"):
        tsne_map(torch.randn(40, 5), TSNESettings(perplexity=30))
    assert issubclass(TooSmallError, ValueError)


# ------------------------------------------------------------------ neighbours


def test_neighbours_on_a_line():
    rows = torch.arange(10.0)[:, None] * torch.tensor([[3.0, 4.0]])  # 5 apart, in a row
    idx, dist = nearest(rows, k=2)
    assert set(idx[4].tolist()) == {3, 5} and dist[4].tolist() == pytest.approx([5, 5])
    assert idx[0].tolist() == [1, 2] and dist[0].tolist() == pytest.approx([5, 10])
    assert not (idx == torch.arange(10)[:, None]).any()  # never itself
    assert nearest_to(rows, torch.tensor([3.0, 4.1]), 1)[0] == [1]


def test_neighbours_share_the_class_of_separated_clouds():
    x, y = two_blobs(n=80, gap=20.0)
    table = neighbour_table(x, y, "code", k=8)
    assert table.agreement == 1.0
    assert table.of(3)[0] == table.indices[3].tolist()
    mixed = neighbour_table(
        x, y[torch.randperm(80, generator=torch.Generator().manual_seed(0))], "code"
    )
    assert mixed.agreement < 0.75
    with pytest.raises(IndexError):
        table.of(80)


def test_chance_agreement_and_sentence():
    labels = torch.tensor([0, 0, 1, 1])
    assert chance_agreement(labels) == pytest.approx(1 / 3)  # 2 same-class pairs of 6
    assert chance_agreement(torch.arange(100) % 10) == pytest.approx(0.0909, abs=1e-3)
    x, y = two_blobs(n=20, gap=20.0)
    t1 = neighbour_table(x, y, "code", k=2)
    t2 = neighbour_table(x[torch.randperm(20)], y, "pixel", k=2)
    text = agreement_sentence([t1, t2], 0.1)
    assert text.startswith("Code neighbours share the picture's class 100 % of the time")
    assert f"pixel neighbours {100 * t2.agreement:.0f} %" in text and text.endswith(
        "chance is 10 %."
    )


# ------------------------------------------------------------------ probe


def test_probe_on_separable_codes_is_near_perfect_and_reproducible():
    # 5 standard deviations apart: a linear boundary gets 99.4 % right.
    xtr, ytr = two_blobs(n=200, gap=5.0, seed=0)
    xte, yte = two_blobs(n=200, gap=5.0, seed=1)
    first = linear_probe(xtr, ytr, xte, yte, ["cat", "dog"])
    assert first.accuracy > 0.97 and min(first.per_class) > 0.95
    assert first.chance == 0.5 and first.converged
    again = linear_probe(xtr, ytr, xte, yte, ["cat", "dog"])
    assert again.accuracy == first.accuracy  # same recipe, same answer


def test_probe_on_noise_is_near_chance():
    g = torch.Generator().manual_seed(0)
    xtr, xte = torch.randn(400, 8, generator=g), torch.randn(400, 8, generator=g)
    ytr, yte = torch.arange(400) % 4, torch.arange(400) % 4
    r = linear_probe(xtr, ytr, xte, yte, list("abcd"))
    assert abs(r.accuracy - 0.25) < 0.08 and r.chance == 0.25


def test_probe_finds_the_same_optimum_as_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    # Three classes: scikit-learn fits a multinomial model then, as the probe does (for two
    # it fits one binary weight vector, a differently scaled penalty).
    g = torch.Generator().manual_seed(2)
    ytr = torch.arange(300) % 3
    xtr = torch.randn(300, 6, generator=g) + 1.5 * torch.nn.functional.one_hot(ytr, 6)
    a, _ = standardise(xtr, xtr)
    w, b, _, ok = fit_logistic(a, ytr, 3, max_iter=500)
    ref = LogisticRegression(C=1.0, max_iter=2000, tol=1e-10).fit(a.numpy(), ytr.numpy())
    ours = torch.softmax(a @ w + b, 1).numpy()
    theirs = ref.predict_proba(a.numpy())
    assert ok and np.abs(ours - theirs).max() < 1e-3


def test_probe_refuses_too_little():
    x, y = two_blobs(n=20)
    with pytest.raises(TooSmallError, match="1 class"):
        linear_probe(x, torch.zeros(20, dtype=torch.long), x, y, ["a", "b"])
    with pytest.raises(TooSmallError, match="too few for a linear probe"):
        linear_probe(x[:, :1], y, x[:, :1], y, ["a", "b"])


def test_training_subset_is_seeded():
    assert training_subset(100, None) is None and training_subset(100, 500) is None
    a, b = training_subset(100, 10, seed=3), training_subset(100, 10, seed=3)
    assert torch.equal(a, b) and len(a) == 10 and not torch.equal(a, training_subset(100, 10, 4))


# ------------------------------------------------------------------ channels


def test_a_channel_that_copies_brightness_correlates_one():
    images = tiny_set(40).images
    bright = picture_properties(images)["brightness"]
    g = torch.Generator().manual_seed(0)
    codes = torch.rand(40, 4, 2, 2, generator=g)
    codes[:, 2] = bright.float()[:, None, None]  # channel 2 is brightness, everywhere
    codes[:, 3] = 0  # a dead channel
    table = channel_correlations(codes, images)
    assert table["brightness"][2] == pytest.approx(1.0, abs=1e-6)
    assert math.isnan(table["brightness"][3])
    assert set(table) == {"brightness", "red-green", "blue-yellow", "edge energy"}
    assert strongest_sentence(table).startswith("Channel 2 follows brightness (r = +1.00")


def test_the_sentence_claims_nothing_below_the_threshold():
    weak = {"brightness": [0.2, -0.3], "edge energy": [0.1, float("nan")]}
    text = strongest_sentence(weak)
    assert text.startswith("No channel follows") and "channel 1 with brightness (r = -0.30)" in text
    assert "runs against" in strongest_sentence({"edge energy": [-STRONG_R - 0.1]})


def test_properties_of_known_pictures():
    red = torch.zeros(1, 3, 8, 8)
    red[:, 0] = 1.0
    p = picture_properties(red)
    assert float(p["red-green"]) == pytest.approx(1.0)
    assert float(p["edge energy"]) == pytest.approx(0, abs=1e-9)  # a flat picture has no edge
    grey = picture_properties(torch.full((2, 1, 8, 8), 0.5))
    assert set(grey) == {"brightness", "edge energy"}


def test_switching_off_a_channel_the_decoder_ignores_costs_nothing():
    torch.manual_seed(0)
    model = ConvAutoencoder(AEConfig(decoder="transpose"))
    with torch.no_grad():
        model.t_conv1.weight[1] = 0  # the decoder never reads code channel 1
    images = tiny_set(12).images
    codes = model.encode(images.float() / 255).detach()
    means = channel_means(codes)
    base, rows = switch_off_table(model, codes, images, means)
    assert rows[1].drop == pytest.approx(0.0, abs=1e-9)
    assert any(abs(r.drop) > 1e-4 for r in rows if r.channel != 1)
    assert [r.channel for r in rows] == [0, 1, 2, 3] and math.isfinite(base)
    # And pictures: switching channel 1 off leaves the reconstruction as it was.
    before = model(images[:2].float() / 255).detach()
    after = switch_off_pictures(model, images[:2], 1, means)
    assert torch.allclose(before, after, atol=1e-6)


def test_swap_exchanges_one_channel():
    a, b = torch.rand(4, 3, 3), torch.rand(4, 3, 3)
    a2, b2 = swapped(a, b, 2)
    assert torch.equal(a2[2], b[2]) and torch.equal(b2[2], a[2]) and torch.equal(a2[0], a[0])
    torch.manual_seed(0)
    model = ConvAutoencoder(AEConfig(decoder="upsample"))
    imgs = tiny_set(2).images
    out = swap_pictures(model, imgs[0], imgs[1], 0)
    assert out.shape == (2, 3, 32, 32) and not torch.allclose(out[0], model(imgs[:1] / 255)[0])
    with pytest.raises(ValueError, match="channel 4 is not in this code"):
        swapped(a, b, 4)


# ------------------------------------------------------------------ the page's entry point


@pytest.fixture
def grey_space(tmp_path):
    """A 28x28 grey model (code 4x7x7) on a small made-up data set, cache in tmp_path."""
    torch.manual_seed(0)
    model = ConvAutoencoder(AEConfig(in_channels=1, image_size=28, decoder="upsample"))
    data = DataSet("made-up", tiny_set(60, 1, 28, 0), tiny_set(45, 1, 28, 1), "fp-grey")
    return CodeSpace(model, data, root=tmp_path)


def test_code_space_reads_the_code_shape_and_caches_maps(grey_space, tmp_path):
    space = grey_space
    assert space.code_shape == (4, 7, 7)
    assert not space.is_cached("pca")
    m = space.map("pca")
    assert m.coords.shape == (45, 2) and m.space == "code" and len(m.shares) == 2
    assert space.is_cached("pca")
    files = list((tmp_path / "cache" / "codespace").glob("map-*.pt"))
    assert len(files) == 1 and space.digest in files[0].name
    # A fresh instance (another session) reads the file: same map, computed no more.
    again = CodeSpace(space.model, space.data, root=tmp_path)
    assert torch.equal(again.map("pca").coords, m.coords) and again._codes == {}
    # A damaged file is recomputed, not an exception.
    files[0].write_bytes(b"not a torch file")
    assert torch.equal(
        CodeSpace(space.model, space.data, root=tmp_path).map("pca").coords, m.coords
    )
    pix = space.pixel_map()
    assert pix.space == "pixels" and pix.coords.shape == (45, 2)


def test_another_model_gets_its_own_files(grey_space, tmp_path):
    grey_space.map("pca")
    torch.manual_seed(1)
    other = ConvAutoencoder(AEConfig(in_channels=1, image_size=28, decoder="upsample"))
    space = CodeSpace(other, grey_space.data, root=tmp_path)
    assert space.digest != grey_space.digest and not space.is_cached("pca")


def test_code_space_products_on_a_grey_model(grey_space):
    nb = grey_space.neighbours(k=3)
    assert set(nb.tables) == {"code", "pixel", "PCA 196"}
    assert nb.tables["code"].indices.shape == (45, 3)
    assert nb.chance == pytest.approx(chance_agreement(grey_space.data.test.labels))
    report = grey_space.probe()
    assert set(report.results) == {"code", "pixels", "PCA 196 of pixels"}
    assert report.results["code"].numbers == 196 and report.chance == pytest.approx(1 / 3)
    ch = grey_space.channels()
    assert ch.means.shape == (4, 7, 7) and len(ch.switch_off) == 4
    assert set(ch.correlations) == {"brightness", "edge energy"}
    assert grey_space.is_cached("probe") and grey_space.is_cached("channels")
    assert grey_space.is_cached("neighbours", k=3) and not grey_space.is_cached("neighbours")


def test_a_tsne_map_is_cached_under_its_settings(grey_space):
    settings = TSNESettings(perplexity=5, early_iters=20, main_iters=20)
    m = grey_space.map("tsne", settings=settings)
    assert m.method == "tsne" and m.coords.shape == (45, 2)
    assert grey_space.is_cached("tsne", **settings.to_dict())
    assert not grey_space.is_cached("tsne")  # the default recipe is another file
    with pytest.raises(TooSmallError, match="too few for a t-SNE map"):
        grey_space.map("tsne")  # perplexity 30 needs more than 45 pictures


def test_code_space_says_when_the_split_is_too_small(tmp_path):
    torch.manual_seed(0)
    model = ConvAutoencoder(AEConfig())
    data = DataSet("made-up", tiny_set(9), tiny_set(2, seed=1), "fp")
    with pytest.raises(TooSmallError, match="There are 2 picture"):
        CodeSpace(model, data, root=tmp_path).map("pca")


def test_select_reconstructs_a_lasso_with_both_models():
    torch.manual_seed(0)
    models = {d: ConvAutoencoder(AEConfig(decoder=d)) for d in ("transpose", "upsample")}
    images = tiny_set(30)
    sel = select(models, images, [5, 2, 7])
    assert sel.indices == [5, 2, 7] and sel.labels == [2, 2, 1]
    assert sel.recon["upsample"].shape == (3, 3, 32, 32) and sel.psnr["transpose"].shape == (3,)
    with pytest.raises(ValueError, match="picture 30 is not in this split"):
        select(models, images, [30])


def test_write_atomic_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "f.bin"
    write_atomic(target, lambda f: f.write(b"old"))

    def fail(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, fail)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


def test_cache_key_follows_content(tmp_path):
    a, b = tiny_set(10), tiny_set(10)
    assert cs_cache.split_fingerprint(a) == cs_cache.split_fingerprint(b)
    b.images[3, 0, 0, 0] ^= 1
    b.labels[0] = 2
    assert cs_cache.split_fingerprint(a) != cs_cache.split_fingerprint(b)
    p1 = cs_cache.cache_path(tmp_path, "map", "d", "f", "test", {"method": "pca"})
    p2 = cs_cache.cache_path(tmp_path, "map", "d", "f", "test", {"method": "tsne"})
    assert p1 != p2 and p1.parent == tmp_path / "cache" / "codespace"


# ------------------------------------------------------------------ command line


def test_probe_command_on_real_cifar10(cifar, shared_root):
    # The real command line in a process of its own. 500 training pictures keep it short
    # (the probes and the PCA are fitted on them); --no-cache so that the figures are
    # computed here, not read from an earlier run's file.
    env = {**os.environ, "CONVAE_DATA": str(shared_root), "CONVAE_OFFLINE": "1"}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run(
        [sys.executable, "-m", "convae", "probe", "checkpoints/cifar10-transpose.pt",
         "--max-train", "500", "--no-cache", "--json", "--quiet"],
        capture_output=True, text=True, env=env, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    acc = {name: res["accuracy"] for name, res in out["results"].items()}
    assert set(acc) == {"code", "pixels", "PCA 256 of pixels"}
    assert out["chance"] == pytest.approx(0.1)
    # Far above chance: CIFAR-10's pixels and codes both carry the class, linearly, well
    # above 10 % (about 23 % from 500 training pictures, 30-40 % from all 50,000); one
    # standard error on 10,000 test pictures is under half a point.
    assert all(0.15 < a < 0.6 for a in acc.values()), acc
    assert out["results"]["code"]["n_train"] == 500
    assert len(out["results"]["code"]["per_class"]) == 10


def test_probe_command_table_and_errors(image_tree, tmp_path, monkeypatch, capsys):
    from convae.__main__ import main
    from convae.checkpoints import save_checkpoint

    monkeypatch.setenv("CONVAE_DATA", str(tmp_path / "root"))
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m.pt", ConvAutoencoder(AEConfig()))
    assert main(["probe", str(ckpt), "--data", f"folder:{image_tree}", "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "trained on 48 training pictures, tested on 18 test pictures" in out[0]
    assert out[1].split() == ["class", "code", "pixels", "PCA", "256", "of", "pixels", "chance"]
    assert [line.split()[0] for line in out[2:6]] == ["circle", "square", "stripes", "all"]
    assert out[5].endswith("33.3%") and out[6].startswith("A linear classifier on the code")
    assert main(["probe", str(tmp_path / "no-such.pt")]) == 2
    assert "no such file" in capsys.readouterr().err
