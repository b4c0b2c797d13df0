"""The prepare stage's outputs: train.pt, test.pt and manifest.json, and their loader
(besides domains.pt, the CycleGAN's domain pairs: genmodels.data.domains).

Each split file is {"images": uint8 [N, 1, 28, 28], "labels": int64 [N]}, loadable with
torch.load(weights_only=True). Later stages read them through load_prepared().
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genmodels.config import DataParams
from genmodels.data.domains import build_domains, describe, save_domains
from genmodels.data.idx import NUM_CLASSES
from genmodels.data.sources import load_source
from genmodels.errors import UserError
from genmodels.io import save_torch, write_json

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
MANIFEST = "manifest.json"
REPRO_HINT = "run `dvc repro prepare` (or `make repro`) to create it"


@dataclass
class PreparedData:
    train_images: torch.Tensor  # uint8 [N, 1, 28, 28]
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor
    test_labels: torch.Tensor
    manifest: dict[str, Any]

    @property
    def num_classes(self) -> int:
        return int(self.manifest.get("num_classes", NUM_CLASSES))

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_images.shape[1:])


def class_histogram(labels: torch.Tensor, num_classes: int = NUM_CLASSES) -> list[int]:
    return torch.bincount(labels, minlength=num_classes).tolist()


def subset_indices(count: int, limit: int | None, seed: int) -> torch.Tensor | None:
    """Sorted indices of a seeded random subset of `limit` items; None keeps all."""
    if limit is None or limit >= count:
        return None
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(count, generator=generator)[:limit].sort().values


def _limited(
    images: torch.Tensor, labels: torch.Tensor, limit: int | None, seed: int, split: str
) -> tuple[torch.Tensor, torch.Tensor]:
    if limit is not None and limit > len(images):
        logger.warning(
            "limit_%s=%d is more than the %d %s images: keeping all",
            split,
            limit,
            len(images),
            split,
        )
    index = subset_indices(len(images), limit, seed)
    if index is None:
        return images, labels
    return images[index], labels[index]


def prepare(
    data: DataParams,
    metrics_path: str | Path | None = None,
    *,
    debian_root: str | Path | None = None,
) -> dict[str, Any]:
    """Reads, validates and subsets the dataset, writes it to data.prepared_dir.

    Returns the manifest, so that the caller can log it (to MLflow, say).
    """
    raw = load_source(data, debian_root=debian_root)
    splits = {
        "train": _limited(
            raw.train_images, raw.train_labels, data.limit_train, data.subset_seed, "train"
        ),
        "test": _limited(
            raw.test_images, raw.test_labels, data.limit_test, data.subset_seed, "test"
        ),
    }

    prepared_dir = Path(data.prepared_dir)
    for split, (images, labels) in splits.items():
        save_torch({"images": images, "labels": labels}, prepared_dir / f"{split}.pt")

    # the CycleGAN's unpaired domains: A and T(A) from disjoint training halves, test pairs
    domains = build_domains(*splits["train"], *splits["test"], data.domains)
    domains_entry = describe(domains, data.name, data.domains)
    save_domains(domains, domains_entry, prepared_dir)

    histograms = {split: class_histogram(labels) for split, (_, labels) in splits.items()}
    manifest = {
        "dataset": data.name,
        "source": raw.source,
        "counts": {split: len(labels) for split, (_, labels) in splits.items()},
        "class_histogram": histograms,
        "num_classes": NUM_CLASSES,
        "image_shape": list(splits["train"][0].shape[1:]),
        "image_dtype": "uint8",
        "limits": {
            "limit_train": data.limit_train,
            "limit_test": data.limit_test,
            "subset_seed": data.subset_seed,
        },
        "domains": domains_entry,
    }
    write_json(prepared_dir / MANIFEST, manifest)
    logger.info(
        "%s: wrote %d train and %d test images to %s",
        data.name,
        manifest["counts"]["train"],
        manifest["counts"]["test"],
        prepared_dir,
    )

    if metrics_path is not None:
        write_json(
            metrics_path,
            {
                "train_count": manifest["counts"]["train"],
                "test_count": manifest["counts"]["test"],
                "num_classes": NUM_CLASSES,
                "train_class_histogram": {str(c): n for c, n in enumerate(histograms["train"])},
            },
        )
    return manifest


def _load_split(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many kinds of error on a damaged file
        raise UserError(f"{path}: corrupt or unreadable ({exc}); {REPRO_HINT} again") from None
    images = content.get("images") if isinstance(content, dict) else None
    labels = content.get("labels") if isinstance(content, dict) else None
    if not (
        isinstance(images, torch.Tensor)
        and isinstance(labels, torch.Tensor)
        and images.dtype == torch.uint8
        and images.ndim == 4
        and labels.dtype == torch.int64
        and labels.shape == (len(images),)
    ):
        raise UserError(
            f"{path}: not a prepared split (expected a dict of uint8 'images' [N, C, H, W] "
            f"and int64 'labels' [N]); {REPRO_HINT} again"
        )
    return images, labels


def load_prepared(prepared_dir: str | Path = "data/prepared") -> PreparedData:
    prepared_dir = Path(prepared_dir)
    names = [f"{split}.pt" for split in SPLITS] + [MANIFEST]
    missing = [name for name in names if not (prepared_dir / name).is_file()]
    if missing:
        raise UserError(f"{prepared_dir}: no {', '.join(missing)}; {REPRO_HINT}")
    manifest_path = prepared_dir / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(
            f"{manifest_path}: corrupt or unreadable ({exc}); {REPRO_HINT} again"
        ) from None
    if not isinstance(manifest, dict):
        raise UserError(
            f"{manifest_path}: not a manifest (expected a JSON object); {REPRO_HINT} again"
        )
    train_images, train_labels = _load_split(prepared_dir / "train.pt")
    test_images, test_labels = _load_split(prepared_dir / "test.pt")
    return PreparedData(train_images, train_labels, test_images, test_labels, manifest)
