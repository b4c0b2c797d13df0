"""The mixture mode counts on hand-made sample sets whose counts are known exactly."""

import math

import pytest
import torch

from genmodels.metrics.mixtures import count_modes, mean_and_std

STD = 0.1
MEANS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


def around(mean: list[float], count: int, offset: float) -> torch.Tensor:
    """`count` points at `offset` standard deviations to the right of `mean`."""
    return torch.tensor([[mean[0] + offset * STD, mean[1]]] * count)


def test_every_mode_hit_evenly():
    samples = torch.cat([around(m, 5, 0.5) for m in MEANS.tolist()])
    counts = count_modes(samples, MEANS, STD)
    assert counts.per_mode == [5, 5, 5, 5]
    assert counts.modes_captured == 4
    assert counts.high_quality == 1.0
    assert counts.kl_uniform == pytest.approx(0.0, abs=1e-12)


def test_one_mode_only():
    counts = count_modes(around([1.0, 1.0], 10, 1.0), MEANS, STD)
    assert counts.per_mode == [0, 0, 0, 10]
    assert counts.modes_captured == 1
    assert counts.high_quality == 1.0
    assert counts.kl_uniform == pytest.approx(math.log(4))  # all on one of four: log K


def test_samples_between_modes_are_not_high_quality():
    # (0.5, 0.5) is 7.07 std from every mean; 2.9 std from a mean is within, 3.1 is not
    samples = torch.cat([
        torch.tensor([[0.5, 0.5]] * 6),
        around([0.0, 0.0], 2, 2.9),
        around([0.0, 1.0], 3, 3.1),
    ])  # fmt: skip
    counts = count_modes(samples, MEANS, STD)
    assert counts.per_mode == [2, 0, 0, 0]
    assert counts.modes_captured == 1
    assert counts.high_quality == pytest.approx(2 / 11)
    assert counts.kl_uniform == pytest.approx(math.log(4))


def test_an_empty_mode_and_the_histogram_over_the_rest():
    samples = torch.cat([around([0.0, 0.0], 2, 0.0), around([1.0, 0.0], 2, -1.0),
                         around([0.0, 1.0], 4, 2.0)])  # fmt: skip
    counts = count_modes(samples, MEANS, STD)
    assert counts.per_mode == [2, 2, 4, 0]
    assert counts.modes_captured == 3
    shares = [0.25, 0.25, 0.5]
    assert counts.kl_uniform == pytest.approx(sum(p * math.log(4 * p) for p in shares))


def test_no_high_quality_sample_has_no_histogram():
    counts = count_modes(torch.tensor([[0.5, 0.5], [5.0, 5.0]]), MEANS, STD)
    assert counts.per_mode == [0, 0, 0, 0]
    assert (counts.modes_captured, counts.high_quality, counts.kl_uniform) == (0, 0.0, None)


def test_samples_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"samples \[N, 2\]"):
        count_modes(torch.zeros(3, 3), MEANS, STD)
    with pytest.raises(ValueError, match=r"N > 0"):
        count_modes(torch.zeros(0, 2), MEANS, STD)


def test_mean_and_std_over_runs_skip_undefined_values():
    assert mean_and_std([1.0, 3.0, None]) == {"mean": 2.0, "std": 1.0, "undefined": 1}
    assert mean_and_std([None]) == {"mean": None, "std": None, "undefined": 1}
