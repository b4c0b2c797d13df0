"""The photos packaged in scikit-image and scikit-learn, split whole and cut into patches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from genmodels.data.photos import (
    PACKAGED_PHOTOS,
    load_photo,
    load_photo_patches,
    random_crops,
    split_photos,
)
from genmodels.data.tiles import grid_crops, mosaic
from genmodels.errors import UserError

NAMES = [photo.name for photo in PACKAGED_PHOTOS]


def coordinates(height: int, width: int) -> torch.Tensor:
    """[2, H, W] holding each pixel's own row and column: a crop shows where it came from."""
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([rows, cols])


def test_every_packaged_photo_is_a_distinct_colour_photo():
    digests = set()
    for name in NAMES:
        photo = load_photo(name)
        assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3
        assert min(photo.shape[:2]) >= 300 and photo.std() > 20  # a real picture, not flat
        channels = photo.reshape(-1, 3).astype(np.int16)
        assert np.abs(channels[:, 0] - channels[:, 1]).mean() > 2  # colour, not gray in RGB
        digests.add(photo.tobytes()[:100_000])
    assert len(digests) == len(NAMES)


def test_the_split_holds_out_whole_photos_by_seed():
    train, test = split_photos(NAMES, 3, seed=0)
    assert len(test) == 3 and sorted(train + test) == sorted(NAMES)
    assert split_photos(NAMES, 3, seed=0) == (train, test)
    assert any(split_photos(NAMES, 3, seed=s)[1] != test for s in range(1, 5))
    for bad in (0, len(NAMES)):
        with pytest.raises(UserError, match=r"data.test_photos: .* hold out at least 1"):
            split_photos(NAMES, bad, seed=0)


def test_random_crops_are_slices_of_the_image():
    image = coordinates(40, 60)
    crops = random_crops(image, 16, 50, torch.Generator().manual_seed(0))
    assert crops.shape == (50, 2, 16, 16)
    for crop in crops:
        top, left = int(crop[0, 0, 0]), int(crop[1, 0, 0])
        assert torch.equal(crop, image[:, top : top + 16, left : left + 16])
    corners = {(int(c[0, 0, 0]), int(c[1, 0, 0])) for c in crops}
    assert (
        len(corners) > 40 and max(t for t, _ in corners) <= 24 and max(x for _, x in corners) <= 44
    )


def test_grid_crops_tile_the_centre_without_overlap():
    image = coordinates(50, 70)
    tiles = grid_crops(image, 16)  # 3 rows of 4, centred: 1 row and 3 columns left over
    assert tiles.shape == (12, 2, 16, 16)
    corners = [(int(t[0, 0, 0]), int(t[1, 0, 0])) for t in tiles]
    assert corners == [(1 + 16 * r, 3 + 16 * c) for r in range(3) for c in range(4)]


def test_a_mosaic_of_the_grid_is_the_tiled_centre():
    image = coordinates(50, 70)
    assert torch.equal(mosaic(grid_crops(image, 16), 3, 4), image[:, 1:49, 3:67])
    with pytest.raises(ValueError, match="12 tiles do not make a 4x4 grid"):
        mosaic(grid_crops(image, 16), 4, 4)


def test_test_grids_make_the_held_out_photos_whole_again():
    patches = load_photo_patches(crop_size=96, crops_per_photo=1, test_photos=2, seed=0)
    test_names = [n for n, entry in patches.source.items() if entry["split"] == "test"]
    start = 0
    for name, (rows, cols) in zip(test_names, patches.test_grids, strict=True):
        photo = torch.from_numpy(load_photo(name)).permute(2, 0, 1)
        tiles = patches.test[start : start + rows * cols]
        start += rows * cols
        top, left = (photo.shape[1] - rows * 96) // 2, (photo.shape[2] - cols * 96) // 2
        centre = photo[:, top : top + rows * 96, left : left + cols * 96]
        assert torch.equal(mosaic(tiles, rows, cols), centre), name
    assert start == len(patches.test)


def test_patches_of_test_photos_never_reach_training():
    patches = load_photo_patches(crop_size=96, crops_per_photo=5, test_photos=3, seed=0)
    test_names = [n for n, entry in patches.source.items() if entry["split"] == "test"]
    assert len(test_names) == 3 and patches.train.shape == (5 * 7, 3, 96, 96)
    tiles = [grid_crops(torch.from_numpy(load_photo(n)).permute(2, 0, 1), 96) for n in test_names]
    assert torch.equal(patches.test, torch.cat(tiles))
    # no training patch is found inside any held-out photo
    held_out = [torch.from_numpy(load_photo(n)).permute(2, 0, 1) for n in test_names]
    for patch in patches.train[::5]:
        for photo in held_out:
            windows = photo.unfold(1, 96, 1).unfold(2, 96, 1)  # every 96x96 window
            corner = (windows[:, :, :, 0, 0] == patch[:, None, None, 0, 0]).all(0)
            for top, left in corner.nonzero().tolist():
                assert not torch.equal(windows[:, top, left], patch)
    assert {entry["sha256"] for entry in patches.source.values()}.__len__() == len(NAMES)


def test_grayscale_patches_are_pillows_luma():
    patches = load_photo_patches(crop_size=64, crops_per_photo=1, test_photos=2, seed=1, channels=1)
    name = next(n for n, e in patches.source.items() if e["split"] == "test")
    gray = torch.from_numpy(np.array(Image.fromarray(load_photo(name)).convert("L")))[None]
    assert patches.test.shape[1] == 1 and torch.equal(patches.test[: patches.source[name]["patches"]],
                                                      grid_crops(gray, 64))  # fmt: skip


def test_a_crop_larger_than_a_photo_names_the_key():
    with pytest.raises(UserError, match=r"data.crop_size: 400 is larger than the photo chelsea"):
        load_photo_patches(crop_size=400, crops_per_photo=1, test_photos=2, seed=0)
