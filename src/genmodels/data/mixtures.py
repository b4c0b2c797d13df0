"""The 2-D Gaussian mixtures on which the mode-collapse papers count modes exactly: a ring of 8
and a grid of 25, drawn from a seed (no files).

Radii and standard deviations are PacGAN's (Lin et al. 2018), read in the authors' code
(github.com/fjxmlzn/PacGAN, synthetic_data_experiments/2DRing_GAN&PacGAN/config.py and
2DGrid_GAN&PacGAN/config.py): the ring's means at angle 2 pi k / 8 on a circle of radius 1 with
std 0.01; the grid's at {-4, -2, 0, 2, 4}^2 with std 0.05. The grid is the one of ALI (Dumoulin
et al. 2017) and VEEGAN (Srivastava et al. 2017), which PacGAN reuses. Every component has the
same weight.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from genmodels.errors import UserError


@dataclass(frozen=True)
class Mixture:
    name: str
    means: Tensor  # [K, 2] float64
    std: float  # of every component, on each axis

    @property
    def modes(self) -> int:
        return len(self.means)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """n points [n, 2] float32: a uniformly chosen component each, plus its Gaussian noise."""
        component = torch.randint(self.modes, (n,), generator=generator)
        noise = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return (self.means[component] + self.std * noise).float()


def ring(modes: int = 8, radius: float = 1.0, std: float = 0.01) -> Mixture:
    angles = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return Mixture("ring", means, std)


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> Mixture:
    ticks = [spacing * (i - (side - 1) / 2) for i in range(side)]
    means = torch.tensor(list(itertools.product(ticks, ticks)), dtype=torch.float64)
    return Mixture("grid", means, std)


MIXTURES = {"ring": ring, "grid": grid}


def mixture(name: str) -> Mixture:
    if name not in MIXTURES:
        raise UserError(f"mixture {name!r} is unknown; choose from {', '.join(MIXTURES)}")
    return MIXTURES[name]()
