"""The CycleGAN networks (genmodels.nn.resnet)."""

from __future__ import annotations

import torch

from genmodels.nn.resnet import PatchDiscriminator, ResnetGenerator


def test_networks_keep_the_image_shape_and_pixel_range():
    generator = ResnetGenerator(1, width=4, blocks=2, downsampling=2)
    images = generator(torch.rand(3, 1, 28, 28) * 10)
    assert images.shape == (3, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    assert PatchDiscriminator(1, 4, layers=1)(torch.rand(2, 1, 28, 28)).shape == (2, 1, 12, 12)
    assert PatchDiscriminator(1, 4, layers=2)(torch.rand(2, 1, 28, 28)).shape == (2, 1, 5, 5)
