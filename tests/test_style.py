"""Style: the Gram matrix against a hand-computed case, the losses, extractors that never
change the shared model, VGG only from a local file, and a transfer that lowers its loss."""

from __future__ import annotations

import pytest
import torch

from convae.style import (
    VGG19_FILE,
    EncoderFeatures,
    StyleConfig,
    content_loss,
    gram_matrix,
    layer_grams,
    style_loss,
    style_transfer,
    total_variation,
    vgg_weights_path,
)


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
    assert vgg_weights_path() is None  # nothing there, and nothing is downloaded
    assert not any(tmp_path.rglob("*"))
    p = tmp_path / "hub" / "checkpoints" / VGG19_FILE
    p.parent.mkdir(parents=True)
    p.write_bytes(b"x")
    assert vgg_weights_path() == p
