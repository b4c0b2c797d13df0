import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from genmodels.metrics.likelihood import (
    active_units,
    bernoulli_log_likelihood,
    gaussian_log_likelihood,
    iwae_bound,
    kl_standard_normal,
    log_normal,
    log_standard_normal,
)


def test_kl_closed_form_by_hand():
    mean = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # 0.5 * (1 + 1 - 0 - 1) + 0.5 * (0 + 2 - log 2 - 1); and zero for N(0, I) itself
    expected = torch.tensor([0.5 + 0.5 * (1 - math.log(2.0)), 0.0])
    assert torch.allclose(kl_standard_normal(mean, logvar), expected)


def test_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mean, logvar = torch.tensor([0.7, -1.2]), torch.tensor([-0.5, 0.3])
    z = mean + (0.5 * logvar).exp() * torch.randn(400_000, 2)
    estimate = (log_normal(z, mean, logvar) - log_standard_normal(z)).mean()
    assert estimate.item() == pytest.approx(kl_standard_normal(mean, logvar).item(), abs=0.01)


def test_log_densities_match_torch_distributions():
    torch.manual_seed(1)
    z, mean, logvar = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    reference = Normal(mean, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    assert torch.allclose(log_normal(z, mean, logvar), reference, atol=1e-5)
    assert torch.allclose(log_standard_normal(z), Normal(0.0, 1.0).log_prob(z).sum(-1), atol=1e-5)
    logits, target = torch.randn(4, 1, 2, 2), torch.bernoulli(torch.full((4, 1, 2, 2), 0.5))
    reference = Bernoulli(logits=logits).log_prob(target).flatten(1).sum(1)
    assert torch.allclose(bernoulli_log_likelihood(logits, target), reference, atol=1e-5)
    means, x = torch.rand(4, 1, 2, 2), torch.rand(4, 1, 2, 2)
    reference = Normal(means, math.sqrt(0.3)).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(gaussian_log_likelihood(means, x, 0.3), reference, atol=1e-5)


def test_iwae_bound_with_one_sample_is_the_sample_itself_and_grows_with_k():
    log_w = torch.tensor([[-3.0, -1.0]])
    assert torch.equal(iwae_bound(log_w), log_w[0])
    torch.manual_seed(2)
    many = torch.randn(100, 1000)  # log-weights of 1000 images, 100 samples each
    elbo = many.mean(0).mean()  # the K = 1 bound in expectation
    assert iwae_bound(many).mean() > iwae_bound(many[:10]).mean() > elbo
    # by hand: log((e^0 + e^2) / 2)
    assert iwae_bound(torch.tensor([[0.0], [2.0]])).item() == pytest.approx(
        math.log((1 + math.e**2) / 2)
    )


def test_active_units_counts_dimensions_that_vary():
    torch.manual_seed(3)
    means = torch.stack([torch.randn(500), 0.01 * torch.randn(500), torch.zeros(500)], dim=1)
    assert active_units(means, 0.01) == 1
