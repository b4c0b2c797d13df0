"""A perceptual distance between image pairs: LPIPS's form without its learned weights.

Zhang et al. 2018 ("The Unreasonable Effectiveness of Deep Features as a Perceptual Metric")
unit-normalise each layer's activations along the channels, take the squared difference, average
it over positions and sum over layers; even uncalibrated features of networks trained on other
tasks (self-supervised ones among them) track human judgement far better than PSNR or SSIM.
No ImageNet network can be downloaded here, so the layers are the pipeline's own evaluator's:
the last activation of every conv block before its pooling (block1..blockK,
genmodels.nn.features.block_activations), as LPIPS reads VGG's relu1_2..relu5_3. The SRGAN's
content loss reads one of these blocks (its content_layer, block2 by default), so the srgan is
partly trained for this number; the other blocks are not its objective. Lower is more alike.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# LPIPS's guard against dividing by the norm of an all-zero activation (a dead ReLU position)
NORM_EPS = 1e-10

# images float [N, C, H, W] in [0, 1] -> one activation map [N, C_l, H_l, W_l] per layer
Layers = Callable[[Tensor], list[Tensor]]


def unit_normalise(activations: Tensor) -> Tensor:
    """Each position's channel vector scaled to unit length (zero vectors stay zero)."""
    norm = activations.pow(2).sum(dim=1, keepdim=True).sqrt()
    return activations / (norm + NORM_EPS)


@torch.no_grad()
def layer_distances(fx: list[Tensor], fy: list[Tensor]) -> list[Tensor]:
    """Per layer, per pair [N], from the two images' activations (one map [N, C_l, H_l, W_l]
    per layer): the spatial mean of the squared distance between unit-normalised channel
    vectors, at most 4."""
    if len(fx) != len(fy) or not fx:
        raise ValueError(f"expected the same layers of both images, got {len(fx)} and {len(fy)}")
    distances = []
    for ax, ay in zip(fx, fy, strict=True):
        if ax.shape != ay.shape:
            raise ValueError(f"activation shapes differ: {tuple(ax.shape)}, {tuple(ay.shape)}")
        diff = (unit_normalise(ax) - unit_normalise(ay)).pow(2).sum(dim=1)
        distances.append(diff.flatten(1).mean(dim=1))
    return distances


def summed(distances: list[Tensor]) -> Tensor:
    """The sum over layers of layer_distances (LPIPS, Zhang et al. 2018, eq. 1 with every
    weight 1), in float64: at most 4 x layers."""
    total = torch.zeros(len(distances[0]), dtype=torch.float64, device=distances[0].device)
    for distance in distances:
        total += distance.double()
    return total.to(distances[0].dtype)


def activation_distance(fx: list[Tensor], fy: list[Tensor]) -> Tensor:
    """Per pair [N]: the perceptual distance of two images' activations, summed over layers."""
    return summed(layer_distances(fx, fy))


def perceptual_distance(x: Tensor, y: Tensor, layers: Layers) -> Tensor:
    """activation_distance of two NCHW image sets of one shape in [0, 1], through `layers`."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"expected two NCHW image sets of one shape: {tuple(x.shape)}, "
                         f"{tuple(y.shape)}")  # fmt: skip
    with torch.no_grad():
        return activation_distance(layers(x), layers(y))
