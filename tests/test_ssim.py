"""SSIM against values derived by hand from its definition (Wang et al. 2004), not against
itself: each case pins one part of the formula (luminance term and K1, the Gaussian window
with sigma 1.5, the population covariance and K2, the mean over windows and channels).

    SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))

with C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 1, means and (co)variances weighted by an
11x11 Gaussian window (sigma 1.5, weights summing to 1), averaged over every 'valid'
window position.
"""

from __future__ import annotations

import math

import pytest
import torch

from convae.metrics import ssim

C1, C2 = 0.01**2, 0.03**2


def _centre_weight() -> float:
    """The 1-D Gaussian's centre tap: the weight of the centre column of the 2-D window."""
    return 1 / sum(math.exp(-(k * k) / (2 * 1.5**2)) for k in range(-5, 6))


def test_flat_images_leave_only_the_luminance_term():
    # No variance anywhere: the structure term is C2 / C2 = 1.
    a, b = 0.5, 0.25
    x = torch.full((1, 1, 16, 16), a)
    y = torch.full((1, 1, 16, 16), b)
    expected = (2 * a * b + C1) / (a * a + b * b + C1)  # 0.25010 / 0.31260 = 0.80006
    assert float(ssim(x, y)[0]) == pytest.approx(expected, abs=1e-6)
    assert float(ssim(x, y)[0]) == pytest.approx(0.800064, abs=1e-6)


@pytest.mark.parametrize("d,e", [(0.2, 0.2), (0.2, 0.1), (0.3, 0.05), (0.2, -0.2)])
def test_one_window_of_left_right_halves(d, e):
    """An 11x11 image (one window position) that is m + d on the five left columns,
    m - d on the five right ones and m in the centre column; y the same with e.

    By symmetry the weighted mean of that +-1 pattern is 0 and its weighted mean square
    is v = 1 - g0 (g0: the centre column's weight), so mu_x = mu_y = m, s_x^2 = d^2 v,
    s_y^2 = e^2 v, s_xy = d e v (population moments: the weights sum to 1), and
    SSIM = (2 d e v + C2) / ((d^2 + e^2) v + C2)."""
    m = 0.5
    pattern = torch.zeros(11, 11)
    pattern[:, :5], pattern[:, 6:] = 1.0, -1.0
    x = (m + d * pattern)[None, None]
    y = (m + e * pattern)[None, None]
    v = 1 - _centre_weight()  # g0 = 0.26601 for sigma 1.5, so v = 0.73399
    expected = (2 * d * e * v + C2) / ((d * d + e * e) * v + C2)
    assert float(ssim(x, y)[0]) == pytest.approx(expected, abs=1e-5)


def test_centre_weight_by_hand():
    # sum_k exp(-k^2 / 4.5), k = -5..5: 1 + 2 (0.80074 + 0.41111 + 0.13534 + 0.02857
    # + 0.00387) = 3.75923, so g0 = 0.26601; a uniform window would give 1/11 = 0.0909.
    assert _centre_weight() == pytest.approx(0.26601, abs=1e-5)


def test_mean_over_window_positions_and_channels():
    """A 12x11 image has two window positions (rows 0-10 and 1-11); channels average."""
    a = torch.full((1, 2, 12, 11), 0.5)
    b = a.clone()
    b[:, 0, 11] = 0.0  # only the second window of channel 0 sees the dark last row
    # Channel 1 and channel 0's first window are identical (SSIM 1). The second window
    # of channel 0: the last row has weight g0' = the 1-D Gaussian's edge tap, so y's
    # mean is 0.5 (1 - t), its variance 0.25 t (1 - t), and x is flat (no variance).
    t = math.exp(-25 / 4.5) * _centre_weight()  # weight of the window's last row
    mu_y, var_y = 0.5 * (1 - t), 0.25 * t * (1 - t)
    second = ((2 * 0.5 * mu_y + C1) / (0.25 + mu_y**2 + C1)) * (C2 / (var_y + C2))
    expected = ((1 + second) / 2 + 1) / 2
    assert float(ssim(b, a)[0]) == pytest.approx(expected, abs=1e-5)
    assert float(ssim(a, a)[0]) == pytest.approx(1.0, abs=1e-6)
