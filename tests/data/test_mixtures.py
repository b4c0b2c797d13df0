"""The papers' mixtures: where the means lie, how wide each component is, and the seeding."""

import math

import pytest
import torch

from genmodels.data.mixtures import grid, mixture, ring
from genmodels.errors import UserError


def test_ring_of_eight_on_the_unit_circle():
    r = ring()
    assert r.modes == 8 and r.std == 0.01
    assert torch.allclose(r.means.norm(dim=1), torch.ones(8, dtype=torch.float64))
    angles = torch.atan2(r.means[:, 1], r.means[:, 0]) % (2 * math.pi)
    assert torch.allclose(angles, torch.arange(8, dtype=torch.float64) * math.pi / 4)


def test_grid_of_twenty_five_two_apart():
    g = grid()
    assert g.modes == 25 and g.std == 0.05
    assert sorted({x for x, _ in g.means.tolist()}) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert len({tuple(m) for m in g.means.tolist()}) == 25


def test_samples_are_seeded_and_spread_by_the_std():
    g = grid()
    a = g.sample(20_000, torch.Generator().manual_seed(3))
    assert torch.equal(a, g.sample(20_000, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, g.sample(20_000, torch.Generator().manual_seed(4)))
    nearest = torch.cdist(a.double(), g.means).argmin(dim=1)
    offsets = a.double() - g.means[nearest]
    assert offsets.std().item() == pytest.approx(0.05, rel=0.03)
    shares = torch.bincount(nearest, minlength=25) / len(a)
    assert shares.min().item() > 0.03 and shares.max().item() < 0.05  # equal weights: 0.04


def test_an_unknown_mixture_names_the_choices():
    with pytest.raises(UserError, match="ring, grid"):
        mixture("spiral")
