"""The game's parts against hand-computed values: losses, penalties, SN, EMA, anti-collapse."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from genmodels.nn.adversarial import (
    MinibatchStdDev,
    discriminator_loss,
    ema_copy,
    frozen,
    generator_loss,
    gradient_penalty,
    mode_seeking_ratio,
    pack,
    r1_penalty,
    with_spectral_norm,
)

REAL = torch.tensor([2.0, -1.0])
FAKE = torch.tensor([0.5, -3.0])


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def test_minimax_is_the_lectures_game():
    # L_D = -log D(x) - log(1 - D(G(z))), L_G = log(1 - D(G(z)))
    d = mean(-math.log(sigmoid(r)) for r in REAL) + mean(-math.log(1 - sigmoid(f)) for f in FAKE)
    g = mean(math.log(1 - sigmoid(f)) for f in FAKE)
    assert discriminator_loss("minimax", REAL, FAKE).item() == pytest.approx(d, rel=1e-6)
    assert generator_loss("minimax", FAKE).item() == pytest.approx(g, rel=1e-6)


def test_nonsaturating_generator_and_label_smoothing():
    assert generator_loss("nonsaturating", FAKE).item() == pytest.approx(
        mean(-math.log(sigmoid(f)) for f in FAKE), rel=1e-6
    )
    # one-sided smoothing: the real target is 0.9, the fake target stays 0
    smoothed = mean(
        -(0.9 * math.log(sigmoid(r)) + 0.1 * math.log(1 - sigmoid(r))) for r in REAL
    ) + mean(-math.log(1 - sigmoid(f)) for f in FAKE)
    got = discriminator_loss("nonsaturating", REAL, FAKE, real_target=0.9).item()
    assert got == pytest.approx(smoothed, rel=1e-6)


def test_lsgan_hinge_and_wasserstein_values():
    assert discriminator_loss("lsgan", REAL, FAKE).item() == pytest.approx(
        0.5 * (mean((r - 1) ** 2 for r in REAL) + mean(f**2 for f in FAKE))
    )
    assert generator_loss("lsgan", FAKE).item() == pytest.approx(
        0.5 * mean((f - 1) ** 2 for f in FAKE)
    )
    # hinge: relu(1 - 2) = 0, relu(1 + 1) = 2; relu(1 + 0.5) = 1.5, relu(1 - 3) = 0
    assert discriminator_loss("hinge", REAL, FAKE).item() == pytest.approx(1.0 + 0.75)
    assert generator_loss("hinge", FAKE).item() == pytest.approx(1.25)
    assert discriminator_loss("wgan_gp", REAL, FAKE).item() == pytest.approx(-1.25 - 0.5)
    assert generator_loss("wgan_gp", FAKE).item() == pytest.approx(1.25)


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="allowed"):
        generator_loss("bogus", FAKE)


class TinyCritic(nn.Module):
    """D(x) = v . tanh(W x): its input gradient is W^T (v * (1 - tanh(Wx)^2)), by hand."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(torch.randn(3, 4, generator=generator, dtype=torch.float64))
        self.v = nn.Parameter(torch.randn(3, generator=generator, dtype=torch.float64))

    def forward(self, x):
        return torch.tanh(x.flatten(1) @ self.w.T) @ self.v

    def input_gradient(self, x):
        h = torch.tanh(x.flatten(1) @ self.w.T)
        return ((1 - h**2) * self.v) @ self.w


def test_gradient_penalty_matches_the_hand_derived_gradient():
    critic = TinyCritic()
    real = torch.randn(5, 1, 2, 2, dtype=torch.float64)
    fake = torch.randn(5, 1, 2, 2, dtype=torch.float64)
    torch.manual_seed(3)
    got = gradient_penalty(critic, real, fake)
    torch.manual_seed(3)  # the same interpolation points
    eps = torch.rand(5, 1, 1, 1, dtype=torch.float64)
    mixed = eps * real + (1 - eps) * fake
    norms = critic.input_gradient(mixed).norm(dim=1)
    assert got.item() == pytest.approx(((norms - 1) ** 2).mean().item(), rel=1e-10)
    got.backward()  # create_graph: the penalty trains the critic
    assert critic.w.grad is not None and critic.w.grad.abs().sum() > 0


def test_r1_matches_the_hand_derived_gradient():
    critic = TinyCritic()
    real = torch.randn(6, 1, 2, 2, dtype=torch.float64).requires_grad_(True)
    got = r1_penalty(critic(real), real)
    expected = critic.input_gradient(real.detach()).pow(2).sum(dim=1).mean()
    assert got.item() == pytest.approx(expected.item(), rel=1e-10)


def test_spectral_norm_bounds_the_largest_singular_value():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 32), nn.LeakyReLU(0.2), nn.Conv2d(1, 1, 1), nn.Linear(32, 1))
    with torch.no_grad():
        net[0].weight.mul_(10)  # sigma_max far above 1 before normalisation
    assert torch.linalg.matrix_norm(net[0].weight.detach(), ord=2) > 5
    with_spectral_norm(net)
    for _ in range(30):  # the power iteration advances once per training-mode forward
        net[0](torch.randn(4, 16))
    sigma = torch.linalg.matrix_norm(net[0].weight.detach(), ord=2).item()
    assert sigma == pytest.approx(1.0, abs=1e-3)


def test_ema_update_arithmetic():
    module = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        module.weight.fill_(2.0)
    ema = ema_copy(module, decay=0.9)
    ema.update_parameters(module)  # the first update copies
    assert ema.module.weight.item() == pytest.approx(2.0)
    with torch.no_grad():
        module.weight.fill_(4.0)
    ema.update_parameters(module)
    assert ema.module.weight.item() == pytest.approx(0.9 * 2.0 + 0.1 * 4.0)
    ema.update_parameters(module)
    assert ema.module.weight.item() == pytest.approx(0.9 * 2.2 + 0.1 * 4.0)


def test_minibatch_stddev_appends_the_group_spread():
    x = torch.zeros(4, 2, 3, 3)
    x[0], x[2] = 1.0, 3.0  # samples 0 and 2 share a group of size 2: std 1 in every cell
    out = MinibatchStdDev(group_size=2)(x)
    assert out.shape == (4, 3, 3, 3)
    assert torch.equal(out[:, :2], x)
    assert out[:, 2].allclose(torch.tensor([1.0, 0.0, 1.0, 0.0]).view(4, 1, 1), atol=1e-3)
    identical = MinibatchStdDev()(torch.ones(8, 1, 2, 2))
    assert identical[:, 1].max() < 1e-3  # a collapsed batch shows zero spread


def test_pack_stacks_samples_on_channels():
    images = torch.arange(4 * 2 * 2, dtype=torch.float32).view(4, 1, 2, 2)
    packed = pack(images, 2)
    assert packed.shape == (2, 2, 2, 2)
    assert torch.equal(packed[1, 0], images[2, 0]) and torch.equal(packed[1, 1], images[3, 0])
    with pytest.raises(ValueError, match="packs of 3"):
        pack(images, 3)


def test_mode_seeking_ratio_by_hand():
    a = torch.zeros(2, 1, 1, 2)
    b = torch.tensor([[[[1.0, 3.0]]], [[[0.0, 0.0]]]])
    za, zb = torch.zeros(2, 4), torch.ones(2, 4) * torch.tensor([[1.0], [2.0]])
    # sample 0: image L1 mean 2 over latent L1 mean 1; sample 1: 0 over 2; mean 1
    assert mode_seeking_ratio(a, b, za, zb).item() == pytest.approx(1.0)


def test_frozen_discriminator_gives_the_generator_the_same_gradients():
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
    discriminator = nn.Sequential(nn.Linear(8, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    discriminator[2].bias.requires_grad_(False)  # a frozen weight stays frozen afterwards
    z = torch.randn(16, 4)

    generator_loss("nonsaturating", discriminator(generator(z))).backward()
    expected = [p.grad.clone() for p in generator.parameters()]
    generator.zero_grad(set_to_none=True)
    discriminator.zero_grad(set_to_none=True)

    with frozen(discriminator):
        generator_loss("nonsaturating", discriminator(generator(z))).backward()
    for got, want in zip((p.grad for p in generator.parameters()), expected, strict=True):
        assert torch.equal(got, want)
    assert all(p.grad is None for p in discriminator.parameters())  # no weight gradients
    flags = [p.requires_grad for p in discriminator.parameters()]
    assert flags == [True, True, True, False]

    with pytest.raises(RuntimeError), frozen(discriminator):
        raise RuntimeError("a failed step")
    assert [p.requires_grad for p in discriminator.parameters()] == flags
