"""CycleGAN's networks (Zhu et al. 2017): the ResNet generator of Johnson et al. 2016 and the
PatchGAN discriminator of Isola et al. 2017, with the reference implementation's weight init."""

from __future__ import annotations

from torch import Tensor, nn

NORMS = {"instance": nn.InstanceNorm2d, "batch": nn.BatchNorm2d}
PAPER_LARGE_SIDE = 128  # Zhu et al.: 6 residual blocks below 128x128 images, 9 from it up


def paper_blocks(hw: tuple[int, int]) -> int:
    """The generator's residual blocks by image size, as the paper chooses them."""
    return 9 if min(hw) >= PAPER_LARGE_SIDE else 6


class NormResidualBlock(nn.Module):
    """x + conv-norm-ReLU-conv-norm(x), reflection-padded 3x3 convolutions (Zhu et al. 2017)."""

    def __init__(self, channels: int, norm: str = "instance"):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            NORMS[norm](channels),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            NORMS[norm](channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-k, d2k, d4k, R x residual(4k), u2k, uk, c7s1-C (Johnson et al. 2016 as CycleGAN uses
    it), with `downsampling` stride-2 stages (28 -> 14 -> 7 for 2): fully convolutional, for any
    size divisible by 2^downsampling. Pixels in [0, 1] at both ends; [-1, 1] inside, tanh at the
    output."""

    def __init__(self, channels: int = 1, width: int = 32, blocks: int = 6,
                 downsampling: int = 2, norm: str = "instance"):  # fmt: skip
        super().__init__()
        norm_layer = NORMS[norm]
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(channels, width, 7),
            norm_layer(width),
            nn.ReLU(),
        ]
        ch = width
        for _ in range(downsampling):
            layers += [nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1), norm_layer(2 * ch), nn.ReLU()]
            ch *= 2
        layers += [NormResidualBlock(ch, norm) for _ in range(blocks)]
        for _ in range(downsampling):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1),
                norm_layer(ch // 2),
                nn.ReLU(),
            ]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, channels, 7), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, images: Tensor) -> Tensor:
        return (self.body(images * 2.0 - 1.0) + 1.0) * 0.5


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017): `layers` stride-2 4x4 convolutions, one stride-1, then one
    score per overlapping patch (a 12x12 map of 16x16 patches for layers=1 on 28x28 images, a
    5x5 map of 34x34 receptive fields for layers=2, the paper's 70x70 patches for layers=3). Any
    side of at least 3 x 2^layers leaves a map. Raw scores, for the least-squares loss."""

    def __init__(self, channels: int = 1, width: int = 64, layers: int = 2,
                 norm: str = "instance"):  # fmt: skip
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = width
        for _ in range(1, layers):
            seq += [nn.Conv2d(ch, 2 * ch, 4, 2, 1), NORMS[norm](2 * ch), nn.LeakyReLU(0.2)]
            ch *= 2
        seq += [nn.Conv2d(ch, 2 * ch, 4, 1, 1), NORMS[norm](2 * ch), nn.LeakyReLU(0.2)]
        seq.append(nn.Conv2d(2 * ch, 1, 4, 1, 1))
        self.body = nn.Sequential(*seq)

    def forward(self, images: Tensor) -> Tensor:
        return self.body(images * 2.0 - 1.0)


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """N(0, 0.02) convolutions, N(1, 0.02) norm scales, zero biases (the reference's 'normal')."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.InstanceNorm2d) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
