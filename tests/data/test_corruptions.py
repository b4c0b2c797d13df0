import torch

from genmodels.data.corruptions import corrupt, gaussian_noise, masking_noise


def test_gaussian_noise_has_the_asked_sigma_and_stays_in_range():
    clean = torch.full((200, 1, 28, 28), 0.5)
    noisy = gaussian_noise(clean, 0.1, torch.Generator().manual_seed(0))
    assert abs((noisy - clean).std().item() - 0.1) < 0.002
    assert noisy.min() >= 0 and noisy.max() <= 1
    heavy = gaussian_noise(clean, 0.9, torch.Generator().manual_seed(0))
    assert heavy.min() == 0 and heavy.max() == 1  # clipped, not out of range


def test_masking_drops_the_asked_fraction_and_keeps_the_rest():
    clean = torch.rand(100, 1, 28, 28) * 0.9 + 0.1  # no zero pixels to begin with
    masked = masking_noise(clean, 0.3, torch.Generator().manual_seed(0))
    dropped = masked == 0
    assert abs(dropped.float().mean().item() - 0.3) < 0.01
    assert torch.equal(masked[~dropped], clean[~dropped])


def test_same_generator_seed_same_corruption_and_none_is_identity():
    x = torch.rand(4, 1, 28, 28)
    a = corrupt(x, "gaussian", 0.2, torch.Generator().manual_seed(5))
    b = corrupt(x, "gaussian", 0.2, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert corrupt(x, "none", 0.2) is x
