import numpy as np
import pytest
import torch

from genmodels.metrics.fid import fid, frechet_distance, gaussian_stats, kid, polynomial_kernel


def _normal(n, d, seed, shift=0.0, scale=1.0):
    return np.random.default_rng(seed).normal(size=(n, d)) * scale + shift


def _sqrt_psd(a):
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _frechet_reference(mu1, s1, mu2, s2):
    """Closed form through symmetric roots only: Tr sqrt(s1 s2) = Tr sqrt(s1^1/2 s2 s1^1/2)."""
    r1 = _sqrt_psd(s1)
    cross = np.trace(_sqrt_psd(r1 @ s2 @ r1))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * cross)


def _random_cov(d, seed):
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_gaussian_stats_is_mean_and_unbiased_covariance():
    x = _normal(30, 4, seed=0)
    mu, sigma = gaussian_stats(torch.from_numpy(x).float())
    assert mu.dtype == np.float64 and sigma.shape == (4, 4)
    centred = x - x.mean(axis=0)
    np.testing.assert_allclose(mu, x.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(sigma, centred.T @ centred / 29, atol=1e-6)


def test_identical_sets_give_zero():
    x = _normal(500, 8, seed=1, scale=10.0)
    assert fid(x, x) < 1e-6 * np.trace(np.cov(x, rowvar=False))
    assert fid(torch.from_numpy(x), x.copy()) < 1e-6 * np.trace(np.cov(x, rowvar=False))


def test_closed_form_two_gaussians_in_2d():
    value = frechet_distance(np.zeros(2), np.eye(2), np.array([1.0, 2.0]), 4 * np.eye(2))
    assert value == pytest.approx(7.0, abs=1e-9)  # 5 + 2 * (1 + 4 - 2 * 2)


def test_diagonal_covariances_match_closed_form():
    rng = np.random.default_rng(2)
    a, b = rng.uniform(0.1, 5, size=6), rng.uniform(0.1, 5, size=6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)


def test_full_covariances_match_symmetric_root_formula():
    s1, s2 = _random_cov(7, seed=3), _random_cov(7, seed=4)
    mu1, mu2 = np.zeros(7), np.full(7, 0.5)
    expected = _frechet_reference(mu1, s1, mu2, s2)
    assert expected > 0.1
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1))


def test_sampled_sets_approach_closed_form():
    a = _normal(20000, 4, seed=5)
    b = _normal(20000, 4, seed=6, shift=np.array([1.0, 0, 0, 0]), scale=2.0)
    closed = 1.0 + 4 * (1 + 4 - 2 * 2)  # ||dmu||^2 + sum (sqrt(1) - sqrt(4))^2 = 5
    assert fid(a, b) == pytest.approx(closed, rel=0.05)
    assert fid(a, _normal(20000, 4, seed=7)) < 0.01


def test_constant_feature_gives_finite_value():
    x, y = _normal(400, 4, seed=8), _normal(400, 4, seed=9, shift=0.3)
    x[:, 2], y[:, 2] = 3.0, 1.0
    value = fid(x, y)
    assert np.isfinite(value)
    keep = [0, 1, 3]
    # The constant column only adds its squared mean difference (eps perturbs it negligibly).
    assert value == pytest.approx(fid(x[:, keep], y[:, keep]) + 4.0, abs=1e-4)


def test_fewer_samples_than_dimensions_gives_finite_value():
    value = fid(_normal(5, 12, seed=10), _normal(6, 12, seed=11, shift=1.0))
    assert np.isfinite(value) and value > 0


def test_invalid_covariance_raises_on_large_imaginary_part():
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def _mmd2_brute(x, y, degree=3, gamma=None, coef0=1.0):
    gamma = 1.0 / x.shape[1] if gamma is None else gamma

    def k(a, b):
        return (gamma * float(a @ b) + coef0) ** degree

    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_brute_force_on_tiny_case():
    x = np.array([[0.0, 1.0, 2.0], [1.0, -1.0, 0.5], [2.0, 0.0, 1.0], [-1.0, 0.5, 0.0]])
    y = x[::-1] * 0.7 + 0.2
    mean, std = kid(x, y, subsets=1, subset_size=10)  # subset = all rows, in some order
    assert mean == pytest.approx(_mmd2_brute(x, y), abs=1e-12)
    assert std == 0.0
    mean, _ = kid(x, y, subsets=1, subset_size=10, degree=2, gamma=0.5, coef0=2.0)
    assert mean == pytest.approx(_mmd2_brute(x, y, 2, 0.5, 2.0), abs=1e-12)


def test_kid_subsets_follow_the_seeded_draws():
    x, y = _normal(12, 3, seed=12), _normal(9, 3, seed=13, shift=0.5)
    rng = np.random.default_rng(4)
    expected = []
    for _ in range(3):
        ia = rng.choice(12, 5, replace=False)
        ib = rng.choice(9, 5, replace=False)
        expected.append(_mmd2_brute(x[ia], y[ib]))
    mean, std = kid(x, y, subsets=3, subset_size=5, seed=4)
    assert mean == pytest.approx(np.mean(expected), abs=1e-12)
    assert std == pytest.approx(np.std(expected), abs=1e-12)


def test_kid_same_distribution_near_zero_and_shift_positive():
    a, b = _normal(600, 16, seed=14), _normal(600, 16, seed=15)
    mean, std = kid(a, b, subsets=20, subset_size=300)
    assert std >= 0
    assert abs(mean) < 3 * std or abs(mean) < 1e-3
    shifted_mean, shifted_std = kid(a, _normal(600, 16, seed=16, shift=1.0), 20, 300)
    assert shifted_mean > 0.1 and shifted_mean > 10 * shifted_std


def test_kid_seed_reproducible_and_default_gamma():
    a, b = _normal(200, 8, seed=17), _normal(200, 8, seed=18, shift=0.2)
    first = kid(a, b, subsets=5, subset_size=50, seed=3)
    assert first == kid(torch.from_numpy(a), b, subsets=5, subset_size=50, seed=3)
    assert first != kid(a, b, subsets=5, subset_size=50, seed=4)
    assert first[1] > 0
    assert first == kid(a, b, subsets=5, subset_size=50, seed=3, gamma=1 / 8)


def test_polynomial_kernel_formula():
    x, y = np.array([[1.0, 2.0]]), np.array([[3.0, -1.0], [0.0, 1.0]])
    np.testing.assert_allclose(polynomial_kernel(x, y), [[(0.5 * 1 + 1) ** 3, (0.5 * 2 + 1) ** 3]])
