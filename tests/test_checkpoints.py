"""Checkpoints round-trip exactly and every kind of bad file gets its own clear error."""

import io
import os
import pickle

import pytest
import torch

from convae.checkpoints import (
    FORMAT_VERSION,
    CheckpointError,
    checkpoint_dict,
    load_checkpoint,
    save_checkpoint,
)
from convae.models import AEConfig, ConvAutoencoder

from .test_models import CourseTransposeAE


def test_round_trip(tmp_path):
    model = ConvAutoencoder(AEConfig(decoder="upsample"))
    path = save_checkpoint(
        tmp_path / "m.pt",
        model,
        train_config={"loss": "mse"},
        history=[{"epoch": 1}],
        test_metrics={"psnr": 22.0},
        data_fingerprint="abc",
        data_source="cifar10",
    )
    ck = load_checkpoint(path)
    assert ck.config == model.config
    assert ck.train_config == {"loss": "mse"} and ck.history == [{"epoch": 1}]
    assert ck.test_metrics["psnr"] == 22.0 and ck.data_fingerprint == "abc"
    for k, v in model.state_dict().items():
        assert torch.allclose(v, ck.model.state_dict()[k])
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), ck.model(x))
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind


def test_bare_course_state_dict_loads(tmp_path):
    course = CourseTransposeAE()
    torch.save(course.state_dict(), tmp_path / "model_cifar.pt")
    ck = load_checkpoint(tmp_path / "model_cifar.pt")
    assert ck.bare and ck.config.decoder == "transpose" and ck.config.in_channels == 3
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ck.model(x), course(x), atol=1e-6)


def test_bare_one_channel_upsample_state_dict(tmp_path):
    m = ConvAutoencoder(AEConfig(1, 28, "upsample"))
    ck = load_checkpoint(_bytes(m.state_dict()))
    assert ck.config == AEConfig(1, 28, "upsample")


def _bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_not_a_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path)


def test_empty_and_random_bytes():
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(b"")
    with pytest.raises(CheckpointError, match="not a readable PyTorch file"):
        load_checkpoint(os.urandom(4096))


def test_truncated(tmp_path):
    data = _bytes(checkpoint_dict(ConvAutoencoder()))
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(data[: len(data) // 2])


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = {"state_dict": RunsCode(str(marker))}
    for blob in (_bytes(payload), pickle.dumps(payload)):
        with pytest.raises(CheckpointError, match="refused|not a readable"):
            load_checkpoint(blob)
        assert not marker.exists()


def test_future_format_version():
    blob = checkpoint_dict(ConvAutoencoder())
    blob["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(CheckpointError, match=f"version {FORMAT_VERSION + 1}"):
        load_checkpoint(_bytes(blob))


def test_weights_of_other_architecture():
    blob = checkpoint_dict(ConvAutoencoder(AEConfig(1, 28, "upsample")))
    blob["model_config"] = AEConfig(3, 32, "upsample").to_dict()  # lies about channels
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(_bytes(blob))


def test_nan_weights():
    m = ConvAutoencoder()
    with torch.no_grad():
        m.conv1.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(_bytes(checkpoint_dict(m)))


def test_other_dicts_and_objects():
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(_bytes([1, 2, 3]))
    with pytest.raises(CheckpointError, match="not a ConvAE checkpoint"):
        load_checkpoint(_bytes({"epoch": 3, "optimizer": {}}))
    with pytest.raises(CheckpointError, match="another model"):
        load_checkpoint(_bytes({"fc.weight": torch.zeros(3, 3)}))


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    good = ConvAutoencoder()
    save_checkpoint(path, good)

    def broken_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, ConvAutoencoder(AEConfig(decoder="upsample")))
    monkeypatch.undo()
    ck = load_checkpoint(path)
    assert ck.config.decoder == "transpose"
    assert torch.allclose(ck.model.conv1.weight, good.conv1.weight)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_a_checkpoint_naming_an_unknown_decoder_gets_one_sentence():
    blob = checkpoint_dict(ConvAutoencoder())
    blob["model_config"]["decoder"] = "deconv5"
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(_bytes(blob), name="future.pt")
    text = str(err.value)
    assert text.startswith("future.pt has an invalid model config: the decoder 'deconv5'")
    assert "known decoders: transpose, transpose3, transpose4, upsample, bilinear" in text
    assert "\n" not in text


def test_a_checkpoint_from_before_the_family_loads_as_before(tmp_path):
    """A checkpoint written before the family (no snapshots, no data source or time) loads,
    and a family checkpoint round-trips with its decoder."""
    old = ConvAutoencoder(AEConfig(decoder="transpose"))
    blob = checkpoint_dict(
        old, train_config={"loss": "mse"}, history=[{"epoch": 1}], test_metrics={"psnr": 21.0}
    )
    for key in ("snapshots", "data_source", "created", "data_fingerprint"):
        blob.pop(key, None)
    ck = load_checkpoint(_bytes(blob))
    assert ck.config == AEConfig(decoder="transpose") and ck.snapshots == []
    assert ck.test_metrics == {"psnr": 21.0} and ck.data_source == ""
    for k, v in old.state_dict().items():
        assert torch.equal(ck.model.state_dict()[k], v)
    for decoder in ("transpose3", "subpixel-icnr"):
        model = ConvAutoencoder(AEConfig(decoder=decoder))
        back = load_checkpoint(save_checkpoint(tmp_path / f"{decoder}.pt", model))
        assert back.config.decoder == decoder
        x = torch.rand(2, 3, 32, 32)
        with torch.no_grad():
            assert torch.equal(back.model(x), model(x))
