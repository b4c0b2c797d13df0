import json
import math

import numpy as np
import pytest
import torch

from genmodels.metrics.modes import (
    class_coverage,
    class_histogram,
    class_kl,
    classifier_score,
    mode_report,
)


def _one_hot(labels, num_classes):
    return np.eye(num_classes)[np.asarray(labels)]


def test_class_histogram_shares():
    shares = class_histogram(torch.tensor([0, 2, 2, 3]), num_classes=5)
    np.testing.assert_array_equal(shares, [0.25, 0.0, 0.5, 0.25, 0.0])
    with pytest.raises(ValueError, match="labels"):
        class_histogram(np.array([0, 5]), num_classes=5)


def test_class_coverage_counts_classes_at_or_above_threshold():
    assert class_coverage(np.array([0.5, 0.3, 0.2, 0.0]), min_share=0.2) == 3
    assert class_coverage(np.array([0.5, 0.3, 0.2, 0.0]), min_share=0.25) == 2


def test_confident_uniform_predictions_score_num_classes():
    probs = _one_hot(np.arange(100) % 10, 10)
    assert classifier_score(probs) == pytest.approx(10.0, rel=1e-9)


def test_uniform_probabilities_score_one():
    assert classifier_score(np.full((50, 10), 0.1)) == pytest.approx(1.0, rel=1e-12)


def test_collapsed_generator():
    probs = _one_hot(np.full(100, 3), 10)
    real_labels = np.arange(1000) % 10
    report = mode_report(probs, real_labels, num_classes=10, min_share=0.05)
    assert report["classifier_score"] == pytest.approx(1.0, rel=1e-9)
    assert report["class_coverage"] == 1
    # Nine classes of real share 0.1 against a smoothed generated share of 1e-6 / (1 + 1e-5).
    gen = (np.eye(10)[3] + 1e-6) / (1 + 1e-5)
    assert report["class_kl"] == pytest.approx(np.sum(0.1 * np.log(0.1 / gen)), rel=1e-12)
    assert report["class_kl"] > 10.0
    assert report["class_histogram"] == [0.0, 0.0, 0.0, 1.0] + [0.0] * 6


def test_two_class_case_by_hand():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    marginal = (0.55, 0.45)
    kl1 = 0.9 * math.log(0.9 / marginal[0]) + 0.1 * math.log(0.1 / marginal[1])
    kl2 = 0.2 * math.log(0.2 / marginal[0]) + 0.8 * math.log(0.8 / marginal[1])
    expected = math.exp((kl1 + kl2) / 2)
    assert expected == pytest.approx(1.31705, abs=1e-5)
    assert classifier_score(probs) == pytest.approx(expected, rel=1e-6)


def test_class_kl_zero_for_equal_histograms():
    shares = np.array([0.1, 0.2, 0.3, 0.4])
    assert class_kl(shares, shares, eps=0.0) == 0.0
    assert class_kl(shares, shares) == pytest.approx(0.0, abs=1e-5)


def test_class_kl_direction_punishes_dropped_modes():
    uniform, dropped = np.full(3, 1 / 3), np.array([0.5, 0.5, 0.0])
    dropped_mode = class_kl(shares_generated=dropped, shares_real=uniform)
    extra_mode = class_kl(shares_generated=uniform, shares_real=dropped)
    assert extra_mode == pytest.approx(math.log(1.5), rel=1e-5)
    assert dropped_mode > 3.0 and dropped_mode > 5 * extra_mode


def test_mode_report_is_json_ready():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    report = mode_report(probs, np.array([0, 1, 2, 0, 1, 2]), num_classes=3, min_share=0.3)
    assert set(report) == {"classifier_score", "class_coverage", "class_kl", "class_histogram"}
    assert report["class_histogram"] == [0.5, 0.25, 0.25]
    assert report["class_coverage"] == 1
    expected_kl = (math.log((1 / 3) / 0.5) + 2 * math.log((1 / 3) / 0.25)) / 3
    assert report["class_kl"] == pytest.approx(expected_kl, rel=1e-4)
    json.dumps(report)


def test_logits_are_rejected():
    with pytest.raises(ValueError, match="softmax"):
        classifier_score(np.array([[2.0, 1.0]]))
    with pytest.raises(ValueError, match="softmax"):
        classifier_score(np.array([[2.0, -1.0]]))  # sums to 1 but is no distribution
