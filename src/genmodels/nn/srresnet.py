"""SRGAN's networks (Ledig et al. 2017): the SRResNet generator, its exported sub-pixel form,
and the discriminator."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genmodels.shapes import stack_widths

HEAD_KERNEL = 9  # the paper's 9x9 first and last convolutions (cheap at 7x7)
TAIL_KERNEL = 5  # the last one runs at full resolution: 5x5 keeps it CPU-sized


class PReLUResidualBlock(nn.Module):
    """conv 3x3 - PReLU - conv 3x3, added to the input (no BatchNorm, as EDSR: Lim et al.
    2017 show it costs SR quality, and it would tie the output to batch statistics)."""

    def __init__(self, channels: int, slopes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.PReLU(slopes),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def bicubic(low_res: Tensor, scale: int) -> Tensor:
    """Bicubic up-sampling by `scale`, unclamped (ONNX Resize, cubic, half-pixel)."""
    return F.interpolate(low_res, scale_factor=scale, mode="bicubic", align_corners=False)


class SRResNet(nn.Module):
    """The SRGAN generator: conv 9x9 + PReLU, residual blocks and a conv with a long skip
    connection around them, log2(scale) x (conv to 4C channels, PixelShuffle(2), PReLU), and a
    conv to the image. Fully convolutional: [N, C, h, w] in [0, 1] -> [N, C, h*s, w*s] for any
    h and w.

    The network predicts the residual over the bicubic up-sampling, with no output activation
    (as EDSR, Lim et al. 2017): the paper's tanh saturated into an all-black image on data with
    black backgrounds, where its gradient vanishes. The output is unclamped in training, so the
    pixel loss always has a gradient; `upscale` clamps it to [0, 1] for use.

    `shared_slopes`: one PReLU slope per layer instead of one per channel (He et al. 2015's
    channel-shared variant), which onnxruntime fuses into the convolution before it.
    """

    def __init__(self, scale: int, channels: int, blocks: int, image_channels: int = 1,
                 shared_slopes: bool = False):  # fmt: skip
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"scale {scale}: 2 or 4")
        self.scale = scale
        slopes = 1 if shared_slopes else channels
        self.head = nn.Sequential(
            nn.Conv2d(image_channels, channels, HEAD_KERNEL, padding=HEAD_KERNEL // 2),
            nn.PReLU(slopes),
        )
        self.body = nn.Sequential(
            *[PReLUResidualBlock(channels, slopes) for _ in range(blocks)],
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        upsampling: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            upsampling += [
                nn.Conv2d(channels, 4 * channels, 3, padding=1),
                nn.PixelShuffle(2),
                nn.PReLU(slopes),
            ]
        self.tail = nn.Sequential(
            *upsampling,
            nn.Conv2d(channels, image_channels, TAIL_KERNEL, padding=TAIL_KERNEL // 2),
        )

    def forward(self, low_res: Tensor) -> Tensor:
        head = self.head(low_res * 2.0 - 1.0)
        return bicubic(low_res, self.scale) + self.tail(head + self.body(head))

    def upscale(self, low_res: Tensor) -> Tensor:
        """The up-sampled images in [0, 1]."""
        return self(low_res).clamp(0.0, 1.0)


def _cubic(distance: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel with PyTorch's a = -0.75."""
    d = abs(distance)
    if d <= 1:
        return ((a + 2) * d - (a + 3)) * d * d + 1
    return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a if d < 2 else 0.0


class BicubicAsConv(nn.Module):
    """bicubic(x, r) as PixelShuffle(r)(grouped 5x5 conv of x padded by replicating its edge):
    each of the r*r output phases reads the same 4x4 input taps with fixed weights, and
    PyTorch's bicubic clamps its indices at the border as replicate padding does. The same
    numbers up to float rounding; onnxruntime runs it several times faster than its cubic
    Resize (which took a quarter of the photo upscaler's time at 128x128)."""

    def __init__(self, channels: int, scale: int):
        super().__init__()
        taps = torch.zeros(scale, 5)  # output phase -> weights of input offsets -2..2
        for phase in range(scale):
            source = (phase + 0.5) / scale - 0.5  # half-pixel centres, relative to the pixel
            first = math.floor(source) - 1
            for i in range(4):
                taps[phase, first + i + 2] = _cubic(source - (first + i))
        weight = torch.einsum("ai,bj->abij", taps, taps).reshape(scale * scale, 1, 5, 5)
        self.register_buffer("weight", weight.repeat(channels, 1, 1, 1))
        self.channels, self.scale = channels, scale

    def forward(self, x: Tensor) -> Tensor:
        padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
        return F.pixel_shuffle(F.conv2d(padded, self.weight, groups=self.channels), self.scale)


def subpixel_conv(conv: nn.Conv2d, r: int) -> nn.Conv2d:
    """conv(PixelShuffle(r)(v)) as PixelShuffle(r)(subpixel_conv(conv, r)(v)): the same
    convolution computed on the low-resolution side, r*r output channels per original one (the
    sub-pixel convolution of Shi et al. 2016). Exact for a stride-1, odd, 'same'-padded conv."""
    out_ch, in_ch, k, k_w = conv.weight.shape
    p = k // 2
    if (k != k_w or k % 2 == 0 or conv.padding != (p, p) or conv.stride != (1, 1)
            or conv.groups != 1 or conv.dilation != (1, 1)):  # fmt: skip
        raise ValueError(f"the sub-pixel form needs an odd, square, stride-1, 'same' conv: {conv}")
    lo, hi = (-p) // r, (r - 1 + k - 1 - p) // r  # fine offsets -p..k-1-p in coarse steps
    coarse = nn.Conv2d(in_ch * r * r, out_ch * r * r, hi - lo + 1, padding=hi)
    with torch.no_grad():
        weight, source = coarse.weight.zero_(), conv.weight
        # output pixel (r*h + ao, r*w + bo) reads fine pixel (r*(h+m) + a, ...) = coarse channel
        # c*r*r + a*r + b at (h+m, w+n), through the fine kernel tap r*m + a - ao (+ p)
        for ao, bo, a, b in itertools.product(range(r), repeat=4):
            for m, n in itertools.product(range(lo, hi + 1), repeat=2):
                i, j = r * m + a - ao + p, r * n + b - bo + p
                if 0 <= i < k and 0 <= j < k:
                    weight[ao * r + bo :: r * r, a * r + b :: r * r, m - lo, n - lo] = source[
                        :, :, i, j
                    ]
        if conv.bias is None:
            coarse.bias.zero_()
        else:
            coarse.bias.copy_(conv.bias.repeat_interleave(r * r))
    return coarse


def prelu_before_shuffle(prelu: nn.PReLU, r: int) -> nn.PReLU:
    """The PReLU that, run before PixelShuffle(r), gives what `prelu` gives after it: each
    channel's slope repeated for its r*r sub-pixels (a shared slope stays as it is)."""
    if prelu.num_parameters == 1:
        return prelu
    moved = nn.PReLU(prelu.num_parameters * r * r)
    with torch.no_grad():
        moved.weight.copy_(prelu.weight.repeat_interleave(r * r))
    return moved


class DeployedSRResNet(nn.Module):
    """An SRResNet's exported form, the same function rearranged for onnxruntime:
    - every PReLU of the up-sampling runs before its PixelShuffle (they commute), right after
      the convolution, which onnxruntime fuses it into where the slope is shared;
    - the last PixelShuffle moves to the end and the full-resolution conv becomes a sub-pixel
      conv, so no conv runs at full resolution (onnxruntime's blocked convolutions would pad
      that conv's few output channels to a whole block);
    - the bicubic base is computed as a convolution (BicubicAsConv)."""

    def __init__(self, generator: SRResNet):
        super().__init__()
        *stages, conv = generator.tail  # (conv, PixelShuffle, PReLU) per factor of 2, conv
        layers: list[nn.Module] = []
        for up, shuffle, prelu in zip(stages[0::3], stages[1::3], stages[2::3], strict=True):
            layers += [up, prelu_before_shuffle(prelu, shuffle.upscale_factor), shuffle]
        last_shuffle = layers.pop()
        self.head, self.body = generator.head, generator.body
        self.upsampling = nn.Sequential(*layers)
        self.conv = subpixel_conv(conv, last_shuffle.upscale_factor)
        self.shuffle = last_shuffle
        self.scale = generator.scale
        self.bicubic = BicubicAsConv(generator.head[0].in_channels, generator.scale)

    def forward(self, low_res: Tensor) -> Tensor:
        head = self.head(low_res * 2.0 - 1.0)
        residual = self.shuffle(self.conv(self.upsampling(head + self.body(head))))
        return (self.bicubic(low_res) + residual).clamp(0.0, 1.0)


class SRDiscriminator(nn.Module):
    """The paper's discriminator at CPU size: conv 3x3 + LeakyReLU(0.2), then one stride-2 conv +
    LeakyReLU per width (28 -> 14 -> 7 for two; the stages the size needs, widths doubled, where
    it is larger: genmodels.shapes), and a dense layer to one logit. `image_shape` is what it
    judges: the training crops where there are crops. No BatchNorm: spectral normalisation is
    the option (`spectral_norm`)."""

    def __init__(self, image_shape: tuple[int, int, int], channels: list[int]):
        super().__init__()
        c, h, w = image_shape
        widths = stack_widths(channels, (h, w))
        factor = 2 ** len(widths)
        layers: list[nn.Module] = [nn.Conv2d(c, widths[0], 3, padding=1), nn.LeakyReLU(0.2)]
        in_ch = widths[0]
        for ch in widths:
            layers += [nn.Conv2d(in_ch, ch, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            in_ch = ch
        layers += [nn.Flatten(), nn.Linear(in_ch * (h // factor) * (w // factor), 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images * 2.0 - 1.0)
