"""Per-image reconstruction metrics: MSE, PSNR and SSIM (Wang et al. 2004).

Inputs are NCHW float tensors in [0, data_range]; every function returns one value per image
(shape [N]) on the inputs' device and in their dtype, so callers can average or keep the spread.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# PSNR is infinite for identical images; clamping the MSE at this fraction of data_range**2 caps
# it at 100 dB, a finite value that still averages and logs cleanly.
PSNR_MSE_FLOOR = 1e-10


def _check_pair(x: Tensor, y: Tensor) -> None:
    if x.shape != y.shape:
        raise ValueError(f"image shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.dim() != 4:
        raise ValueError(f"expected NCHW images, got shape {tuple(x.shape)}")


def mse_per_image(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error of each image pair, averaged over C, H and W."""
    _check_pair(x, y)
    return (x - y).pow(2).flatten(1).mean(dim=1)


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image: 10 log10(L^2 / MSE), capped at 100 dB."""
    mse = mse_per_image(x, y).clamp_min(PSNR_MSE_FLOOR * data_range**2)
    return 10.0 * torch.log10(data_range**2 / mse)


def gaussian_window(
    window_size: int, sigma: float, dtype: torch.dtype = torch.float32, device=None
) -> Tensor:
    """The 2-D Gaussian window of the SSIM paper, normalised to sum to 1: [window, window]."""
    coords = torch.arange(window_size, dtype=dtype, device=device) - (window_size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(
    x: Tensor,
    y: Tensor,
    window_size: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """Mean structural similarity per image, as Wang et al. 2004 and their MATLAB ssim_index.

    Local statistics use a normalised Gaussian window with 'valid' filtering (no padding), so the
    SSIM map is (H - window + 1) x (W - window + 1); it is averaged over channels and positions.
    """
    _check_pair(x, y)
    n, c, h, w = x.shape
    if window_size > min(h, w):
        raise ValueError(f"SSIM window {window_size} is larger than the {h}x{w} images")
    if not x.is_floating_point():
        raise ValueError(f"SSIM needs float images, got {x.dtype}")
    y = y.to(x.dtype)
    window = gaussian_window(window_size, sigma, x.dtype, x.device)
    window = window.expand(c, 1, window_size, window_size)

    def filt(t: Tensor) -> Tensor:
        return F.conv2d(t, window, groups=c)

    mu_x, mu_y = filt(x), filt(y)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = filt(x * x) - mu_xx
    var_y = filt(y * y) - mu_yy
    cov_xy = filt(x * y) - mu_xy
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    ssim_map = ((2 * mu_xy + c1) * (2 * cov_xy + c2)) / (
        (mu_xx + mu_yy + c1) * (var_x + var_y + c2)
    )
    return ssim_map.flatten(1).mean(dim=1)


@torch.no_grad()
def reconstruction_quality(
    originals: Tensor, recon: Tensor, window: int = 11, sigma: float = 1.5, batch_size: int = 2000
) -> dict[str, float]:
    """Test-set means of per-image MSE, PSNR and SSIM, computed in batches."""
    sums = {"mse": 0.0, "psnr": 0.0, "ssim": 0.0}
    for i in range(0, len(originals), batch_size):
        x, y = originals[i : i + batch_size], recon[i : i + batch_size]
        sums["mse"] += mse_per_image(x, y).double().sum().item()
        sums["psnr"] += psnr(x, y).double().sum().item()
        sums["ssim"] += ssim(x, y, window_size=window, sigma=sigma).double().sum().item()
    return {k: v / len(originals) for k, v in sums.items()}
