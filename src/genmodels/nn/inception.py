"""The Inception-v3 that FID is defined with: TensorFlow's 2015-12-05 graph, whose PyTorch port
(pytorch-fid's `pt_inception-2015-12-05` weights) the literature's FIDs come from.

It is torchvision's Inception3 with 1,008 classes and TF's pooling: the pooled branch of the
A, C and first E blocks averages without counting the padding, and the last E block takes the
maximum. Features are the 2,048 values of the final average pool, on inputs resized to 299x299
(bilinear) and scaled to [-1, 1].
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.inception import (
    BasicConv2d,
    Inception3,
    InceptionA,
    InceptionAux,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
)

from genmodels.errors import UserError
from genmodels.io import load_torch

FID_CLASSES = 1008
FID_INPUT_SIZE = 299
FEATURES = 2048
WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_NAME
)


def average_without_padding(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def maximum(x: Tensor) -> Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


class TFPooledBranch:
    """torchvision's block with its pooled branch computed TF's way (the 1x1 conv of the branch
    runs once more on the new pooling: cheaper than restating the whole block)."""

    tf_pool = staticmethod(average_without_padding)

    def _forward(self, x: Tensor) -> list[Tensor]:
        outputs = super()._forward(x)
        outputs[-1] = self.branch_pool(self.tf_pool(x))
        return outputs


class FIDInceptionA(TFPooledBranch, InceptionA):
    pass


class FIDInceptionC(TFPooledBranch, InceptionC):
    pass


class FIDInceptionE(TFPooledBranch, InceptionE):
    pass


class FIDInceptionEMax(TFPooledBranch, InceptionE):
    tf_pool = staticmethod(maximum)


class FIDInception(nn.Module):
    """[N, C, H, W] images in [0, 1] (1 or 3 channels, any size) -> [N, 2048] pool features."""

    def __init__(self):
        super().__init__()
        blocks = [BasicConv2d, FIDInceptionA, InceptionB, FIDInceptionC, InceptionD,
                  FIDInceptionE, InceptionAux]  # fmt: skip
        self.net = Inception3(FID_CLASSES, aux_logits=False, inception_blocks=blocks,
                              init_weights=False)  # fmt: skip
        self.net.Mixed_7c = FIDInceptionEMax(2048)
        self.net.fc = nn.Identity()  # the 1,008 logits are not used; their weights are loaded
        self.net.eval()

    def forward(self, images: Tensor) -> Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if images.shape[-2:] != (FID_INPUT_SIZE, FID_INPUT_SIZE):
            images = F.interpolate(images, size=(FID_INPUT_SIZE, FID_INPUT_SIZE),
                                   mode="bilinear", align_corners=False)  # fmt: skip
        # fc is the identity and dropout is off in eval mode: the output is the pool
        return self.net(2 * images - 1)


def load_fid_inception(path: str | Path, knob: str = "evaluate.inception_weights"):
    """The FID Inception with the weights file at `path`; returns (network, file sha256)."""
    path = Path(path)
    fetch = f"download {WEIGHTS_URL} there, or set {knob} to null for the offline space"
    state = load_torch(path, f"FID Inception weights ({knob})", fetch)
    state = dict(state) if isinstance(state, dict) else {}
    fc = {k: state.pop(k) for k in list(state) if k.startswith("fc.")}
    model = FIDInception()
    expected = model.net.state_dict()  # fc is left out: features end at the pool
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    classes = getattr(fc.get("fc.weight"), "shape", (None,))[0]
    if missing or unexpected or classes != FID_CLASSES:
        raise UserError(
            f"{path}: not the FID Inception's weights ({len(missing)} tensors missing, e.g. "
            f"{missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]}; "
            f"{classes} classes where it has {FID_CLASSES}); {fetch}"
        )
    wrong = [k for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise UserError(
            f"{path}: {wrong[0]} is {tuple(state[wrong[0]].shape)}, the FID Inception has "
            f"{tuple(expected[wrong[0]].shape)}; {fetch}"
        )
    model.net.load_state_dict(state)
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return model.eval().requires_grad_(False), digest
