"""Random draws and new tensors follow the input's device (issue 13 item 1).

There is no GPU here, so the tests run the real code on PyTorch's "meta" device (tensors
with a shape and no data) under :class:`OtherDevice`, which makes it fail the way CUDA
fails: a CPU tensor mixed with a meta one raises (torch itself does that), a random op
whose CPU generator does not match the device it fills raises (what CUDA's kernels check
and meta's do not), and reading data back (``.item()``, ``.cpu()``) gives zeros so that
whole training, style and codec runs can go through. Values are meaningless there; what
is tested is that every tensor ends up where the input is. The same code then runs on
the CPU, where the values are checked by the other test files.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from convae import codec, corrupt, style
from convae.data import add_gaussian_noise
from convae.models import AEConfig, ConvAutoencoder
from convae.train import TrainConfig, fit, training_inputs

META = torch.device("meta")
ROOT = Path(__file__).resolve().parents[1]
aten = torch.ops.aten


class OtherDevice(TorchDispatchMode):
    """Run code on meta tensors as if they were on a GPU (see the module docstring)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        gen = kwargs.get("generator")
        if gen is None:
            gen = next((a for a in args if isinstance(a, torch.Generator)), None)
        if func is aten._local_scalar_dense.default and args[0].device == META:
            return False if args[0].dtype == torch.bool else 0  # .item() on a meta tensor
        if func is aten._to_copy.default and args[0].device == META:
            target = kwargs.get("device") or META
            if torch.device(target).type == "cpu":  # .cpu(): zeros of the right kind
                dtype = kwargs.get("dtype") or args[0].dtype
                return torch.zeros(args[0].shape, dtype=dtype)
        out = func(*args, **kwargs)
        if gen is not None:
            filled = out if isinstance(out, torch.Tensor) else args[0]
            if filled.device.type != gen.device.type:
                # CUDA's check_generator message, word for word
                raise RuntimeError(
                    f"Expected a '{filled.device.type}' device type for generator but found "
                    f"'{gen.device.type}'"
                )
        return out


@pytest.fixture
def other_device():
    with OtherDevice():
        yield


def images(device: torch.device | str = META, n: int = 6, channels: int = 3) -> torch.Tensor:
    return torch.rand(n, channels, 32, 32, generator=torch.Generator().manual_seed(0)).to(device)


def test_the_emulation_fails_the_way_cuda_does(other_device):
    """The harness itself: a CPU generator filling a meta tensor, and a CPU tensor mixed
    with a meta one, both raise; drawing on the CPU and moving does not."""
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(RuntimeError, match="Expected a 'meta' device type for generator"):
        torch.randn(3, generator=gen, device=META)
    with pytest.raises(RuntimeError, match="device"):
        torch.ones(3, 1, 1) + torch.ones(2, 3, 4, 4, device=META)
    assert torch.randn(3, generator=gen).to(META).device == META


def test_gaussian_noise_on_another_device(other_device):
    x = images()
    y = add_gaussian_noise(x, 0.1, torch.Generator().manual_seed(1))
    assert y.device == META and y.shape == x.shape


@pytest.mark.parametrize(
    "spec",
    [
        "gauss:0.1",
        "gauss:0-0.4",
        "saltpepper:0-0.3",
        "mask:4-16",
        "grey",
        "drop:any",
        "drop:g",
        "gauss:0-0.4,saltpepper:0-0.3,mask:4-8,grey,drop:any",
    ],
)
def test_every_corruption_on_another_device_draws_what_it_draws_on_the_cpu(spec):
    """Same output device as the input, and the same random numbers consumed as on the
    CPU (so the same seed gives the same corruption on any device)."""
    cpu_gen, other_gen = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    y_cpu, m_cpu = corrupt.corrupt(images("cpu"), spec, cpu_gen)
    with OtherDevice():
        y, m = corrupt.corrupt(images(), spec, other_gen)
    assert y.device == META and m.device == META
    assert y.shape == y_cpu.shape and m.shape == m_cpu.shape and m.dtype == torch.bool
    assert torch.equal(cpu_gen.get_state(), other_gen.get_state())


def test_per_image_strengths_may_live_on_the_other_device(other_device):
    gen = torch.Generator().manual_seed(3)
    x = images()
    strengths = torch.full((6,), 0.2).to(META)
    assert corrupt.gaussian_noise(x, strengths, gen).device == META
    y, hit = corrupt.salt_and_pepper(x, strengths, gen)
    assert y.device == META and hit.device == META
    assert corrupt.drop_plane(x, torch.zeros(6, dtype=torch.long).to(META)).device == META


def test_training_inputs_with_noise_and_corruption_on_another_device(other_device):
    cfg = TrainConfig(noise=0.2, corruption="mask:4-8,saltpepper:0.1")
    x = training_inputs(images(), cfg, torch.Generator().manual_seed(0))
    assert x.device == META and x.shape == (6, 3, 32, 32)


def test_fit_with_noise_and_corruption_on_another_device(tiny_data, monkeypatch):
    """The whole training loop (noise, corruption, snapshots, scoring) on a second
    device: fit() reached the noise draw on CUDA whenever noise > 0 (issue 13)."""
    import convae.train as train_mod

    monkeypatch.setattr(train_mod, "resolve_device", lambda name: META)
    cfg = TrainConfig(epochs=1, batch_size=16, noise=0.1, corruption="mask:4-8,grey")
    with OtherDevice():
        r = fit(cfg, tiny_data, snapshots=2)
    assert r.epochs_done == 1 and next(r.model.parameters()).device.type == "cpu"
    assert len(r.snapshots) == 3 and "task" in r.test_metrics


def test_style_transfer_from_noise_on_another_device(other_device):
    model = ConvAutoencoder(AEConfig()).to(META)
    extractor = style.EncoderFeatures(model)
    cfg = style.StyleConfig(steps=2, init="noise")
    r = style.style_transfer(extractor, images(n=1), images(n=1), cfg)
    assert r.image.device == META and r.image.shape == (1, 3, 32, 32) and len(r.history) == 2
    grams = style.layer_grams(extractor, images(n=1))
    assert all(g.device == META for g in grams.values())


def test_codec_on_another_device(other_device):
    model = ConvAutoencoder(AEConfig()).to(META)
    x = images(n=2)
    z = model.encode(x)
    walk = codec.interpolate(z[0], z[1], 5)
    assert walk.device == META and walk.shape == (5, 4, 8, 8)
    assert codec.quantise(z, 4).device == META
    assert codec.edit_code(z[0], 1, 0.5, (0, 0, 2, 2), 1.0).device == META
    rows = codec.ledger(model, x[:1])  # the JPEG row is encoded on the CPU, scored here
    assert [r["form"].split()[0] for r in rows] == ["raw", "code", "code", "code", "JPEG"]
    rd = codec.rate_distortion(model, x, bits=(8,), qualities=(10,))
    assert len(rd["code"]) == 1 and len(rd["jpeg"]) == 1


def test_a_runtime_error_from_torch_is_one_line(tmp_path, monkeypatch, capsys):
    """What CUDA raised in fit() (issue 13): the command line prints it as one line with
    exit status 2 instead of a traceback."""
    import convae.__main__ as cli
    from tests.conftest import make_image_tree

    tree = make_image_tree(tmp_path / "shapes", n_train=2, n_test=1)
    monkeypatch.setenv("CONVAE_DATA", str(tmp_path / "root"))

    def cuda_failure(*args, **kwargs):
        raise RuntimeError("Expected a 'cuda' device type for generator but found 'cpu'")

    monkeypatch.setattr(cli, "fit", cuda_failure)
    status = cli.main(["train", "--data", f"folder:{tree}", "--quiet"])
    err = capsys.readouterr().err
    assert status == 2
    assert err == "error: Expected a 'cuda' device type for generator but found 'cpu'\n"


def test_a_bad_thread_count_in_the_environment_is_one_line(tmp_path):
    """torch.set_num_threads raises RuntimeError on 0 or less; $CONVAE_THREADS=-1 used to
    end every command in a traceback."""
    env = {"CONVAE_THREADS": "-1", "CONVAE_DATA": str(tmp_path), "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "convae", "evaluate", str(tmp_path / "none.pt")],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **env},
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr == (
        "error: CONVAE_THREADS must be a whole number >= 1, got '-1'; unset it to use one "
        "thread per core\n"
    )
