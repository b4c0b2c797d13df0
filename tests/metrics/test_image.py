import math

import numpy as np
import pytest
import torch

from genmodels.metrics.image import gaussian_window, mse_per_image, psnr, ssim


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
