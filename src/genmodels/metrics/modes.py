"""Mode collapse seen through a classifier: the class histogram of generated samples.

A generator that drops modes produces a histogram with empty classes; one that is unsure what it
draws produces vague class posteriors. The evaluator classifier labels the samples, and these
numbers summarise its verdict. Everything is float64 numpy; inputs may be torch or numpy.
"""

from __future__ import annotations

import numpy as np
import torch

Array = torch.Tensor | np.ndarray

# Keeps log(p) finite for probabilities that are exactly 0 (a confident softmax underflows).
LOG_EPS = 1e-12


def _numpy(values: Array, dtype) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def class_histogram(predicted_labels: Array, num_classes: int) -> np.ndarray:
    """Share of samples in each class [num_classes], summing to 1."""
    labels = _numpy(predicted_labels, np.int64).reshape(-1)
    if len(labels) == 0:
        raise ValueError("class_histogram needs at least one label")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}"
        )
    return np.bincount(labels, minlength=num_classes) / len(labels)


def class_coverage(shares: Array, min_share: float) -> int:
    """Number of classes holding at least `min_share` of the samples: the modes still produced."""
    return int((_numpy(shares, np.float64) >= min_share).sum())


def class_kl(shares_generated: Array, shares_real: Array, eps: float = 1e-6) -> float:
    """KL(real || generated) between class histograms.

    This direction weighs each class by its real share, so a class the generator dropped costs
    real_c * log(real_c / eps): mode dropping is punished hard, while over-producing a class only
    shows through the classes it starves. The generated shares are smoothed by eps and renormalised
    to keep the value finite; classes absent from the real data contribute 0.
    """
    gen = _numpy(shares_generated, np.float64)
    real = _numpy(shares_real, np.float64)
    if gen.shape != real.shape:
        raise ValueError(f"histograms differ in shape: {gen.shape} vs {real.shape}")
    gen = (gen + eps) / (gen + eps).sum()
    real = real / real.sum()
    present = real > 0
    return float(np.sum(real[present] * np.log(real[present] / gen[present])))


def classifier_score(probs: Array) -> float:
    """The Inception score with our classifier: exp(E_x KL(p(y|x) || p(y))).

    It ranges from 1 (every sample gets the same posterior) to C (confident predictions spread
    evenly over the C classes): high needs both crisp samples and varied classes.
    """
    p = _numpy(probs, np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be [N, C], got shape {p.shape}")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("probs rows must be non-negative and sum to 1; pass softmax outputs")
    marginal = p.mean(axis=0, keepdims=True)
    kl = (p * (np.log(p + LOG_EPS) - np.log(marginal + LOG_EPS))).sum(axis=1)
    return float(np.exp(kl.mean()))


def mode_report(
    probs: Array, real_labels: Array, num_classes: int, min_share: float
) -> dict[str, float | int | list[float]]:
    """Classifier score, class coverage, KL(real || generated) and the generated histogram.

    Generated samples are labelled by the argmax of `probs`; the real histogram comes from the
    true labels of the real data.
    """
    p = _numpy(probs, np.float64)
    if p.ndim != 2 or p.shape[1] != num_classes:
        raise ValueError(f"probs must be [N, {num_classes}], got shape {p.shape}")
    generated = class_histogram(p.argmax(axis=1), num_classes)
    real = class_histogram(real_labels, num_classes)
    return {
        "classifier_score": classifier_score(p),
        "class_coverage": class_coverage(generated, min_share),
        "class_kl": class_kl(generated, real),
        "class_histogram": [float(s) for s in generated],
    }
