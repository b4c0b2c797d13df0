"""The evaluator space on real data: real images score like the reference, a collapsed set does
not, and the reference survives a save and load."""

from __future__ import annotations

import pytest
import torch

from genmodels.errors import UserError
from genmodels.metrics.space import RealReference


def test_real_test_images_score_near_the_floor(digits_prepared, digits_space):
    real = digits_prepared.test_images[:200].float() / 255
    m = digits_space.sample_metrics(real)
    assert m["n_samples"] == 200
    assert m["precision"] > 0.6 and m["recall"] > 0.6
    # the briefly trained evaluator mislabels some digits: nearly every class is still seen
    assert m["class_coverage"] >= 9 and m["class_kl"] < 0.2
    # unseen real images sit as far from the training set as the test yardstick
    assert 0.8 < m["memorisation"]["ratio"] < 1.2


def test_a_collapsed_generator_loses_recall_and_classes(digits_prepared, digits_space):
    one = digits_prepared.train_images[:1].float() / 255
    collapsed = (one + 0.01 * torch.randn(200, 1, 28, 28)).clamp(0, 1)
    m = digits_space.sample_metrics(collapsed)
    real = digits_space.sample_metrics(digits_prepared.test_images[:200].float() / 255)
    assert m["class_coverage"] == 1 and m["class_kl"] > 1.0
    assert m["recall"] < 0.1 < real["recall"]
    assert m["fid"] > 10 * real["fid"]
    # copies of a training image: far closer to the training set than real test images
    assert m["memorisation"]["ratio"] < 0.2 and m["memorisation"]["copied_fraction"] == 1.0
    quick = digits_space.quick_metrics(collapsed)
    assert quick["class_coverage"] == 1 and sum(quick[f"class_{c}"] for c in range(10)) == 1


def test_one_pass_gives_what_two_passes_give(digits_prepared, digits_space):
    images = digits_prepared.test_images[:300]  # uint8, over two evaluation batches
    features, probs = digits_space.features_and_probabilities(images)
    assert features.shape == (300, digits_space.reference.train_features.shape[1])
    torch.testing.assert_close(features, digits_space.features(images))
    torch.testing.assert_close(probs, digits_space.probabilities(images))
    torch.testing.assert_close(probs.sum(1), torch.ones(300))


def test_reference_round_trip_and_damage(digits_space, tmp_path):
    path = digits_space.reference.save(tmp_path / "features.pt")
    loaded = RealReference.load(path)
    assert torch.equal(loaded.train_features, digits_space.reference.train_features)
    assert loaded.extractor == "evaluator"
    path.write_bytes(b"not a tensor file")
    with pytest.raises(UserError, match="unreadable"):
        RealReference.load(path)
    with pytest.raises(UserError, match="evaluate_evaluator"):
        RealReference.load(tmp_path / "missing.pt")
