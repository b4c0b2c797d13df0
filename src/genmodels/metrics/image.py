"""Per-image reconstruction metrics: MSE, PSNR and SSIM (Wang et al. 2004), and PSNR and SSIM
on the luma channel with the border cropped, as the super-resolution literature reports them.

Inputs are NCHW float tensors in [0, data_range]; every function returns one value per image
(shape [N]) on the inputs' device and in their dtype, so callers can average or keep the spread.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from genmodels.errors import UserError

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


# ITU-R BT.601 luma of RGB in [0, 1] on the [0, 255] scale (studio swing, 16..235), as MATLAB's
# rgb2ycbcr and the SR evaluation code that copies it (BasicSR's to_y_channel, EDSR's calc_psnr)
LUMA_WEIGHTS = (65.481, 128.553, 24.966)
LUMA_OFFSET = 16.0
PEAK_8BIT = 255.0


def luma(images: Tensor) -> Tensor:
    """The Y channel [N, 1, H, W] of [0, 1] images, in float64 on the [0, 255] scale.

    RGB: Y = 16 + 65.481 R + 128.553 G + 24.966 B (BT.601, MATLAB's rgb2ycbcr), unrounded as
    BasicSR's to_y_channel. One channel: the image is its own luma, 255 x the pixel value (the
    reference code leaves grayscale images as they are, so PSNR_y of a grayscale pair is its
    plain PSNR on the cropped image).
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected NCHW images with 1 or 3 channels, got {tuple(images.shape)}")
    x = images.double()
    if x.shape[1] == 1:
        return x * PEAK_8BIT
    weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True) + LUMA_OFFSET


def crop_border(images: Tensor, border: int) -> Tensor:
    """The images without `border` pixels on every side (SR evaluation crops `scale` pixels,
    where the upscaler sees past the image's edge)."""
    h, w = images.shape[-2:]
    if border < 0:
        raise ValueError(f"border {border} is negative")
    if 2 * border >= min(h, w):
        raise UserError(
            f"a {h}x{w} image has nothing left after cropping a {border}-pixel border (the "
            "scale); use larger images or a smaller scale"
        )
    return images[..., border : h - border, border : w - border] if border else images


def quantise_8bit(images: Tensor) -> Tensor:
    """[0, 1] images rounded to the 256 levels of an 8-bit image file, still in [0, 1]."""
    return images.clamp(0.0, 1.0).mul(PEAK_8BIT).round().div(PEAK_8BIT)


def _luma_pair(x: Tensor, y: Tensor, border: int, quantise: bool) -> tuple[Tensor, Tensor]:
    _check_pair(x, y)
    if quantise:  # the reference code reads both images from 8-bit files
        x, y = quantise_8bit(x), quantise_8bit(y)
    return crop_border(luma(x), border), crop_border(luma(y), border)


def psnr_y(x: Tensor, y: Tensor, border: int, quantise: bool = True) -> Tensor:
    """PSNR of the luma channel with `border` pixels cropped, as BasicSR's calculate_psnr with
    test_y_channel (and EDSR's calc_psnr): 10 log10(255^2 / MSE) of Y on the [0, 255] scale
    (peak 255, not the 219 of Y's swing). [0, 1] images, rounded to 8 bits first by default."""
    yx, yy = _luma_pair(x, y, border, quantise)
    return psnr(yx, yy, data_range=PEAK_8BIT).to(x.dtype)


def ssim_y(x: Tensor, y: Tensor, border: int, window_size: int = 11, sigma: float = 1.5,
           quantise: bool = True) -> Tensor:  # fmt: skip
    """SSIM of the luma channel with `border` pixels cropped, as BasicSR's calculate_ssim with
    test_y_channel: ssim() on Y at [0, 255] with data_range 255, in float64."""
    yx, yy = _luma_pair(x, y, border, quantise)
    return ssim(yx, yy, window_size, sigma, data_range=PEAK_8BIT).to(x.dtype)
