"""The architectures match the course exactly, and tracing never changes a model."""

import pytest
import torch
from torch import nn

from convae.models import AEConfig, ConvAutoencoder, count_parameters, infer_config, trace


@pytest.mark.parametrize(
    ("cfg", "params"),
    [
        (AEConfig(3, 32, "transpose"), 1495),
        (AEConfig(3, 32, "upsample"), 2055),
        (AEConfig(1, 28, "upsample"), 1477),  # the figure in the course notes
    ],
)
def test_parameter_counts(cfg, params):
    assert count_parameters(ConvAutoencoder(cfg)) == params


def test_course_parameter_names():
    t = ConvAutoencoder(AEConfig(decoder="transpose")).state_dict()
    u = ConvAutoencoder(AEConfig(decoder="upsample")).state_dict()
    assert sorted({k.split(".")[0] for k in t}) == ["conv1", "conv2", "t_conv1", "t_conv2"]
    assert sorted({k.split(".")[0] for k in u}) == ["conv1", "conv2", "conv4", "conv5"]


@pytest.mark.parametrize("decoder", ["transpose", "upsample"])
def test_trace_names_and_shapes(decoder):
    model = ConvAutoencoder(AEConfig(decoder=decoder))
    x = torch.rand(2, 3, 32, 32)
    names = [n for n, _ in trace(model, x)]
    shapes = {n: tuple(a.shape[1:]) for n, a in trace(model, x)}
    assert names[:7] == ["input", "conv1", "relu1", "pool1", "conv2", "relu2", "pool2"]
    assert names[-1] == "sigmoid"
    assert shapes["conv1"] == (16, 32, 32)
    assert shapes["pool1"] == (16, 16, 16)
    assert shapes["pool2"] == (4, 8, 8)
    assert shapes["sigmoid"] == (3, 32, 32)
    if decoder == "transpose":
        assert names[7:] == ["t_conv1", "relu3", "t_conv2", "sigmoid"]
        assert shapes["t_conv1"] == (16, 16, 16)
    else:
        assert names[7:] == ["upsample1", "conv4", "relu3", "upsample2", "conv5", "sigmoid"]
        assert shapes["upsample1"] == (4, 16, 16)
        assert shapes["conv5"] == (3, 32, 32)


@pytest.mark.parametrize("decoder", ["transpose", "upsample"])
def test_trace_agrees_with_encode_decode_forward(decoder):
    model = ConvAutoencoder(AEConfig(decoder=decoder))
    x = torch.rand(4, 3, 32, 32)
    acts = dict(trace(model, x))
    with torch.no_grad():
        code = model.encode(x)
        # encode() pools before the ReLU; max and ReLU commute, so the code is the same.
        assert torch.equal(acts["pool2"], code)
        assert torch.allclose(acts["sigmoid"], model.decode(code), atol=1e-6)
        assert torch.allclose(model(x), model.decode(code))
        assert torch.allclose(torch.sigmoid(model.decode_logits(code)), model.decode(code))
    assert ((acts["sigmoid"] >= 0) & (acts["sigmoid"] <= 1)).all()


def test_trace_does_not_change_the_model():
    model = ConvAutoencoder(AEConfig(decoder="upsample")).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trace(model, torch.rand(1, 3, 32, 32))
    assert model.training  # mode untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


def test_one_channel_model_shapes():
    model = ConvAutoencoder(AEConfig(1, 28, "upsample"))
    acts = dict(trace(model, torch.rand(2, 1, 28, 28)))
    assert acts["pool2"].shape == (2, 4, 7, 7)
    assert acts["sigmoid"].shape == (2, 1, 28, 28)


def test_config_validation():
    with pytest.raises(ValueError, match="decoder"):
        AEConfig(decoder="pixelshuffle")
    with pytest.raises(ValueError, match="multiple of 4"):
        AEConfig(image_size=30)
    assert AEConfig().code_size == 256 and AEConfig().input_size == 3072


class CourseTransposeAE(nn.Module):
    """The CIFAR assignment's model, written the notebook's way."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.t_conv1 = nn.ConvTranspose2d(4, 16, 2, stride=2)
        self.t_conv2 = nn.ConvTranspose2d(16, 3, 2, stride=2)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.relu(self.t_conv1(x))
        return torch.sigmoid(self.t_conv2(x))


def test_infer_config_and_same_outputs_as_course_model():
    course = CourseTransposeAE()
    cfg = infer_config(course.state_dict())
    assert cfg == AEConfig(3, 32, "transpose")
    ours = ConvAutoencoder(cfg)
    ours.load_state_dict(course.state_dict())
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ours(x), course(x), atol=1e-6)
    with pytest.raises(ValueError, match="neither"):
        infer_config({"fc.weight": torch.zeros(2, 2)})


# ------------------------------------------------------------------ the decoder family


@pytest.mark.parametrize(
    ("decoder", "rgb", "grey"),
    [
        ("transpose", 1495, 1077),
        ("transpose3", 2055, 1477),
        ("transpose4", 2839, 2037),
        ("upsample", 2055, 1477),
        ("bilinear", 2055, 1477),
        ("subpixel", 5136, 3688),
        ("subpixel-icnr", 5136, 3688),
    ],
)
def test_every_decoder_of_the_family_shapes_and_parameters(decoder, rgb, grey):
    for cfg, params in ((AEConfig(3, 32, decoder), rgb), (AEConfig(1, 28, decoder), grey)):
        model = ConvAutoencoder(cfg)
        assert count_parameters(model) == params
        x = torch.rand(2, cfg.in_channels, cfg.image_size, cfg.image_size)
        acts = dict(trace(model, x))
        size = cfg.image_size
        assert acts["pool2"].shape == (2, 4, size // 4, size // 4)
        assert acts["relu3"].shape == (2, 16, size // 2, size // 2)  # 16 between the steps
        assert acts["sigmoid"].shape == x.shape
        with torch.no_grad():
            assert torch.allclose(acts["sigmoid"], model(x), atol=1e-6)


def test_family_names_keep_the_seed_layers_and_tell_kernels_apart():
    for decoder, kernel in (("transpose", 2), ("transpose3", 3), ("transpose4", 4)):
        state = ConvAutoencoder(AEConfig(decoder=decoder)).state_dict()
        assert {k.split(".")[0] for k in state} == {"conv1", "conv2", "t_conv1", "t_conv2"}
        assert state["t_conv1.weight"].shape[-1] == kernel
        assert infer_config(state).decoder == decoder
    bilinear = ConvAutoencoder(AEConfig(decoder="bilinear")).state_dict()
    assert {k.split(".")[0] for k in bilinear} == {"conv1", "conv2", "conv4", "conv5"}
    sub = ConvAutoencoder(AEConfig(decoder="subpixel-icnr")).state_dict()
    assert {k.split(".")[0] for k in sub} == {"conv1", "conv2", "sp_conv1", "sp_conv2"}
    assert infer_config(sub).decoder == "subpixel"  # same shapes: read as the plain one


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_icnr_starts_as_a_convolution_then_nearest_upsampling(seed):
    """Aitken et al. 2017: at initialisation each ICNR sub-pixel step is exactly a 3x3
    convolution (every fourth kernel) followed by nearest x2; the default one is not."""
    torch.manual_seed(seed)
    icnr = ConvAutoencoder(AEConfig(decoder="subpixel-icnr"))
    plain = ConvAutoencoder(AEConfig(decoder="subpixel"))
    for model, equal in ((icnr, True), (plain, False)):
        for conv in (model.sp_conv1, model.sp_conv2):
            x = torch.randn(2, conv.in_channels, 8, 8)
            with torch.no_grad():
                shuffled = model.shuffle(conv(x))
                w, b = conv.weight[::4], conv.bias[::4]
                resized = nn.functional.interpolate(
                    nn.functional.conv2d(x, w, b, padding=1), scale_factor=2, mode="nearest"
                )
            assert torch.allclose(shuffled, resized, atol=1e-6) == equal
    # ICNR draws its kernels like a convolution with 4x fewer outputs (nn.Conv2d's default
    # bound 1/sqrt(fan_in)), so the weights keep the default layer's scale.
    bound = 1 / (icnr.sp_conv2.in_channels * 9) ** 0.5
    assert float(icnr.sp_conv2.weight.detach().abs().max()) <= bound


def test_an_unknown_decoder_names_the_known_ones():
    with pytest.raises(ValueError) as err:
        AEConfig(decoder="deconv5")
    text = str(err.value)
    assert "'deconv5' is not one this app knows" in text
    for known in ("transpose", "transpose3", "transpose4", "upsample", "bilinear", "subpixel-icnr"):
        assert known in text
