"""The two failures of the GAN game in numbers, computed from the curves logged while training.

- Oscillation index: how much a player's loss swings around its own trend late in training,
  relative to the level of that trend. For each of the two losses, over the last `late` share of
  the logged rows, the trend is a centred moving average of `window` rows and the swing is the
  standard deviation of the loss minus its trend; the index is swing / mean |trend|, averaged
  over the two players. 0 is a loss that follows its trend exactly; 0.1 is a loss swinging by a
  tenth of its level. Being relative, it compares losses of different scales (BCE, hinge, WGAN).
- Collapse signal: class coverage and recall watched in the evaluator space during training. A
  generator that collapses loses classes (coverage below the number of classes) and recall
  (the share of the real data its samples reach) while precision can stay high.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over `window` points ('valid': len(values) - window + 1 points)."""
    if window < 1 or window > len(values):
        raise ValueError(f"window {window} needs 1 <= window <= {len(values)} points")
    return np.convolve(values, np.ones(window) / window, mode="valid")


def swing(values: Sequence[float], window: int = 5) -> float:
    """Standard deviation around the centred moving average, over the mean |trend|."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 3:
        raise ValueError(f"need at least 3 points to measure a swing, got {len(x)}")
    window = min(window, len(x) - 1)  # short runs: a shorter trend window
    trend = moving_average(x, window)
    half = window // 2
    residual = x[half : half + len(trend)] - trend
    level = np.abs(trend).mean()
    return float(residual.std() / max(level, 1e-8))


def oscillation_index(
    d_loss: Sequence[float], g_loss: Sequence[float], late: float = 0.5, window: int = 5
) -> float:
    """Mean swing of the two losses over the last `late` share of the logged rows."""
    if not 0 < late <= 1:
        raise ValueError(f"late must be in (0, 1], got {late}")
    values = []
    for series in (d_loss, g_loss):
        series = np.asarray(series, dtype=np.float64)
        series = series[np.isfinite(series)]
        start = int(len(series) * (1 - late))
        values.append(swing(series[start:], window))
    return float(np.mean(values))


def collapse_signal(
    class_coverage: Sequence[float], recall: Sequence[float], num_classes: int, late: float = 0.5
) -> dict[str, float]:
    """Summary of the watched coverage and recall curves: what was lost, and when."""
    coverage = np.asarray(class_coverage, dtype=np.float64)
    rec = np.asarray(recall, dtype=np.float64)
    if len(coverage) == 0 or len(rec) == 0:
        raise ValueError("no monitored rows: set train.monitor_every")
    start = int(len(coverage) * (1 - late))
    return {
        "classes_lost": float(num_classes - coverage[-1]),
        "min_late_class_coverage": float(coverage[start:].min()),
        **recall_signal(rec),
    }


def recall_signal(recall: Sequence[float]) -> dict[str, float]:
    """The recall half of the collapse signal: all there is on data without class labels."""
    rec = np.asarray(recall, dtype=np.float64)
    if len(rec) == 0:
        raise ValueError("no monitored rows: set train.monitor_every")
    return {
        "recall_final": float(rec[-1]),
        "recall_peak": float(rec.max()),
        "recall_drop": float(rec.max() - rec[-1]),
    }
