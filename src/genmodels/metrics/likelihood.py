"""Log-densities and bounds of the VAE: closed-form KL, ELBO pieces, the IWAE bound, active units."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def kl_standard_normal(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per row: 0.5 * sum(m^2 + exp(v) - v - 1)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1).sum(dim=-1)


def log_normal(z: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mean, diag(exp(logvar))), summed over the last axis."""
    return -0.5 * (LOG_2PI + logvar + (z - mean).pow(2) / logvar.exp()).sum(dim=-1)


def log_standard_normal(z: Tensor) -> Tensor:
    return -0.5 * (LOG_2PI + z.pow(2)).sum(dim=-1)


def bernoulli_log_likelihood(logits: Tensor, target: Tensor) -> Tensor:
    """log p(x | z) per image for binary pixels, from the decoder's logits."""
    nll = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return -nll.flatten(1).sum(dim=1)


def gaussian_log_likelihood(mean: Tensor, target: Tensor, variance: float) -> Tensor:
    """log N(x; mean, variance I) per image."""
    sq = (target - mean).pow(2).flatten(1).sum(dim=1)
    dims = target[0].numel()
    return -0.5 * (sq / variance + dims * (LOG_2PI + math.log(variance)))


def iwae_bound(log_weights: Tensor) -> Tensor:
    """log (1/K) sum_k w_k for log_weights [K, batch]: the importance-weighted bound on log p(x)."""
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])


def active_units(posterior_means: Tensor, threshold: float = 0.01) -> int:
    """Latent dimensions whose posterior mean varies across the data (Burda et al. 2016)."""
    return int((posterior_means.var(dim=0) > threshold).sum().item())
