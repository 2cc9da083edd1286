"""Style: the Gram matrix against a hand-computed case, the losses, extractors that never
change the shared model, VGG only from a local file, and a transfer that lowers its loss,
with the encoder's features and with VGG-19's (a VGG-19-shaped file of random weights
where torch hub keeps the real one), down to the Style page running it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from convae.style import (
    ENCODER_LAYERS,
    VGG19_LAYERS,
    EncoderFeatures,
    StyleConfig,
    VGGFeatures,
    VGGWeightsError,
    content_loss,
    gram_matrix,
    layer_grams,
    style_loss,
    style_transfer,
    total_variation,
    vgg19_file,
    vgg_weights_path,
)

from .fixtures import save_tiny_models


def test_gram_matrix_by_hand():
    # Two channels on a 1x2 image: F = [[1, 2], [3, 4]] -> F F^T = [[5, 11], [11, 25]].
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    assert torch.equal(gram_matrix(f, normalize=False), torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]))
    assert torch.allclose(gram_matrix(f), torch.tensor([[[2.5, 5.5], [5.5, 12.5]]]))
    # Layout does not matter, only which channels fire together: a shuffle keeps G.
    g = torch.rand(2, 5, 6, 6)
    perm = torch.randperm(36)
    shuffled = g.flatten(2)[:, :, perm].reshape(g.shape)
    assert torch.allclose(gram_matrix(g), gram_matrix(shuffled), atol=1e-6)
    # Normalised by positions: a tiled (larger) copy has the same G.
    assert torch.allclose(gram_matrix(g), gram_matrix(g.repeat(1, 1, 2, 2)), atol=1e-6)


def test_losses():
    a, b = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    assert float(total_variation(torch.ones(1, 3, 4, 4))) == 0
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., ::2] = 1  # columns alternate: every horizontal step differs by 1
    assert float(total_variation(stripes)) == pytest.approx(1.0)
    assert float(content_loss(a, a)) == 0 and float(content_loss(a, b)) > 0
    assert float(style_loss(a, gram_matrix(a))) == 0
    assert float(style_loss(a, gram_matrix(b))) > 0


def test_encoder_features_leave_the_shared_model_alone(tiny_models):
    model = tiny_models["transpose"].model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    ex = EncoderFeatures(model)
    x = torch.rand(1, 3, 48, 40, requires_grad=True)  # larger than 32x32: fully convolutional
    feats = ex(x, ["relu1", "pool2"])
    assert feats["relu1"].shape == (1, 16, 48, 40) and feats["pool2"].shape == (1, 4, 12, 10)
    feats["pool2"].sum().backward()
    assert x.grad is not None
    assert all(
        (g is None and p.grad is None) or torch.equal(g, p.grad)
        for g, p in zip(grads, model.parameters(), strict=True)
    )  # no grad collected
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    grams = layer_grams(ex, x.detach())
    assert grams["conv1"].shape == (16, 16) and grams["pool2"].shape == (4, 4)
    assert torch.allclose(grams["conv2"], grams["conv2"].T)


def test_style_transfer_lowers_its_loss_and_reports_progress(tiny_models, tiny_data):
    ex = EncoderFeatures(tiny_models["upsample"].model)
    content = tiny_data.test.floats()[:1]
    style = tiny_data.test.floats()[-1:].repeat(1, 1, 2, 2)  # another image, 64x64
    seen = []
    cfg = StyleConfig(steps=40, beta=1000.0, lr=0.03, tv=0.0)
    res = style_transfer(ex, content, style, cfg, callback=lambda ev: seen.append(ev.step))
    assert seen == list(range(1, 41))
    assert res.image.shape == content.shape and float(res.image.min()) >= 0
    assert float(res.image.max()) <= 1
    first, last = res.history[0], res.history[-1]
    assert last["total"] < 0.5 * first["total"]
    assert last["style"] < first["style"]
    assert not torch.equal(res.image, content)
    stopped = style_transfer(ex, content, style, cfg, callback=lambda ev: ev.step == 5)
    assert stopped.stopped and len(stopped.history) == 5
    with pytest.raises(ValueError, match="unknown layer"):
        style_transfer(ex, content, style, StyleConfig(content_layer="relu5_1"))


def test_vgg_is_offered_only_from_a_local_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert vgg19_file() == "vgg19-dcbb9e9d.pth"  # torchvision's IMAGENET1K_V1 file
    assert vgg_weights_path() is None  # nothing there, and nothing is downloaded
    assert not any(tmp_path.rglob("*"))
    p = tmp_path / "hub" / "checkpoints" / vgg19_file()
    p.parent.mkdir(parents=True)
    p.write_bytes(b"x")
    assert vgg_weights_path() == p
    # where torch hub itself would look: torch.hub.set_dir wins over $TORCH_HOME
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # set_dir's setting, undone after
    torch.hub.set_dir(str(elsewhere))
    assert vgg_weights_path() is None
    (elsewhere / "checkpoints").mkdir(parents=True)
    (elsewhere / "checkpoints" / vgg19_file()).write_bytes(b"x")
    assert vgg_weights_path() == elsewhere / "checkpoints" / vgg19_file()


def test_style_defaults_per_layer_for_both_extractors():
    """What the Style page starts with comes from StyleConfig: the encoder's relu2 for
    content and its two ReLUs for style; for VGG-19 relu4_2 and each block's first ReLU
    (Gatys et al.); and the page's measured weights (bench/style_defaults.py)."""
    enc = StyleConfig.for_layers(ENCODER_LAYERS)
    assert enc.content_layer == "relu2"
    assert {n for n, w in enc.style_weights.items() if w} == {"relu1", "relu2"}
    assert set(enc.style_weights) == set(ENCODER_LAYERS)
    vgg = StyleConfig.for_layers(list(VGG19_LAYERS), steps=50)
    assert vgg.content_layer == "relu4_2" and vgg.steps == 50
    on = {n for n, w in vgg.style_weights.items() if w}
    assert on == {"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"}
    d = StyleConfig()
    assert (d.beta, d.tv, d.lr, d.steps, d.alpha) == (1000.0, 30.0, 0.02, 200, 1.0)
    assert d.style_weights == {"relu1": 1.0, "relu2": 1.0}


# ------------------------------------------------------------------------ VGG-19


@pytest.fixture(scope="module")
def vgg_home(tmp_path_factory) -> Path:
    """A torch home whose hub cache holds a VGG-19 weights file under the real file's name:
    every key and shape of torchvision's ``vgg19()`` state dict, random weights (He
    initialisation, so activations keep their scale through 16 layers). The classifier's
    weights (120 M of the 143 M values, never used for style) are stride-0 views of one
    small random row, so the file is 80 MB instead of 548 MB; loading still checks every
    key and shape. Saved in torch's legacy (non-zip) format, like torchvision's 2017 file."""
    from torchvision.models import vgg19

    with torch.device("meta"):  # the architecture's shapes, without 548 MB of init
        shapes = {k: v.shape for k, v in vgg19(weights=None).state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    state = {}
    for k, shape in shapes.items():
        if k.startswith("features.") and len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[k] = torch.randn(shape, generator=gen) * (2 / fan_in) ** 0.5
        elif k.startswith("features."):
            state[k] = torch.randn(shape, generator=gen) * 0.01
        else:
            state[k] = (torch.randn(shape[-1:], generator=gen) * 0.01).expand(shape)
    home = tmp_path_factory.mktemp("torch_home")
    path = home / "hub" / "checkpoints" / vgg19_file()
    path.parent.mkdir(parents=True)
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return home


def test_vgg19_style_transfer_end_to_end(vgg_home, monkeypatch, tiny_data):
    monkeypatch.setenv("TORCH_HOME", str(vgg_home))
    path = vgg_weights_path()
    assert path == vgg_home / "hub" / "checkpoints" / vgg19_file()
    ex = VGGFeatures(path)
    saved = torch.load(path, weights_only=True)
    assert torch.equal(ex.features[0].weight, saved["features.0.weight"])  # its weights
    # normalised as torchvision's weights were trained: the ImageNet mean and std
    assert ex.mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])
    assert ex.std.flatten().tolist() == pytest.approx([0.229, 0.224, 0.225])
    content = tiny_data.test.floats()[:1]
    style = tiny_data.test.floats()[-1:].repeat(1, 1, 2, 2)  # 64x64
    feats = ex(content, list(VGG19_LAYERS))
    # relu5_1 comes after four 2x2 poolings: 32 px -> 2 px, 512 channels
    assert feats["relu1_1"].shape == (1, 64, 32, 32) and feats["relu5_1"].shape == (1, 512, 2, 2)
    assert all(torch.isfinite(f).all() and f.abs().sum() > 0 for f in feats.values())
    cfg = StyleConfig(
        content_layer="relu4_2",
        style_weights={"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0},
        steps=8,
        lr=0.03,
        tv=0.0,
        beta=1000.0,
    )
    res = style_transfer(ex, content, style, cfg)
    assert len(res.history) == 8 and res.image.shape == content.shape
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in res.history)
    assert res.history[-1]["style"] < res.history[0]["style"]
    assert not torch.equal(res.image, content)


def test_unusable_vgg_files_get_a_clear_error(tmp_path):
    bad = tmp_path / vgg19_file()
    bad.write_bytes(b"x")  # e.g. a broken copy
    with pytest.raises(VGGWeightsError, match="not a readable PyTorch file") as err:
        VGGFeatures(bad)
    assert str(bad) in str(err.value) and "weights_only=False" not in str(err.value)
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, bad)  # not all of VGG-19
    with pytest.raises(VGGWeightsError, match="not torchvision's VGG-19") as err:
        VGGFeatures(bad)
    assert "features.0.bias" in str(err.value)


def _style_app(tiny_data, tiny_models, tmp_path, monkeypatch, torch_home: Path) -> AppTest:
    ckdir = save_tiny_models(
        tmp_path / "checkpoints", {"transpose": tiny_models["transpose"]}, tiny_data
    )
    for k, v in {
        "TORCH_HOME": str(torch_home),
        "CONVAE_SOURCE": tiny_data.source,
        "CONVAE_CHECKPOINTS": str(ckdir),
        "CONVAE_DATA": str(Path(tiny_data.source[7:]).parent / "root"),
    }.items():
        monkeypatch.setenv(k, v)
    app = str(Path(__file__).resolve().parents[1] / "app.py")
    at = AppTest.from_file(app, default_timeout=120)
    at.run()
    at.switch_page("pages/style.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_style_page_offers_and_runs_vgg19(vgg_home, tiny_data, tiny_models, tmp_path, monkeypatch):
    at = _style_app(tiny_data, tiny_models, tmp_path, monkeypatch, vgg_home)
    features = at.radio(key="style_extractor")
    assert list(features.options)[1] == "VGG-19 (local weights)"  # offered: the file is there
    features.set_value("vgg19").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="style_content_layer_vgg19").value == "relu4_2"
    at.select_slider(key="style_size").set_value(32)
    at.slider(key="style_steps").set_value(20).run()
    at.button(key="style_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    done = [c.value for c in at.caption if " steps in " in c.value]
    assert done and done[0].startswith("20 steps in") and "vgg19 features" in done[0]
    loss = next(c for c in at.get("plotly_chart") if "style_loss" in c.proto.id)
    total = json.loads(loss.proto.spec)["data"][0]["y"]
    assert len(total) == 20 and total[-1] < total[0]


def test_style_page_with_a_broken_vgg_file_says_so_and_keeps_the_encoder(
    tiny_data, tiny_models, tmp_path, monkeypatch
):
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    (home / "hub" / "checkpoints" / vgg19_file()).write_bytes(b"x")
    at = _style_app(tiny_data, tiny_models, tmp_path, monkeypatch, home)
    at.radio(key="style_extractor").set_value("vgg19").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("not a readable PyTorch file" in e.value for e in at.error)
    # the encoder's features are used instead, and a run works
    assert at.selectbox(key="style_content_layer_encoder").value == "relu2"
    at.slider(key="style_steps").set_value(20).run()
    at.button(key="style_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    done = [c.value for c in at.caption if " steps in " in c.value]
    assert done and "encoder features" in done[0]
