"""The CycleGAN's two domains: built from one dataset so that translation has a known answer,
or read from the user's unpaired folders (data.name unpaired), which have none.

Domain A is the dataset as it is; domain B is T(A) for a transform T named in params
(`data.domains.transform`): `edges` (Sobel gradient magnitude, as in edges-to-photos tasks),
`bold` (grey dilation of the strokes) or `invert` (1 - x). The training set is split in two
halves by a seeded permutation: domain A takes the images of one half as they are, domain B the
transform of the other half, so no training image ever meets its own pair. The test set keeps
the true pairs (x, T(x)), which is what translation quality is measured against.

With data.name unpaired the domains are the folders trainA/ + testA/ and trainB/ + testB/ as
they are (genmodels.data.sources.load_unpaired): no transform, no pairs, no labels, and the
domains may differ in size. `Domains.paired` tells the two kinds apart.

The prepare stage writes them to data/prepared/domains.pt; load_domains() reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from genmodels.config import DomainParams
from genmodels.errors import UserError
from genmodels.nn.batching import map_batches

DOMAINS_FILE = "domains.pt"
REPRO_HINT = "run `dvc repro prepare` to create it"

# Sobel kernels (x: left to right, y: top to bottom); a step edge of height h gives |g| = 4h
SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
SOBEL_Y = SOBEL_X.t().contiguous()
SOBEL_GAIN = 4.0

TENSOR_KEYS = ("train_a", "train_b", "train_a_labels", "train_b_labels", "train_a_index",
               "train_b_index", "test_a", "test_b", "test_labels")  # fmt: skip
UNPAIRED = "unpaired"  # the manifest's source of domains read from the user's folders
UNPAIRED_KEYS = ("train_a", "train_b", "train_a_index", "train_b_index", "test_a", "test_b")


# -- the transforms: float [N, C, H, W] in [0, 1] -> the same shape and range ------------------
def sobel_edges(images: Tensor, threshold: float = 0.0) -> Tensor:
    """Sobel gradient magnitude / 4, clipped to [0, 1]: a step edge of height h reads h.

    Borders are replicated (a flat border has no edge). Magnitudes below `threshold` are set to
    0, a Canny-like cleaning of faint texture.
    """
    c = images.shape[1]
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    kernels = torch.stack([SOBEL_X, SOBEL_Y]).to(images).unsqueeze(1).repeat(c, 1, 1, 1)
    grad = F.conv2d(padded, kernels, groups=c)  # [N, 2C, H, W]: (gx, gy) per channel
    magnitude = grad.unflatten(1, (c, 2)).pow(2).sum(dim=2).sqrt() / SOBEL_GAIN
    magnitude = magnitude.clamp(0.0, 1.0)
    return magnitude * (magnitude >= threshold) if threshold > 0 else magnitude


def bold(images: Tensor, size: int = 3) -> Tensor:
    """Grey dilation with a size x size square: each pixel takes its neighbourhood's maximum."""
    return F.max_pool2d(images, kernel_size=size, stride=1, padding=size // 2)


def invert(images: Tensor) -> Tensor:
    return 1.0 - images


def transform(images: Tensor, params: DomainParams) -> Tensor:
    """T(images) for the transform the params name; float in [0, 1] in and out."""
    if params.transform == "edges":
        return sobel_edges(images, params.edge_threshold)
    if params.transform == "bold":
        return bold(images, params.bold_size)
    if params.transform == "invert":
        return invert(images)
    raise ValueError(f"unknown domain transform {params.transform!r}")


def transform_uint8(images: Tensor, params: DomainParams, batch_size: int = 10000) -> Tensor:
    """T over uint8 images in batches, back to uint8 (rounded)."""
    if not len(images):
        return images.clone()

    def to_uint8(part: Tensor) -> Tensor:
        return transform(part, params).mul(255.0).round_().clamp_(0, 255).to(torch.uint8)

    return map_batches(to_uint8, images, batch_size)


def domain_names(dataset: str, params: DomainParams) -> tuple[str, str]:
    """("fashion_mnist", "fashion_mnist:edges"): what each domain is, for metadata and reports."""
    return dataset, f"{dataset}:{params.transform}"


# -- the split -----------------------------------------------------------------------------------
def split_halves(count: int, seed: int) -> tuple[Tensor, Tensor]:
    """Disjoint, sorted source indices of the two halves of a seeded permutation of `count`."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    half = count // 2
    return order[:half].sort().values, order[half:].sort().values


def build_domains(train_images: Tensor, train_labels: Tensor, test_images: Tensor,
                  test_labels: Tensor, params: DomainParams) -> dict[str, Tensor]:  # fmt: skip
    """The tensors of domains.pt: unpaired training halves and paired test images (uint8)."""
    index_a, index_b = split_halves(len(train_images), params.split_seed)
    return {
        "train_a": train_images[index_a].clone(),
        "train_b": transform_uint8(train_images[index_b], params),
        "train_a_labels": train_labels[index_a].clone(),
        "train_b_labels": train_labels[index_b].clone(),
        "train_a_index": index_a,
        "train_b_index": index_b,
        "test_a": test_images.clone(),
        "test_b": transform_uint8(test_images, params),
        "test_labels": test_labels.clone(),
    }


def describe(tensors: dict[str, Tensor], dataset: str, params: DomainParams) -> dict[str, Any]:
    """The manifest entry of domains.pt (also stored inside it)."""
    domain_a, domain_b = domain_names(dataset, params)
    return {
        "file": DOMAINS_FILE,
        "domain_a": domain_a,
        "domain_b": domain_b,
        **params.model_dump(mode="json"),
        "counts": {
            "train_a": len(tensors["train_a"]),
            "train_b": len(tensors["train_b"]),
            "test": len(tensors["test_a"]),
        },
    }


# -- the user's unpaired folders ------------------------------------------------------------------
def split_unpaired(train_images: Tensor, test_images: Tensor,
                   counts: dict[str, tuple[int, int]]) -> dict[str, Tensor]:  # fmt: skip
    """The tensors of domains.pt for unpaired folders: each split is A's images, then B's."""
    n_train, n_test = counts["train"][0], counts["test"][0]
    # clones: a saved slice would carry the whole split's storage with it
    return {
        "train_a": train_images[:n_train].clone(),
        "train_b": train_images[n_train:].clone(),
        "train_a_index": torch.arange(n_train),
        "train_b_index": torch.arange(n_train, len(train_images)),
        "test_a": test_images[:n_test].clone(),
        "test_b": test_images[n_test:].clone(),
    }


def describe_unpaired(tensors: dict[str, Tensor], folder: str | Path,
                      sha256: str) -> dict[str, Any]:  # fmt: skip
    """The manifest entry of unpaired domains: "<folder name>:A" and ":B", counts per domain and
    split, and the checksum of the files read (what identifies them, wherever they lie)."""
    name = Path(folder).name or UNPAIRED
    return {
        "file": DOMAINS_FILE,
        "source": UNPAIRED,
        "paired": False,
        "folder": str(folder),
        "domain_a": f"{name}:A",
        "domain_b": f"{name}:B",
        "sha256": sha256,
        "counts": {k: len(tensors[k]) for k in ("train_a", "train_b", "test_a", "test_b")},
    }


# -- reading them back ---------------------------------------------------------------------------
@dataclass
class Domains:
    """The two domains as uint8 tensors on the CPU (labels are never used for training).

    Built domains (paired) have labels and true test pairs; unpaired folders have neither: their
    label fields are None and test_a, test_b are unrelated images, possibly of other counts."""

    train_a: Tensor  # [N_a, C, H, W]: images of one half, as they are (unpaired: trainA/)
    train_b: Tensor  # [N_b, C, H, W]: T(images of the other half) (unpaired: trainB/)
    train_a_index: Tensor  # source indices into the prepared training set
    train_b_index: Tensor
    test_a: Tensor  # the test images (unpaired: testA/)
    test_b: Tensor  # their true pairs T(test images) (unpaired: testB/, no pairs)
    info: dict[str, Any]  # the manifest entry: transform, its knobs, names, counts
    train_a_labels: Tensor | None = None
    train_b_labels: Tensor | None = None
    test_labels: Tensor | None = None

    @property
    def paired(self) -> bool:
        """Whether test_b holds the true pairs of test_a (files from before unpaired folders
        existed have no "paired" entry: they are all built domains)."""
        return bool(self.info.get("paired", True))

    @property
    def domain_a(self) -> str:
        return self.info["domain_a"]

    @property
    def domain_b(self) -> str:
        return self.info["domain_b"]

    @property
    def train_count(self) -> int:
        """The size of the prepared training set the halves were cut from."""
        return len(self.train_a) + len(self.train_b)

    def identity(self) -> dict[str, Any]:
        """What identifies this data for a training checkpoint (not where its files lie)."""
        return {k: v for k, v in self.info.items() if k not in ("file", "folder")}


def save_domains(tensors: dict[str, Tensor], info: dict[str, Any], prepared_dir: Path) -> Path:
    from genmodels.io import save_torch

    return save_torch({**tensors, "info": info}, Path(prepared_dir) / DOMAINS_FILE)


def load_domains(prepared_dir: str | Path = "data/prepared") -> Domains:
    from genmodels.io import load_torch

    path = Path(prepared_dir) / DOMAINS_FILE
    content = load_torch(path, "domain pairs for the CycleGAN", REPRO_HINT)
    info = content.get("info") if isinstance(content, dict) else None
    paired = not isinstance(info, dict) or info.get("paired", True)
    keys = TENSOR_KEYS if paired else UNPAIRED_KEYS
    missing = [k for k in (*keys, "info") if not isinstance(content, dict) or k not in content]
    if missing:
        raise UserError(f"{path}: not a domains file (missing {', '.join(missing)}); {REPRO_HINT}")
    images = [content[k] for k in ("train_a", "train_b", "test_a", "test_b")]
    # pairs share their count; unpaired domains only their image shape
    a, b = content["test_a"].shape, content["test_b"].shape
    if any(t.dtype != torch.uint8 or t.ndim != 4 for t in images) or (
        a != b if paired else len({t.shape[1:] for t in images}) != 1
    ):
        expected = "paired tests" if paired else "one image shape"
        raise UserError(f"{path}: expected uint8 [N, C, H, W] images with {expected}; {REPRO_HINT}")
    return Domains(**{k: content[k] for k in keys}, info=info)
