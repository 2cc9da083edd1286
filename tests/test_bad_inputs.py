"""The upload part of the bad-input catalogue: every kind of file a person may drop on the
photo uploader either becomes a sensible model input or gives a clear ImageDecodeError."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convae.images import ImageDecodeError, image_to_input


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _gradient(w: int = 64, h: int = 48) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    return np.stack([x, x[:, ::-1], np.full_like(x, 128)], -1).astype(np.uint8)


GOOD = {
    "rgb jpeg": lambda: _encode(Image.fromarray(_gradient()), "JPEG"),
    "rgba png": lambda: _encode(Image.fromarray(_gradient()).convert("RGBA"), "PNG"),
    "palette png": lambda: _encode(Image.fromarray(_gradient()).convert("P"), "PNG"),
    "greyscale png": lambda: _encode(Image.fromarray(_gradient()).convert("L"), "PNG"),
    "cmyk jpeg": lambda: _encode(Image.fromarray(_gradient()).convert("CMYK"), "JPEG"),
    "16-bit png": lambda: _encode(
        Image.fromarray((np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)), "PNG"
    ),
    "animated gif": lambda: _encode(
        Image.fromarray(_gradient()).convert("P"),
        "GIF",
        save_all=True,
        append_images=[Image.new("P", (64, 48), 3)],
        duration=100,
        loop=0,
    ),
    "wide panorama": lambda: _encode(
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 4000, 3), dtype=np.uint8)),
        "PNG",
    ),
}


@pytest.mark.parametrize("kind", GOOD)
@pytest.mark.parametrize("channels", [3, 1])
def test_readable_kinds_become_model_inputs(kind, channels):
    x = image_to_input(GOOD[kind](), channels, 32, kind)
    assert x.shape == (1, channels, 32, 32) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
    assert x.std() > 0.01  # a real picture, not a flat white or black square


def test_sixteen_bit_keeps_its_range():
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    x = image_to_input(_encode(Image.fromarray(ramp), "PNG"), 1, 32)
    assert x.min() < 0.1 and x.max() > 0.9  # not clipped to white above 255


def test_transparent_areas_are_white():
    im = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    x = image_to_input(_encode(im, "PNG"), 3, 32)
    assert torch.allclose(x, torch.ones_like(x))


BAD = {
    "zero bytes": (lambda: b"", "empty"),
    "not an image": (lambda: b"%PDF-1.7 this is a document", "not an image"),
    "truncated png": (
        lambda: GOOD["greyscale png"]()[:60],
        "starts as a PNG image but its picture data is cut short",
    ),
    "truncated jpeg": (
        lambda: GOOD["rgb jpeg"]()[:300],
        "starts as a JPEG image but its picture data is cut short",
    ),
}


@pytest.mark.parametrize("kind", BAD)
def test_unreadable_uploads_get_a_clear_error(kind):
    make, words = BAD[kind]
    with pytest.raises(ImageDecodeError, match=words) as err:
        image_to_input(make(), 3, 32, "photo.png")
    assert "photo.png" in str(err.value)


def test_decompression_bomb_is_refused_before_decoding():
    # A 1-bit PNG of 20,000 x 20,000 pixels is a few kB on disk and 400 Mpx in memory.
    bomb = _encode(Image.new("1", (20000, 20000)), "PNG")
    assert len(bomb) < 100_000
    with pytest.raises(ImageDecodeError, match="too (large|many pixels)"):
        image_to_input(bomb, 3, 32, "bomb.png")


# ----------------------------------------------------------------------------------------
# The same catalogue as a user meets it in the app (AppTest): a specific message, no
# exception box, the page keeps working, and nothing saved is lost.

import dataclasses  # noqa: E402
import os  # noqa: E402
import pickle  # noqa: E402

from streamlit.testing.v1 import AppTest  # noqa: E402

from convae.checkpoints import (  # noqa: E402
    FORMAT_VERSION,
    CheckpointError,
    checkpoint_dict,
    load_checkpoint,
)
from convae.data import load_dataset  # noqa: E402
from convae.models import AEConfig, ConvAutoencoder  # noqa: E402

from .apptools import pictures  # noqa: E402
from .conftest import make_image_tree  # noqa: E402
from .test_app import APP, TIMEOUT, _open, app_env  # noqa: E402, F401  (fixture)


@pytest.fixture
def app(app_env, monkeypatch) -> AppTest:  # noqa: F811
    for k, v in app_env.items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _saved(folder: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).glob("*.pt"))}


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _random_bytes(seed: int, n: int = 3000) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_any_random_bytes_get_the_checkpoint_message():
    for seed in range(300):
        with pytest.raises(CheckpointError, match="not a readable PyTorch file"):
            load_checkpoint(_random_bytes(seed), name="x.pt")


def _nan_model() -> dict:
    m = ConvAutoencoder()
    with torch.no_grad():
        m.conv2.bias[0] = float("nan")
    return checkpoint_dict(m)


def _future() -> dict:
    blob = checkpoint_dict(ConvAutoencoder())
    blob["format_version"] = FORMAT_VERSION + 1
    return blob


CHECKPOINTS = {  # what is uploaded -> words the sidebar's error must contain
    # Seeds whose bytes once made the reader raise IndexError / KeyError (an exception box).
    "random bytes": (lambda tmp: _random_bytes(17), "not a readable PyTorch file"),
    "other random bytes": (lambda tmp: _random_bytes(62), "not a readable PyTorch file"),
    "truncated": (lambda tmp: _torch_bytes(checkpoint_dict(ConvAutoencoder()))[:900], "truncated"),
    "other architecture": (
        lambda tmp: _torch_bytes({"fc.weight": torch.zeros(4, 4)}),
        "state_dict of another model",
    ),
    "code in the pickle": (
        lambda tmp: pickle.dumps({"state_dict": _RunsCode(str(tmp / "ran"))}),
        "not a readable PyTorch file",
    ),
    "code in a torch file": (
        lambda tmp: _torch_bytes({"x": _RunsCode(str(tmp / "ran"))}),
        "refused",
    ),
    "nan weights": (
        lambda tmp: _torch_bytes(_nan_model()),
        "NaN or infinite weights in conv2.bias",
    ),
    "future version": (lambda tmp: _torch_bytes(_future()), f"format version {FORMAT_VERSION + 1}"),
}


@pytest.mark.parametrize("kind", CHECKPOINTS)
def test_bad_checkpoint_uploads_are_named_and_change_nothing(app, app_env, kind, tmp_path):  # noqa: F811
    before = _saved(app_env["CONVAE_CHECKPOINTS"])
    picked = app.sidebar.multiselect(key="sidebar_models").value
    make, words = CHECKPOINTS[kind]
    app.sidebar.file_uploader(key="sidebar_upload").upload(
        "upload.pt", make(tmp_path), "application/octet-stream"
    ).run()
    assert not app.exception, [e.value for e in app.exception]
    errors = " ".join(e.value for e in app.sidebar.error)
    assert "upload.pt" in errors and words in errors, errors
    assert not (tmp_path / "ran").exists()  # the code in the file never ran
    assert app.sidebar.multiselect(key="sidebar_models").value == picked  # picks kept
    assert _saved(app_env["CONVAE_CHECKPOINTS"]) == before  # nothing saved touched
    _open(app, "layers")
    assert any("channel maps" in h.proto.body for h in app.get("html"))  # keeps working


def test_checkpoint_for_other_images_loads_with_a_warning(app):
    one_channel = ConvAutoencoder(AEConfig(1, 28, "upsample"))
    app.sidebar.file_uploader(key="sidebar_upload").upload(
        "mnist.pt", _torch_bytes(one_channel.state_dict()), "application/octet-stream"
    ).run()
    assert not app.exception and not app.sidebar.error
    # Added after the picks a page depends on (no silent switch), and flagged.
    assert app.sidebar.multiselect(key="sidebar_models").value[-1] == "uploaded:mnist.pt"
    assert any("other pictures than" in w.value for w in app.sidebar.warning)
    _open(app, "reconstructions")  # shows the models that fit, names the one left out
    assert any("Not shown" in c.value and "mnist" in c.value for c in app.caption)


PHOTOS = {  # upload -> words of the error (None: it is traced, with its caption)
    "zero bytes": (BAD["zero bytes"][0], "empty (0 bytes)"),
    "not an image": (BAD["not an image"][0], "not an image"),
    "truncated png": BAD["truncated png"],
    "truncated jpeg": BAD["truncated jpeg"],
    "decompression bomb": (
        lambda: _encode(Image.new("1", (20000, 20000)), "PNG"),
        "too many pixels",
    ),
    "cmyk jpeg": (GOOD["cmyk jpeg"], None),
    "16-bit png": (GOOD["16-bit png"], None),
    "animated gif": (GOOD["animated gif"], None),
    "wide panorama": (GOOD["wide panorama"], None),
    "palette png": (GOOD["palette png"], None),
}


@pytest.mark.parametrize("kind", PHOTOS)
def test_photo_uploads_on_the_layers_page(app, kind):
    make, words = PHOTOS[kind]
    _open(app, "layers")
    app.radio(key="layers_source").set_value("your photo").run()
    app.file_uploader(key="layers_upload").upload("photo.png", make(), "image/png").run()
    assert not app.exception, [e.value for e in app.exception]
    errors = " ".join(e.value for e in app.error)
    alts = [p.alt for p in pictures(app)]
    if words:
        assert "photo.png" in errors and words in errors, errors
        assert any(a.startswith("input: test ") for a in alts)  # a test picture meanwhile
    else:
        assert not errors
        assert any("photo.png, cropped and resized to 32px" in a for a in alts)
    assert any("channel maps" in h.proto.body for h in app.get("html"))  # maps either way


def _train(app: AppTest, limit: int, batch: int = 16) -> None:
    _open(app, "train")
    app.number_input(key="train_epochs").set_value(1)
    app.number_input(key="train_limit").set_value(limit)
    app.selectbox(key="train_batch").set_value(batch)
    app.button(key="train_start").click().run()
    assert not app.exception, [e.value for e in app.exception]


def test_divergence_is_reported_and_earlier_models_stay(app, monkeypatch):
    _train(app, 24)
    assert "trained:1" in app.sidebar.multiselect(key="sidebar_models").value
    # The page's learning rate stops at 1.0, which this tiny set survives; run the real
    # fit() with an absurd rate so the loss really turns non-finite.
    import convae.train as train_mod

    real_fit = train_mod.fit
    monkeypatch.setattr(
        train_mod,
        "fit",
        lambda cfg, *a, **k: real_fit(
            dataclasses.replace(cfg, lr=1e12, loss="mse", warmup_steps=0), *a, **k
        ),
    )
    app.button(key="train_start").click().run()
    assert not app.exception, [e.value for e in app.exception]
    errors = " ".join(e.value for e in app.error)
    assert "learning rate" in errors and "too high" in errors, errors
    # 1e12 blows up at the first step, so no epoch finished and none is claimed kept.
    assert "no model was kept" in errors and "Kept the last" not in errors, errors
    assert list(app.session_state["trained_models"]) == ["trained:1"]  # the earlier one
    assert sum("(yours)" in o for o in app.sidebar.multiselect(key="sidebar_models").options) == 1


def test_batch_larger_than_the_data_trains_in_one_step(app):
    _train(app, limit=8, batch=256)
    assert "trained:1" in app.sidebar.multiselect(key="sidebar_models").value
    assert app.session_state["train_last"][0]["history"][0]["step"] == 1


def test_no_class_picked_means_every_class(app):
    assert app.sidebar.multiselect(key="sidebar_classes").value == []
    _open(app, "train")
    assert any("classes: all" in c.value for c in app.caption)


@pytest.fixture
def odd_tree(tmp_path, monkeypatch, app_env) -> Path:  # noqa: F811
    """A folder source with an empty class and non-image files among the pictures."""
    tree = make_image_tree(tmp_path / "odd", n_train=6, n_test=3)
    for split in ("train", "test"):
        (tree / split / "empty").mkdir()
    (tree / "train" / "circle" / "readme.txt").write_text("not a picture")
    (tree / "train" / "square" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    (tree / "test" / ".DS_Store").write_bytes(b"\x00\x01")
    for k, v in app_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("CONVAE_SOURCE", f"folder:{tree}")
    monkeypatch.setenv("CONVAE_DATA", str(tmp_path / "root"))
    return tree


def test_empty_class_and_non_images_in_the_data_folder(odd_tree):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    # the readable pictures only, and the empty class is listed
    assert any("18 training and 9 test pictures, 4 classes" in c.value for c in at.sidebar.caption)
    # A picture that cannot be read is named; files without a picture extension
    # (readme.txt, .DS_Store) are not pictures by name and are passed over silently.
    notes = [c.value for c in at.sidebar.caption if "Left out" in c.value]
    assert len(notes) == 1, notes
    assert "Left out 1 file that is not a readable picture: train/square/broken.jpg" in notes[0]
    at.sidebar.multiselect(key="sidebar_classes").set_value(["empty"]).run()
    for page in ("overview", "reconstructions", "layers", "train"):
        _open(at, page)
        notes = " ".join(w.value for w in at.warning)
        assert "no pictures of empty" in notes or "no training pictures of empty" in notes, notes
    at.sidebar.multiselect(key="sidebar_classes").set_value(["empty", "circle"]).run()
    _open(at, "layers")  # still on the empty class: the page says so, the picker stays
    assert any("no pictures of empty" in w.value for w in at.warning)
    at.selectbox(key="layers_class").set_value("circle").run()
    assert not at.exception and not at.warning
    assert any("channel maps" in h.proto.body for h in at.get("html"))


def test_cache_deleted_or_corrupted_between_runs_is_rebuilt(image_tree, data_root):
    first = load_dataset(f"folder:{image_tree}")
    (cache,) = (data_root / "cache").glob("*.pt")
    cache.unlink()  # deleted
    again = load_dataset(f"folder:{image_tree}")
    assert cache.is_file() and again.fingerprint == first.fingerprint
    cache.write_bytes(cache.read_bytes()[:1000])  # cut short, as by a crash
    rebuilt = load_dataset(f"folder:{image_tree}")
    assert torch.equal(rebuilt.train.images, first.train.images)


def test_learning_rate_field_refuses_zero_negative_and_huge(app):
    # lr 0 and negative values cannot be typed in (TrainConfig rejects them too:
    # tests/test_train.py); huge values stop at 1.0 and a diverging run is caught above.
    _open(app, "train")
    field = app.number_input(key="train_lr")
    assert 0 < field.min <= 1e-4 and field.max == 1.0
