"""torchvision's photo datasets as uint8 tensors: read by torchvision's own classes from
`raw_dir` (each in its own on-disk layout, checksums included), downloaded by them when
`data.download` allows.

Sets that torchvision holds as one array (CIFAR, SVHN, STL-10) are converted in bulk; the
others (CelebA, Flowers-102) are decoded file by file on threads. Every image goes through
`pictures.fit` when it needs another channel count or size.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from genmodels.data.images import DECODE_CHUNK, ImageStack, check_memory, refit
from genmodels.data.pictures import fit
from genmodels.errors import UserError


@dataclass(frozen=True)
class TorchvisionSet:
    class_name: str  # in torchvision.datasets
    train: dict[str, Any]  # the constructor's arguments for each split
    test: dict[str, Any]
    layout: str  # what torchvision expects under raw_dir, for the message when it is missing
    native_size: int | None = None  # every image's side, when the set has one size
    default_classes: list[str] = field(default_factory=list)  # when torchvision names none


TORCHVISION_SETS = {
    "cifar10": TorchvisionSet(
        "CIFAR10",
        {"train": True},
        {"train": False},
        "cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta)",
        32,
    ),  # fmt: skip
    "cifar100": TorchvisionSet(
        "CIFAR100", {"train": True}, {"train": False}, "cifar-100-python/ (train, test, meta)", 32
    ),  # fmt: skip
    "svhn": TorchvisionSet(
        "SVHN",
        {"split": "train"},
        {"split": "test"},
        "train_32x32.mat and test_32x32.mat",
        32,
        [str(digit) for digit in range(10)],
    ),  # fmt: skip
    "stl10": TorchvisionSet(
        "STL10",
        {"split": "train"},
        {"split": "test"},
        "stl10_binary/ (train_X.bin, train_y.bin, test_X.bin, test_y.bin, "
        "unlabeled_X.bin, class_names.txt)",
        96,
    ),  # fmt: skip
    "celeba": TorchvisionSet(
        "CelebA",
        {"split": "train", "target_type": "attr"},
        {"split": "test", "target_type": "attr"},
        "celeba/ (img_align_celeba/, list_attr_celeba.txt, "
        "identity_CelebA.txt, list_bbox_celeba.txt, "
        "list_landmarks_align_celeba.txt, list_eval_partition.txt)",
    ),  # fmt: skip
    "flowers102": TorchvisionSet(
        "Flowers102",
        {"split": "train"},
        {"split": "test"},
        "flowers-102/ (jpg/, imagelabels.mat, setid.mat)",
    ),  # fmt: skip
}


@dataclass
class SplitImages:
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor | None  # int64 [N], None when unlabelled
    classes: list[str]


def open_split(name: str, split: str, raw_dir: Path, download: bool) -> Any:
    """torchvision's dataset object for one split; a UserError when its files are missing or
    damaged, or the download fails."""
    import torchvision.datasets  # slow to import, and only needed here

    spec = TORCHVISION_SETS[name]
    dataset_class = getattr(torchvision.datasets, spec.class_name)
    arguments = dict(spec.train if split == "train" else spec.test)
    try:
        return dataset_class(root=str(raw_dir), download=download, **arguments)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted ..."
        fix = (
            "the download did not give intact files: delete them and run again"
            if download
            else "go online with data.download: true, or put the files there"
        )
        raise UserError(
            f"{name}: not found or damaged under {raw_dir} ({' '.join(str(exc).split())}). "
            f"torchvision's {spec.class_name} expects {spec.layout}; {fix}"
        ) from None
    except (OSError, ValueError) as exc:  # no network, a refused URL, a broken archive
        raise UserError(
            f"{name}: the download into {raw_dir} failed ({' '.join(str(exc).split())}); go "
            f"online, or put torchvision's files ({spec.layout}) there with data.download: "
            "false"
        ) from None


def _labels_and_classes(
    name: str, dataset: Any, attribute: str | None
) -> tuple[torch.Tensor | None, list[str]]:
    if name == "celeba":
        if attribute is None:
            return None, []
        if attribute not in dataset.attr_names:
            raise UserError(
                f"data.attribute: celeba has no attribute {attribute!r}; choose one of "
                + ", ".join(n for n in dataset.attr_names if n)
            )
        column = dataset.attr_names.index(attribute)
        return dataset.attr[:, column].to(torch.int64), [f"not {attribute}", attribute]
    for attr in ("targets", "labels", "_labels"):
        labels = getattr(dataset, attr, None)
        if labels is not None:
            break
    classes = list(getattr(dataset, "classes", None) or TORCHVISION_SETS[name].default_classes)
    return torch.as_tensor(np.asarray(labels), dtype=torch.int64), classes


def _array_images(data: np.ndarray, channels: int, size: int | None) -> torch.Tensor:
    """CIFAR's [N, H, W, 3] or SVHN's and STL-10's [N, 3, H, W] uint8 arrays as [N, C, H, W]."""
    images = torch.from_numpy(data if data.shape[1] == 3 else data.transpose(0, 3, 1, 2))
    return refit(images.contiguous(), channels, size)


def _item_images(
    name: str, dataset: Any, channels: int, size: int | None, max_memory_gb: float | None
) -> torch.Tensor:
    stack = ImageStack(len(dataset), channels, max_memory_gb)

    def load(index: int) -> Image.Image:
        try:
            image = dataset[index][0]
            fitted = fit(image, channels, size)
            if fitted is not image:  # the file's own image is no longer needed
                image.close()
            return fitted
        except (OSError, SyntaxError, ValueError) as exc:
            raise UserError(
                f"{name} item {index} of {len(dataset)}: not a readable image "
                f"({' '.join(str(exc).split())}); delete the {name} files and run again to "
                "fetch intact ones"
            ) from None

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        for start in range(0, len(dataset), DECODE_CHUNK):
            indices = range(start, min(start + DECODE_CHUNK, len(dataset)))
            for index, image in zip(indices, pool.map(load, indices), strict=True):
                stack.add(image, f"{name} item {index}")
    return stack.tensor()


def load_torchvision_split(
    name: str,
    split: str,
    raw_dir: str | Path,
    *,
    download: bool,
    channels: int = 3,
    size: int | None = None,
    attribute: str | None = None,
    max_memory_gb: float | None = None,
) -> SplitImages:
    """One split of a torchvision set as uint8 tensors. `attribute` labels CelebA by one of
    its 40 attributes (e.g. "Smiling"); without it CelebA is unlabelled."""
    if name not in TORCHVISION_SETS:
        raise UserError(f"{name}: not a torchvision set here; one of {', '.join(TORCHVISION_SETS)}")
    dataset = open_split(name, split, Path(raw_dir), download)
    labels, classes = _labels_and_classes(name, dataset, attribute)
    data = getattr(dataset, "data", None)
    if isinstance(data, np.ndarray) and data.ndim == 4:
        side = size or TORCHVISION_SETS[name].native_size or data.shape[-2]
        check_memory(len(data), channels, side, side, max_memory_gb)
        images = _array_images(data, channels, size)
    else:
        images = _item_images(name, dataset, channels, size, max_memory_gb)
    return SplitImages(images, labels, classes)
