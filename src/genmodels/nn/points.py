"""Networks for 2-D points (the mixtures benchmark), many seeds at once: every layer holds one
weight matrix per seed and runs them all in one batched matrix product, so that ten runs cost
about what one costs in Python's per-step overhead (which dominates networks this small).

A point is held as a one-pixel image of two channels, [N, 2, 1, 1], as the image GANs' game
(genmodels.training.adversarial) and its packing (genmodels.nn.adversarial.pack) take images.
The batch axis holds the seeds' samples in turn: seed s owns rows s*B to (s+1)*B - 1, and no
layer mixes rows of two seeds, so the runs share no data, weight or statistic. A loss averaged
over the whole batch gives each seed its own gradient divided by the number of seeds, which
Adam's update does not see (up to its epsilon).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from genmodels.nn.adversarial import MinibatchStdDev, pack

POINT_DIMS = 2


def _uniform(shape: tuple[int, ...], bound: float, generators: Sequence[torch.Generator]) -> Tensor:
    """[S, *shape] uniform in [-bound, bound], slice s drawn from generators[s]: a seed's
    weights do not depend on which other seeds run beside it."""
    slices = [torch.rand(shape, generator=g) * (2 * bound) - bound for g in generators]
    return torch.stack(slices)


class SeedLinear(nn.Module):
    """One linear layer per seed: [S, N, in] -> [S, N, out], each slice initialised as
    nn.Linear initialises its weights (uniform within 1/sqrt(in)) from its seed's generator."""

    def __init__(self, generators: Sequence[torch.Generator], in_features: int,
                 out_features: int):  # fmt: skip
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(_uniform((in_features, out_features), bound, generators))
        self.bias = nn.Parameter(_uniform((1, out_features), bound, generators))

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


def seed_layers(generators: Sequence[torch.Generator], widths: Sequence[int]) -> nn.ModuleList:
    """A SeedLinear from each width to the next."""
    return nn.ModuleList(SeedLinear(generators, a, b) for a, b in pairwise(widths))


class SeedSpectralNorm(nn.Module):
    """Spectral normalisation (Miyato et al. 2018) of each seed's matrix: one power iteration
    per training forward, as torch's spectral_norm does, but per slice [in, out] of a SeedLinear
    weight (torch's would normalise the stack of all seeds as one matrix)."""

    def __init__(self, weight: Tensor, eps: float = 1e-12):
        super().__init__()
        _, rows, cols = weight.shape
        self.eps = eps
        # the starting vectors: weight-derived, so no random stream is touched
        self.register_buffer("u", F.normalize(weight.detach().sum(dim=2), dim=1, eps=eps))
        self.register_buffer("v", F.normalize(weight.detach().sum(dim=1), dim=1, eps=eps))

    def forward(self, weight: Tensor) -> Tensor:
        if self.training:
            with torch.no_grad():
                v = F.normalize(torch.einsum("sio,si->so", weight, self.u), dim=1, eps=self.eps)
                u = F.normalize(torch.einsum("sio,so->si", weight, v), dim=1, eps=self.eps)
                self.u.copy_(u)
                self.v.copy_(v)
        # copies: the next forward updates u and v in place while this graph still needs them
        sigma = torch.einsum("si,sio,so->s", self.u.clone(), weight, self.v.clone())
        return weight / sigma[:, None, None]


def seed_spectral_norm(module: nn.Module) -> nn.Module:
    """SeedSpectralNorm on the weight of every SeedLinear in `module`."""
    for layer in module.modules():
        if isinstance(layer, SeedLinear) and not parametrize.is_parametrized(layer, "weight"):
            parametrize.register_parametrization(layer, "weight", SeedSpectralNorm(layer.weight))
    return module


class SeedPointGenerator(nn.Module):
    """z -> Linear + ReLU per hidden width -> a linear point (the papers' generators end in a
    linear layer), per seed: [S*B, latent] -> [S*B, 2, 1, 1]."""

    def __init__(self, generators: Sequence[torch.Generator], latent_dim: int,
                 hidden: Sequence[int]):  # fmt: skip
        super().__init__()
        widths = [latent_dim, *hidden]
        self.hidden = seed_layers(generators, widths)
        self.out = SeedLinear(generators, widths[-1], POINT_DIMS)
        self.seeds = len(generators)

    def forward(self, z: Tensor) -> Tensor:
        h = z.reshape(self.seeds, -1, z.shape[-1])
        for layer in self.hidden:
            h = F.relu(layer(h))
        return self.out(h).reshape(-1, POINT_DIMS, 1, 1)


class SeedPointDiscriminator(nn.Module):
    """Points -> (PacGAN: `packing` points side by side) -> Linear + ReLU per hidden width ->
    (minibatch standard deviation appended, within each seed's batch) -> one raw score per
    (packed) sample: [S*B, 2, 1, 1] -> [S*B / packing, 1]."""

    def __init__(self, generators: Sequence[torch.Generator], hidden: Sequence[int],
                 packing: int = 1, minibatch_std: bool = False):  # fmt: skip
        super().__init__()
        widths = [POINT_DIMS * packing, *hidden]
        self.hidden = seed_layers(generators, widths)
        self.mbstd = MinibatchStdDev() if minibatch_std else None
        self.head = SeedLinear(generators, widths[-1] + int(minibatch_std), 1)
        self.seeds, self.packing = len(generators), packing

    def forward(self, points: Tensor) -> Tensor:
        x = pack(points, self.packing) if self.packing > 1 else points
        h = x.reshape(self.seeds, -1, x.shape[1])
        for layer in self.hidden:
            h = F.relu(layer(h))
        if self.mbstd is not None:  # the image GANs' layer, run on each seed's rows alone
            h = torch.vmap(self.mbstd)(h[..., None, None]).flatten(2)
        return self.head(h).reshape(-1, 1)
