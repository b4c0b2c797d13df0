"""Feature extractors: the networks that sample metrics and feature losses see images through.

The default is the pipeline's own evaluator (models/evaluator), trained on the same data,
because ImageNet networks cannot be downloaded offline; `evaluate.features` can name the FID
Inception (fid_inception, from a local weights file: the literature's FID) or a torchvision
network with ImageNet weights (inception_v3, vgg16) where those can be fetched. The differentiable counterparts are frozen modules for losses computed in a feature
space (SRGAN's content loss).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genmodels.config import EVALUATOR, EvaluateParams
from genmodels.errors import UserError

# images float [N, C, H, W] in [0, 1] -> features [N, D] (or class probabilities [N, classes])
Extractor = Callable[[Tensor], Tensor]
# images -> (features, class probabilities) in one forward pass of the same network
JointExtractor = Callable[[Tensor], tuple[Tensor, Tensor]]


class HasFeatures(Protocol):
    """What feature_extractor() needs of the evaluator: its penultimate-layer features."""

    def features(self, images: Tensor) -> Tensor: ...


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


def fid_inception_extractor(weights: str, device: torch.device) -> Extractor:
    """The 2,048 pool features of the FID Inception, from the local weights file."""
    from genmodels.nn.inception import load_fid_inception

    network = load_fid_inception(weights)[0].to(device)

    @torch.no_grad()
    def extract(images: Tensor) -> Tensor:
        return network(images.to(device)).cpu()

    return extract


def feature_extractor(settings: EvaluateParams, evaluator: HasFeatures, device: torch.device
                      ) -> Extractor:  # fmt: skip
    """The features FID, KID and PRDC are computed in (evaluate.features): the evaluator's, the
    FID Inception's, or an ImageNet network's."""
    if settings.features == EVALUATOR:
        return evaluator.features
    if settings.features == "fid_inception":
        return fid_inception_extractor(settings.inception_weights, device)
    return torchvision_extractor(settings.features, device)


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


class BlockActivations(nn.Module):
    """A conv stack run up to its last max-pooling, returning the last activation of every conv
    block before its pooling (block1, block2, ...: the layers `_until_block` cuts at)."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        pools = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
        if not pools:
            raise ValueError("the network has no max-pooling, so no conv blocks to read")
        self.n_blocks = len(pools)
        self.layers = nn.Sequential(*layers[: pools[-1]])

    def forward(self, images: Tensor) -> list[Tensor]:
        taps, x = [], images
        for layer in self.layers:
            if isinstance(layer, nn.MaxPool2d):
                taps.append(x)
            x = layer(x)
        return [*taps, x]


def block_activations(network: nn.Module, device: torch.device) -> FrozenFeatures:
    """A frozen copy of the evaluator classifier `network` (EvaluatorSpace.network) from [0, 1]
    images to the activations of all its conv blocks (a list, block1 first)."""
    return FrozenFeatures(BlockActivations(list(copy.deepcopy(network.body)))).to(device)


def differentiable_extractor(name: str, layer: str, device: torch.device,
                             network: nn.Module | None = None) -> nn.Module:  # fmt: skip
    """The differentiable counterpart of feature_extractor(): a frozen module from [0, 1] images
    to feature maps, for losses computed in a feature space (SRGAN's content loss).

    'evaluator': a copy of `network`, the trained evaluator classifier (EvaluatorSpace.network),
    cut after conv block K ('blockK') or whole up to its penultimate features ('features', the
    FID space). 'vgg16': torchvision's ImageNet VGG16 (downloaded on first use; offline it
    fails with a message) cut after block K, on ImageNet-normalised, channel-repeated input.
    """
    if name == EVALUATOR:
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
