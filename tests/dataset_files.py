"""Small dataset files in each format's real on-disk layout, written by the tests that read
them: image files of every suffix, class folders, CIFAR's pickled batches."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import torch
import torchvision.datasets as tvd
from PIL import Image

RNG = np.random.default_rng(0)


def write_image(path: Path, size=(8, 6), colour=None, mode="RGB", **save) -> Path:
    """A random (or flat-coloured) image of size (width, height) saved by its suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    if colour is None:
        pixels = RNG.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    else:
        pixels = np.broadcast_to(np.array(colour, np.uint8), (size[1], size[0], channels))
    Image.fromarray(np.ascontiguousarray(pixels).squeeze(-1) if channels == 1 else pixels,
                    mode).save(path, **save)  # fmt: skip
    return path


def class_folder(root: Path, counts: dict[str, int], size=(8, 6)) -> Path:
    for name, count in counts.items():
        for i in range(count):
            write_image(root / name / f"{i:03d}.png", size)
    return root


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def pixels(count: int, side: int) -> np.ndarray:
    """uint8 [N, H, W, 3]"""
    return RNG.integers(0, 256, (count, side, side, 3), dtype=np.uint8)


def as_chw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2)


def write_cifar(root: Path, monkeypatch, hundred: bool = False) -> dict[str, np.ndarray]:
    cls = tvd.CIFAR100 if hundred else tvd.CIFAR10
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    key = "fine_labels" if hundred else "labels"
    names = [f"class_{i}" for i in range(100 if hundred else 10)]
    written, files = {}, {"train": [], "test": []}
    batches = ([("train", "train")] if hundred else
               [(f"data_batch_{i}", "train") for i in range(1, 6)]) + [
        ("test" if hundred else "test_batch", "test")]  # fmt: skip
    for batch, split in batches:
        images = pixels(3, 32)
        labels = RNG.integers(0, len(names), 3).tolist()
        # CIFAR's rows: 1,024 red values, then green, then blue, each row-major
        rows = images.transpose(0, 3, 1, 2).reshape(3, -1)
        with open(folder / batch, "wb") as f:
            pickle.dump({"data": rows, key: labels}, f)
        written.setdefault(split, []).append((images, labels))
        files[split].append([batch, md5(folder / batch)])
    meta = cls.meta["filename"]
    with open(folder / meta, "wb") as f:
        pickle.dump({cls.meta["key"]: names}, f)
    monkeypatch.setattr(cls, "train_list", files["train"])
    monkeypatch.setattr(cls, "test_list", files["test"])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(folder / meta)})
    return {
        split: (np.concatenate([i for i, _ in parts]), sum((lab for _, lab in parts), []), names)
        for split, parts in written.items()
    }
