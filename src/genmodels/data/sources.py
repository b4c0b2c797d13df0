"""Where a dataset's images come from, by data.name: IDX files, scikit-learn's digits, a folder
of the user's images, the CycleGAN's two unpaired domain folders, the photos inside installed
packages, or one of torchvision's sets.

IDX datasets are looked for in data.raw_dir, then under the Debian root, then downloaded
through torchvision when data.download allows; the first complete place wins. The digits set
and the packaged photos need no files at all. Every source ends as uint8 [N, C, H, W] tensors at
data.channels and data.image_size (each source's own when null).
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

from genmodels.config import IDX_NAMES, DataParams
from genmodels.data import images as image_files
from genmodels.data.idx import IMAGE_SIZE, read_split
from genmodels.data.photos import (
    PACKAGED_PHOTOS,
    cut_patches,
    load_photo,
    load_photo_patches,
    split_photos,
)
from genmodels.data.prepared import subset_indices
from genmodels.data.torchvision_sets import load_torchvision_split
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
    classes: tuple[str, ...]  # the set's own class names (torchvision's `classes`)
    debian_package: str | None = None


DIGIT_NAMES = tuple(str(digit) for digit in range(10))
IDX_DATASETS = {
    "fashion_mnist": IdxDataset(
        "fashion-mnist",
        "FashionMNIST",
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        "dataset-fashion-mnist",
    ),  # fmt: skip
    "mnist": IdxDataset("mnist", "MNIST", DIGIT_NAMES),
    "kmnist": IdxDataset(
        "kmnist", "KMNIST", ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
    ),
}
assert tuple(IDX_DATASETS) == IDX_NAMES


@dataclass
class RawDataset:
    """A dataset as read from its source, before any subset is taken."""

    train_images: torch.Tensor  # uint8 [N, 1, 28, 28]
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: dict[str, Any]  # where it came from and checksums, for the manifest
    classes: list[str]  # label i is classes[i]; [] for unlabelled images (every label 0)
    # unpaired domains only: split -> (images of domain A, of domain B); A's come first
    domain_counts: dict[str, tuple[int, int]] | None = None
    # resize crops only: per test image, in order, the rows and columns of its grid of tiles
    test_grids: list[list[int]] | None = None

    @property
    def labelled(self) -> bool:
        return bool(self.classes)


@dataclass(frozen=True)
class IdxLocation:
    origin: str  # the directory, or TORCHVISION_DOWNLOAD
    files: dict[str, Path]  # standard file name -> the file found (plain or .gz)


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def find_idx_files(directory: Path) -> tuple[dict[str, Path] | None, str]:
    """The four IDX files in `directory`, or None and why not ("broken: ..." when some are
    there but not all of them are usable)."""
    if not directory.is_dir():
        return None, "not found"
    found: dict[str, Path] = {}
    not_files: list[str] = []
    for name in IDX_FILE_NAMES:
        # plain first: torchvision keeps both the .gz and the file it extracted
        candidates = [directory / name, directory / f"{name}.gz"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is not None:
            found[name] = path
        else:
            not_files += [p.name for p in candidates if p.exists()]  # a folder, a socket...
    missing = [name for name in IDX_FILE_NAMES if name not in found]
    if not found and not not_files:
        return None, "no IDX files there"
    if not_files:
        return None, "broken, not a regular file: " + ", ".join(not_files)
    if missing:
        return None, "broken, incomplete: missing " + ", ".join(f"{m}[.gz]" for m in missing)
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
    users_places = [raw_dir / name, torchvision_dir, raw_dir]
    tried: list[str] = []
    for directory in [*users_places, debian_dir]:
        files, why_not = find_idx_files(directory)
        if files is not None:
            if directory == debian_dir:
                logger.info("%s: %s holds no copy; using %s", name, raw_dir, directory)
            return IdxLocation(origin=str(directory), files=files)
        if why_not.startswith("broken") and directory in users_places:
            # the copy the user meant to use: preparing another one instead would hide it
            raise UserError(
                f"{name}: {directory} holds a broken copy ({why_not.removeprefix('broken, ')}); complete it with the "
                f"four IDX files ({', '.join(IDX_FILE_NAMES)}; plain or .gz), or remove it to "
                "use another copy"
            )
        if why_not.startswith("broken"):
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
        classes=list(IDX_DATASETS[name].classes),
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
        classes=list(DIGIT_NAMES),
    )


def _labels(labels: list[int] | torch.Tensor | None, count: int) -> torch.Tensor:
    """int64 labels; zeros for unlabelled images."""
    if labels is None:
        return torch.zeros(count, dtype=torch.int64)
    return torch.as_tensor(labels, dtype=torch.int64)


def _limit(files: image_files.ImageFiles, limit: int | None, seed: int) -> image_files.ImageFiles:
    """The seeded subset prepare would take, taken before decoding (it bounds the memory)."""
    index = subset_indices(len(files.paths), limit, seed)
    if index is None:
        return files
    keep = index.tolist()
    labels = None if files.labels is None else [files.labels[i] for i in keep]
    return image_files.ImageFiles([files.paths[i] for i in keep], labels, files.classes)


def _crops(images: list[tuple[torch.Tensor, int, Path]], split: str, data: DataParams,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, list[list[int]]]:  # fmt: skip
    """Patches of crop_size of (image, label, file) triples: seeded random ones of training
    images, a grid over test images, each patch with its image's label; the test images' grids."""
    patches, patch_labels, grids = [], [], []
    for image, label, path in images:
        crops, grid = cut_patches(image, str(path), data.crop_size, split == "train",
                                  data.crops_per_image, generator)  # fmt: skip
        patches.append(crops)
        patch_labels += [label] * len(crops)
        if grid is not None:
            grids.append(list(grid))
    return torch.cat(patches), torch.tensor(patch_labels, dtype=torch.int64), grids


def load_folder(data: DataParams) -> RawDataset:
    """A folder of the user's images (genmodels.data.images): its classes, its split."""
    root = Path(data.folder)
    scanned = image_files.scan_folder(root, data.test_fraction, data.subset_seed)
    limits = {"train": data.limit_train, "test": data.limit_test}
    channels = data.channels or 3
    crops = data.resize_policy == "crops"
    generator = torch.Generator().manual_seed(data.subset_seed)
    tensors, skipped, checksums, grids = {}, [], {}, {}
    for split, files in scanned.items():
        if not crops:  # limits count prepared images: here the files themselves
            files = _limit(files, limits[split], data.subset_seed)
        labels = files.labels if files.labels is not None else [0] * len(files.paths)
        if crops:  # each file at its own size, then cut into patches
            decoded = [image_files.read_images([path], channels, None,
                                               skip_unreadable=data.skip_unreadable, root=root)
                       for path in files.paths]  # fmt: skip
            kept = [(d.images[0], label, path)
                    for d, label, path in zip(decoded, labels, files.paths, strict=True)
                    if len(d.images)]  # fmt: skip
            skipped += [entry for d in decoded for entry in d.skipped]
            count = len(kept) * data.crops_per_image if split == "train" else 0
            image_files.check_memory(count, channels, data.crop_size, data.crop_size,
                                     data.max_memory_gb)  # fmt: skip
            images, labels, grids[split] = _crops(kept, split, data, generator)
            tensors[split] = (images, labels)
            digest = hashlib.sha256("".join(d.sha256 for d in decoded).encode())
            checksums[split] = digest.hexdigest()
            continue
        decoded = image_files.read_images(
            files.paths, channels, data.image_size, skip_unreadable=data.skip_unreadable,
            max_memory_gb=data.max_memory_gb, root=root,
        )  # fmt: skip
        index = {path: i for i, path in enumerate(files.paths)}
        kept_labels = [labels[index[path]] for path in decoded.paths]
        tensors[split] = (decoded.images, _labels(kept_labels, len(kept_labels)))
        skipped += decoded.skipped
        checksums[split] = decoded.sha256
    return RawDataset(
        *tensors["train"], *tensors["test"],
        source={
            "origin": str(root),
            "layout": "train/ and test/" if all((root / s).is_dir() for s in ("train", "test"))
            else f"one folder, seeded split (test_fraction={data.test_fraction})",
            "resize": data.resize_policy,
            "sha256": checksums,
            "skipped": skipped,
        },
        classes=scanned["train"].classes,
        test_grids=grids.get("test"),
    )  # fmt: skip


def load_unpaired(data: DataParams) -> RawDataset:
    """The CycleGAN's own layout: trainA/ trainB/ testA/ testB/, unlabelled, no known pairs.

    Each split is domain A's images followed by domain B's. The limits take a seeded subset of
    a split's files before decoding, as for a folder; all four folders are decoded together so
    that both domains end at one shape (or fail with the file that differs)."""
    root = Path(data.folder)
    scanned = image_files.scan_unpaired(root)
    channels = data.channels or 3
    limits = {"train": data.limit_train, "test": data.limit_test}
    chosen: dict[str, list[list[Path]]] = {}
    for split in ("train", "test"):
        folders = [f"{split}A", f"{split}B"]
        files = _limit(image_files.ImageFiles(
            [p for name in folders for p in scanned[name].paths], None, []),
            limits[split], data.subset_seed)  # fmt: skip
        chosen[split] = [[p for p in files.paths if p.is_relative_to(root / n)] for n in folders]
    paths = [p for split in chosen.values() for domain in split for p in domain]
    decoded = image_files.read_images(
        paths, channels, data.image_size, skip_unreadable=data.skip_unreadable,
        max_memory_gb=data.max_memory_gb, root=root,
    )  # fmt: skip
    kept = set(decoded.paths)
    counts = {}
    for split, domains in chosen.items():
        counts[split] = tuple(sum(p in kept for p in domain) for domain in domains)
        for name, count in zip((f"{split}A", f"{split}B"), counts[split], strict=True):
            # a domain's FID and KID (the CycleGAN's evaluation) need two images or more
            if count < 2:
                left = "no image" if count == 0 else "only 1 image"
                raise UserError(
                    f"{root / name}: {left} of this domain is left (after data.limit_{split} "
                    f"and {image_files.SKIP_KNOB}); each domain needs at least 2 images per "
                    f"split: add readable images, or raise data.limit_{split}"
                )
    n_train = sum(counts["train"])
    # clones: a saved slice would carry the other split's storage into its file
    train, test = decoded.images[:n_train].clone(), decoded.images[n_train:].clone()
    return RawDataset(
        train, _labels(None, len(train)), test, _labels(None, len(test)),
        source={"origin": str(root), "layout": "trainA/ trainB/ testA/ testB/ (unpaired)",
                "resize": data.resize_policy, "sha256": decoded.sha256,
                "skipped": decoded.skipped},
        classes=[],
        domain_counts=counts,
    )  # fmt: skip


def load_packaged_photos(data: DataParams) -> RawDataset:
    """The colour photos inside scikit-image and scikit-learn, split by whole photo."""
    channels = data.channels or 3
    if data.resize_policy == "crops":
        patches = load_photo_patches(
            data.crop_size, data.crops_per_image, data.test_photos, data.subset_seed, channels
        )
        train, test, photos = patches.train, patches.test, patches.source
        test_grids = patches.test_grids
    else:  # each whole photo fitted to image_size: one image per photo
        names = [photo.name for photo in PACKAGED_PHOTOS]
        _, test_names = split_photos(names, data.test_photos, data.subset_seed)
        test_grids = None
        fitted = {"train": [], "test": []}
        photos = {}
        for name in names:
            photo = load_photo(name)
            split = "test" if name in test_names else "train"
            fitted[split].append(torch.from_numpy(photo).permute(2, 0, 1).contiguous())
            photos[name] = {"size": [photo.shape[1], photo.shape[0]], "split": split,
                            "sha256": hashlib.sha256(photo.tobytes()).hexdigest()}  # fmt: skip
        train, test = (
            torch.cat([image_files.refit(i[None], channels, data.image_size) for i in fitted[s]])
            for s in ("train", "test")
        )
    return RawDataset(
        train, _labels(None, len(train)), test, _labels(None, len(test)),
        source={"origin": "packaged photos (scikit-image, scikit-learn)",
                "resize": data.resize_policy, "photos": photos},
        classes=[],
        test_grids=test_grids,
    )  # fmt: skip


def load_torchvision(data: DataParams) -> RawDataset:
    """One of torchvision's sets, read by torchvision from raw_dir or downloaded."""
    splits = {
        split: load_torchvision_split(
            data.name,
            split,
            data.raw_dir,
            download=data.download,
            channels=data.channels or 3,
            size=data.image_size,
            attribute=data.attribute,
            max_memory_gb=data.max_memory_gb,
        )  # fmt: skip
        for split in ("train", "test")
    }
    return RawDataset(
        *(t for s in splits.values() for t in (s.images, _labels(s.labels, len(s.images)))),
        source={"origin": f"torchvision.datasets ({data.name}) in {data.raw_dir}",
                "attribute": data.attribute},
        classes=splits["train"].classes,
    )  # fmt: skip


def _reshaped(raw: RawDataset, data: DataParams) -> RawDataset:
    """An IDX or digits set at data.channels and data.image_size, when they differ."""
    channels = data.channels or raw.train_images.shape[1]
    raw.train_images = image_files.refit(raw.train_images, channels, data.image_size)
    raw.test_images = image_files.refit(raw.test_images, channels, data.image_size)
    return raw


def load_source(data: DataParams, debian_root: str | Path | None = None) -> RawDataset:
    """The dataset that data.name names, from the first place that has it."""
    if data.name == "folder":
        return load_folder(data)
    if data.name == "unpaired":
        return load_unpaired(data)
    if data.name == "photos":
        return load_packaged_photos(data)
    if data.name not in IDX_NAMES and data.name != "digits":
        return load_torchvision(data)
    if data.name == "digits":
        logger.info("digits: loading from %s", DIGITS_ORIGIN)
        raw = load_digits(data.test_fraction, data.subset_seed)
    else:
        raw = load_idx_dataset(
            data.name, data.raw_dir, download=data.download, debian_root=debian_root
        )
    return _reshaped(raw, data)
