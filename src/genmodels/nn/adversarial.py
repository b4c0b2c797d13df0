"""The adversarial game's shared parts: losses, penalties, anti-collapse layers, weight averaging.

The GAN, cGAN, CycleGAN and SRGAN families all build on these; each loss is written the way its
paper writes it, on raw discriminator outputs (logits for the probabilistic losses).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

LOSSES = ("minimax", "nonsaturating", "lsgan", "hinge", "wgan_gp")


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """The generator's step: its loss flows through the discriminators to their inputs only.

    Their weight gradients would be thrown away by their next zero_grad; not computing them
    saves a share of every step (and under DDP, an all-reduce). The generator's gradients are
    the same numbers either way.
    """
    params = [p for module in modules for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def discriminator_loss(kind: str, real: Tensor, fake: Tensor, real_target: float = 1.0) -> Tensor:
    """The discriminator's (critic's) loss on its outputs for real and generated samples.

    real_target < 1 is one-sided label smoothing (Salimans et al. 2016): only the real label
    moves; it applies to the probabilistic losses and LSGAN.
    """
    if kind in ("minimax", "nonsaturating"):
        # L_D = -log D(x) - log(1 - D(G(z))), D = sigmoid(logit)
        return F.binary_cross_entropy_with_logits(
            real, torch.full_like(real, real_target)
        ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    if kind == "lsgan":  # Mao et al. 2017, a = 0, b = 1
        return 0.5 * ((real - real_target).pow(2).mean() + fake.pow(2).mean())
    if kind == "hinge":  # Lim and Ye 2017; Miyato et al. 2018
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "wgan_gp":  # Gulrajani et al. 2017, without the penalty (see gradient_penalty)
        return fake.mean() - real.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; allowed: {', '.join(LOSSES)}")


def generator_loss(kind: str, fake: Tensor) -> Tensor:
    """The generator's loss on the discriminator's outputs for its samples."""
    if kind == "minimax":
        # the lecture's L_G = log(1 - D(G(z))) = -softplus(logit): saturates when D wins
        return -F.softplus(fake).mean()
    if kind == "nonsaturating":  # -log D(G(z)) (Goodfellow et al. 2014, section 3)
        return F.softplus(-fake).mean()
    if kind == "lsgan":
        return 0.5 * (fake - 1.0).pow(2).mean()
    if kind in ("hinge", "wgan_gp"):
        return -fake.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; allowed: {', '.join(LOSSES)}")


def discriminator_probability(kind: str, outputs: Tensor) -> Tensor:
    """Mean D(.) as a number to watch: sigmoid for the probabilistic losses, raw otherwise."""
    if kind in ("minimax", "nonsaturating"):
        return torch.sigmoid(outputs).mean()
    return outputs.mean()


def gradient_penalty(critic, real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP: E[(||grad D(x_hat)||_2 - 1)^2] at random points between real and fake samples.

    `critic` maps images to scores; a conditional critic is passed as a closure over its labels.
    """
    eps = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).pow(2).mean()


def r1_penalty(real_outputs: Tensor, real_images: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): E[||grad_x D(x)||^2] on real data; the caller weighs it gamma/2.

    real_images must have requires_grad set before the discriminator saw them.
    """
    (grad,) = torch.autograd.grad(real_outputs.sum(), real_images, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()


def mode_seeking_ratio(images_a: Tensor, images_b: Tensor, z_a: Tensor, z_b: Tensor) -> Tensor:
    """MSGAN (Mao et al. 2019): mean |G(z_a) - G(z_b)|_1 / |z_a - z_b|_1 (per-element means).

    A generator that ignores z (collapse within a condition) drives it to zero; the generator
    minimises weight / ratio.
    """
    images = (images_a - images_b).abs().flatten(1).mean(dim=1)
    latents = (z_a - z_b).abs().flatten(1).mean(dim=1)
    return (images / latents).mean()


class MinibatchStdDev(nn.Module):
    """Appends the mean standard deviation across a group of samples as one more feature map
    (Karras et al. 2018): a batch of near-identical samples is easy to spot, so collapse costs G."""

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        group = min(self.group_size, n)
        if n % group:
            group = 1
        y = x.reshape(group, -1, c, h, w)
        y = (y - y.mean(dim=0)).pow(2).mean(dim=0).add(1e-8).sqrt()  # [n/group, C, H, W]
        y = y.mean(dim=(1, 2, 3), keepdim=True).repeat(group, 1, h, w)
        return torch.cat([x, y], dim=1)


def pack(images: Tensor, packing: int) -> Tensor:
    """PacGAN (Lin et al. 2018): `packing` samples stacked on the channel axis, judged jointly."""
    n, c, h, w = images.shape
    if n % packing:
        raise ValueError(f"batch of {n} does not split into packs of {packing}")
    return images.reshape(n // packing, packing * c, h, w)


def with_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) on every conv and linear layer of `module`."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d | nn.Linear | nn.ConvTranspose2d | nn.Embedding):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            with_spectral_norm(child)
    return module


def ema_copy(module: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of `module`'s weights and buffers (torch's AveragedModel)."""
    return AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def grad_norm(parameters) -> Tensor:
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads)
