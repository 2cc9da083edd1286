"""The Code page on a 1-channel data set (Fashion-MNIST's format, 28x28 grey): the byte
ledger compares the code with the picture's own raw size (1 x 28 x 28 = 784 bytes), not
with a CIFAR-10 picture's 3,072."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from convae.data import load_dataset

from .conftest import make_fashion_mnist_root
from .fixtures import save_trained, train_tiny

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 90  # seconds per run: a first run imports torch and plotly on a busy 2-core box


@pytest.fixture(scope="module")
def grey_env(tmp_path_factory) -> dict:
    root = make_fashion_mnist_root(tmp_path_factory.mktemp("grey_root"))
    data = load_dataset("fashion-mnist", root=root)
    assert data.train.images.shape[1:] == (1, 28, 28)
    res = train_tiny(data, decoder="upsample", epochs=1)
    ckdir = tmp_path_factory.mktemp("grey_checkpoints")
    save_trained(ckdir / "grey-upsample.pt", res, data)
    return {
        "CONVAE_SOURCE": "fashion-mnist",
        "CONVAE_DATA": str(root),
        "CONVAE_CHECKPOINTS": str(ckdir),
    }


def test_code_ledger_on_grey_28px_images_uses_784_raw_bytes(grey_env, monkeypatch):
    for k, v in grey_env.items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/code.py").run()
    assert not at.exception, [e.value for e in at.exception]
    ledger = at.dataframe[0].value
    pairs = zip(ledger["bytes"], ledger["vs raw"], strict=True)
    rows = dict(zip(ledger["stored as"], pairs, strict=True))
    # 1 x 28 x 28 raw bytes; the 4 x 7 x 7 code is 196 values: 784 B as float32,
    # 392 B as float16, 196 B + 8 B (min and max) at 8 bits.
    assert rows["raw uint8 pixels"] == (784, "-")
    assert rows["code float32"] == (784, "-")  # as large as the picture: not smaller
    assert rows["code float16"] == (392, "2.0x smaller")
    assert rows["code 8-bit"] == (204, "3.8x smaller")
