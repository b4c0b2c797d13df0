"""Small IDX files written by the tests themselves; a guard so that no test reaches the network."""

from __future__ import annotations

import gzip
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from genmodels.data import sources
from genmodels.data.idx import IMAGES_MAGIC, LABELS_MAGIC
from genmodels.data.sources import SPLIT_FILES


class IdxWriter:
    """Writes IDX files; a path ending in .gz is gzipped."""

    def raw(self, path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
        return path

    def image_bytes(self, images: np.ndarray, magic: int = IMAGES_MAGIC) -> bytes:
        count, rows, cols = images.shape
        return struct.pack(">IIII", magic, count, rows, cols) + images.astype(np.uint8).tobytes()

    def label_bytes(self, labels: np.ndarray, magic: int = LABELS_MAGIC) -> bytes:
        return struct.pack(">II", magic, len(labels)) + labels.astype(np.uint8).tobytes()

    def images(self, path: Path, images: np.ndarray, magic: int = IMAGES_MAGIC) -> Path:
        return self.raw(path, self.image_bytes(images, magic))

    def labels(self, path: Path, labels: np.ndarray, magic: int = LABELS_MAGIC) -> Path:
        return self.raw(path, self.label_bytes(labels, magic))

    def dataset(
        self, directory: Path, n_train: int = 20, n_test: int = 10, gz: bool = False, seed: int = 0
    ) -> dict[str, np.ndarray]:
        """The four standard files of a random dataset; returns its arrays by split."""
        rng = np.random.default_rng(seed)
        suffix = ".gz" if gz else ""
        arrays = {}
        for split, count in (("train", n_train), ("test", n_test)):
            images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
            labels = np.arange(count, dtype=np.uint8) % 10  # every class present when count >= 10
            rng.shuffle(labels)
            images_name, labels_name = SPLIT_FILES[split]
            self.images(directory / f"{images_name}{suffix}", images)
            self.labels(directory / f"{labels_name}{suffix}", labels)
            arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
        return arrays


@pytest.fixture
def idx() -> IdxWriter:
    return IdxWriter()


class _NoDownload:
    def __init__(self, *args, **kwargs):
        pytest.fail("a test tried to download a dataset")


def fake_torchvision(monkeypatch, **dataset_classes) -> None:
    """Installs a stand-in torchvision.datasets (importing the real one takes seconds)."""
    datasets = types.ModuleType("torchvision.datasets")
    for name in ("FashionMNIST", "MNIST", "KMNIST"):
        setattr(datasets, name, dataset_classes.get(name, _NoDownload))
    torchvision = types.ModuleType("torchvision")
    torchvision.datasets = datasets
    monkeypatch.setitem(sys.modules, "torchvision", torchvision)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)


@pytest.fixture
def torchvision_datasets(monkeypatch):
    """Call with dataset classes by name to stand in for torchvision's."""
    return lambda **dataset_classes: fake_torchvision(monkeypatch, **dataset_classes)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Points the Debian root at an empty folder and fails any torchvision download."""
    monkeypatch.setattr(sources, "DEBIAN_ROOT", tmp_path / "no-debian-datasets")
    fake_torchvision(monkeypatch)
