"""Which style-transfer defaults make a picture that reads as style transfer with this
project's small encoder: the library's old StyleConfig (style weight 100, smoothness 1,
step size 0.03) or the Style page's (1000, 30, 0.02), which the page chose by eye on a
grid of picture pairs.

For each setting and a few CIFAR-10 test pairs (content, style) at the page's 64 px, with
the shipped models' encoders and 200 steps from the content picture, three numbers:

* style_moved: how much of the gap between the content's and the style's Gram matrices
  the result closed, 1 - style_loss(result) / style_loss(content), in the relu1 + relu2
  Gram matrices the transfer matches (0: no style taken, 1: the style's statistics);
* content_kept: the content loss at the end relative to the style loss at the start (how
  far the layout moved, on the same scale);
* grain: the result's total variation over the content picture's (pixel noise: 1 is as
  smooth as the content; the page's note says too little smoothness turns the picture
  into coloured pixel noise, which this reads as a grain well above 1).

Usage: python bench/style_defaults.py  (needs the CIFAR-10 copy in the data root, or uses
the embedded sample). Writes bench/results/style_defaults.json.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convae.checkpoints import load_checkpoint  # noqa: E402
from convae.data import available_full_source, load_dataset  # noqa: E402
from convae.style import (  # noqa: E402
    EncoderFeatures,
    StyleConfig,
    gram_matrix,
    style_transfer,
    total_variation,
)

SETTINGS = {
    "old StyleConfig (beta 100, tv 1, lr 0.03)": dict(beta=100.0, tv=1.0, lr=0.03),
    "Style page (beta 1000, tv 30, lr 0.02)": dict(beta=1000.0, tv=30.0, lr=0.02),
}
# (content class, k-th picture of it), (style class, k-th): the page's default pair first.
PAIRS = [
    (("ship", 0), ("frog", 3)),
    (("airplane", 0), ("cat", 1)),
    (("automobile", 2), ("bird", 0)),
]
SIZE = 64


def picture(test, cls: str, k: int) -> torch.Tensor:
    i = (test.labels == test.classes.index(cls)).nonzero().flatten()[k]
    x = test.floats(slice(int(i), int(i) + 1))
    f = SIZE // x.shape[-1]
    return x.repeat_interleave(f, 2).repeat_interleave(f, 3)  # as the page enlarges them


def style_gap(ex: EncoderFeatures, x: torch.Tensor, style: torch.Tensor, layers) -> float:
    with torch.no_grad():
        fx, fs = ex(x, layers), ex(style, layers)
    return sum(float((gram_matrix(fx[n]) - gram_matrix(fs[n])).pow(2).mean()) for n in layers)


def main() -> None:
    torch.set_num_threads(1)
    source = "cifar10" if available_full_source("cifar10") else "cifar10-sample"
    test = load_dataset(source).test
    rows = []
    for model_name in ("cifar10-upsample.pt", "cifar10-transpose.pt"):
        ex = EncoderFeatures(load_checkpoint(ROOT / "checkpoints" / model_name).model)
        for (c_cls, c_k), (s_cls, s_k) in PAIRS:
            content, style = picture(test, c_cls, c_k), picture(test, s_cls, s_k)
            base = StyleConfig()
            layers = list(base.style_weights)
            start = style_gap(ex, content, style, layers)
            for label, setting in SETTINGS.items():
                cfg = StyleConfig(**setting, style_weights=dict(base.style_weights))
                with torch.enable_grad():
                    res = style_transfer(ex, content, style, cfg)
                end = style_gap(ex, res.image, style, layers)
                rows.append(
                    {
                        "model": model_name,
                        "content": f"{c_cls} {c_k}",
                        "style": f"{s_cls} {s_k}",
                        "setting": label,
                        "style_moved": 1 - end / start,
                        "content_kept": res.history[-1]["content"] / start,
                        "grain": float(total_variation(res.image) / total_variation(content)),
                        "seconds": res.seconds,
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr)
    summary = {
        label: {
            key: statistics.median(r[key] for r in rows if r["setting"] == label)
            for key in ("style_moved", "content_kept", "grain")
        }
        for label in SETTINGS
    }
    out = {
        "what": "style transfer, 200 steps from the content picture, 64 px, relu1+relu2 "
        "style layers, relu2 content layer; medians over models and pairs",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
        "load_average": os.getloadavg()[0],
        "summary": summary,
        "rows": rows,
    }
    path = ROOT / "bench" / "results" / "style_defaults.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
