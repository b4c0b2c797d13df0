"""Many seeds in one network: each seed's rows meet only that seed's weights."""

import pytest
import torch

from genmodels.nn.points import (
    SeedLinear,
    SeedPointDiscriminator,
    SeedPointGenerator,
    seed_spectral_norm,
)


def generators(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_each_slice_is_a_linear_layer_of_its_own_rows():
    layer = SeedLinear(generators(0, 1, 2), 3, 4)
    x = torch.randn(3, 5, 3)
    out = layer(x)
    for s in range(3):
        expected = torch.nn.functional.linear(x[s], layer.weight[s].T, layer.bias[s, 0])
        assert torch.allclose(out[s], expected, atol=1e-6)


def test_a_seeds_initial_weights_do_not_depend_on_the_seeds_beside_it():
    alone = SeedPointGenerator(generators(5), 2, [8, 8])
    beside = SeedPointGenerator(generators(3, 5), 2, [8, 8])
    for a, b in zip(alone.parameters(), beside.parameters(), strict=True):
        assert torch.equal(a[0], b[1])
        assert not torch.equal(b[0], b[1])


@pytest.mark.parametrize(("packing", "minibatch_std"), [(1, False), (2, False), (1, True)])
def test_a_seeds_scores_ignore_the_other_seeds_points(packing, minibatch_std):
    d = SeedPointDiscriminator(generators(0, 1), [16, 16], packing, minibatch_std)
    points = torch.randn(2 * 8, 2, 1, 1)
    scores = d(points)
    assert scores.shape == (2 * 8 // packing, 1)
    moved = points.clone()
    moved[8:] += 5.0  # the second seed's rows only
    again = d(moved)
    half = len(scores) // 2
    assert torch.allclose(again[:half], scores[:half], atol=1e-6)
    assert not torch.allclose(again[half:], scores[half:])


def test_minibatch_std_sees_the_spread_within_its_seed():
    d = SeedPointDiscriminator(generators(0, 1), [16], 1, minibatch_std=True)
    same = torch.zeros(16, 2, 1, 1)
    spread = same.clone()
    spread[:8] = torch.randn(8, 2, 1, 1)  # the first seed's points differ, the second's do not
    assert not torch.allclose(d(spread)[:8], d(same)[:8])
    assert torch.allclose(d(spread)[8:], d(same)[8:])


def test_spectral_norm_scales_each_seeds_matrix_to_norm_one():
    d = SeedPointDiscriminator(generators(0, 1), [16, 16])
    with torch.no_grad():
        d.hidden[1].weight[1] *= 10.0  # one seed's matrix ten times larger than the other's
    seed_spectral_norm(d)
    points = torch.randn(8, 2, 1, 1)
    for _ in range(30):  # power iterations, one per training forward
        d(points)
    for layer in [*d.hidden, d.head]:
        norms = torch.linalg.matrix_norm(layer.weight, ord=2)
        assert torch.allclose(norms, torch.ones(2), atol=1e-3)


def test_a_loss_over_all_seeds_gives_each_seed_its_own_gradient():
    g = SeedPointGenerator(generators(0, 1), 2, [8])
    z = torch.randn(6, 2)
    g(z).pow(2).mean().backward()
    together = [p.grad[0].clone() for p in g.parameters()]
    alone = SeedPointGenerator(generators(0), 2, [8])
    alone(z[:3]).pow(2).mean().backward()
    for both, own in zip(together, alone.parameters(), strict=True):
        assert torch.allclose(both * 2, own.grad[0], atol=1e-6)  # divided by the 2 seeds
