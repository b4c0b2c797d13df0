import numpy as np
import pytest
import torch

from genmodels.metrics.prdc import knn_radii, prdc


def _prdc_reference(real, fake, k):
    """The official prdc package (Naeem et al. 2020), written out with full distance matrices."""

    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    real_r = np.sort(dist(real, real), axis=1)[:, k]  # (k+1)-th smallest, self (0) included
    fake_r = np.sort(dist(fake, fake), axis=1)[:, k]
    d = dist(real, fake)
    return {
        "precision": (d < real_r[:, None]).any(axis=0).mean(),
        "recall": (d < fake_r[None, :]).any(axis=1).mean(),
        "density": (1.0 / k) * (d < real_r[:, None]).sum(axis=0).mean(),
        "coverage": (d.min(axis=1) < real_r).mean(),
    }


def _normal(n, d, seed, shift=0.0):
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def test_identical_sets_score_one_everywhere():
    x = _normal(200, 8, seed=0)
    # Each real ball holds its own copy plus its k-1 strictly closer neighbours: k fakes per real
    # ball, so density = N k / (k N) = 1 exactly when no distances tie.
    assert prdc(x, x.copy(), k=5) == {
        "precision": 1.0,
        "recall": 1.0,
        "density": 1.0,
        "coverage": 1.0,
    }


def test_far_fakes_score_zero():
    real, fake = _normal(50, 2, seed=1), _normal(40, 2, seed=2, shift=100.0)
    assert prdc(real, fake, k=3) == {
        "precision": 0.0,
        "recall": 0.0,
        "density": 0.0,
        "coverage": 0.0,
    }


def test_fakes_covering_half_the_clusters():
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0], [50.0, 50.0]])
    real = np.concatenate([c + rng.normal(size=(10, 2)) for c in centres])
    fake = real[:20].copy()  # exact copies of the first two clusters
    scores = prdc(real, fake, k=3)
    # exact copies sit on their neighbours' k-NN ball boundaries, where the GEMM-based
    # distances round differently from one CPU to another: one boundary flip is 1/15 density
    density = scores.pop("density")
    assert scores == {"precision": 1.0, "recall": 0.5, "coverage": 0.5}
    assert density == pytest.approx(1.0, abs=0.07)


def test_hand_made_1d_case():
    real = np.array([[0.0], [1.0], [3.0], [6.0], [30.0], [31.0]])
    fake = np.array([[0.5], [5.0], [10.0]])
    # k=1 radii: real [1, 1, 2, 3, 1, 1], fake [4.5, 4.5, 5].
    # precision: 0.5 in ball(0), 5 in ball(6), 10 in none -> 2/3
    # recall: 0, 1, 3 in ball(0.5), 6 in ball(5); 30, 31 in none -> 4/6
    # density: 0.5 in balls of 0 and 1, 5 in ball of 6 only (|5-3| = 2 is not < 2) -> 3 / 3
    # coverage: nearest fakes of 0, 1, 6 inside their balls; of 3 at exactly 2 -> 3/6
    scores = prdc(real, fake, k=1)
    assert scores["precision"] == pytest.approx(2 / 3, abs=1e-12)
    assert scores["recall"] == pytest.approx(4 / 6, abs=1e-12)
    assert scores["density"] == pytest.approx(1.0, abs=1e-12)
    assert scores["coverage"] == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_matches_brute_force_reference(k):
    real, fake = _normal(60, 5, seed=4), _normal(45, 5, seed=5, shift=0.4) * 1.3
    real = torch.from_numpy(real).float()  # float32 input is upcast to float64 inside
    scores = prdc(real, fake, k=k)
    assert set(scores) == {"precision", "recall", "density", "coverage"}
    assert all(isinstance(v, float) for v in scores.values())
    expected = _prdc_reference(real.double().numpy(), fake, k)
    for key, value in expected.items():
        assert scores[key] == pytest.approx(value, abs=1e-9), key
    assert 0 < scores["precision"] < 1 and 0 < scores["coverage"] < 1


def test_chunked_equals_unchunked():
    real, fake = _normal(70, 4, seed=6), _normal(55, 4, seed=7, shift=0.3)
    assert prdc(real, fake, k=4, chunk=7) == prdc(real, fake, k=4, chunk=4096)


def test_knn_radii_excludes_self():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]], dtype=torch.float64)
    assert knn_radii(x, k=1).tolist() == [1.0, 1.0, 2.0, 4.0]
    assert knn_radii(x, k=2, chunk=3).tolist() == [3.0, 2.0, 3.0, 6.0]


def test_bad_inputs_raise():
    x = _normal(5, 2, seed=8)
    with pytest.raises(ValueError, match="k=5"):
        prdc(x, x, k=5)
    with pytest.raises(ValueError, match="dimensions"):
        prdc(x, _normal(5, 3, seed=9), k=2)
