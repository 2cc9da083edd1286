"""Training on real (tiny) data: the loss falls, stops are clean, runs are reproducible."""

import pytest
import torch

from convae.models import AEConfig, ConvAutoencoder
from convae.train import TrainConfig, evaluate, fit, lr_factor


def test_a_few_steps_lower_the_loss(tiny_data):
    losses = []
    fit(
        TrainConfig(epochs=3, batch_size=8, lr=3e-3, warmup_steps=1),
        tiny_data,
        lambda ev: losses.append(ev.loss) if ev.kind == "step" else None,
    )
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first


def test_events_and_history(tiny_data):
    events = []
    r = fit(
        TrainConfig(decoder="upsample", loss="mse", epochs=2, batch_size=16),
        tiny_data,
        events.append,
    )
    steps = [e for e in events if e.kind == "step"]
    epochs = [e for e in events if e.kind == "epoch"]
    assert len(steps) == 2 * 5 and len(epochs) == 2  # 72 images / 16 = 5 steps
    assert epochs[-1].test_psnr == pytest.approx(r.history[-1]["test_psnr"])
    assert all(e.images_per_s > 0 for e in steps)
    assert r.epochs_done == 2 and not r.stopped
    assert {"mse", "psnr", "ssim"} <= set(r.test_metrics)


def test_same_seed_same_model(tiny_data):
    cfg = TrainConfig(epochs=1, batch_size=16, seed=3)
    a, b = fit(cfg, tiny_data), fit(cfg, tiny_data)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k])
    c = fit(TrainConfig(epochs=1, batch_size=16, seed=4), tiny_data)
    assert not torch.equal(a.model.conv1.weight, c.model.conv1.weight)


def test_stop_keeps_last_finished_epoch(tiny_data):
    cfg = TrainConfig(epochs=3, batch_size=16)
    # run A stops at its first epoch-end; run B stops two steps into epoch 2
    a = fit(cfg, tiny_data, lambda ev: ev.kind == "epoch")
    b = fit(cfg, tiny_data, lambda ev: ev.kind == "step" and ev.epoch == 2 and ev.step == 7)
    assert a.stopped and b.stopped and a.epochs_done == b.epochs_done == 1
    assert len(b.history) == 1
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k])


def test_stop_before_first_epoch_keeps_nothing_trained(tiny_data):
    r = fit(TrainConfig(epochs=2, batch_size=16), tiny_data, lambda ev: True)
    assert r.stopped and r.epochs_done == 0 and r.history == [] and r.test_metrics == {}


def test_divergence_is_caught(tiny_data):
    r = fit(TrainConfig(epochs=3, batch_size=16, lr=1e12, loss="mse", warmup_steps=0), tiny_data)
    assert r.diverged and "learning rate" in r.diverged
    assert "try 1e+11" in r.diverged  # a concrete lower rate to try
    # It blew up in the first epoch: nothing finished, and the message must not claim
    # that an "epoch 0" was kept.
    assert r.epochs_done == 0 and "no model was kept" in r.diverged
    assert "Kept the last" not in r.diverged
    assert all(torch.isfinite(p).all() for p in r.model.parameters())


def test_divergence_after_an_epoch_keeps_that_epoch(tiny_data, monkeypatch):
    """A loss that turns NaN two steps into epoch 2 rolls back to epoch 1's weights."""
    import convae.steps as steps_mod

    cfg = TrainConfig(epochs=3, batch_size=16)
    one = fit(cfg, tiny_data, lambda ev: ev.kind == "epoch")  # stopped after epoch 1
    steps_per_epoch = one.history[0]["step"]
    real_loss, calls = steps_mod.reconstruction_loss, [0]

    def loss_turning_nan(*args, **kwargs):
        calls[0] += 1
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if calls[0] == steps_per_epoch + 2 else loss

    monkeypatch.setattr(steps_mod, "reconstruction_loss", loss_turning_nan)
    r = fit(cfg, tiny_data)
    assert r.diverged and "Kept the last finished epoch (1)" in r.diverged
    assert f"step {steps_per_epoch + 2} (epoch 2)" in r.diverged
    assert r.epochs_done == 1 and len(r.history) == 1 and r.test_metrics["psnr"] > 0
    for k, v in one.model.state_dict().items():
        assert torch.equal(v, r.model.state_dict()[k]), k


def test_noise_classes_limit_and_big_batch(tiny_data):
    r = fit(
        TrainConfig(epochs=1, batch_size=1000, classes=("square",), limit=5, noise=0.2), tiny_data
    )
    assert r.history[0]["step"] == 1  # one batch: 5 images, batch clipped to the data
    assert r.test_metrics["n"] == 8  # test split filtered to squares
    with pytest.raises(ValueError, match="no training images"):
        fit(
            TrainConfig(epochs=1, classes=()),
            tiny_data.__class__("x", tiny_data.train.head(0), tiny_data.test, "fp"),
        )


@pytest.mark.parametrize("std", [0.0, 0.1, 0.3])
def test_noise_reaches_the_inputs_at_its_strength_and_targets_stay_clean(tiny_data, std):
    """What the model sees in its first step is a training image plus noise of the asked
    strength, and the reported loss is measured against the clean image."""
    seen = []
    model = ConvAutoencoder(AEConfig())
    # A hook on the first layer records the input of every forward pass; fit() works on
    # a deep copy of the model, which keeps the hook (and this list).
    model.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    losses = []
    # float32, so that the reported loss can be checked against a float32 forward pass
    cfg = TrainConfig(epochs=1, batch_size=8, limit=8, noise=std, warmup_steps=1, precision="fp32")
    fit(cfg, tiny_data, lambda ev: losses.append(ev.loss) if ev.kind == "step" else None, model)
    x = seen[0].contiguous()  # the first training step's inputs
    pool = tiny_data.train.floats(slice(0, 8))
    # each input's clean image: the training image nearest to it
    clean = pool[torch.cdist(x.flatten(1), pool.flatten(1)).argmin(1)]
    residual = x - clean
    if std == 0:
        assert torch.equal(x, clean)
    else:
        # Clipping to [0, 1] changes the noise on dark or bright pixels: compare with
        # N(0, std^2) noise drawn here, clipped the same way on the same clean pixels.
        gen = torch.Generator().manual_seed(1)
        ref = (clean + std * torch.randn(clean.shape, generator=gen)).clamp(0, 1) - clean
        assert float(residual.std()) == pytest.approx(float(ref.std()), rel=0.05)
        assert float(residual.mean()) == pytest.approx(float(ref.mean()), abs=0.05 * std)
    with torch.no_grad():
        out = model.eval()(x)  # the weights before the first step, as fit() started
    assert losses[0] == pytest.approx(float((out - clean).pow(2).mean()), rel=1e-4)
    if std > 0:  # not measured against the noisy input
        assert losses[0] != pytest.approx(float((out - x).pow(2).mean()), rel=1e-3)


@pytest.mark.parametrize(
    "bad",
    [
        dict(lr=0),
        dict(lr=-1),
        dict(epochs=0),
        dict(batch_size=0),
        dict(loss="l1"),
        dict(noise=-0.1),
        dict(limit=0),
        dict(precision="fp16"),
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        TrainConfig(**bad)


def test_lr_schedule_shape():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(10, 10, 100) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100) == pytest.approx(0.05)


def test_evaluate_per_class_and_channel_check(tiny_models, tiny_data):
    model = tiny_models["transpose"].model
    res = evaluate(model, tiny_data.test, per_class=True)
    assert set(res["per_class"]) == set(tiny_data.classes)
    assert 0 < res["ssim"] <= 1 and res["psnr"] > 5
    grey = tiny_data.test.__class__(
        tiny_data.test.images[:, :1], tiny_data.test.labels, tiny_data.classes
    )
    with pytest.raises(ValueError, match="channel"):
        evaluate(model, grey)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_precision_decides_the_convolutions_arithmetic(tiny_data, precision):
    """bf16 runs the convolutions in bfloat16 and keeps the weights and the loss in
    float32; both train the model (its loss falls alike)."""
    dtypes, losses = set(), []
    model = ConvAutoencoder(AEConfig())
    model.conv1.register_forward_hook(lambda m, args, out: dtypes.add(out.dtype))
    cfg = TrainConfig(epochs=2, batch_size=8, lr=3e-3, warmup_steps=1, precision=precision)
    r = fit(cfg, tiny_data, lambda ev: losses.append(ev.loss) if ev.kind == "step" else None, model)
    want = torch.bfloat16 if precision == "bf16" else torch.float32
    assert torch.float32 in dtypes and want in dtypes  # the test scoring runs in float32
    assert dtypes <= {torch.float32, want}
    assert all(p.dtype == torch.float32 for p in r.model.parameters())
    assert sum(losses[-3:]) < sum(losses[:3])
    assert r.train_config.precision == precision


def test_auto_precision_is_recorded_as_what_it_became(tiny_data):
    from convae.steps import native_bf16

    r = fit(TrainConfig(epochs=1, batch_size=16), tiny_data)
    assert TrainConfig().precision == "auto"
    assert r.train_config.precision == ("bf16" if native_bf16(torch.device("cpu")) else "fp32")


def test_onecycle_schedule_shape():
    assert lr_factor(0, 500, 100, "onecycle") == pytest.approx(1 / 25)
    assert lr_factor(25, 500, 100, "onecycle") == pytest.approx(1.0)  # the top, a quarter in
    assert lr_factor(100, 500, 100, "onecycle") == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="step")
