"""Images cut into a grid of non-overlapping tiles and put together again: the test split of
`data.resize: crops`, which super-resolution measures whole (genmodels.models.srgan)."""

from __future__ import annotations

import torch


def tile_grid(image: torch.Tensor, crop_size: int) -> tuple[int, int]:
    """The rows and columns of grid_crops' tiles of `image`."""
    height, width = image.shape[-2:]
    return height // crop_size, width // crop_size


def grid_crops(image: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Non-overlapping crops tiling the image's centre, row by row: [k, C, s, s]."""
    height, width = image.shape[-2:]
    rows, cols = tile_grid(image, crop_size)
    top, left = (height - rows * crop_size) // 2, (width - cols * crop_size) // 2
    tiles = image[:, top : top + rows * crop_size, left : left + cols * crop_size]
    tiles = tiles.unfold(1, crop_size, crop_size).unfold(2, crop_size, crop_size)
    return tiles.permute(1, 2, 0, 3, 4).reshape(-1, image.shape[0], crop_size, crop_size)


def mosaic(tiles: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """grid_crops undone: rows x cols tiles [k, C, s, s], row by row, as one [C, H, W] image."""
    k, channels, height, width = tiles.shape
    if k != rows * cols:
        raise ValueError(f"{k} tiles do not make a {rows}x{cols} grid")
    grid = tiles.reshape(rows, cols, channels, height, width).permute(2, 0, 3, 1, 4)
    return grid.reshape(channels, rows * height, cols * width)
