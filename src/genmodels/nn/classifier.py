"""The evaluator's network: a CNN classifier whose penultimate layer is the feature space of the
sample metrics, and the exported form that returns both its outputs."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genmodels.shapes import stack_widths


class Classifier(nn.Module):
    """Conv stages, each two 3x3 convs and a 2x2 max-pool (28 -> 14 -> 7 for two widths; the
    stages the size needs, widths doubled, where it is larger: genmodels.shapes), and a hidden
    layer whose activations are the features."""

    def __init__(self, image_shape: tuple[int, int, int], channels: list[int], features: int,
                 num_classes: int, dropout: float):  # fmt: skip
        super().__init__()
        layers: list[nn.Module] = []
        in_ch, h, w = image_shape
        widths = stack_widths(channels, (h, w))
        for ch in widths:
            layers += [
                nn.Conv2d(in_ch, ch, 3, padding=1, bias=False),
                nn.BatchNorm2d(ch),
                nn.ReLU(),
            ]
            layers += [nn.Conv2d(ch, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU()]
            layers.append(nn.MaxPool2d(2))
            in_ch = ch
        factor = 2 ** len(widths)
        self.body = nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Linear(in_ch * (h // factor) * (w // factor), features, bias=False),
            nn.BatchNorm1d(features),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(features, num_classes)

    def features(self, images: Tensor) -> Tensor:
        return self.body(images)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.dropout(self.body(images)))


class ProbabilitiesAndFeatures(nn.Module):
    """The exported graph: image -> (class probabilities, features)."""

    def __init__(self, classifier: Classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.classifier.features(images)
        return torch.softmax(self.classifier.head(feats), dim=1), feats
