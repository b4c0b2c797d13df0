"""Input corruptions of the denoising autoencoder, drawn afresh for every batch."""

from __future__ import annotations

import torch
from torch import Tensor


def gaussian_noise(
    images: Tensor, sigma: float, generator: torch.Generator | None = None
) -> Tensor:
    """Additive N(0, sigma^2) noise, clipped back to the [0, 1] pixel range."""
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return (images + sigma * noise).clamp_(0.0, 1.0)


def masking_noise(images: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Sets a random fraction p of the pixels to zero (Vincent et al. 2008)."""
    keep = torch.rand(images.shape, generator=generator, device=images.device) >= p
    return images * keep


def corrupt(
    images: Tensor, kind: str, level: float, generator: torch.Generator | None = None
) -> Tensor:
    if kind == "gaussian":
        return gaussian_noise(images, level, generator)
    if kind == "mask":
        return masking_noise(images, level, generator)
    if kind == "none":
        return images
    raise ValueError(f"unknown corruption {kind!r}")
