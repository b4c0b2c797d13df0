import math

import numpy as np
import pytest

from genmodels.metrics.game import collapse_signal, moving_average, oscillation_index, swing


def test_a_loss_on_its_trend_does_not_swing():
    steady = np.linspace(2.0, 1.0, 40)  # a straight trend: the moving average follows it exactly
    assert swing(steady) == pytest.approx(0.0, abs=1e-12)
    assert oscillation_index(steady, steady + 1) == pytest.approx(0.0, abs=1e-12)


def test_swing_of_an_alternating_loss_is_its_relative_amplitude():
    # level 2, +-0.5 alternating: a 4-point window averages the swing out exactly, so the
    # residual is the +-0.5 itself: std 0.5, relative to the level 2
    loss = 2.0 + 0.5 * np.array([1, -1] * 20, dtype=float)
    assert swing(loss, window=4) == pytest.approx(0.25, rel=0.02)


def test_oscillation_index_reads_only_the_late_part_and_averages_players():
    calm = np.ones(40)
    wild = np.concatenate([np.ones(20), 1 + 0.3 * np.array([1, -1] * 10)])
    early_wild = np.concatenate([1 + 0.3 * np.array([1, -1] * 10), np.ones(20)])
    one = oscillation_index(calm, wild, window=4)
    assert one == pytest.approx(0.5 * swing(wild[20:], window=4))
    assert oscillation_index(calm, early_wild, window=4) == pytest.approx(0.0, abs=1e-12)
    assert one > 0.1


def test_moving_average_and_errors():
    assert moving_average(np.arange(5.0), 3).tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError):
        swing([1.0, 2.0])
    with pytest.raises(ValueError):
        oscillation_index([1.0] * 10, [1.0] * 10, late=0)


def test_collapse_signal_reports_lost_classes_and_recall_drop():
    coverage = [3, 8, 10, 10, 9, 7]
    recall = [0.1, 0.3, 0.45, 0.4, 0.3, 0.2]
    out = collapse_signal(coverage, recall, num_classes=10)
    assert out == {
        "classes_lost": 3.0,
        "min_late_class_coverage": 7.0,
        "recall_final": 0.2,
        "recall_peak": 0.45,
        "recall_drop": pytest.approx(0.25),
    }
    assert not math.isnan(out["recall_drop"])
