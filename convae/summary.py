"""Looking inside a model: architecture summaries and per-channel activation statistics.

Everything here works on a model and tensors only (no UI), so the Overview and Layers
pages, the Compare page and tests share the same numbers.
"""

from __future__ import annotations

import torch
from torch import nn

from .models import CODE_STEP, ConvAutoencoder, trace

# Steps whose output passed through a ReLU: their "fraction of zeros" says how many units
# are switched off (pools after a ReLU keep non-negative values, so they count too).
_AFTER_RELU = ("relu", "pool", "upsample")


def layer_description(module: nn.Module) -> str:
    """A torchinfo-like short text for one step's module, e.g. 'Conv2d(3, 16, 3, pad 1)',
    'ConvTranspose2d(4, 16, 3, stride 2, pad 1, out pad 1)', 'PixelShuffle(x2)'."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        k = module.kernel_size[0]
        extra = []
        if module.stride[0] != 1:
            extra.append(f"stride {module.stride[0]}")
        if module.padding[0]:
            extra.append(f"pad {module.padding[0]}")
        if isinstance(module, nn.ConvTranspose2d) and module.output_padding[0]:
            extra.append(f"out pad {module.output_padding[0]}")  # kernel 3: exactly 2x
        tail = f", {', '.join(extra)}" if extra else ""
        return f"{type(module).__name__}({module.in_channels}, {module.out_channels}, {k}{tail})"
    if isinstance(module, nn.MaxPool2d):
        return f"MaxPool2d({module.kernel_size}, {module.stride})"
    if isinstance(module, nn.Upsample):
        return f"Upsample(x{int(module.scale_factor)}, {module.mode})"
    if isinstance(module, nn.PixelShuffle):
        return f"PixelShuffle(x{module.upscale_factor})"
    return type(module).__name__


def architecture(model: ConvAutoencoder) -> list[dict]:
    """One row per step, as torchinfo prints it: step, layer, output shape, parameters.

    The shapes come from tracing one blank image of the model's input size, so they are
    exactly what the Layers page shows. The pool module is shared by pool1 and pool2 and
    has no parameters, so counting per step counts nothing twice.

    Returns:
        [{"step", "layer", "output shape", "values", "parameters", "part"}, ...] starting
        with the input row; "part" is "input", "encoder", "code" or "decoder".
    """
    cfg = model.config
    x = torch.zeros(1, cfg.in_channels, cfg.image_size, cfg.image_size)
    modules = dict(model.steps())
    n_encoder = len(model.encoder_steps())
    rows = []
    for i, (name, act) in enumerate(trace(model, x)):
        shape = tuple(act.shape[1:])
        module = modules.get(name)
        params = sum(p.numel() for p in module.parameters()) if module is not None else 0
        if name == "input":
            part = "input"
        elif name == CODE_STEP:
            part = "code"
        else:
            part = "encoder" if i <= n_encoder else "decoder"
        rows.append(
            {
                "step": name,
                "layer": layer_description(module) if module is not None else "image",
                "output shape": " x ".join(str(s) for s in shape),
                "values": int(act[0].numel()),
                "parameters": params,
                "part": part,
            }
        )
    return rows


def compression(model: ConvAutoencoder) -> dict:
    """Input size, code size and their ratio (3,072 -> 256 values is 12x for CIFAR-10)."""
    cfg = model.config
    return {
        "input_values": cfg.input_size,
        "code_values": cfg.code_size,
        "code_shape": cfg.code_shape,
        "ratio": cfg.input_size / cfg.code_size,
    }


def channel_stats(activation: torch.Tensor, step: str) -> list[dict]:
    """Min, max, mean and fraction of exact zeros of each channel of one image's activation.

    Args:
        activation: (C, H, W) or (1, C, H, W).
        step: the step's name; "zeros" is only reported after a ReLU (elsewhere an exact
            zero is a coincidence, not a switched-off unit) and is None there.
    """
    a = activation[0] if activation.ndim == 4 else activation
    flat = a.detach().float().flatten(1)
    after_relu = step.startswith(_AFTER_RELU) or step == CODE_STEP
    zeros = (flat == 0).float().mean(1)
    return [
        {
            "channel": c,
            "min": float(flat[c].min()),
            "max": float(flat[c].max()),
            "mean": float(flat[c].mean()),
            "zeros": float(zeros[c]) if after_relu else None,
        }
        for c in range(flat.shape[0])
    ]


def value_range(activations: list[tuple[str, torch.Tensor]]) -> tuple[float, float]:
    """The smallest and largest value over every step (the 'whole model' colour scale)."""
    lo = min(float(a.min()) for _, a in activations)
    hi = max(float(a.max()) for _, a in activations)
    return lo, hi


def joint_range(
    mode: str,
    acts: list[tuple[str, torch.Tensor]],
    step: str,
    acts_b: list[tuple[str, torch.Tensor]],
    step_b: str,
) -> tuple[float, float] | None:
    """One value range for two models' maps of one picture, so equal colours mean equal
    values: this step's over both (``mode`` "layer"), every step's over both ("model"),
    or None ("channel": every map keeps its own range)."""
    if mode == "channel":
        return None
    if mode == "layer":
        a, b = dict(acts)[step], dict(acts_b)[step_b]
        return float(min(a.min(), b.min())), float(max(a.max(), b.max()))
    (la, ha), (lb, hb) = value_range(acts), value_range(acts_b)
    return float(min(la, lb)), float(max(ha, hb))


def step_role(names: list[str], step: str) -> str:
    """What a step is, in words: "the input picture", "encoder", "the code" or "decoder"."""
    if step == "input":
        return "the input picture"
    if step == CODE_STEP:
        return "the code"
    return "encoder" if names.index(step) < names.index(CODE_STEP) else "decoder"
