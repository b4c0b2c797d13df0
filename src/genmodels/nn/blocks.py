"""Blocks the families share: the encoder and decoder stacks of the autoencoder and VAE (as many
stride-2 stages as the image size needs: genmodels.shapes), the VAE's Gaussian encoder head, and
PReLU in the form onnxruntime runs fast."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from genmodels.shapes import stack_widths


def mlp_encoder(image_shape: Sequence[int], hidden: Sequence[int], out_features: int) -> nn.Module:
    c, h, w = image_shape
    layers: list[nn.Module] = [nn.Flatten()]
    width = c * h * w
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def mlp_decoder(
    in_features: int, hidden: Sequence[int], image_shape: Sequence[int], sigmoid: bool = True
) -> nn.Module:
    """Mirror of mlp_encoder; a sigmoid puts pixels in [0, 1] (without it: logits)."""
    c, h, w = image_shape
    layers: list[nn.Module] = []
    width = in_features
    for size in reversed(hidden):
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers += [nn.Linear(width, c * h * w), *([nn.Sigmoid()] if sigmoid else [])]
    layers.append(nn.Unflatten(1, (c, h, w)))
    return nn.Sequential(*layers)


def conv_encoder(
    image_shape: Sequence[int], channels: Sequence[int], out_features: int
) -> nn.Module:
    """Stride-2 convolutions (28 -> 14 -> 7 for two widths; more stages, widths doubled, where
    the size needs them), then a linear head."""
    in_ch, h, w = image_shape
    widths = stack_widths(channels, (h, w))
    layers: list[nn.Module] = []
    for ch in widths:
        layers += [nn.Conv2d(in_ch, ch, 4, stride=2, padding=1), nn.BatchNorm2d(ch), nn.ReLU()]
        in_ch = ch
    factor = 2 ** len(widths)
    layers += [nn.Flatten(), nn.Linear(in_ch * (h // factor) * (w // factor), out_features)]
    return nn.Sequential(*layers)


def conv_decoder(
    in_features: int, channels: Sequence[int], image_shape: Sequence[int], sigmoid: bool = True
) -> nn.Module:
    """Mirror of conv_encoder with transposed convolutions; a sigmoid, or logits without."""
    out_ch, h, w = image_shape
    widths = stack_widths(channels, (h, w))
    factor = 2 ** len(widths)
    h, w, top = h // factor, w // factor, widths[-1]
    layers: list[nn.Module] = [
        nn.Linear(in_features, top * h * w),
        nn.ReLU(),
        nn.Unflatten(1, (top, h, w)),
    ]
    in_ch = top
    for ch in reversed(widths[:-1]):
        layers += [nn.ConvTranspose2d(in_ch, ch, 4, 2, 1), nn.BatchNorm2d(ch), nn.ReLU()]
        in_ch = ch
    layers.append(nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1))
    if sigmoid:
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


class GaussianEncoder(nn.Module):
    """image -> (mean, logvar) of q(z | x)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = self.body(images).chunk(2, dim=1)
        return mean, logvar


class DecomposedPReLU(nn.Module):
    """A per-channel PReLU as relu(x) - a * relu(-x), the same numbers in every case (a * 0 and
    a negation are exact): onnxruntime's CPU PRelu kernel with per-channel slopes is ~10x slower
    than these four element-wise ops (1.86 against 0.19 ms on [64, 32, 14, 14])."""

    def __init__(self, prelu: nn.PReLU):
        super().__init__()
        self.weight = prelu.weight

    def forward(self, x: Tensor) -> Tensor:
        slope = self.weight.view(-1, *[1] * (x.dim() - 2))  # per channel: dimension 1
        return F.relu(x) - slope * F.relu(-x)
