"""Feature extractors for sample metrics, and the metrics suite that judges a set of images.

The default extractor is the pipeline's own evaluator (models/evaluator), trained on the same
data; `evaluate.features` can name a torchvision network with ImageNet weights instead
(inception_v3, vgg16) where those weights can be downloaded. Class-based metrics (classifier
score, class coverage) always use the evaluator's classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genmodels.errors import UserError
from genmodels.metrics.fid import fid, frechet_distance, gaussian_stats, kid
from genmodels.metrics.memorisation import memorisation_report
from genmodels.metrics.modes import mode_report
from genmodels.metrics.prdc import prdc

# images float [N, C, H, W] in [0, 1] -> features [N, D]
Extractor = Callable[[Tensor], Tensor]


def torchvision_extractor(name: str, device: torch.device) -> Extractor:
    """ImageNet features of a torchvision network (weights are downloaded on first use)."""
    from torchvision import models

    builders = {
        "inception_v3": (models.inception_v3, models.Inception_V3_Weights.DEFAULT, 299),
        "vgg16": (models.vgg16, models.VGG16_Weights.DEFAULT, 224),
    }
    build, weights, size = builders[name]
    try:
        network = build(weights=weights)
    except Exception as exc:  # offline machines cannot fetch the weights
        raise UserError(
            f"evaluate.features: cannot load {name} ImageNet weights ({exc}); "
            "go online once so torchvision caches them, or use 'evaluator'"
        ) from None
    if name == "inception_v3":
        network.fc = nn.Identity()  # the 2048-d pool features, as FID uses
    else:
        network.classifier = network.classifier[:-1]  # the 4096-d penultimate layer
    network.eval().to(device)
    mean = torch.tensor(weights.transforms().mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(weights.transforms().std, device=device).view(1, 3, 1, 1)

    @torch.no_grad()
    def extract(images: Tensor) -> Tensor:
        x = F.interpolate(images.to(device).expand(-1, 3, -1, -1), size=size, mode="bilinear")
        return network((x - mean) / std).cpu()

    return extract


def batched(fn: Callable[[Tensor], Tensor], images: Tensor, batch_size: int) -> Tensor:
    """`fn` over [0, 1] float batches of uint8 or float images."""
    out = []
    for part in images.split(batch_size):
        part = part.float().div(255.0) if part.dtype == torch.uint8 else part
        out.append(fn(part))
    return torch.cat(out)


@dataclass
class RealReference:
    """Features of the real data that every generated set is compared with, computed once."""

    train_features: Tensor  # a seeded subset of the training set, for KID and PRDC
    train_stats: tuple[np.ndarray, np.ndarray]  # FID statistics of the whole training set
    train_images: Tensor  # uint8, for the memorisation check
    train_labels: Tensor
    test_images: Tensor


@dataclass
class SuiteSettings:
    n_samples: int
    kid_subsets: int
    kid_subset_size: int
    prdc_k: int
    min_class_share: float
    num_classes: int
    batch_size: int
    seed: int


def build_reference(extract: Extractor, train_images: Tensor, train_labels: Tensor,
                    test_images: Tensor, settings: SuiteSettings) -> RealReference:  # fmt: skip
    all_features = batched(extract, train_images, settings.batch_size)
    generator = torch.Generator().manual_seed(settings.seed)
    subset = torch.randperm(len(train_images), generator=generator)[: settings.n_samples]
    return RealReference(
        train_features=all_features[subset],
        train_stats=gaussian_stats(all_features),
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
    )


def sample_metrics(images: Tensor, extract: Extractor, classify: Extractor,
                   reference: RealReference, settings: SuiteSettings) -> dict:  # fmt: skip
    """Every sample metric of a set of images against the real training data."""
    features = batched(extract, images, settings.batch_size)
    probs = batched(classify, images, settings.batch_size)
    mu, sigma = gaussian_stats(features)
    kid_mean, kid_std = kid(
        features, reference.train_features, subsets=settings.kid_subsets,
        subset_size=settings.kid_subset_size, seed=settings.seed,
    )  # fmt: skip
    modes = mode_report(
        probs, reference.train_labels, settings.num_classes, settings.min_class_share
    )
    return {
        "n_samples": len(images),
        "fid": frechet_distance(mu, sigma, *reference.train_stats),
        "kid": kid_mean,
        "kid_std": kid_std,
        **prdc(reference.train_features, features, k=settings.prdc_k),
        **modes,
        "memorisation": memorisation_report(images, reference.train_images, reference.test_images),
    }


__all__ = ["build_reference", "fid", "sample_metrics", "torchvision_extractor"]
