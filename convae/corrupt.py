"""Input corruptions for the denoising and repair uses of an autoencoder (course notes).

Every function is a pure tensor op on images in [0, 1], (N, C, H, W): it returns a new
tensor and never changes its input. Randomness comes only from an explicit
``torch.Generator`` (drawn on the CPU, then moved), so the same seed gives the same
corruption on any device, and the app's pictures do not change between reruns.

Training reads a corruption from a short text spec (``TrainConfig.corruption``,
``--corruption``), parsed by :func:`parse_corruption`:

=====================  =============================================================
``gauss:S``            Gaussian noise, std S (``gauss:A-B``: std uniform in [A, B]
                       per image)
``saltpepper:F``       a fraction F of pixels set to black or white (all channels
                       of a pixel together; ``saltpepper:A-B`` per image)
``mask:S``             one S x S rectangle at a random place set to 0 (``mask:A-B``:
                       height and width each uniform in [A, B])
``grey``               the luma (ITU-R BT.601) copied into all three planes
``drop:r|g|b|any``     one colour plane set to 0 (``any``: a random plane per image)
=====================  =============================================================

Several specs joined by commas (``gauss:0-0.3,saltpepper:0-0.2``) pick one of them
per image, uniformly, so one model learns to undo all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

KINDS = ("gauss", "saltpepper", "mask", "grey", "drop")
PLANES = {"r": 0, "g": 1, "b": 2}
# ITU-R BT.601 luma weights: what a "black and white" picture of an RGB image shows.
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Corruption:
    """One parsed corruption. ``low``/``high`` bound its strength, drawn per image."""

    kind: str  # one of KINDS
    low: float = 0.0  # std (gauss), fraction (saltpepper), rectangle side (mask)
    high: float = 0.0
    plane: int | None = None  # drop: 0, 1, 2, or None for a random plane per image

    def __str__(self) -> str:
        if self.kind == "grey":
            return "grey"
        if self.kind == "drop":
            return "drop:" + ("any" if self.plane is None else "rgb"[self.plane])
        value = f"{self.low:g}" if self.low == self.high else f"{self.low:g}-{self.high:g}"
        return f"{self.kind}:{value}"


def _range(text: str, spec: str) -> tuple[float, float]:
    try:
        parts = [float(p) for p in text.split("-")]
    except ValueError:
        raise ValueError(f"corruption {spec!r}: {text!r} is not a number or a range A-B") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or parts[0] < 0 or parts[1] < parts[0]:
        raise ValueError(f"corruption {spec!r}: give a value >= 0 or a range A-B with 0 <= A <= B")
    return parts[0], parts[1]


def parse_corruption(spec: str) -> list[Corruption]:
    """Parse a spec (see the module docstring) into its alternatives; "" gives [].

    Raises:
        ValueError: an unknown kind or a value out of range, with the accepted forms.
    """
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        kind, _, value = part.partition(":")
        kind = kind.strip().lower()
        if kind == "gray":
            kind = "grey"
        if kind not in KINDS:
            raise ValueError(
                f"unknown corruption {part!r}: use gauss:STD, saltpepper:FRACTION, "
                "mask:SIDE (or A-B ranges), grey, or drop:r|g|b|any"
            )
        if kind == "grey":
            out.append(Corruption("grey"))
        elif kind == "drop":
            v = value.strip().lower() or "any"
            if v not in (*PLANES, "any"):
                raise ValueError(f"corruption {part!r}: drop takes r, g, b or any")
            out.append(Corruption("drop", plane=PLANES.get(v)))
        else:
            lo, hi = _range(value.strip(), part)
            if kind == "saltpepper" and hi > 1:
                raise ValueError(f"corruption {part!r}: the fraction must be in [0, 1]")
            if kind == "mask" and (lo < 1 or lo != int(lo) or hi != int(hi)):
                raise ValueError(
                    f"corruption {part!r}: the rectangle side is a whole number of pixels >= 1"
                )
            out.append(Corruption(kind, lo, hi))
    return out


# ------------------------------------------------------------ the corruptions


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def gaussian_noise(
    x: torch.Tensor, std: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """x + N(0, std^2), clipped to [0, 1]. ``std`` may be one value per image (N,)."""
    std = torch.as_tensor(std, dtype=x.dtype).reshape(-1, 1, 1, 1).to(x.device)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return (x + std * noise).clamp(0, 1)


def salt_and_pepper(
    x: torch.Tensor, fraction: float | torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Set a ``fraction`` of pixels to black or white (half each, on average).

    A hit pixel loses all its channels, like a dead sensor site, so the hit map is
    (N, 1, H, W). ``fraction`` may be one value per image (N,).

    Returns:
        (corrupted images, bool map of the hit pixels).
    """
    n, _, h, w = x.shape
    # Compared with the draws on the CPU, wherever a per-image fraction tensor lives.
    fraction = torch.as_tensor(fraction, dtype=torch.float32).reshape(-1, 1, 1, 1).cpu()
    u = torch.rand((n, 1, h, w), generator=generator)
    hit = u < fraction
    # Inside the hit set u is uniform in [0, fraction): its lower half is pepper.
    white = u >= fraction / 2
    hit, white = hit.to(x.device), white.to(x.device)
    return torch.where(hit, white.to(x.dtype), x), hit


def rectangle_mask(
    height: int, width: int, top: int, left: int, rect_h: int, rect_w: int
) -> torch.Tensor:
    """A bool (height, width) map, True inside the rectangle (clipped to the image)."""
    rows = torch.arange(height)[:, None]
    cols = torch.arange(width)[None, :]
    return (rows >= top) & (rows < top + rect_h) & (cols >= left) & (cols < left + rect_w)


def random_rectangles(
    n: int, height: int, width: int, low: int, high: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One rectangle per image, sides uniform in [low, high], placed uniformly inside.

    Returns:
        bool (n, 1, height, width), True inside each image's rectangle.
    """
    high_h, high_w = min(high, height), min(width, high)
    low_h, low_w = min(low, high_h), min(low, high_w)
    rh = torch.randint(low_h, high_h + 1, (n,), generator=generator)
    rw = torch.randint(low_w, high_w + 1, (n,), generator=generator)
    top = (torch.rand(n, generator=generator) * (height - rh + 1)).long()
    left = (torch.rand(n, generator=generator) * (width - rw + 1)).long()
    rows = torch.arange(height)[None, :, None]
    cols = torch.arange(width)[None, None, :]
    inside = (
        (rows >= top[:, None, None])
        & (rows < (top + rh)[:, None, None])
        & (cols >= left[:, None, None])
        & (cols < (left + rw)[:, None, None])
    )
    return inside[:, None]


def apply_mask(x: torch.Tensor, mask: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Pixels where ``mask`` is True set to ``fill`` in every channel (missing data)."""
    mask = mask.to(x.device)
    while mask.ndim < x.ndim:
        mask = mask[None]
    return x.masked_fill(mask, fill)


def to_grey(x: torch.Tensor) -> torch.Tensor:
    """The luma of RGB images copied into all three planes (a colour model takes 3)."""
    if x.shape[1] != 3:
        raise ValueError(f"grey needs RGB images, got {x.shape[1]} channel(s)")
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True).expand_as(x).clone()


def drop_plane(x: torch.Tensor, plane: int | torch.Tensor) -> torch.Tensor:
    """Colour plane ``plane`` (0 R, 1 G, 2 B; or one index per image) set to 0."""
    if x.shape[1] != 3:
        raise ValueError(f"dropping a colour plane needs RGB images, got {x.shape[1]} channel(s)")
    plane = torch.as_tensor(plane).reshape(-1, 1).to(x.device)
    keep = torch.arange(3, device=x.device)[None, :] != plane
    return x * keep[:, :, None, None].to(x.dtype)


# ------------------------------------------------------------- from a spec


def apply_corruption(
    x: torch.Tensor, c: Corruption, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one parsed corruption to a batch, strength drawn per image.

    Returns:
        (corrupted images, bool (N, 1, H, W) map of the pixels whose information was
        changed or lost: the whole image for noise, grey and dropped planes).
    """
    n, _, h, w = x.shape
    everywhere = torch.ones((n, 1, h, w), dtype=torch.bool, device=x.device)
    if c.kind == "gauss":
        return gaussian_noise(x, _uniform(n, c.low, c.high, generator), generator), everywhere
    if c.kind == "saltpepper":
        return salt_and_pepper(x, _uniform(n, c.low, c.high, generator), generator)
    if c.kind == "mask":
        m = random_rectangles(n, h, w, int(c.low), int(c.high), generator).to(x.device)
        return apply_mask(x, m), m
    if c.kind == "grey":
        return to_grey(x), everywhere
    if c.kind == "drop":
        plane = torch.randint(0, 3, (n,), generator=generator) if c.plane is None else c.plane
        return drop_plane(x, plane), everywhere
    raise ValueError(f"unknown corruption kind {c.kind!r}")


def corrupt(
    x: torch.Tensor, spec: str | list[Corruption], generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt a batch as ``spec`` says; with several alternatives, one per image.

    Returns:
        (corrupted images, bool (N, 1, H, W) map of the corrupted pixels). An empty
        spec returns ``x`` itself and an all-False map.
    """
    parts = parse_corruption(spec) if isinstance(spec, str) else list(spec)
    n, _, h, w = x.shape
    if not parts:
        return x, torch.zeros((n, 1, h, w), dtype=torch.bool, device=x.device)
    if len(parts) == 1:
        return apply_corruption(x, parts[0], generator)
    which = torch.randint(0, len(parts), (n,), generator=generator)
    out = x.clone()
    region = torch.zeros((n, 1, h, w), dtype=torch.bool, device=x.device)
    for i, c in enumerate(parts):
        idx = (which == i).nonzero().flatten()
        if len(idx) == 0:
            continue
        idx_d = idx.to(x.device)
        y, m = apply_corruption(x[idx_d], c, generator)
        out[idx_d], region[idx_d] = y, m
    return out, region
