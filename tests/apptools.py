"""Helpers for driving the app with Streamlit's AppTest: open a page, read the pictures a
page shows (its HTML picture rows: alt text, caption, PNG), read a plotly chart."""

from __future__ import annotations

import base64
import html
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 90  # seconds per run: a first run imports torch and plotly on a busy 2-core box

_FIGURE = re.compile(
    r'<figure class="cae-pic[^"]*"><img src="data:image/png;base64,([^"]+)" alt="([^"]*)">'
    r"(?:<figcaption>(.*?)</figcaption>)?</figure>"
)


@dataclass
class Picture:
    alt: str
    caption: str
    png: str  # base64 PNG: equal strings mean equal pictures

    def array(self) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(self.png))))


def start(env: dict, monkeypatch, page: str | None = None) -> AppTest:
    """The app with ``env`` set, run once (and switched to ``page``), without exceptions."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    ok(at)
    return open_page(at, page) if page else at


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py").run()
    ok(at)
    return at


def pictures(at: AppTest) -> list[Picture]:
    """Every picture of the page's picture rows, in page order."""
    out = []
    for block in at.get("html"):
        body = block.proto.body
        if "cae-pic" not in body:
            continue
        for png, alt, cap in _FIGURE.findall(body):
            out.append(Picture(html.unescape(alt), html.unescape(cap or ""), png))
    return out


def html_text(at: AppTest) -> str:
    """All the page's HTML blocks' text (takeaways, legends), tags removed."""
    text = " ".join(re.sub(r"<[^>]+>", " ", h.proto.body) for h in at.get("html"))
    return " ".join(text.split())


def plotly(at: AppTest, key: str | None = None, index: int = 0) -> dict:
    charts = at.get("plotly_chart")
    if key is not None:
        charts = [c for c in charts if key in c.proto.id]
    return json.loads(charts[index].proto.spec)


def array(v) -> np.ndarray:
    """A plotly figure's data array, plain or binary-encoded ({"dtype", "bdata", "shape"})."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        return a.reshape([int(d) for d in str(v.get("shape", len(a))).split(",")])
    return np.asarray(v)


def png_bytes(size: int = 40) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size * 2, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()
