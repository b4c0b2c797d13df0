"""RGB test images and an evaluator-shaped feature space for the super-resolution tests (the
family's own and tools/sr_ceiling.py's)."""

from __future__ import annotations

import torch

from genmodels.metrics.space import EvaluatorSpace, SuiteSettings, compute_reference
from genmodels.nn.classifier import Classifier


def smooth_rgb(n: int, seed: int) -> torch.Tensor:
    """uint8 [n, 3, 32, 32]: 16x16 colour noise upscaled bicubically: smooth, with detail that
    the 8x8 low-resolution images lose."""
    coarse = torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    up = torch.nn.functional.interpolate(coarse, size=32, mode="bicubic", align_corners=False)
    return (up.clamp(0, 1) * 255).round().to(torch.uint8)


def rotation_network(train: torch.Tensor) -> Classifier:
    """An evaluator-shaped network trained for a few steps to predict rotations, the
    self-supervised task of the photos' evaluator, on the first 96 of `train` (uint8 32x32)."""
    torch.manual_seed(0)
    network = Classifier((3, 32, 32), [8, 16], features=16, num_classes=4, dropout=0.0)
    optimizer = torch.optim.Adam(network.parameters(), lr=3e-3)
    turns = torch.arange(32) % 4
    for step in range(20):
        images = train[32 * (step % 3) : 32 * (step % 3) + 32].float() / 255
        rotated = torch.stack(
            [torch.rot90(x, int(k), (1, 2)) for x, k in zip(images, turns, strict=True)]
        )
        loss = torch.nn.functional.cross_entropy(network(rotated), turns)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return network.eval()


def rgb_space(rgb_data, network, labelled: bool) -> EvaluatorSpace:
    """The network's space over rgb_data = (train, test, (train_labels, test_labels)): with 4
    classes, or none as on unlabelled photos."""
    train, test, (train_labels, test_labels) = rgb_data

    @torch.no_grad()
    def extract(images):
        return network.features(images)

    @torch.no_grad()
    def classify(images):
        return torch.softmax(network(images), dim=1)

    reference = compute_reference("evaluator", extract, classify, train, train_labels, test,
                                  test_labels, batch_size=64)  # fmt: skip
    settings = SuiteSettings(n_samples=48, kid_subsets=2, kid_subset_size=16, prdc_k=3,
                             min_class_share=0.05, memorisation_samples=8, batch_size=64,
                             seed=0)  # fmt: skip
    return EvaluatorSpace(extract, classify, reference, train, test, settings,
                          num_classes=4 if labelled else 0, network=network)  # fmt: skip
