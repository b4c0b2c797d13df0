"""Image files to uint8 tensors: a folder of class subfolders (torchvision's ImageFolder
layout), a flat folder, `train/` and `test/` subfolders, and the CycleGAN's unpaired
`trainA/ trainB/ testA/ testB/` layout.

Each file is decoded as `pictures.fit` decodes it (grayscale or RGB, fitted to a size). A file that cannot be decoded stops the run with its name and the fix, unless the caller asks
to skip such files; each one skipped is returned, for the manifest. Nothing is dropped
silently.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genmodels.data.pictures import (
    SUFFIX_LIST,
    decode,
    find_images,
    fit,
    is_image_file,
)
from genmodels.errors import UserError

SPLIT_FOLDERS = ("train", "test")
UNPAIRED_FOLDERS = ("trainA", "trainB", "testA", "testB")
SKIP_KNOB = "data.skip_unreadable"
SIZE_KNOB = "data.image_size"
MEMORY_KNOB = "data.max_memory_gb"
DECODE_CHUNK = 512


@dataclass
class ImageFiles:
    """Files and their labels: indices into `classes`, or None for an unlabelled folder."""

    paths: list[Path]
    labels: list[int] | None
    classes: list[str]


@dataclass
class DecodedImages:
    images: torch.Tensor  # uint8 [N, C, H, W]
    paths: list[Path]  # the files kept, in the order of `images`
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"path", "error"}
    sha256: str = ""  # over every kept file's name and bytes, in order


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_classes(folder: str | Path) -> ImageFiles:
    """A folder's images: labelled by class subfolder (as ImageFolder does), or unlabelled when
    the images lie in the folder itself."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; point data.folder at a folder of images")
    loose = [p for p in sorted(folder.iterdir()) if p.is_file() and is_image_file(p)]
    subfolders = _subfolders(folder)
    if loose and subfolders:
        raise UserError(
            f"{folder}: holds both images ({loose[0].name}, ...) and subfolders "
            f"({subfolders[0].name}, ...). Use one layout: class subfolders with every image "
            "inside one, or a flat folder of images with no subfolders"
        )
    if loose or not subfolders:
        paths = find_images(folder)
        if not paths:
            raise UserError(
                f"{folder}: no image files ({SUFFIX_LIST}); put the images there, or in one "
                "subfolder per class"
            )
        return ImageFiles(paths, None, [])
    paths, labels = [], []
    for label, subfolder in enumerate(subfolders):
        files = find_images(subfolder)
        if not files:
            raise UserError(
                f"{subfolder}: an empty class folder (no {SUFFIX_LIST} files); add its images "
                "or remove the folder"
            )
        paths += files
        labels += [label] * len(files)
    return ImageFiles(paths, labels, [p.name for p in subfolders])


def seeded_split(files: ImageFiles, test_fraction: float, seed: int) -> dict[str, ImageFiles]:
    """Train and test from one folder: a seeded share of each class goes to test (at least one
    file of a class that has two or more)."""
    generator = torch.Generator().manual_seed(seed)
    labels = files.labels if files.labels is not None else [0] * len(files.paths)
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    chosen = {"train": [], "test": []}
    for label in sorted(by_class):
        members = by_class[label]
        order = torch.randperm(len(members), generator=generator).tolist()
        n_test = round(len(members) * test_fraction)
        n_test = min(max(n_test, 1 if len(members) > 1 else 0), len(members) - 1)
        chosen["test"] += [members[i] for i in order[:n_test]]
        chosen["train"] += [members[i] for i in order[n_test:]]
    return {
        split: ImageFiles(
            [files.paths[i] for i in sorted(index)],
            None if files.labels is None else [files.labels[i] for i in sorted(index)],
            files.classes,
        )
        for split, index in chosen.items()
    }


def scan_folder(root: str | Path, test_fraction: float, seed: int) -> dict[str, ImageFiles]:
    """Train and test files of a folder: its `train/` and `test/` subfolders when it has both,
    else a seeded split of the whole folder."""
    root = Path(root)
    if all((root / split).is_dir() for split in SPLIT_FOLDERS):
        train, test = (scan_classes(root / split) for split in SPLIT_FOLDERS)
        if (train.labels is None) != (test.labels is None):
            raise UserError(
                f"{root}: train/ and test/ differ in layout (one has class subfolders, the "
                "other not); give both the same layout"
            )
        unknown = sorted(set(test.classes) - set(train.classes))
        if unknown:
            raise UserError(
                f"{root / 'test'}: classes {', '.join(unknown)} have no folder in "
                f"{root / 'train'}; add their training images or remove them from test/"
            )
        if test.labels is not None:  # test labels index the training classes
            test.labels = [train.classes.index(test.classes[label]) for label in test.labels]
            test.classes = train.classes
        return {"train": train, "test": test}
    return seeded_split(scan_classes(root), test_fraction, seed)


def scan_unpaired(root: str | Path) -> dict[str, ImageFiles]:
    """The CycleGAN's two domains with no known pairs: trainA/, trainB/, testA/, testB/."""
    root = Path(root)
    missing = [name for name in UNPAIRED_FOLDERS if not (root / name).is_dir()]
    if missing:
        raise UserError(
            f"{root}: no {', '.join(name + '/' for name in missing)}; an unpaired set has "
            "the folders trainA/, trainB/, testA/ and testB/, each holding one domain's images"
        )
    scanned = {}
    for name in UNPAIRED_FOLDERS:
        paths = find_images(root / name)
        if not paths:
            raise UserError(f"{root / name}: no image files ({SUFFIX_LIST}); add its images")
        scanned[name] = ImageFiles(paths, None, [])
    return scanned


class ImageStack:
    """Fills one uint8 [N, H, W, C] array image by image: every image must have the first
    one's size, and the whole must fit under the memory cap."""

    def __init__(self, capacity: int, channels: int, max_memory_gb: float | None = None):
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {channels}")
        self.capacity, self.channels, self.max_memory_gb = capacity, channels, max_memory_gb
        self.array: np.ndarray | None = None
        self.first = ""
        self.count = 0

    def add(self, image: Image.Image, name: str) -> None:
        width, height = image.size
        if self.array is None:
            check_memory(self.capacity, self.channels, height, width, self.max_memory_gb)
            self.array = np.empty((self.capacity, height, width, self.channels), np.uint8)
            self.first = name
        elif (height, width) != self.array.shape[1:3]:
            raise UserError(
                f"{name}: {width}x{height} pixels, but {self.first} is "
                f"{self.array.shape[2]}x{self.array.shape[1]}; set {SIZE_KNOB} to fit every "
                "image to one size, or give the files one size"
            )
        self.array[self.count] = np.asarray(image).reshape(self.array.shape[1:])
        self.count += 1

    def tensor(self) -> torch.Tensor:
        """uint8 [count, C, H, W]."""
        assert self.array is not None, "no image was added"
        return torch.from_numpy(self.array[: self.count]).permute(0, 3, 1, 2).contiguous()


def _read(path: Path, channels: int, size: int | None) -> tuple[bytes, Image.Image | str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return b"", f"cannot be read ({exc.strerror or exc})"
    try:
        return data, decode(data, channels, size)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        # UnidentifiedImageError and "image file is truncated" are OSErrors
        return data, f"not a readable image ({' '.join(str(exc).split()) or type(exc).__name__})"


def check_memory(count: int, channels: int, height: int, width: int, max_gb: float | None):
    """A UserError when the tensors would pass the memory cap, naming the knob."""
    needed = count * channels * height * width
    if max_gb is not None and needed > max_gb * 2**30:
        raise UserError(
            f"{count} images of {channels}x{height}x{width} need {needed / 2**30:.2f} GiB as "
            f"uint8 tensors, over {MEMORY_KNOB}={max_gb}. Raise {MEMORY_KNOB}, set "
            f"{SIZE_KNOB} smaller, or take a subset with data.limit_train/limit_test"
        )


def read_images(
    paths: Sequence[Path],
    channels: int,
    size: int | None = None,
    *,
    skip_unreadable: bool = False,
    max_memory_gb: float | None = None,
    root: Path | None = None,
    workers: int | None = None,
) -> DecodedImages:
    """Decodes `paths` into one uint8 [N, C, H, W] tensor. With no size every file must have
    the first file's size. `root` shortens the names in messages and in the checksum."""

    def name(path: Path) -> str:
        return str(path.relative_to(root)) if root is not None else str(path)

    def fail(path: Path, error: str) -> UserError:
        return UserError(
            f"{path}: {error}. Replace or delete the file, or set {SKIP_KNOB}: true to leave "
            "out every unreadable file (each is listed in the manifest)"
        )

    digest = hashlib.sha256()
    kept: list[Path] = []
    skipped: list[dict[str, str]] = []
    stack = ImageStack(len(paths), channels, max_memory_gb)
    workers = workers or min(8, os.cpu_count() or 1)

    def decoded():  # in chunks, so that decoded images never pile up ahead of the copy
        # Pillow decodes with the GIL released: threads overlap the files' decoding
        with ThreadPoolExecutor(workers) as pool:
            for start in range(0, len(paths), DECODE_CHUNK):
                chunk = paths[start : start + DECODE_CHUNK]
                results = pool.map(lambda p: _read(p, channels, size), chunk)
                yield from zip(chunk, results, strict=True)

    for path, (data, result) in decoded():
        if isinstance(result, str):
            if not skip_unreadable:
                raise fail(path, result)
            skipped.append({"path": name(path), "error": result})
            continue
        stack.add(result, str(path))
        kept.append(path)
        digest.update(name(path).encode() + b"\0" + data)
    if not kept:
        raise UserError(
            f"none of the {len(paths)} files could be read ({skipped[0]['path']}: "
            f"{skipped[0]['error']}, ...); replace them with readable images"
            if skipped
            else "no image files to read"
        )
    return DecodedImages(stack.tensor(), kept, skipped, digest.hexdigest())


def refit(images: torch.Tensor, channels: int, size: int | None) -> torch.Tensor:
    """uint8 [N, C, H, W] images through `fit` when the channel count or the size changes;
    the tensor itself when neither does."""
    same_size = size is None or tuple(images.shape[-2:]) == (size, size)
    if images.shape[1] == channels and same_size:
        return images
    stack = ImageStack(len(images), channels)
    for index, chw in enumerate(images):
        hwc = chw.permute(1, 2, 0).numpy()
        stack.add(fit(Image.fromarray(hwc[..., 0] if hwc.shape[2] == 1 else hwc), channels, size),
                  str(index))  # fmt: skip
    return stack.tensor()
