"""The evaluator space: the feature extractor that sample metrics are computed in, the real
reference it compares with, and the metrics suite that judges a set of generated images.

The default extractor is the pipeline's own evaluator (models/evaluator), trained on the same
data, because ImageNet networks cannot be downloaded offline; `evaluate.features` can name a
torchvision network with ImageNet weights instead (inception_v3, vgg16) where those can be
fetched. Class-based metrics (classifier score, class coverage, accuracy) always use the
evaluator's classes.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genmodels.errors import UserError
from genmodels.io import save_torch
from genmodels.metrics.fid import frechet_distance, gaussian_stats, kid
from genmodels.metrics.memorisation import memorisation_report, nearest_neighbour_distances
from genmodels.metrics.modes import mode_report
from genmodels.metrics.prdc import prdc

log = logging.getLogger(__name__)

# images float [N, C, H, W] in [0, 1] -> features [N, D] (or class probabilities [N, classes])
Extractor = Callable[[Tensor], Tensor]
# images -> (features, class probabilities) in one forward pass of the same network
JointExtractor = Callable[[Tensor], tuple[Tensor, Tensor]]

REFERENCE_FILE = Path("data/reference/features.pt")
REFERENCE_HINT = "run `dvc repro evaluate_evaluator` to compute it"


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


def _float_batches(images: Tensor, batch_size: int) -> Iterator[Tensor]:
    """[0, 1] float batches of uint8 or float images."""
    for part in images.split(batch_size):
        yield part.float().div(255.0) if part.dtype == torch.uint8 else part


def batched(fn: Extractor, images: Tensor, batch_size: int) -> Tensor:
    """`fn` over [0, 1] float batches of uint8 or float images; results on the CPU."""
    return torch.cat([fn(part).cpu() for part in _float_batches(images, batch_size)])


def batched_pair(fn: JointExtractor, images: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """`batched` for an extractor that returns two tensors per batch."""
    firsts, seconds = [], []
    for part in _float_batches(images, batch_size):
        first, second = fn(part)
        firsts.append(first.cpu())
        seconds.append(second.cpu())
    return torch.cat(firsts), torch.cat(seconds)


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
    def from_params(cls, evaluate) -> SuiteSettings:
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
                 extract_and_classify: JointExtractor | None = None):  # fmt: skip
        self.extract = extract
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

    def features(self, images: Tensor) -> Tensor:
        return batched(self.extract, images, self.settings.batch_size)

    def probabilities(self, images: Tensor) -> Tensor:
        return batched(self.classify, images, self.settings.batch_size)

    def features_and_probabilities(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Both at once; the evaluator's network makes them in a single pass (the monitor and
        every evaluate stage judge their samples through here)."""
        if self.extract_and_classify is None:
            return self.features(images), self.probabilities(images)
        return batched_pair(self.extract_and_classify, images, self.settings.batch_size)

    def accuracy(self, images: Tensor, labels: Tensor) -> float:
        predicted = self.probabilities(images).argmax(1)
        return (predicted == labels.cpu()).double().mean().item()

    def fid(self, features: Tensor) -> float:
        return frechet_distance(*gaussian_stats(features), *self.train_stats)

    def quick_metrics(self, images: Tensor) -> dict[str, float]:
        """The cheap subset watched during training: FID, precision/recall, class histogram."""
        features, probs = self.features_and_probabilities(images)
        k = min(self.settings.prdc_k, len(images) - 1)
        scores = prdc(self.real_subset[: len(images)], features, k=k)
        modes = mode_report(
            probs, self.reference.train_labels, self.num_classes, self.settings.min_class_share
        )
        out = {
            "fid": self.fid(features),
            "precision": scores["precision"],
            "recall": scores["recall"],
            "class_coverage": float(modes["class_coverage"]),
            "class_kl": modes["class_kl"],
        }
        out |= {f"class_{c}": share for c, share in enumerate(modes["class_histogram"])}
        return out

    def sample_metrics(self, images: Tensor, features: Tensor | None = None,
                       probs: Tensor | None = None) -> dict:  # fmt: skip
        """Every sample metric of a set of images against the real training data."""
        s = self.settings
        if features is None and probs is None:
            features, probs = self.features_and_probabilities(images)
        features = self.features(images) if features is None else features
        probs = self.probabilities(images) if probs is None else probs
        kid_mean, kid_std = kid(
            features, self.real_subset, subsets=s.kid_subsets, subset_size=s.kid_subset_size,
            seed=s.seed,
        )  # fmt: skip
        modes = mode_report(probs, self.reference.train_labels, self.num_classes, s.min_class_share)
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


def compute_reference(extractor_name: str, extract: Extractor, classify: Extractor,
                      train_images: Tensor, train_labels: Tensor, test_images: Tensor,
                      test_labels: Tensor, batch_size: int) -> RealReference:  # fmt: skip
    """Features of the whole training and test sets, and the test-to-train pixel distances."""
    log.info("reference: features of %d train and %d test images", len(train_images),
             len(test_images))  # fmt: skip
    return RealReference(
        extractor=extractor_name,
        train_features=batched(extract, train_images, batch_size),
        test_features=batched(extract, test_images, batch_size),
        test_probabilities=batched(classify, test_images, batch_size),
        train_labels=train_labels.cpu(),
        test_labels=test_labels.cpu(),
        test_nn_distances=nearest_neighbour_distances(test_images, train_images).float(),
    )


def feature_extractor(name: str, evaluator, device: torch.device) -> Extractor:
    """The features FID, KID and PRDC are computed in: the evaluator's, or an ImageNet net's."""
    if name == "evaluator":
        return evaluator.features
    return torchvision_extractor(name, device)


class FrozenFeatures(nn.Module):
    """A fixed feature network inside a loss: no weight learns and it stays in eval mode, while
    gradients flow through it to the images (the generator that made them)."""

    def __init__(self, network: nn.Module, mean: Tensor | None = None, std: Tensor | None = None,
                 rgb: bool = False):  # fmt: skip
        super().__init__()
        self.network = network.requires_grad_(False).eval()
        self.rgb = rgb  # grayscale repeated to the 3 channels of an ImageNet network
        self.register_buffer("mean", mean if mean is not None else torch.zeros(()))
        self.register_buffer("std", std if std is not None else torch.ones(()))

    def train(self, mode: bool = True) -> FrozenFeatures:
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        x = images.expand(-1, 3, -1, -1) if self.rgb else images
        return self.network((x - self.mean) / self.std)


def _until_block(layers: list[nn.Module], layer: str, name: str) -> nn.Sequential:
    """The layers up to the K-th max-pooling of a conv stack, for layer 'blockK': the last
    activation of conv block K before its pooling (phi_K,j of the SRGAN paper's VGG loss)."""
    pools = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
    block = int(layer.removeprefix("block"))
    if block > len(pools):
        raise UserError(
            f"content layer {layer!r}: the {name} network has {len(pools)} conv blocks; "
            f"use block1..block{len(pools)}"
        )
    return nn.Sequential(*layers[: pools[block - 1]])


def differentiable_extractor(name: str, layer: str, device: torch.device,
                             network: nn.Module | None = None) -> nn.Module:  # fmt: skip
    """The differentiable counterpart of feature_extractor(): a frozen module from [0, 1] images
    to feature maps, for losses computed in a feature space (SRGAN's content loss).

    'evaluator': a copy of `network`, the trained evaluator classifier (EvaluatorSpace.network),
    cut after conv block K ('blockK') or whole up to its penultimate features ('features', the
    FID space). 'vgg16': torchvision's ImageNet VGG16 (downloaded on first use; offline it
    fails with a message) cut after block K, on ImageNet-normalised, channel-repeated input.
    """
    if name == "evaluator":
        if network is None:
            raise UserError(
                "the evaluator's features are needed (a content loss) but no evaluator was "
                "loaded; run `dvc repro train_evaluator evaluate_evaluator` first"
            )
        body = copy.deepcopy(network.body)
        module = body if layer == "features" else _until_block(list(body), layer, name)
        return FrozenFeatures(module).to(device)
    if name == "vgg16":
        from torchvision import models

        if layer == "features":
            raise UserError("content layer 'features' is the evaluator's; use blockK for vgg16")
        weights = models.VGG16_Weights.DEFAULT
        try:
            vgg = models.vgg16(weights=weights)
        except Exception as exc:  # offline machines cannot fetch the weights
            raise UserError(
                f"content features: cannot load vgg16 ImageNet weights ({exc}); go online once "
                "so torchvision caches them, or use 'evaluator'"
            ) from None
        mean = torch.tensor(weights.transforms().mean).view(1, 3, 1, 1)
        std = torch.tensor(weights.transforms().std).view(1, 3, 1, 1)
        module = _until_block(list(vgg.features), layer, name)
        return FrozenFeatures(module, mean, std, rgb=True).to(device)
    raise UserError(f"no differentiable features for {name!r}; use 'evaluator' or 'vgg16'")


def load_space(params, data, device: torch.device) -> EvaluatorSpace:
    """The trained evaluator and the reference features written by evaluate_evaluator."""
    from genmodels.config import EVALUATOR
    from genmodels.models import data_info, load_trained

    evaluator = load_trained(params.evaluator, EVALUATOR, data_info(data), device)
    reference = RealReference.load()
    wanted = params.evaluate.features
    if reference.extractor != wanted:
        raise UserError(
            f"{REFERENCE_FILE}: computed with '{reference.extractor}' features but "
            f"evaluate.features is '{wanted}'; {REFERENCE_HINT} again"
        )
    return EvaluatorSpace(
        feature_extractor(wanted, evaluator, device),
        evaluator.probabilities,
        reference,
        data.train_images,
        data.test_images,
        SuiteSettings.from_params(params.evaluate),
        data.num_classes,
        network=evaluator.classifier,
        extract_and_classify=(
            evaluator.features_and_probabilities if wanted == "evaluator" else None
        ),
    )
