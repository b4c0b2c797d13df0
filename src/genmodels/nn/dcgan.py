"""Generators and discriminators of the GAN families, conv (DCGAN rules, Radford et al. 2016)
or MLP.

Pixels are [0, 1] at every boundary: a generator ends in tanh and maps it to [0, 1]; a
discriminator maps its image input to [-1, 1] first. Both take conditioning the cGAN needs:
extra input features for the generator, extra input channels for the discriminator.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genmodels.nn.adversarial import MinibatchStdDev, pack
from genmodels.shapes import stack_widths


class ConvGenerator(nn.Module):
    """z -> Linear -> [C0, H/2^n, W/2^n] -> n stride-2 transposed convs -> image in [0, 1].

    `channels` are the widths from low to high resolution (7x7 and 14x14 for two at 28x28); n is
    their count, or the stages the size needs with doubled widths in front (genmodels.shapes)."""

    def __init__(self, in_features: int, channels: Sequence[int], image_shape: Sequence[int]):
        super().__init__()
        c, h, w = image_shape
        widths = stack_widths(channels, (h, w), low_to_high=True)
        factor = 2 ** len(widths)
        first = widths[0]
        cells = first * (h // factor) * (w // factor)
        layers: list[nn.Module] = [
            nn.Linear(in_features, cells, bias=False),
            nn.BatchNorm1d(cells),
            nn.ReLU(),
            nn.Unflatten(1, (first, h // factor, w // factor)),
        ]
        for wide, narrow in pairwise(widths):
            layers += [
                nn.ConvTranspose2d(wide, narrow, 4, 2, 1, bias=False),
                nn.BatchNorm2d(narrow),
                nn.ReLU(),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], c, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return (self.body(z) + 1.0) * 0.5


class MLPGenerator(nn.Module):
    def __init__(self, in_features: int, hidden: Sequence[int], image_shape: Sequence[int]):
        super().__init__()
        c, h, w = image_shape
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size, bias=False), nn.BatchNorm1d(size), nn.ReLU()]
            width = size
        layers += [nn.Linear(width, c * h * w), nn.Tanh(), nn.Unflatten(1, (c, h, w))]
        self.body = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return (self.body(z) + 1.0) * 0.5


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # normalises each sample alone: valid under gradient penalties
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class ConvTrunk(nn.Module):
    """Stride-2 convs with leaky ReLU (28 -> 14 -> 7 for two widths; the stages the size needs,
    widths doubled, where it is larger: genmodels.shapes), optional minibatch std, flattened."""

    def __init__(self, in_channels: int, channels: Sequence[int], image_hw: Sequence[int],
                 norm: str, minibatch_std: bool):  # fmt: skip
        super().__init__()
        h, w = image_hw
        layers: list[nn.Module] = []
        for index, width in enumerate(stack_widths(channels, (h, w))):
            layers.append(nn.Conv2d(in_channels, width, 4, 2, 1))
            if index > 0:  # DCGAN: no normalisation on the first layer
                layers.append(_norm(norm, width))
            layers.append(nn.LeakyReLU(0.2))
            in_channels, h, w = width, h // 2, w // 2
        self.convs = nn.Sequential(*layers)
        self.mbstd = MinibatchStdDev() if minibatch_std else None
        self.out_features = (in_channels + int(minibatch_std)) * h * w

    def forward(self, x: Tensor, first_offset: Tensor | None = None) -> Tensor:
        if first_offset is None:
            h = self.convs(x)
        else:  # x holds the first input channels; the others' response comes as an offset
            first = self.convs[0]
            h = F.conv2d(x, first.weight[:, : x.shape[1]], first.bias, first.stride, first.padding)
            h = self.convs[1:](h + first_offset)
        if self.mbstd is not None:
            h = self.mbstd(h)
        return h.flatten(1)

    def constant_channel_response(self, first_channel: int, count: int, hw: Sequence[int],
                                  like: Tensor) -> Tensor:  # fmt: skip
        """The first conv's response to each of `count` input channels (from `first_channel`
        on) held at 1 over an image of size hw, all others 0: [count, out, h', w']."""
        first = self.convs[0]
        ones = torch.eye(count, dtype=like.dtype, device=like.device)[:, :, None, None]
        weight = first.weight[:, first_channel : first_channel + count]
        return F.conv2d(ones.expand(-1, -1, *hw), weight, None, first.stride, first.padding)


class MLPTrunk(nn.Module):
    def __init__(self, in_features: int, hidden: Sequence[int], minibatch_std: bool):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for size in hidden:
            layers += [nn.Linear(in_features, size), nn.LeakyReLU(0.2)]
            in_features = size
        self.layers = nn.Sequential(*layers)
        self.mbstd = MinibatchStdDev() if minibatch_std else None
        self.out_features = in_features + int(minibatch_std)

    def forward(self, x: Tensor) -> Tensor:
        h = self.layers(x)
        if self.mbstd is not None:
            h = self.mbstd(h[:, :, None, None]).flatten(1)
        return h


class Discriminator(nn.Module):
    """A trunk to a feature vector, then a linear head: one raw score per (packed) sample.

    `features()` is the trunk alone, which the cGAN's projection discriminator builds on.
    """

    def __init__(self, trunk: nn.Module, packing: int = 1):
        super().__init__()
        self.trunk = trunk
        self.packing = packing
        self.head = nn.Linear(trunk.out_features, 1)

    def features(self, images: Tensor, channels: Tensor | None = None,
                 first_offset: Tensor | None = None) -> Tensor:  # fmt: skip
        x = images * 2.0 - 1.0
        if channels is not None:  # conditioning maps (cGAN by concatenation)
            x = torch.cat([x, channels], dim=1)
        if self.packing > 1:
            x = pack(x, self.packing)
        if first_offset is not None:  # the conditioning channels' share of the first conv
            return self.trunk(x, first_offset)
        return self.trunk(x)

    def forward(self, images: Tensor, channels: Tensor | None = None,
                first_offset: Tensor | None = None) -> Tensor:  # fmt: skip
        return self.head(self.features(images, channels, first_offset))


def build_generator(arch: str, in_features: int, channels: Sequence[int],
                    hidden: Sequence[int], image_shape: Sequence[int]) -> nn.Module:  # fmt: skip
    if arch == "mlp":
        return MLPGenerator(in_features, hidden, image_shape)
    return ConvGenerator(in_features, channels, image_shape)


def build_discriminator(arch: str, image_shape: Sequence[int], channels: Sequence[int],
                        hidden: Sequence[int], *, extra_channels: int = 0, packing: int = 1,
                        norm: str = "none", minibatch_std: bool = False) -> Discriminator:  # fmt: skip
    c, h, w = image_shape
    in_channels = (c + extra_channels) * packing
    if arch == "mlp":
        trunk: nn.Module = MLPTrunk(in_channels * h * w, hidden, minibatch_std)
    else:
        trunk = ConvTrunk(in_channels, channels, (h, w), norm, minibatch_std)
    return Discriminator(trunk, packing)


# -- conditioned on a class label (the cGAN) ----------------------------------------------------
class ConditionalGenerator(nn.Module):
    """G(z, y): the label's embedding is concatenated to z before the generator body."""

    def __init__(self, body: nn.Module, num_classes: int, embed_dim: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.body = body

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        return self.body(torch.cat([z, self.embed(labels)], dim=1))


class ProjectionDiscriminator(nn.Module):
    """D(x, y) = head(phi(x)) + <embed(y), phi(x)>: the class enters as an inner product with
    the image features, the form the conditional log-likelihood ratio takes."""

    def __init__(self, base: Discriminator, num_classes: int):
        super().__init__()
        self.base = base
        self.embed = nn.Embedding(num_classes, base.trunk.out_features)

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        phi = self.base.features(images)
        return self.base.head(phi) + (self.embed(labels) * phi).sum(dim=1, keepdim=True)


class ConcatDiscriminator(nn.Module):
    """D(x, y) on the image with one constant one-hot map per class stacked as channels."""

    def __init__(self, base: Discriminator, num_classes: int):
        super().__init__()
        if base.packing != 1:
            raise ValueError("a conditional discriminator judges one sample (one label) at a time")
        self.base = base
        self.num_classes = num_classes

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        _, c, h, w = images.shape
        trunk = self.base.trunk
        if isinstance(trunk, ConvTrunk):
            # The first conv is linear in its input: conv([x, maps_y]) = conv(x) + conv(maps_y).
            # The maps' share is one response per class, computed on `classes` maps instead of
            # the 10 extra channels of every image: the same function at a fraction of the cost.
            per_class = trunk.constant_channel_response(c, self.num_classes, (h, w), images)
            # index_select: its backward (index_add) is deterministic on the CPU; that of
            # per_class[labels] (index_put with accumulate) differs from run to run on 2 threads
            return self.base(images, first_offset=per_class.index_select(0, labels))
        return self.base(images, self.label_maps(labels, h, w, images.dtype))

    def label_maps(self, labels: Tensor, h: int, w: int, dtype: torch.dtype) -> Tensor:
        maps = F.one_hot(labels, self.num_classes).to(dtype)
        return maps[:, :, None, None].expand(len(labels), self.num_classes, h, w)
