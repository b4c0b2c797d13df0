"""The SRGAN networks (genmodels.nn.srresnet): sizes, and the exported sub-pixel form."""

from __future__ import annotations

import pytest
import torch

from genmodels.nn.srresnet import (
    BicubicAsConv,
    DeployedSRResNet,
    SRResNet,
    bicubic,
    subpixel_conv,
)


@pytest.mark.parametrize(
    ("scale", "size", "expected"),
    [(4, (7, 7), (28, 28)), (4, (14, 14), (56, 56)), (4, (5, 5), (20, 20)),
     (4, (3, 9), (12, 36)), (2, (14, 14), (28, 28)), (2, (7, 7), (14, 14)),
     (2, (5, 11), (10, 22))],
)  # fmt: skip
def test_pixelshuffle_generator_output_size(scale, size, expected):
    generator = SRResNet(scale, channels=8, blocks=2).eval()
    with torch.no_grad():
        out = generator.upscale(torch.rand(3, 1, *size))
    assert out.shape == (3, 1, *expected)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("kernel", [1, 3, 5, 9])
def test_subpixel_conv_is_the_conv_after_pixelshuffle(kernel):
    torch.manual_seed(kernel)
    conv = torch.nn.Conv2d(6, 3, kernel, padding=kernel // 2)
    coarse = subpixel_conv(conv, 2)
    shuffle = torch.nn.PixelShuffle(2)
    v = torch.randn(2, 24, 5, 7)  # 6 channels at 10x14 after the shuffle
    with torch.no_grad():
        torch.testing.assert_close(shuffle(coarse(v)), conv(shuffle(v)), atol=1e-5, rtol=1e-5)


def test_subpixel_conv_refuses_what_it_cannot_rewrite():
    for conv in [
        torch.nn.Conv2d(4, 1, 3, stride=2, padding=1),
        torch.nn.Conv2d(4, 1, 4, padding=2),
        torch.nn.Conv2d(4, 1, 3, padding=0),
        torch.nn.Conv2d(4, 4, 3, padding=1, groups=2),
    ]:
        with pytest.raises(ValueError, match="odd, square, stride-1, 'same'"):
            subpixel_conv(conv, 2)


@pytest.mark.parametrize("shared_slopes", [False, True])
@pytest.mark.parametrize("scale", [2, 4])
def test_deployed_srresnet_is_the_trained_function(scale, shared_slopes):
    torch.manual_seed(scale)
    generator = SRResNet(scale, channels=8, blocks=2, shared_slopes=shared_slopes).eval()
    with torch.no_grad():  # distinct slopes per channel: a wrong channel order would show
        for module in generator.modules():
            if isinstance(module, torch.nn.PReLU):
                module.weight.uniform_(0.05, 0.5)
    deployed = DeployedSRResNet(generator).eval()
    for size in [(7, 7), (5, 9), (14, 14)]:
        x = torch.rand(3, 1, *size)
        with torch.no_grad():
            torch.testing.assert_close(deployed(x), generator.upscale(x), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_as_a_convolution_is_pytorchs_bicubic(scale):
    """The edges too (replicate padding is PyTorch's index clamping), down to one pixel."""
    for size in [(1, 1), (2, 3), (7, 7), (16, 9)]:
        x = torch.rand(2, 3, *size)
        torch.testing.assert_close(
            BicubicAsConv(3, scale)(x), bicubic(x, scale), atol=2e-6, rtol=1e-5
        )


def test_shared_slopes_are_one_per_layer():
    generator = SRResNet(4, channels=8, blocks=2, shared_slopes=True)
    prelus = [m for m in generator.modules() if isinstance(m, torch.nn.PReLU)]
    assert len(prelus) == 1 + 2 + 2  # head, one per block, one per factor of 2
    assert all(p.num_parameters == 1 for p in prelus)
    assert all(p.num_parameters == 8 for p in SRResNet(4, 8, 2).modules()
               if isinstance(p, torch.nn.PReLU))  # fmt: skip
