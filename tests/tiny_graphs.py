"""Tiny ONNX graphs of every kind the service and the registry handle, exported by the real
export code (the fixtures are registered in tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from genmodels.checksums import write_checksums
from genmodels.export import export_onnx
from genmodels.training.recipe import Exportable

SIDE = 28
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]  # fmt: skip
AE2_LATENT_RANGE = [[-4.0, 6.0], [0.5, 2.5]]  # ae2's codes: 1st and 99th percentile per axis
# instance -> family, as params.yaml's models: would say
FAMILIES = {
    "ae": "autoencoder",
    "ae2": "autoencoder",
    "vae2": "vae",
    "gan": "gan",
    "cgan": "cgan",
    "cyclegan": "cyclegan",
    "srgan": "srgan",
    "evaluator": "evaluator",
}


class Encoder(nn.Module):
    def __init__(self, k: int, two_heads: bool = False):
        super().__init__()
        self.fc = nn.Linear(SIDE * SIDE, 32)
        self.mean = nn.Linear(32, k)
        self.logvar = nn.Linear(32, k) if two_heads else None

    def forward(self, image):
        h = torch.relu(self.fc(image.flatten(1)))
        if self.logvar is None:
            return self.mean(h)
        return self.mean(h), self.logvar(h)


class Decoder(nn.Module):
    def __init__(self, k: int):
        super().__init__()
        self.fc = nn.Linear(k, 7 * 7 * 4)
        self.up = nn.ConvTranspose2d(4, 1, 4, stride=4)

    def forward(self, z):
        return torch.sigmoid(self.up(torch.relu(self.fc(z)).view(-1, 4, 7, 7)))


class CondGenerator(nn.Module):
    def __init__(self, k: int, classes: int):
        super().__init__()
        self.emb = nn.Embedding(classes, 4)
        self.dec = Decoder(k + 4)

    def forward(self, z, label):
        return self.dec(torch.cat([z, self.emb(label)], dim=1))


class Translator(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, image):
        return torch.sigmoid(self.conv(image) * 4 - 2)


class Upscaler(nn.Module):
    def __init__(self, scale: int, channels: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, image):
        return torch.sigmoid(self.shuffle(self.conv(image)))


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(SIDE * SIDE, 16)
        self.out = nn.Linear(16, 10)

    def forward(self, image):
        features = torch.relu(self.fc(image.flatten(1)))
        return torch.softmax(self.out(features), dim=1), features


def _meta(family, instance, graph, task, **extra) -> dict[str, str]:
    return {
        "family": family,
        "instance": instance,
        "graph": graph,
        "task": task,
        "pixel_range": "0,1",
        **{k: str(v) for k, v in extra.items()},
    }


def _image_graph(name, module, meta, outputs, spatial=False) -> Exportable:
    axes = {0: "batch", 2: "height", 3: "width"} if spatial else {0: "batch"}
    return Exportable(
        name=name,
        module=module,
        example_inputs=(torch.rand(2, 1, 14 if spatial else SIDE, 14 if spatial else SIDE),),
        input_names=["image"],
        output_names=list(outputs),
        dynamic_axes={"image": axes},
        doc=f"test {name}",
        metadata=meta,
    )


def _z_graph(name, module, k, meta, label=False) -> Exportable:
    inputs = (torch.randn(2, k),) + ((torch.tensor([0, 2]),) if label else ())
    names = ["z", "label"] if label else ["z"]
    return Exportable(
        name=name,
        module=module,
        example_inputs=inputs,
        input_names=names,
        output_names=["image"],
        dynamic_axes={n: {0: "batch"} for n in names},
        doc=f"test {name}",
        metadata=meta,
    )


def tiny_exportables() -> dict[str, list[Exportable]]:
    """instance -> its graphs, following the ONNX contract of every family."""
    torch.manual_seed(0)
    return {
        "ae": [
            _image_graph(
                "encoder",
                Encoder(8),
                _meta("autoencoder", "ae", "encoder", "encode", latent_dim=8),
                outputs=("z",),
            ),
            _z_graph(
                "decoder",
                Decoder(8),
                8,
                _meta("autoencoder", "ae", "decoder", "decode", latent_dim=8),
            ),
        ],
        # a 2-D code: the explorer spans where its codes of real images lie (recorded at export)
        "ae2": [
            _image_graph(
                "encoder",
                Encoder(2),
                _meta(
                    "autoencoder",
                    "ae2",
                    "encoder",
                    "encode",
                    latent_dim=2,
                    class_names=json.dumps(CLASS_NAMES),
                ),
                outputs=("z",),
            ),
            _z_graph(
                "decoder",
                Decoder(2),
                2,
                _meta(
                    "autoencoder",
                    "ae2",
                    "decoder",
                    "decode",
                    latent_dim=2,
                    class_names=json.dumps(CLASS_NAMES),
                    latent_range=json.dumps(AE2_LATENT_RANGE),
                ),
            ),
        ],
        "vae2": [
            _image_graph(
                "encoder",
                Encoder(2, two_heads=True),
                _meta("vae", "vae2", "encoder", "encode", latent_dim=2),
                outputs=("mean", "logvar"),
            ),
            _z_graph(
                "decoder", Decoder(2), 2, _meta("vae", "vae2", "decoder", "decode", latent_dim=2)
            ),
        ],
        "gan": [
            _z_graph(
                "generator",
                Decoder(6),
                6,
                _meta("gan", "gan", "generator", "generate", latent_dim=6),
            )
        ],
        "cgan": [
            _z_graph(
                "generator",
                CondGenerator(6, 10),
                6,
                _meta(
                    "cgan",
                    "cgan",
                    "generator",
                    "generate",
                    latent_dim=6,
                    num_classes=10,
                    truncation_psi=0.5,
                    class_names=json.dumps(CLASS_NAMES),
                ),  # the truncation trick: served z ~ N(0, 0.25 I)
                label=True,
            )
        ],
        "cyclegan": [
            _image_graph(
                f"generator_{d}",
                Translator(),
                _meta(
                    "cyclegan",
                    "cyclegan",
                    f"generator_{d}",
                    "translate",
                    direction=d,
                    domain_a="clean",
                    domain_b="noisy",
                ),
                outputs=("translated",),  # ONNX names are SSA: not "image" again
            )
            for d in ("ab", "ba")
        ],
        "srgan": [
            _image_graph(
                "generator",
                Upscaler(2),
                _meta(
                    "srgan",
                    "srgan",
                    "generator",
                    "upscale",
                    scale=2,
                    image_channels=1,
                    image_height=28,  # the HR images it learned from; its input is 14x14
                    image_width=28,
                ),  # fmt: skip
                outputs=("high_res",),
                spatial=True,
            )
        ],
        "evaluator": [
            _image_graph(
                "classifier",
                Classifier(),
                _meta("evaluator", "evaluator", "classifier", "classify", num_classes=10),
                outputs=("probabilities", "features"),
            )
        ],
    }


@pytest.fixture(scope="session")
def families() -> dict[str, str]:
    return dict(FAMILIES)


@pytest.fixture(scope="session")
def tiny_exported(tmp_path_factory) -> Path:
    """exported/<instance>/<graph>.onnx for every kind, made once per test session."""
    root = tmp_path_factory.mktemp("exported")
    for instance, graphs in tiny_exportables().items():
        for exportable in graphs:
            export_onnx(exportable, root / instance / f"{exportable.name}.onnx", opset=18)
        write_checksums(root / instance)  # as export records them
    return root


def export_rgb_models(root: Path) -> Path:
    """root/<instance>/*.onnx for two RGB models that take any size: photo_sr (srgan, 2x,
    learned from 16x16 crops) and photo2edges (cyclegan, the real ResNet generator, sides
    multiples of 4, learned from 32x32 photos)."""
    from genmodels.nn.resnet import ResnetGenerator

    torch.manual_seed(0)
    spatial = {"image": {0: "batch", 2: "height", 3: "width"}}
    shape = {"image_channels": 3, "image_height": 16, "image_width": 16}
    graphs = [
        (
            "photo_sr",
            Exportable(
                name="generator",
                module=Upscaler(2, channels=3),
                example_inputs=(torch.rand(1, 3, 8, 8),),
                input_names=["image"],
                output_names=["high_res"],
                dynamic_axes=spatial,
                doc="rgb 2x",
                metadata=_meta("srgan", "photo_sr", "generator", "upscale", scale=2, **shape),
            ),
        )
    ]
    shape = {"image_channels": 3, "image_height": 32, "image_width": 32}
    for d in ("ab", "ba"):
        meta = _meta(
            "cyclegan",
            "photo2edges",
            f"generator_{d}",
            "translate",
            direction=d,
            domain_a="photos",
            domain_b="edges",
            size_multiple=4,
            **shape,
        )
        graphs.append(
            (
                "photo2edges",
                Exportable(
                    name=f"generator_{d}",
                    module=ResnetGenerator(3, 8, 1, 2).eval(),
                    example_inputs=(torch.rand(1, 3, 32, 32),),
                    input_names=["image"],
                    output_names=["translated"],
                    dynamic_axes=spatial,
                    doc="rgb translator",
                    metadata=meta,
                ),
            )
        )
    for instance, exportable in graphs:
        export_onnx(exportable, root / instance / f"{exportable.name}.onnx", opset=18)
        write_checksums(root / instance)
    return root  # fmt: skip
