"""Real colour photographs that ship inside installed packages, so that a machine with no
network can still train and measure on photos: scikit-image's `skimage.data` and scikit-learn's
sample images.

Photos are split whole, with a seed, before any crop is taken: no crop of a test photo is
ever trained on. Training takes seeded random crops of each training photo; testing tiles each
held-out photo with non-overlapping crops.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from genmodels.data.tiles import grid_crops, tile_grid
from genmodels.errors import UserError


@dataclass(frozen=True)
class PackagedPhoto:
    name: str
    origin: str  # the public call that returns it


# Distinct scenes only: skimage's `cat` is `chelsea`, and the right view of the stereo
# motorcycle would put the left one's scene on both sides of the split.
PACKAGED_PHOTOS = (
    PackagedPhoto("astronaut", "skimage.data.astronaut()"),
    PackagedPhoto("chelsea", "skimage.data.chelsea()"),
    PackagedPhoto("coffee", "skimage.data.coffee()"),
    PackagedPhoto("hubble_deep_field", "skimage.data.hubble_deep_field()"),
    PackagedPhoto("immunohistochemistry", "skimage.data.immunohistochemistry()"),
    PackagedPhoto("motorcycle", "skimage.data.stereo_motorcycle()[0]"),
    PackagedPhoto("retina", "skimage.data.retina()"),
    PackagedPhoto("rocket", "skimage.data.rocket()"),
    PackagedPhoto("china", "sklearn.datasets.load_sample_image('china.jpg')"),
    PackagedPhoto("flower", "sklearn.datasets.load_sample_image('flower.jpg')"),
)


def load_photo(name: str) -> np.ndarray:
    """One packaged photo as uint8 [H, W, 3]."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return np.ascontiguousarray(load_sample_image(f"{name}.jpg"))
    try:
        import skimage.data
    except ImportError:
        raise UserError(
            "the packaged photos need scikit-image: `uv sync` installs it from uv.lock"
        ) from None
    if name == "motorcycle":
        return np.ascontiguousarray(skimage.data.stereo_motorcycle()[0])
    return np.ascontiguousarray(getattr(skimage.data, name)())


def split_photos(names: list[str], test_photos: int, seed: int) -> tuple[list[str], list[str]]:
    """A seeded choice of `test_photos` whole photos held out; the rest train."""
    if not 0 < test_photos < len(names):
        raise UserError(
            f"data.test_photos: {test_photos} of {len(names)} photos; hold out at least 1 and "
            f"leave at least 1 to train on"
        )
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    test = sorted(order[:test_photos])
    return [n for i, n in enumerate(names) if i not in test], [names[i] for i in test]


def _as_chw(photo: np.ndarray, channels: int) -> torch.Tensor:
    if channels == 1:  # Pillow's luma, as every other source converts
        photo = np.array(Image.fromarray(photo).convert("L"))[..., None]
    return torch.from_numpy(np.array(photo)).permute(2, 0, 1)  # a writable copy


def cut_patches(image: torch.Tensor, what: str, crop_size: int, train: bool, count: int,
                generator: torch.Generator) -> tuple[torch.Tensor, tuple[int, int] | None]:  # fmt: skip
    """A training image's `count` random crops, or a test image's grid of tiles and its rows
    and columns; `what` names the image in the error when it is smaller than a crop."""
    if min(image.shape[-2:]) < crop_size:
        raise UserError(
            f"data.crop_size: {crop_size} is larger than {what} "
            f"({image.shape[-1]}x{image.shape[-2]}); set it to at most {min(image.shape[-2:])}"
        )
    if train:
        return random_crops(image, crop_size, count, generator), None
    return grid_crops(image, crop_size), tile_grid(image, crop_size)


def random_crops(
    image: torch.Tensor, crop_size: int, count: int, generator: torch.Generator
) -> torch.Tensor:
    """`count` crops of crop_size x crop_size at seeded random places: [count, C, s, s]."""
    height, width = image.shape[-2:]
    tops = torch.randint(0, height - crop_size + 1, (count,), generator=generator).tolist()
    lefts = torch.randint(0, width - crop_size + 1, (count,), generator=generator).tolist()
    return torch.stack(
        [image[:, t : t + crop_size, x : x + crop_size] for t, x in zip(tops, lefts, strict=True)]
    )


@dataclass
class PhotoPatches:
    train: torch.Tensor  # uint8 [N, C, s, s], random crops of the training photos
    test: torch.Tensor  # uint8 [M, C, s, s], tiles of the held-out photos
    source: dict  # per photo: origin, size, sha256, split; for the manifest
    test_grids: list[list[int]]  # per held-out photo, in order: the rows and columns of its tiles


def load_photo_patches(
    crop_size: int, crops_per_photo: int, test_photos: int, seed: int, channels: int = 3
) -> PhotoPatches:
    """Patches of the packaged photos, split by photo."""
    names = [photo.name for photo in PACKAGED_PHOTOS]
    origins = {photo.name: photo.origin for photo in PACKAGED_PHOTOS}
    train_names, test_names = split_photos(names, test_photos, seed)
    generator = torch.Generator().manual_seed(seed)
    patches: dict[str, list[torch.Tensor]] = {"train": [], "test": []}
    source, test_grids = {}, []
    for name in names:
        photo = load_photo(name)
        image = _as_chw(photo, channels)
        split = "test" if name in test_names else "train"
        crops, grid = cut_patches(image, f"the photo {name}", crop_size, split == "train",
                                  crops_per_photo, generator)  # fmt: skip
        patches[split].append(crops)
        if grid is not None:
            test_grids.append(list(grid))
        source[name] = {
            "origin": origins[name],
            "size": [photo.shape[1], photo.shape[0]],
            "sha256": hashlib.sha256(photo.tobytes()).hexdigest(),
            "split": split,
            "patches": len(crops),
        }
    return PhotoPatches(torch.cat(patches["train"]), torch.cat(patches["test"]), source, test_grids)
