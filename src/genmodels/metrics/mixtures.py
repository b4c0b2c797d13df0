"""Mode collapse counted where the modes are known: samples of a 2-D Gaussian mixture judged
against its component means, as VEEGAN (Srivastava et al. 2017, section 5.1) and PacGAN (Lin et
al. 2018; the authors' pacgan/extensions.py) count them.

- Each sample belongs to its nearest mean. It is of high quality when it lies within
  `threshold` (3) standard deviations of that mean: closer than 3 std in PacGAN's code.
- A mode is captured when at least one high-quality sample belongs to it.
- The mode histogram holds the high-quality samples only (PacGAN's "detail of coverage",
  renormalised); its KL divergence from the uniform distribution over the K modes is
  sum_k p_k log(K p_k) = log K - H(p): 0 when every mode gets the same share, log K when one mode
  gets them all. With no high-quality sample there is no histogram: the KL is None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

HIGH_QUALITY_STDS = 3.0


@dataclass(frozen=True)
class ModeCounts:
    per_mode: list[int]  # high-quality samples nearest to each mean
    samples: int

    @property
    def high_quality(self) -> float:
        """The share of samples within the threshold of their nearest mode."""
        return sum(self.per_mode) / self.samples

    @property
    def modes_captured(self) -> int:
        return sum(1 for count in self.per_mode if count > 0)

    @property
    def kl_uniform(self) -> float | None:
        """KL(mode histogram || uniform) in nats, over the high-quality samples."""
        total = sum(self.per_mode)
        if total == 0:
            return None
        k = len(self.per_mode)
        return sum(c / total * math.log(k * c / total) for c in self.per_mode if c > 0)

    def metrics(self) -> dict[str, float | int | None]:
        return {"modes_captured": self.modes_captured, "high_quality": self.high_quality,
                "kl_uniform": self.kl_uniform}  # fmt: skip


def count_modes(samples: Tensor, means: Tensor, std: float,
                threshold: float = HIGH_QUALITY_STDS) -> ModeCounts:  # fmt: skip
    """The high-quality samples [N, 2] nearest to each of the means [K, 2]."""
    if samples.dim() != 2 or samples.shape[1] != means.shape[1] or len(samples) == 0:
        raise ValueError(f"expected samples [N, {means.shape[1]}] with N > 0, "
                         f"got {tuple(samples.shape)}")  # fmt: skip
    distance = torch.cdist(samples.double(), means.double()) / std  # in standard deviations
    nearest, which = distance.min(dim=1)
    good = which[nearest < threshold]
    return ModeCounts(torch.bincount(good, minlength=len(means)).tolist(), len(samples))


def mean_and_std(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Over runs: mean and standard deviation (numpy's, ddof 0) of the defined values, and how
    many runs had none (a KL without high-quality samples)."""
    defined = np.array([v for v in values if v is not None], dtype=np.float64)
    if len(defined) == 0:
        return {"mean": None, "std": None, "undefined": len(values)}
    return {"mean": float(defined.mean()), "std": float(defined.std()),
            "undefined": len(values) - len(defined)}  # fmt: skip
