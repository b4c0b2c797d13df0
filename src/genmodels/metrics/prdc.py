"""Precision, recall, density and coverage (Naeem et al. 2020) of generated features.

Fidelity (precision, density) asks whether fake samples land on the real manifold; diversity
(recall, coverage) asks whether the real manifold is covered. Each manifold is the union of balls
around its samples, the radius of a ball being the distance to the sample's k-th nearest neighbour
in its own set. The semantics follow the official `prdc` package, strict `<` included, but the
distance matrices are computed in row chunks with torch.cdist, so 10k x 10k sets fit in a few
hundred MB instead of holding every N x N matrix at once.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

Features = Tensor | np.ndarray


def _as_float64(features: Features, name: str) -> Tensor:
    x = torch.as_tensor(features).detach().to("cpu", torch.float64)
    if x.dim() != 2:
        raise ValueError(f"{name} must be a 2-D [N, D] array, got shape {tuple(x.shape)}")
    return x


def knn_radii(features: Tensor, k: int, chunk: int = 4096) -> Tensor:
    """Distance from each row to its k-th nearest neighbour in the same set, itself excluded.

    As in the official package this is the (k+1)-th smallest distance with the zero self-distance
    counted, so an exact duplicate of a point counts as one of its neighbours.
    """
    if not 1 <= k < len(features):
        raise ValueError(f"k={k} needs 1 <= k < number of samples ({len(features)})")
    radii = [
        torch.cdist(features[i : i + chunk], features)
        .topk(k + 1, dim=1, largest=False)
        .values[:, -1]
        for i in range(0, len(features), chunk)
    ]
    return torch.cat(radii)


@torch.no_grad()
def prdc(real: Features, fake: Features, k: int = 5, chunk: int = 4096) -> dict[str, float]:
    """Precision, recall, density and coverage of `fake` against `real` with k-NN balls.

    precision: share of fake samples inside some real ball; recall: share of real samples inside
    some fake ball; density: mean number of real balls holding a fake sample, divided by k (1 when
    fake matches real, above 1 when fakes crowd dense regions); coverage: share of real samples
    whose ball holds at least one fake sample.
    """
    real_t, fake_t = _as_float64(real, "real"), _as_float64(fake, "fake")
    if real_t.shape[1] != fake_t.shape[1]:
        raise ValueError(f"feature dimensions differ: {real_t.shape[1]} vs {fake_t.shape[1]}")
    real_radii = knn_radii(real_t, k, chunk)
    fake_radii = knn_radii(fake_t, k, chunk)

    in_real_balls = torch.zeros(len(fake_t), dtype=torch.int64)  # per fake: how many real balls
    real_recalled = torch.zeros(len(real_t), dtype=torch.bool)
    real_covered = torch.zeros(len(real_t), dtype=torch.bool)
    for i in range(0, len(real_t), chunk):
        dist = torch.cdist(real_t[i : i + chunk], fake_t)  # [chunk of real, fake]
        radii = real_radii[i : i + chunk, None]
        in_real_balls += (dist < radii).sum(dim=0)
        real_recalled[i : i + chunk] = (dist < fake_radii[None, :]).any(dim=1)
        real_covered[i : i + chunk] = dist.min(dim=1).values < radii[:, 0]

    return {
        "precision": (in_real_balls > 0).double().mean().item(),
        "recall": real_recalled.double().mean().item(),
        "density": in_real_balls.double().mean().item() / k,
        "coverage": real_covered.double().mean().item(),
    }
