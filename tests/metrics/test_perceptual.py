"""The LPIPS-style perceptual distance and the evaluator's conv-block activations it reads."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from genmodels.metrics.perceptual import (
    activation_distance,
    layer_distances,
    perceptual_distance,
    summed,
    unit_normalise,
)
from genmodels.nn.classifier import Classifier
from genmodels.nn.features import block_activations, differentiable_extractor

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def blocks():
    """An evaluator-shaped classifier (conv blocks to 4x4), untrained: seeded random weights."""
    torch.manual_seed(0)
    network = Classifier((3, 32, 32), [8, 16], features=16, num_classes=4, dropout=0.0)
    return network, block_activations(network, CPU)


def smooth(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth RGB images: 4x4 noise upscaled bicubically, in [0, 1]."""
    coarse = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def test_block_activations_are_the_content_loss_layers(blocks):
    network, taps = blocks
    images = smooth(3)
    found = taps(images)
    pools = sum(isinstance(m, torch.nn.MaxPool2d) for m in network.body)
    assert taps.network.n_blocks == pools == len(found) == 3  # 32 -> 16 -> 8 -> 4
    assert [tuple(a.shape[2:]) for a in found] == [(32, 32), (16, 16), (8, 8)]
    # block K is what the SRGAN's content loss reads at content_layer 'blockK'
    for k, activation in enumerate(found, start=1):
        content = differentiable_extractor("evaluator", f"block{k}", CPU, network)
        assert torch.allclose(activation, content(images), atol=1e-6)
    assert not any(p.requires_grad for p in taps.parameters())
    # a copy: the evaluator's own weights are untouched by the frozen module
    assert all(p.requires_grad for p in network.parameters())


def test_unit_normalise_scales_channel_vectors():
    a = torch.tensor([[3.0, 0.0], [4.0, 0.0]]).view(1, 2, 1, 2)  # (3, 4) and a zero vector
    out = unit_normalise(a)
    assert out[0, :, 0, 0].tolist() == pytest.approx([0.6, 0.8])
    assert out[0, :, 0, 1].tolist() == [0.0, 0.0]


def test_identical_images_are_at_zero_and_distance_grows_with_noise(blocks):
    _, taps = blocks
    images = smooth(8)
    assert torch.equal(perceptual_distance(images, images.clone(), taps), torch.zeros(8))
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(images.shape, generator=g)
    levels = [0.01, 0.03, 0.1, 0.3]
    means = [
        perceptual_distance((images + s * noise).clamp(0, 1), images, taps).mean().item()
        for s in levels
    ]
    assert means[0] > 0
    assert means == sorted(means) and means[-1] > 3 * means[0]
    far = perceptual_distance(smooth(8, seed=2), images, taps)
    assert (far >= 0).all() and (far <= 4 * 3).all()  # at most 4 per layer
    # symmetric, and one value per pair whatever the batch
    pair = perceptual_distance(images[2:3], smooth(8, seed=2)[2:3], taps)
    assert torch.allclose(pair, far[2:3], atol=1e-6)
    assert torch.allclose(perceptual_distance(images, smooth(8, seed=2), taps), far, atol=1e-6)


def test_shapes(blocks):
    _, taps = blocks
    # fully convolutional up to the last block: any size the pooling divides
    x, y = smooth(2, size=48), smooth(2, size=48, seed=3)
    assert perceptual_distance(x, y, taps).shape == (2,)
    as_double = copy.deepcopy(taps).double()
    assert perceptual_distance(x.double(), y.double(), as_double).dtype == torch.float64
    with pytest.raises(ValueError, match="one shape"):
        perceptual_distance(smooth(2), smooth(2, size=48), taps)
    with pytest.raises(ValueError, match="one shape"):
        perceptual_distance(smooth(2)[0], smooth(2)[0], taps)
    with pytest.raises(ValueError, match="same layers"):
        activation_distance(taps(x), taps(x)[:1])


def test_each_layers_share_sums_to_the_distance(blocks):
    _, taps = blocks
    x, y = smooth(4), smooth(4, seed=5)
    shares = layer_distances(taps(x), taps(y))
    assert len(shares) == 3 and all(d.shape == (4,) for d in shares)
    assert all(((d >= 0) & (d <= 4)).all() for d in shares)
    assert torch.equal(summed(shares), activation_distance(taps(x), taps(y)))
    assert torch.allclose(torch.stack(shares).sum(0), perceptual_distance(x, y, taps))
