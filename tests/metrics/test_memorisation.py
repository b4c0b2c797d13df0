import numpy as np
import pytest
import torch

from genmodels.metrics.memorisation import memorisation_report, nearest_neighbour_distances


def _images(n, seed, dtype=torch.float64):
    return torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_exact_copies_are_flagged():
    train = _images(50, seed=0, dtype=torch.float32)
    report = memorisation_report(train[:20].clone(), train, _images(30, seed=1))
    assert report["generated_to_train"] == 0.0  # float32 cdist alone would leave ~1e-3 here
    assert report["ratio"] == 0.0
    assert report["copied_fraction"] == 1.0
    assert report["test_to_train"] > 0.5


def test_hand_made_distances():
    train = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    generated = torch.tensor([[0.0, 0.5], [3.0, 4.0], [1.5, 0.0]])
    test = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 2.0], [0.0, 5.0]])
    assert nearest_neighbour_distances(generated, train).tolist() == [0.5, 3.0, 1.5]
    assert nearest_neighbour_distances(test, train).tolist() == [1.0, 2.0, 2.0, 1.0]
    report = memorisation_report(generated, train, test)
    assert report["generated_to_train"] == pytest.approx(5 / 3)
    assert report["test_to_train"] == pytest.approx(1.5)
    assert report["ratio"] == pytest.approx(10 / 9)
    # 5th percentile of [1, 1, 2, 2] is 1.0; only the 0.5 sample is strictly below it.
    assert report["copied_fraction"] == pytest.approx(1 / 3)


def test_chunked_equals_unchunked_and_brute_force():
    queries, reference = _images(37, seed=2), _images(53, seed=3)
    flat_q, flat_r = queries.flatten(1).numpy(), reference.flatten(1).numpy()
    brute = np.sqrt(((flat_q[:, None] - flat_r[None]) ** 2).sum(-1)).min(axis=1)
    whole = nearest_neighbour_distances(queries, reference)
    chunked = nearest_neighbour_distances(queries, reference, chunk=5)
    assert torch.equal(whole, chunked)
    np.testing.assert_allclose(whole.numpy(), brute, rtol=0, atol=1e-12)


def test_images_flat_numpy_and_uint8_agree():
    pixels = torch.randint(0, 256, (12, 1, 4, 4), generator=torch.Generator().manual_seed(4))
    queries, reference = pixels[:5].to(torch.uint8), pixels[5:].to(torch.uint8)
    from_uint8 = nearest_neighbour_distances(queries, reference)
    as_float = nearest_neighbour_distances(queries.double() / 255, reference.double() / 255)
    from_numpy = nearest_neighbour_distances(
        (queries.double() / 255).flatten(1).numpy(), (reference.double() / 255).numpy()
    )
    torch.testing.assert_close(from_uint8, as_float, rtol=0, atol=1e-6)
    assert torch.equal(as_float, from_numpy)


def test_test_set_inside_train_raises():
    train = _images(10, seed=5)
    with pytest.raises(ValueError, match="test image"):
        memorisation_report(_images(4, seed=6), train, train[:3])
