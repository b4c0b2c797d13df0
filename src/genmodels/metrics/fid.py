"""Frechet distance (FID, Heusel et al. 2017) and Kernel Inception Distance (KID, Binkowski et al.
2018) between two sets of features.

The features come from whatever extractor the caller plugs in (our evaluator classifier offline,
Inception where its weights are available), as [N, D] torch tensors or numpy arrays. Everything is
computed in float64: FID subtracts traces of similar size, and float32 loses the difference.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch
from scipy import linalg

log = logging.getLogger(__name__)

# sqrtm of a product of two PSD matrices is real in exact arithmetic; rounding leaves an imaginary
# part of ~1e-10. The reference implementation (pytorch-fid, TTUR) tolerates up to this on the
# diagonal before deciding the result is garbage.
IMAG_ATOL = 1e-3
# A FID below -NEGATIVE_RTOL * (scale of the terms) is a numerical failure, not a rounding error.
NEGATIVE_RTOL = 1e-6

Features = torch.Tensor | np.ndarray


def as_float64(features: Features, name: str = "features") -> np.ndarray:
    """[N, D] features as a float64 numpy array, whichever library they come from."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [N, D] array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contain NaN or inf; check the feature extractor's inputs")
    return x


def gaussian_stats(features: Features) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] of the features, the Gaussian that FID compares."""
    x = as_float64(features)
    if len(x) < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {len(x)}")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _sqrtm(matrix: np.ndarray) -> tuple[np.ndarray, bool]:
    """scipy's sqrtm, and whether it is trustworthy (the matrix not singular, the result finite)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", linalg.LinAlgWarning)
        root = linalg.sqrtm(matrix)
    singular = any(issubclass(w.category, linalg.LinAlgWarning) for w in caught)
    return root, not singular and bool(np.isfinite(root).all())


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + Tr(s1 + s2 - 2 sqrtm(s1 s2)), stabilised as in pytorch-fid / TTUR.

    A singular product (rank-deficient covariances: fewer samples than dimensions, constant
    features) gets eps * I added to both covariances. A negligible imaginary part of the root is
    dropped; a large one raises, as does a clearly negative result; tiny negatives become 0.
    """
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"statistics differ in shape: means {mu1.shape} vs {mu2.shape}, "
            f"covariances {sigma1.shape} vs {sigma2.shape}"
        )
    if sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"covariance {sigma1.shape} does not match mean {mu1.shape}")

    covmean, ok = _sqrtm(sigma1 @ sigma2)
    if not ok:
        log.warning("FID: singular covariance product; adding %g to the diagonals", eps)
        offset = np.eye(len(mu1)) * eps
        covmean, _ = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=IMAG_ATOL):
            raise ValueError(
                f"FID: sqrtm has an imaginary component of {np.max(np.abs(covmean.imag)):.3g}; "
                "the covariances are not valid (too few samples or non-finite features?)"
            )
        covmean = covmean.real
    if not np.isfinite(covmean).all():
        raise ValueError("FID: sqrtm of the covariance product is not finite even with eps added")

    diff = mu1 - mu2
    mean_term = float(diff @ diff)
    traces = float(np.trace(sigma1) + np.trace(sigma2))
    value = mean_term + traces - 2.0 * float(np.trace(covmean))
    if value < -NEGATIVE_RTOL * max(mean_term + traces, 1.0):
        raise ValueError(f"FID: negative distance {value:.3g}; the sqrtm was inaccurate")
    return max(value, 0.0)


def fid(features_a: Features, features_b: Features) -> float:
    """Frechet distance between the Gaussians fitted to two feature sets."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


def polynomial_kernel(
    x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef0: float = 1.0
) -> np.ndarray:
    """(gamma x.y + coef0)^degree for every pair of rows; gamma defaults to 1/D."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """The unbiased MMD^2 of the KID paper: within-set means skip the diagonal (i = j) terms."""
    m = len(k_xx)
    n = len(k_yy)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def kid(
    features_a: Features,
    features_b: Features,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: mean and std of the unbiased polynomial-kernel MMD^2 over
    random subsets, each drawn without replacement from both sets (numpy default_rng(seed)).

    Unlike FID it has an unbiased estimator, so small sample sets are comparable; it can be
    slightly negative when the two distributions are equal.
    """
    a = as_float64(features_a, "features_a")
    b = as_float64(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(a)} and {len(b)}")
    if subsets < 1:
        raise ValueError(f"KID needs at least one subset, got subsets={subsets}")
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for s in range(subsets):
        x = a[rng.choice(len(a), size, replace=False)]
        y = b[rng.choice(len(b), size, replace=False)]
        values[s] = mmd2_unbiased(
            polynomial_kernel(x, x, degree, gamma, coef0),
            polynomial_kernel(y, y, degree, gamma, coef0),
            polynomial_kernel(x, y, degree, gamma, coef0),
        )
    return float(values.mean()), float(values.std())
