"""Where a dataset's raw files come from: raw_dir, the Debian dataset packages, a download.

IDX datasets are looked for in data.raw_dir, then under the Debian root, then downloaded
through torchvision when data.download allows; the first complete place wins. The digits set
ships inside scikit-learn, so it needs no files at all.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genmodels.config import DataParams
from genmodels.data.idx import IMAGE_SIZE, read_split
from genmodels.errors import UserError

logger = logging.getLogger(__name__)

DEBIAN_ROOT = Path("/usr/share/datasets")
TORCHVISION_DOWNLOAD = "torchvision download"
DIGITS_ORIGIN = "sklearn.datasets.load_digits"

# split -> (images file, labels file); each may also be gzipped (name + ".gz")
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_FILE_NAMES = [name for pair in SPLIT_FILES.values() for name in pair]


@dataclass(frozen=True)
class IdxDataset:
    debian_name: str  # the folder under the Debian root
    torchvision_class: str  # also the folder torchvision downloads into: <raw_dir>/<class>/raw
    debian_package: str | None = None


IDX_DATASETS = {
    "fashion_mnist": IdxDataset("fashion-mnist", "FashionMNIST", "dataset-fashion-mnist"),
    "mnist": IdxDataset("mnist", "MNIST"),
    "kmnist": IdxDataset("kmnist", "KMNIST"),
}


@dataclass
class RawDataset:
    """A dataset as read from its source, before any subset is taken."""

    train_images: torch.Tensor  # uint8 [N, 1, 28, 28]
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: dict[str, Any]  # where it came from and checksums, for the manifest


@dataclass(frozen=True)
class IdxLocation:
    origin: str  # the directory, or TORCHVISION_DOWNLOAD
    files: dict[str, Path]  # standard file name -> the file found (plain or .gz)


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def find_idx_files(directory: Path) -> tuple[dict[str, Path] | None, str]:
    """The four IDX files in `directory`, or None and why not."""
    if not directory.is_dir():
        return None, "not found"
    found: dict[str, Path] = {}
    for name in IDX_FILE_NAMES:
        # plain first: torchvision keeps both the .gz and the file it extracted
        candidates = [directory / name, directory / f"{name}.gz"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is not None:
            found[name] = path
    missing = [name for name in IDX_FILE_NAMES if name not in found]
    if not found:
        return None, "no IDX files there"
    if missing:
        return None, "incomplete, missing " + ", ".join(f"{m}[.gz]" for m in missing)
    return found, ""


def _download_with_torchvision(spec: IdxDataset, raw_dir: Path) -> None:
    import torchvision.datasets  # slow to import, and only needed here

    dataset_class = getattr(torchvision.datasets, spec.torchvision_class)
    # download=True fetches all four files whichever split is asked for; test is the small one
    dataset_class(root=raw_dir, train=False, download=True)


def locate_idx_files(
    name: str, raw_dir: str | Path, *, download: bool, debian_root: str | Path | None = None
) -> IdxLocation:
    """The first place holding all four IDX files of dataset `name`; UserError if none does.

    debian_root None means DEBIAN_ROOT, read at call time so that tests can redirect it.
    """
    spec = IDX_DATASETS[name]
    raw_dir = Path(raw_dir)
    torchvision_dir = raw_dir / spec.torchvision_class / "raw"
    debian_dir = Path(DEBIAN_ROOT if debian_root is None else debian_root) / spec.debian_name
    places = [raw_dir / name, torchvision_dir, raw_dir, debian_dir]
    tried: list[str] = []
    for directory in places:
        files, why_not = find_idx_files(directory)
        if files is not None:
            return IdxLocation(origin=str(directory), files=files)
        if why_not.startswith("incomplete"):
            # likely a half-copied set the user meant to use: say why it is passed over
            logger.warning("%s: passing over %s: %s", name, directory, why_not)
        tried.append(f"{directory}: {why_not}")

    if not download:
        tried.append(f"{TORCHVISION_DOWNLOAD}: skipped, data.download is false")
    else:
        logger.info("%s: no local IDX files, downloading with torchvision into %s", name, raw_dir)
        try:
            _download_with_torchvision(spec, raw_dir)
        except (OSError, RuntimeError, ValueError) as exc:
            tried.append(f"{TORCHVISION_DOWNLOAD}: failed: {' '.join(str(exc).split())}")
        else:
            files, why_not = find_idx_files(torchvision_dir)
            if files is not None:
                return IdxLocation(origin=TORCHVISION_DOWNLOAD, files=files)
            tried.append(f"{TORCHVISION_DOWNLOAD} into {torchvision_dir}: {why_not}")

    fixes = [f"put the four IDX files in {raw_dir / name}/"]
    if spec.debian_package:
        fixes.append(f"on Debian, as root: `apt-get install {spec.debian_package}`")
    fixes.append("go online with data.download: true so torchvision can download them")
    raise UserError(
        f"{name}: cannot find the IDX files ({', '.join(IDX_FILE_NAMES)}; plain or .gz). "
        "Places tried:\n  - " + "\n  - ".join(tried) + "\nTo fix, do one of: " + "; or ".join(fixes)
    )


def load_idx_dataset(
    name: str, raw_dir: str | Path, *, download: bool, debian_root: str | Path | None = None
) -> RawDataset:
    location = locate_idx_files(name, raw_dir, download=download, debian_root=debian_root)
    logger.info("%s: reading IDX files from %s", name, location.files[IDX_FILE_NAMES[0]].parent)
    splits = {
        split: read_split(location.files[images], location.files[labels])
        for split, (images, labels) in SPLIT_FILES.items()
    }
    files = {
        file_name: {"path": str(path), "sha256": sha256_file(path)}
        for file_name, path in location.files.items()
    }
    return RawDataset(
        train_images=splits["train"][0],
        train_labels=splits["train"][1],
        test_images=splits["test"][0],
        test_labels=splits["test"][1],
        source={"origin": location.origin, "files": files},
    )


def load_digits(test_fraction: float, seed: int) -> RawDataset:
    """scikit-learn's 8x8 digits, upscaled to 28x28 uint8, split train/test with a seed."""
    from sklearn.datasets import load_digits as sklearn_load_digits  # slow to import

    digits = sklearn_load_digits()
    values = torch.from_numpy(digits.images).float()[:, None] * (255.0 / 16.0)
    resized = F.interpolate(values, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear")
    images = resized.round().clamp(0, 255).to(torch.uint8)
    labels = torch.from_numpy(digits.target.astype(np.int64))

    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=generator)
    n_test = max(1, round(len(images) * test_fraction))
    test_index, train_index = order[:n_test].sort().values, order[n_test:].sort().values

    checksum = hashlib.sha256(digits.images.tobytes())
    checksum.update(digits.target.tobytes())
    return RawDataset(
        train_images=images[train_index],
        train_labels=labels[train_index],
        test_images=images[test_index],
        test_labels=labels[test_index],
        source={
            "origin": DIGITS_ORIGIN,
            "note": f"{DIGITS_ORIGIN}: 8x8 images bilinearly resized to 28x28, "
            f"seeded split with test_fraction={test_fraction}, seed={seed}",
            "sha256": checksum.hexdigest(),
        },
    )


def load_source(data: DataParams, debian_root: str | Path | None = None) -> RawDataset:
    """The dataset that data.name names, from the first place that has it."""
    if data.name == "digits":
        logger.info("digits: loading from %s", DIGITS_ORIGIN)
        return load_digits(data.digits_test_fraction, data.subset_seed)
    return load_idx_dataset(
        data.name, data.raw_dir, download=data.download, debian_root=debian_root
    )
