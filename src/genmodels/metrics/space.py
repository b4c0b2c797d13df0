"""The evaluator space: the real reference every generated set is compared with, and the
metrics suite that judges a set of images in a feature space (genmodels.nn.features).
Class-based metrics (classifier score, class coverage, accuracy) use the evaluator's classes;
on data without labels they are left out and every metrics file says so (UNLABELLED_REASON).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from genmodels.errors import UserError
from genmodels.io import save_torch
from genmodels.metrics.fid import frechet_distance, gaussian_stats, kid
from genmodels.metrics.memorisation import memorisation_report, nearest_neighbour_distances
from genmodels.metrics.modes import mode_report
from genmodels.metrics.prdc import prdc
from genmodels.nn.batching import map_batches
from genmodels.nn.features import Extractor, JointExtractor

if TYPE_CHECKING:
    from genmodels.config import EvaluateParams

log = logging.getLogger(__name__)

REFERENCE_FILE = Path("data/reference/features.pt")
REFERENCE_HINT = "run `dvc repro evaluate_evaluator` to compute it"
UNLABELLED_REASON = (
    "the data has no class labels: classifier score, class coverage and accuracies are left out"
)


@dataclass(frozen=True)
class SuiteSettings:
    n_samples: int  # generated images per evaluation (and real ones in the reference row)
    kid_subsets: int
    kid_subset_size: int
    prdc_k: int
    min_class_share: float  # a class is covered when it holds at least this share of samples
    memorisation_samples: int
    batch_size: int
    seed: int

    @classmethod
    def from_params(cls, evaluate: EvaluateParams) -> SuiteSettings:
        return cls(
            n_samples=evaluate.n_samples,
            kid_subsets=evaluate.kid_subsets,
            kid_subset_size=evaluate.kid_subset_size,
            prdc_k=evaluate.prdc_k,
            min_class_share=evaluate.min_class_share,
            memorisation_samples=evaluate.memorisation_samples,
            batch_size=evaluate.batch_size,
            seed=evaluate.seed,
        )


@dataclass
class RealReference:
    """The real data every generated set is compared with, in the evaluator space.

    Written once by the evaluate_evaluator stage (data/reference/features.pt), read by every
    train and evaluate stage that judges samples.
    """

    extractor: str
    train_features: Tensor  # [N_train, D]
    test_features: Tensor  # [N_test, D]
    test_probabilities: Tensor  # [N_test, classes], the evaluator's posteriors
    train_labels: Tensor
    test_labels: Tensor
    test_nn_distances: Tensor  # pixel distance of each test image to its nearest train image

    def save(self, path: Path = REFERENCE_FILE) -> Path:
        return save_torch(asdict(self), path)

    @classmethod
    def load(cls, path: Path = REFERENCE_FILE) -> RealReference:
        if not path.is_file():
            raise UserError(f"{path}: no reference features; {REFERENCE_HINT}")
        try:
            return cls(**torch.load(path, map_location="cpu", weights_only=True))
        except Exception as exc:  # damaged or from an older layout
            raise UserError(f"{path}: unreadable ({exc}); {REFERENCE_HINT} again") from None


class EvaluatorSpace:
    """Features and class posteriors of images, and every metric computed from them."""

    def __init__(self, extract: Extractor, classify: Extractor, reference: RealReference,
                 train_images: Tensor, test_images: Tensor, settings: SuiteSettings,
                 num_classes: int, network: nn.Module | None = None,
                 extract_and_classify: JointExtractor | None = None,
                 feature_space: str | None = None):  # fmt: skip
        self.extract = extract
        # what the features are, named in every metrics file (defaults to the extractor's name)
        self.feature_space = feature_space or reference.extractor
        self.classify = classify
        self.reference = reference
        self.train_images = train_images  # uint8, for the memorisation check
        self.test_images = test_images  # uint8, held-out inputs for monitoring reconstructions
        self.settings = settings
        self.num_classes = num_classes
        # the evaluator classifier itself, for differentiable features (differentiable_extractor)
        self.network = network
        # set when features and classes come from one network: one forward pass for both
        self.extract_and_classify = extract_and_classify
        self.train_stats = gaussian_stats(reference.train_features)
        generator = torch.Generator().manual_seed(settings.seed)
        order = torch.randperm(len(reference.train_features), generator=generator)
        # the real side of KID and PRDC: a fixed random subset of the training features
        self.real_subset = reference.train_features[order[: settings.n_samples]]

    @property
    def labelled(self) -> bool:
        """Class metrics exist only for data with class labels."""
        return self.num_classes > 0

    def class_accuracy(self, key: str, images: Tensor, labels: Tensor) -> dict[str, float]:
        """{key: accuracy} on labelled data; {} on data without labels."""
        return {key: self.accuracy(images, labels)} if self.labelled else {}

    def features(self, images: Tensor) -> Tensor:
        return map_batches(self.extract, images, self.settings.batch_size)

    def probabilities(self, images: Tensor) -> Tensor:
        return map_batches(self.classify, images, self.settings.batch_size)

    def features_and_probabilities(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Both at once; the evaluator's network makes them in a single pass (the monitor and
        every evaluate stage judge their samples through here)."""
        if self.extract_and_classify is None:
            return self.features(images), self.probabilities(images)
        return map_batches(self.extract_and_classify, images, self.settings.batch_size)

    def accuracy(self, images: Tensor, labels: Tensor) -> float:
        predicted = self.probabilities(images).argmax(1)
        return (predicted == labels.cpu()).double().mean().item()

    def fid(self, features: Tensor) -> float:
        return frechet_distance(*gaussian_stats(features), *self.train_stats)

    def quick_metrics(self, images: Tensor) -> dict[str, float]:
        """The cheap subset watched during training: FID, precision/recall, class histogram."""
        if not self.labelled:
            features = self.features(images)
            return self._quick_distribution(features, len(images))
        features, probs = self.features_and_probabilities(images)
        out = self._quick_distribution(features, len(images))
        modes = mode_report(
            probs, self.reference.train_labels, self.num_classes, self.settings.min_class_share
        )
        out |= {
            "class_coverage": float(modes["class_coverage"]),
            "class_kl": modes["class_kl"],
        }
        out |= {f"class_{c}": share for c, share in enumerate(modes["class_histogram"])}
        return out

    def _quick_distribution(self, features: Tensor, count: int) -> dict[str, float]:
        k = min(self.settings.prdc_k, count - 1)
        scores = prdc(self.real_subset[:count], features, k=k)
        return {"fid": self.fid(features), "precision": scores["precision"],
                "recall": scores["recall"]}  # fmt: skip

    def sample_metrics(self, images: Tensor, features: Tensor | None = None,
                       probs: Tensor | None = None) -> dict:  # fmt: skip
        """Every sample metric of a set of images against the real training data."""
        s = self.settings
        if features is None and probs is None and self.labelled:
            features, probs = self.features_and_probabilities(images)
        features = self.features(images) if features is None else features
        if self.labelled and probs is None:
            probs = self.probabilities(images)
        kid_mean, kid_std = kid(
            features, self.real_subset, subsets=s.kid_subsets, subset_size=s.kid_subset_size,
            seed=s.seed,
        )  # fmt: skip
        modes = (
            mode_report(probs, self.reference.train_labels, self.num_classes, s.min_class_share)
            if self.labelled
            else {}
        )
        return {
            "n_samples": len(images),
            "fid": self.fid(features),
            "kid": kid_mean,
            "kid_std": kid_std,
            **prdc(self.real_subset, features, k=s.prdc_k),
            **modes,
            "memorisation": self.memorisation(images),
        }

    def memorisation(self, images: Tensor) -> dict:
        """Nearest-training-image distances of the first samples against the test yardstick."""
        subset = images[: self.settings.memorisation_samples]
        return memorisation_report(
            subset, self.train_images, test_nn=self.reference.test_nn_distances
        )


def space_named(space: EvaluatorSpace) -> dict[str, str]:
    """The entries that name, in a metrics file, the space its numbers were measured in (and
    why class metrics are missing, where they are)."""
    named = {"feature_space": space.feature_space}
    return named if space.labelled else named | {"class_metrics": UNLABELLED_REASON}


def compute_reference(extractor_name: str, extract: Extractor, classify: Extractor,
                      train_images: Tensor, train_labels: Tensor, test_images: Tensor,
                      test_labels: Tensor, batch_size: int) -> RealReference:  # fmt: skip
    """Features of the whole training and test sets, and the test-to-train pixel distances."""
    log.info("reference: features of %d train and %d test images", len(train_images),
             len(test_images))  # fmt: skip
    return RealReference(
        extractor=extractor_name,
        train_features=map_batches(extract, train_images, batch_size),
        test_features=map_batches(extract, test_images, batch_size),
        test_probabilities=map_batches(classify, test_images, batch_size),
        train_labels=train_labels.cpu(),
        test_labels=test_labels.cpu(),
        test_nn_distances=nearest_neighbour_distances(test_images, train_images).float(),
    )
