"""prepare: the dataset data.name names, read, validated, subset and written to
data.prepared_dir (train.pt, test.pt, domains.pt, manifest.json; genmodels.data.prepared)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from genmodels.config import DataParams
from genmodels.data.domains import (
    build_domains,
    describe,
    describe_unpaired,
    save_domains,
    split_unpaired,
)
from genmodels.data.prepared import MANIFEST, class_histogram, subset_indices
from genmodels.data.sources import load_source
from genmodels.io import save_torch, write_json

logger = logging.getLogger(__name__)


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

    if raw.domain_counts is not None:  # the user's trainA/ trainB/ testA/ testB/, no pairs
        domains = split_unpaired(splits["train"][0], splits["test"][0], raw.domain_counts)
        domains_entry = describe_unpaired(domains, data.folder, raw.source["sha256"])
    else:  # the CycleGAN's unpaired domains: A and T(A) from disjoint training halves, test pairs
        domains = build_domains(*splits["train"], *splits["test"], data.domains)
        domains_entry = describe(domains, data.name, data.domains)
    save_domains(domains, domains_entry, prepared_dir)

    num_classes = len(raw.classes)
    histograms = {
        split: class_histogram(labels, num_classes) if raw.labelled else []
        for split, (_, labels) in splits.items()
    }
    manifest = {
        "dataset": data.name,
        "source": raw.source,
        "counts": {split: len(labels) for split, (_, labels) in splits.items()},
        "classes": raw.classes,
        "class_histogram": histograms,
        "num_classes": num_classes,
        "image_shape": list(splits["train"][0].shape[1:]),
        "image_dtype": "uint8",
        "limits": {
            "limit_train": data.limit_train,
            "limit_test": data.limit_test,
            "subset_seed": data.subset_seed,
        },
        "domains": domains_entry,
    }
    if raw.test_grids is not None and len(splits["test"][0]) == len(raw.test_images):
        # the test images cut into tiles (resize crops): whole again for super-resolution,
        # which the literature measures on whole images; a subset of tiles makes no grids
        manifest["test_tiles"] = raw.test_grids
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
                "num_classes": num_classes,
                "train_class_histogram": dict(zip(raw.classes, histograms["train"], strict=True)),
            },
        )
    return manifest
