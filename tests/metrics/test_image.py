import math

import numpy as np
import pytest
import torch

from genmodels.errors import UserError
from genmodels.metrics.image import (
    crop_border,
    gaussian_window,
    luma,
    mse_per_image,
    psnr,
    psnr_y,
    quantise_8bit,
    ssim,
    ssim_y,
)


def _rand(*shape, seed=0, dtype=torch.float64):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _ssim_reference(x, y, window_size, sigma, data_range=1.0, k1=0.01, k2=0.03):
    """Brute-force SSIM of one CHW pair: the paper's formula at every 'valid' window position."""
    coords = np.arange(window_size) - (window_size - 1) / 2
    g = np.exp(-(coords**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    values = []
    for ch in range(x.shape[0]):
        for i in range(x.shape[1] - window_size + 1):
            for j in range(x.shape[2] - window_size + 1):
                a = x[ch, i : i + window_size, j : j + window_size]
                b = y[ch, i : i + window_size, j : j + window_size]
                mu_a, mu_b = (w * a).sum(), (w * b).sum()
                var_a = (w * (a - mu_a) ** 2).sum()
                var_b = (w * (b - mu_b) ** 2).sum()
                cov = (w * (a - mu_a) * (b - mu_b)).sum()
                num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
                den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
                values.append(num / den)
    return float(np.mean(values))


def test_mse_per_image_is_per_image():
    x = torch.zeros(2, 1, 2, 2)
    y = torch.stack([torch.full((1, 2, 2), 0.5), torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])])
    assert torch.allclose(mse_per_image(x, y), torch.tensor([0.25, 0.25]))
    y[1, 0, 1, 1] = 1.0
    assert torch.allclose(mse_per_image(x, y), torch.tensor([0.25, 0.5]))


def test_psnr_of_constant_offset():
    x = _rand(3, 1, 8, 8) * 0.9
    assert torch.allclose(psnr(x, x + 0.1), torch.full((3,), 20.0, dtype=torch.float64))
    # MSE 0.01 * L^2 is 20 dB whatever the range.
    assert torch.allclose(
        psnr(x * 255, x * 255 + 25.5, data_range=255.0), torch.tensor(20.0).double()
    )
    # offset 0.01 -> MSE 1e-4 -> 40 dB; only the second image differs here
    y = x.clone()
    y[1] += 0.01
    assert torch.allclose(psnr(x, y)[1], torch.tensor(40.0).double())


def test_psnr_of_identical_images_is_capped():
    x = _rand(2, 3, 5, 5)
    out = psnr(x, x)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, torch.full((2,), 100.0, dtype=torch.float64))


def test_gaussian_window():
    w = gaussian_window(11, 1.5, torch.float64)
    assert w.shape == (11, 11)
    assert math.isclose(w.sum().item(), 1.0, rel_tol=1e-12)
    assert torch.equal(w, w.T) and torch.equal(w, w.flip(0))
    assert w.argmax().item() == 5 * 11 + 5
    # the ratio between centre and a neighbour is exp(-1 / (2 sigma^2))
    assert math.isclose((w[5, 6] / w[5, 5]).item(), math.exp(-1 / (2 * 1.5**2)), rel_tol=1e-12)


def test_ssim_of_identical_images_is_one():
    x = _rand(4, 3, 28, 28)
    assert torch.allclose(ssim(x, x), torch.ones(4, dtype=torch.float64), atol=1e-12)


def test_ssim_of_constant_images_is_closed_form():
    a, b = 0.2, 0.7
    x = torch.full((1, 1, 16, 16), a, dtype=torch.float64)
    y = torch.full((1, 1, 16, 16), b, dtype=torch.float64)
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * a * b + c1) / (a**2 + b**2 + c1)
    assert math.isclose(ssim(x, y).item(), expected, rel_tol=1e-9)


def test_ssim_of_noise_is_below_one_and_symmetric():
    x = _rand(2, 1, 28, 28, seed=1)
    y = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    s_xy, s_yx = ssim(x, y), ssim(y, x)
    assert (s_xy < 0.9).all()
    assert torch.allclose(s_xy, s_yx, atol=1e-12)
    # an inverted image is anti-correlated: its SSIM is far below that of noise
    assert (ssim(x, 1 - x) < 0).all()


def test_ssim_matches_brute_force_reference():
    # 4x5 images, window 3: a 2x3 SSIM map per channel, two channels, two images
    x = _rand(2, 2, 4, 5, seed=3)
    y = (0.6 * x + 0.4 * _rand(2, 2, 4, 5, seed=4)).clamp(0, 1)
    out = ssim(x, y, window_size=3, sigma=0.8)
    for i in range(2):
        expected = _ssim_reference(x[i].numpy(), y[i].numpy(), window_size=3, sigma=0.8)
        assert math.isclose(out[i].item(), expected, rel_tol=1e-10)
    # same with the defaults on a 12x13 image (2x3 map) and another data range
    x, y = _rand(1, 1, 12, 13, seed=5) * 255, _rand(1, 1, 12, 13, seed=6) * 255
    expected = _ssim_reference(x[0].numpy(), y[0].numpy(), 11, 1.5, data_range=255.0)
    assert math.isclose(ssim(x, y, data_range=255.0).item(), expected, rel_tol=1e-10)


def test_ssim_float32_agrees_with_float64_and_images_are_independent():
    x, y = _rand(3, 1, 28, 28, seed=7), _rand(3, 1, 28, 28, seed=8)
    s64 = ssim(x, y)
    s32 = ssim(x.float(), y.float())
    assert s32.dtype == torch.float32
    assert torch.allclose(s32.double(), s64, atol=1e-5)
    assert torch.allclose(ssim(x[1:2], y[1:2]), s64[1:2], atol=1e-12)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="larger"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="differ"):
        psnr(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))


# -- the SR literature's luma metrics ------------------------------------------------------------
def _levels(*shape, seed=0, low=50, high=200):
    """Images of 8-bit levels k/255, k in [low, high): quantising leaves them as they are."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, shape, generator=g, dtype=torch.float64) / 255


def test_luma_is_matlab_rgb2ycbcr_y_on_the_255_scale():
    # four pixels: black, white, pure red, and (0.5, 0.25, 1.0)
    rgb = torch.tensor([[0.0, 1.0, 1.0, 0.5], [0.0, 1.0, 0.0, 0.25], [0.0, 1.0, 0.0, 1.0]])
    y = luma(rgb.view(1, 3, 1, 4))
    # by hand: 16 + 65.481 R + 128.553 G + 24.966 B
    by_hand = [16.0, 16 + 219.0, 16 + 65.481, 16 + 32.7405 + 32.13825 + 24.966]
    assert y.shape == (1, 1, 1, 4) and y.dtype == torch.float64
    assert y.flatten().tolist() == pytest.approx(by_hand, abs=1e-9)
    # one channel: the image is its own luma, on the same 0..255 scale
    gray = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3)
    assert luma(gray).flatten().tolist() == pytest.approx([0.0, 127.5, 255.0])
    with pytest.raises(ValueError, match="1 or 3 channels"):
        luma(torch.rand(1, 2, 4, 4))


def test_crop_border_keeps_the_centre():
    images = torch.arange(2 * 3 * 10 * 12).view(2, 3, 10, 12)
    inner = crop_border(images, 4)
    assert inner.shape == (2, 3, 2, 4)
    assert torch.equal(inner, images[:, :, 4:6, 4:8])
    assert crop_border(images, 0) is images
    with pytest.raises(UserError, match="10x12 image has nothing left after cropping a 5-pixel"):
        crop_border(images, 5)


def test_quantise_8bit_rounds_to_levels():
    x = torch.tensor([0.0, 0.5 / 255, 1.49 / 255, 0.7, 1.2, -0.1])
    q = quantise_8bit(x) * 255
    assert q.tolist() == pytest.approx([0.0, 0.0, 1.0, round(0.7 * 255), 255.0, 0.0])


def test_psnr_y_of_known_noise_with_the_border_left_out():
    x = _levels(4, 3, 24, 20)
    signs = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    # the same error of d levels on R, G and B: Y moves by 219 d / 255 on the 0..255 scale
    d = 3
    noisy = x + (signs[:, :1] * d / 255).expand_as(x)
    want = 10 * math.log10(255**2 / (219 * d / 255) ** 2)
    assert psnr_y(noisy, x, border=4).tolist() == pytest.approx([want] * 4, abs=1e-9)
    # errors in the border do not count; one pixel further in, they do
    spoiled = noisy.clone()
    spoiled[..., :4, :] = 0.0
    spoiled[..., :, -4:] = 1.0
    assert psnr_y(spoiled, x, border=4).tolist() == pytest.approx([want] * 4, abs=1e-9)
    assert (psnr_y(spoiled, x, border=3) < want - 1).all()
    # the output is rounded to 8 bits first: a sub-level error disappears unless told not to
    assert psnr_y(x + 0.2 / 255, x, border=0).tolist() == pytest.approx([100.0] * 4)
    unrounded = 20 * math.log10(255 / (219 * 0.2 / 255))
    assert psnr_y(x + 0.2 / 255, x, border=0, quantise=False)[0].item() == pytest.approx(unrounded)
    # one channel: plain PSNR of the cropped images
    g, h = _levels(3, 1, 16, 16, seed=2), _levels(3, 1, 16, 16, seed=3)
    plain = psnr(g[..., 2:-2, 2:-2], h[..., 2:-2, 2:-2])
    assert torch.allclose(psnr_y(g, h, border=2), plain, atol=1e-10)


def test_ssim_y_is_ssim_of_the_cropped_luma():
    x, y = _levels(2, 3, 32, 32, seed=4), _levels(2, 3, 32, 32, seed=5, low=60, high=220)
    weights = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64).view(1, 3, 1, 1)

    def y_of(t):
        return 16 + (t * weights).sum(1, keepdim=True)

    want = ssim(y_of(x)[..., 4:-4, 4:-4], y_of(y)[..., 4:-4, 4:-4], 7, 1.2, data_range=255.0)
    assert torch.allclose(ssim_y(x, y, 4, window_size=7, sigma=1.2), want, atol=1e-12)
    assert torch.allclose(ssim_y(x, x, 4), torch.ones(2, dtype=torch.float64))
    blurred = x.clone()
    blurred[..., 4:-4, 4:-4] = 0.5 * (x[..., 4:-4, 4:-4] + y[..., 4:-4, 4:-4])
    assert (ssim_y(blurred, x, 4) > ssim_y(y, x, 4)).all()
    assert ssim_y(x.float(), y.float(), 4).dtype == torch.float32
