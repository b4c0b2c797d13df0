"""The prepare stage's outputs: train.pt, test.pt and manifest.json, and their loader
(besides domains.pt, the CycleGAN's domain pairs: genmodels.data.domains). They are written by
genmodels.data.prepare.

Each split file is {"images": uint8 [N, C, H, W], "labels": int64 [N]}, loadable with
torch.load(weights_only=True); the manifest names the classes (none for unlabelled images,
whose labels are all 0). Later stages read them through load_prepared().
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genmodels.errors import UserError
from genmodels.io import load_torch

SPLITS = ("train", "test")
MANIFEST = "manifest.json"
REPRO_HINT = "run `dvc repro prepare` (or `make repro`) to create it"


@dataclass
class PreparedData:
    train_images: torch.Tensor  # uint8 [N, C, H, W]
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor
    test_labels: torch.Tensor
    manifest: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        return list(self.manifest.get("classes", []))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_images.shape[1:])

    def tile_grids(self) -> list[tuple[int, int]] | None:
        """Per test image, in order, the rows and columns of the tiles it was cut into (resize
        crops); None when the test images are whole."""
        grids = self.manifest.get("test_tiles")
        if grids is None:
            return None
        well_formed = isinstance(grids, list) and all(
            isinstance(g, list) and len(g) == 2 and all(isinstance(n, int) and n > 0 for n in g)
            for g in grids
        )
        if not (well_formed and sum(r * c for r, c in grids) == len(self.test_images)):
            raise UserError(
                f"{MANIFEST}: test_tiles is not a list of [rows, columns] grids covering the "
                f"{len(self.test_images)} test images; {REPRO_HINT} again"
            )
        return [(rows, cols) for rows, cols in grids]


def class_histogram(labels: torch.Tensor, num_classes: int) -> list[int]:
    return torch.bincount(labels, minlength=num_classes).tolist()


def subset_indices(count: int, limit: int | None, seed: int) -> torch.Tensor | None:
    """Sorted indices of a seeded random subset of `limit` items; None keeps all."""
    if limit is None or limit >= count:
        return None
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(count, generator=generator)[:limit].sort().values


def _load_split(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    content = load_torch(path, "prepared split", f"{REPRO_HINT} again")
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
