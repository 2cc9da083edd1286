"""Image-quality and grid-artifact measures, per image, on tensors in [0, 1] of shape (N, C, H, W).

PSNR of a data set is reported as 10 log10(1 / mean MSE) over all its images
("PSNR of the mean MSE"), the usual convention for the course's figures; the
per-image values are there for tables and sorting.

The grid-artifact measures (:func:`blockiness` at the decoders' periods 2 and 4,
:func:`checkerboard`) are in 8-bit grey levels and come with a floor, what error of the
same size with no grid structure scores, so that a reader can tell a pattern from error.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each image pair, shape (N,)."""
    return (x - y).pow(2).flatten(1).mean(1)


def psnr_from_mse(m: torch.Tensor | float) -> torch.Tensor | float:
    """PSNR in dB for a peak value of 1; an exact copy is capped at 100 dB."""
    if isinstance(m, torch.Tensor):
        return 10 * torch.log10(1.0 / m.clamp_min(1e-10))
    return 10 * math.log10(1.0 / max(m, 1e-10))


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image pair, shape (N,)."""
    return psnr_from_mse(mse(x, y))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11) -> torch.Tensor:
    """Structural similarity of each image pair, shape (N,), averaged over channels.

    Wang, Bovik, Sheikh and Simoncelli (2004), "Image quality assessment: from error
    visibility to structural similarity": 11x11 Gaussian window (sigma 1.5), K1 = 0.01,
    K2 = 0.03, data range 1, statistics over the 'valid' window positions only. The
    window shrinks for images smaller than 11 pixels.
    """
    window = min(window, x.shape[-1], x.shape[-2])
    c = x.shape[1]
    w = _gaussian_window(window).to(x)[None, None].expand(c, 1, window, window)
    c1, c2 = 0.01**2, 0.03**2

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=c)

    mu_x, mu_y = filt(x), filt(y)
    sxx = filt(x * x) - mu_x**2
    syy = filt(y * y) - mu_y**2
    sxy = filt(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


# ------------------------------------------------------------ grid artifacts
#
# Both decoders upsample by 2 twice, so their output has a grid: the transpose decoder
# (kernel 2, stride 2, no overlap) paints each code cell's 4x4 output block on its own,
# made of four 2x2 blocks, one per hidden-layer value. The measures below look for
# structure locked to that grid, in 8-bit grey levels, each with a floor: what error
# of the same size without any grid structure scores.

GREY_LEVELS = 255.0  # the measures are reported in 8-bit grey levels: value x 255
TILE_PERIODS = (2, 4)  # the decoders' grids: 2x2 blocks (second layer), 4x4 (a code cell)


def _check_pair(recon: torch.Tensor, target: torch.Tensor, min_size: int) -> None:
    if recon.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(recon.shape)} vs {tuple(target.shape)}")
    if recon.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(recon.shape)}")
    if min(recon.shape[-2:]) < min_size:
        raise ValueError(
            f"images must be at least {min_size}x{min_size}, got {tuple(recon.shape[-2:])}"
        )


def block_steps(images: torch.Tensor, period: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean absolute step between neighbouring pixels across tile edges and inside tiles.

    The image is cut into ``period`` x ``period`` tiles starting at pixel (0, 0), the grid
    of the decoders' upsampling. A horizontal neighbour pair (j, j+1) crosses a tile edge
    when ``(j + 1) % period == 0``; vertical pairs likewise. Both directions and all
    colour channels are pooled.

    Args:
        images: (N, C, H, W) floats (values in [0, 1] give steps on that scale).
        period: tile size in pixels (2 or 4 for these decoders).

    Returns:
        (edge, inside): two float64 tensors of shape (N,), the mean |step| over the pairs
        that cross a tile edge and over all other pairs.
    """
    return _block_steps(images, (period,))[period]


def _block_steps(
    images: torch.Tensor, periods: tuple[int, ...]
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """:func:`block_steps` for several periods from one pass over the neighbour steps."""
    for period in periods:
        if period < 2 or period >= min(images.shape[-2:]):
            raise ValueError(f"period must be 2 or more and smaller than the image, got {period}")
    x = images if images.is_floating_point() else images.float()
    dh = torch.diff(x, dim=-1).abs_()  # pair (j, j+1) along each row
    dv = torch.diff(x, dim=-2).abs_()
    dims = (1, 2, 3)
    # float32 sums (cascade summation on CPU: relative error ~1e-7, far below the few
    # percent by which edge and inside means differ), six times faster than float64.
    all_sum = dh.sum(dims).double() + dv.sum(dims).double()
    c, h, w = x.shape[1:]
    pairs = c * (h * (w - 1) + w * (h - 1))
    out = {}
    for period in periods:
        # Pairs (j, j+1) with j = period-1, 2*period-1, ... cross an edge: a strided view.
        edge_sum = dh[..., period - 1 :: period].sum(dims).double()
        edge_sum += dv[..., period - 1 :: period, :].sum(dims).double()
        edges = c * (h * ((w - 1) // period) + w * ((h - 1) // period))
        out[period] = (edge_sum / edges, (all_sum - edge_sum) / (pairs - edges))
    return out


def blockiness(recon: torch.Tensor, target: torch.Tensor, period: int) -> torch.Tensor:
    """How much more a reconstruction steps across tile edges than inside tiles, beyond
    its input, in grey levels; one value per image, shape (N,).

    ``(edge - inside)`` of :func:`block_steps` for the reconstruction minus the same for
    the input, x255. Blocking artifacts show as larger steps at block boundaries than
    between neighbours inside a block; comparing the two on the image itself is the idea
    of the no-reference blockiness measures (Wang, Bovik and Evans 2000, "Blind
    measurement of blocking artifacts in images", ICIP, which read it from the spectrum
    of the differenced rows; Wu and Yuan 1997's GBIM as a ratio). Here the input is at
    hand, so its own difference (a JPEG copy has some at 8x8 boundaries, which fall on
    this grid too) is subtracted.

    Why a difference in grey levels, not a ratio: it is 0 for an exact copy and for a
    brightness shift, it reads as "at tile edges the picture jumps 9 grey levels more
    than elsewhere", it adds up over images (a set's value is the mean of its images'),
    and it cannot blow up on a flat image where the steps inside tiles are near 0.

    How it ranks cases (tests/test_artifacts.py): tiles aligned with the grid score high,
    at both periods for 4x4 tiles; white noise, blur and a brightness shift score about 0;
    tiles shifted by one pixel score below 0 (their edges fall inside this grid's
    tiles); a 2-pixel checkerboard about 0 (it steps equally everywhere).

    Error without grid structure scores near, not exactly, 0: it hides a little of the
    input's own edge steps under noise. :func:`blockiness_floor` measures that level for
    the same error; report both.

    Args:
        recon: reconstructions (N, C, H, W), values in [0, 1].
        target: the inputs they reconstruct, same shape.
        period: tile size, 2 or 4 for these decoders.

    Returns:
        Float64 tensor (N,) in grey levels (0..255 scale); positive = blockier than the input.
    """
    _check_pair(recon, target, period + 1)
    edge_r, inside_r = block_steps(recon, period)
    edge_t, inside_t = block_steps(target, period)
    return ((edge_r - inside_r) - (edge_t - inside_t)) * GREY_LEVELS


def structure_free(
    recon: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The input plus the reconstruction's own error with its pixels shuffled.

    The shuffle (a fresh random order of the pixels for each image) keeps the error's size
    and distribution of values but destroys every spatial structure, the decoder's grid
    included: a reference reconstruction that is as wrong as ``recon`` with no artifacts.
    Not clipped to [0, 1], so the error stays exactly the same values.

    Args:
        recon: reconstructions (N, C, H, W).
        target: inputs, same shape.
        generator: random source (default: a fixed seed 0, so a floor is reproducible).

    Returns:
        Tensor like ``target``.
    """
    _check_pair(recon, target, 1)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    r = (recon - target).flatten(2)  # (N, C, H*W)
    # One order per image, the same for its colour channels: each pixel's colour error
    # moves as a whole, so the shuffled error keeps its colour make-up.
    order = torch.rand(r.shape[0], 1, r.shape[2], generator=gen).argsort(dim=2)
    order = order.to(r.device).expand_as(r)
    return target + r.gather(2, order).view_as(target)


def blockiness_floor(
    recon: torch.Tensor,
    target: torch.Tensor,
    period: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """:func:`blockiness` of the same error with its grid structure shuffled away, (N,).

    What error of this size scores with no tiles at all (see :func:`structure_free`):
    slightly below 0 on the JPEG copy of CIFAR-10, because noise hides part of the
    input's own steps at its 8x8 JPEG block edges. A value well above this floor is
    structure, not error.
    """
    return blockiness(structure_free(recon, target, generator), target, period)


def blockiness_with_floors(
    recon: torch.Tensor,
    target: torch.Tensor,
    periods: tuple[int, ...] = TILE_PERIODS,
    generator: torch.Generator | None = None,
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """:func:`blockiness` and :func:`blockiness_floor` at several periods in one pass.

    The same numbers as calling the two per period (with the same shuffle for every
    period), computing each image's neighbour steps once: what
    :func:`convae.compare.score_images` uses on a whole split.

    Returns:
        period -> (blockiness, floor), each float64 (N,) in grey levels.
    """
    _check_pair(recon, target, max(periods) + 1)
    shuffled = structure_free(recon, target, generator)
    r, t, s = (_block_steps(im, periods) for im in (recon, target, shuffled))
    out = {}
    for p in periods:
        own = t[p][0] - t[p][1]
        out[p] = (
            (r[p][0] - r[p][1] - own) * GREY_LEVELS,
            (s[p][0] - s[p][1] - own) * GREY_LEVELS,
        )
    return out


def period2_phases(recon: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The residual's mean at each of the four 2x2 grid positions, and its chance level.

    Building block of :func:`checkerboard`, kept per image so that sets (a class, a
    whole split) can be pooled later without the images (:func:`pooled_checkerboard`).

    Args:
        recon: reconstructions (N, C, H, W); an odd last row or column is dropped.
        target: inputs, same shape.

    Returns:
        (phases, chance): float64 (N, C, 4), the mean of ``recon - target`` over the
        pixels at grid position (p, q) = (row % 2, col % 2), in the order (0,0), (0,1),
        (1,0), (1,1); and float64 (N, C), the variance those four means would have, in
        expectation, if the same residual values sat at random positions: ``3 s^2 /
        (n - 1)`` for n pixels of variance s^2 split into four equal groups (sampling
        without replacement).
    """
    _check_pair(recon, target, 2)
    h, w = recon.shape[-2] // 2 * 2, recon.shape[-1] // 2 * 2
    r = (recon[..., :h, :w] - target[..., :h, :w]).float()
    n, c = r.shape[:2]
    # Sums in float32 (cascade summation: relative error ~1e-7 of a phase's sum, while a
    # decoder's pattern is ~1e-4 of the pixel scale), kept in float64 from here on so
    # that pooling 10,000 images adds no rounding of its own.
    sums = r.reshape(n, c, h // 2, 2, w // 2, 2).sum(dim=(2, 4)).double()
    phases = sums.reshape(n, c, 4) / (h * w // 4)
    chance = 3 * r.flatten(2).var(dim=2, unbiased=False).double() / (h * w - 1)
    return phases, chance


def period2_pattern(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The period-2 pattern common to a set of images, to draw: the residual's mean at each
    2x2 grid position over all the images, less the mean of the four.

    What :func:`checkerboard` measures (pooled), before chance is taken off: the spread of
    these four values per channel is its amplitude plus chance. Tiled over a picture it is
    the checkerboard or stripes a decoder adds to every picture.

    Args:
        recon: reconstructions (N, C, H, W).
        target: inputs, same shape.

    Returns:
        Float64 (C, 2, 2), on the scale of the pixels (x255 for grey levels).
    """
    phases, _ = period2_phases(recon, target)
    pattern = phases.mean(0)  # (C, 4)
    return (pattern - pattern.mean(1, keepdim=True)).reshape(-1, 2, 2)


def pooled_checkerboard(phases: torch.Tensor, chance: torch.Tensor) -> tuple[float, float]:
    """The checkerboard amplitude common to a set of images, above chance, and its floor.

    Args:
        phases: (M, C, 4) from :func:`period2_phases` for the M images of the set.
        chance: (M, C) from the same call.

    Returns:
        (amplitude, floor) in grey levels: see :func:`checkerboard`.
    """
    if phases.dim() != 3 or phases.shape[-1] != 4 or phases.shape[:2] != chance.shape:
        raise ValueError(
            f"expected phases (M, C, 4) and chance (M, C), got {tuple(phases.shape)} "
            f"and {tuple(chance.shape)}"
        )
    m = phases.shape[0]
    if m == 0:
        raise ValueError("no images to pool: give at least one")
    pattern = phases.mean(0)  # (C, 4): the period-2 pattern common to the M images
    energy = float(pattern.var(dim=1, unbiased=False).mean())
    # The mean of M independent shuffles' phase means has 1/M^2 times the summed variance.
    floor_energy = float(chance.sum(0).mean()) / m**2
    excess = max(energy - floor_energy, 0.0)
    return math.sqrt(excess) * GREY_LEVELS, math.sqrt(floor_energy) * GREY_LEVELS


def checkerboard(
    recon: torch.Tensor, target: torch.Tensor, pooled: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Amplitude of the 2-pixel (period-2, Nyquist) pattern the reconstruction adds to its
    input, above what its error shows by chance, in grey levels.

    A decoder's checkerboard comes from its stride-2 layers treating the four positions
    of each 2x2 output block differently (uneven kernel overlap, Odena, Dumoulin and Olah
    2016, "Deconvolution and Checkerboard Artifacts", Distill). It is built into the
    weights, so it has the same phase wherever it appears. The measure therefore takes
    the residual ``recon - target``, averages it at each of the four 2x2 grid positions
    (``period2_phases``), over every pixel of the images given when ``pooled`` (one
    pattern for the whole set) or per image otherwise, and reads the spread of those four
    means: an added ``a * (-1)**(row + col)``, or period-2 stripes of amplitude ``a``,
    gives exactly ``a``. By Parseval this is the residual's energy at the three Nyquist
    frequencies (pi, 0), (0, pi), (pi, pi).

    Why pooled over images and measured against chance, not per image: ordinary error
    (noise, lost detail) also puts some energy at those frequencies in any one image,
    about as much as the pattern of a decoder, so a per-image reading tracks error
    (issue 11: shuffling each residual's pixels scored higher than the residual).
    Averaging over many images keeps a pattern with a fixed phase and averages error
    away. What is left of the error is known exactly: shuffled to random positions,
    residual values of variance s^2 give the four means an expected variance of
    ``3 s^2 / (n - 1)``. That chance energy is subtracted (so error without grid
    structure scores about 0) and its square root is returned as the floor: a pattern
    below it cannot be told from error. Real error is smoother than shuffled error and
    has less energy at these frequencies, so the floor errs on the safe side.

    A brightness shift changes all four means alike and scores 0; an exact copy scores
    0; blur, white noise and 4x4 tiles (constant over every 2x2 block) score about
    0; a checkerboard shifted by one pixel is still a checkerboard and scores the same.

    Args:
        recon: reconstructions (N, C, H, W), values in [0, 1].
        target: the inputs they reconstruct, same shape.
        pooled: one value for the whole set (a 0-dim tensor) instead of one per image.

    Returns:
        (amplitude, floor): float64 tensors of shape (N,) (or 0-dim when pooled) in grey
        levels; amplitude is 0 when the pattern's energy is below chance.
    """
    phases, chance = period2_phases(recon, target)
    if pooled:
        amp, floor = pooled_checkerboard(phases, chance)
        return torch.tensor(amp, dtype=torch.float64), torch.tensor(floor, dtype=torch.float64)
    energy = phases.var(dim=2, unbiased=False).mean(1)
    floor_energy = chance.mean(1)
    amp = (energy - floor_energy).clamp_min(0).sqrt() * GREY_LEVELS
    return amp, floor_energy.sqrt() * GREY_LEVELS


def radial_power_spectrum(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Radially averaged power spectrum, mean over images and channels.

    The power ``|FFT|**2 / (H*W)`` of each image and channel is averaged over rings of
    equal spatial frequency ``sqrt(fx**2 + fy**2)`` (bin width 1/max(H, W) cycles per
    pixel). The rings run out to the corner of the spectrum, ~0.707 cycles/pixel,
    because that corner (pi, pi) is where a 2-pixel checkerboard lives; period-2
    stripes land at 0.5. Plot ``power`` on a log scale against ``freqs`` to see a
    stride peak, or the high frequencies a blurry decoder leaves out.

    Args:
        images: (N, C, H, W) or (C, H, W) float images (uint8 is scaled to [0, 1]).

    Returns:
        (freqs, power): 1-D float tensors of equal length; ``freqs`` in cycles per pixel,
        ``freqs[0] == 0`` is the mean brightness (DC), leave it out of a log-log chart.
    """
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    x = images.double() / 255 if images.dtype == torch.uint8 else images.double()
    h, w = x.shape[-2:]
    power = torch.fft.fft2(x).abs().pow(2).div(h * w).mean(dim=(0, 1))  # (H, W)
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    step = 1.0 / max(h, w)
    ring = torch.round(torch.sqrt(fy**2 + fx**2) / step).long().flatten()
    counts = torch.bincount(ring).double()
    sums = torch.zeros(counts.numel(), dtype=torch.float64).index_add_(0, ring, power.flatten())
    keep = counts > 0
    freqs = torch.arange(sums.numel(), dtype=torch.float64) * step
    return freqs[keep].float(), (sums[keep] / counts[keep]).float()
