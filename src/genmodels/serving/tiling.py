"""Fully convolutional graphs on images of any size: overlapping tiles, blended without seams.

Each tile shares `overlap` input pixels with each neighbour. A tile's output pixels near its
edges lack the context the whole image would give them, so its blending weight is zero over
the outer quarter of each shared strip and ramps linearly across the middle half; the weights
are divided by their sum, so they add up to one everywhere. Where the overlap covers the
graph's receptive field, the tiled result equals the whole-image result.

Memory: the output is filled one row of tiles at a time. Only one band of float outputs (a
tile's height) is held beside the finished output, which is stored in the caller's dtype
(uint8 for files), never the whole image in float.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Runner = Callable[[np.ndarray], np.ndarray]  # [1, C, h, w] float32 -> [1, C', s*h, s*w]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread starts of `tile`-long windows covering [0, length), neighbours sharing at
    least `overlap`; one window when it covers the whole."""
    if length <= tile:
        return [0]
    count = 1 + math.ceil((length - tile) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _ramp(size: int, before: int, after: int) -> np.ndarray:
    """Weights along one axis of a tile of `size` output pixels that shares `before` pixels
    with the previous tile and `after` with the next (0: no neighbour on that side)."""
    weight = np.ones(size, np.float32)
    position = np.arange(size, dtype=np.float32) + 0.5
    if before:
        weight *= np.clip((position - before / 4) / (before / 2), 0.0, 1.0)
    if after:
        weight *= np.clip((size - position - after / 4) / (after / 2), 0.0, 1.0)
    return weight


def _to_output(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        return (np.clip(values, 0.0, 1.0) * 255.0 + 0.5).astype(dtype)
    return values.astype(dtype)


def run_tiled(
    run: Runner,
    image: np.ndarray,
    scale: int,
    tile: int,
    overlap: int,
    dtype: type = np.uint8,
    on_tile: Callable[[], None] | None = None,
) -> np.ndarray:
    """`run` over `image` ([C, H, W] float32 in [0, 1]) in tiles; the output as [s*H, s*W, C']
    in `dtype` (uint8: 0..255; a float dtype: the graph's values)."""
    _, height, width = image.shape
    rows = tile_starts(height, tile, overlap)
    cols = tile_starts(width, tile, overlap)
    tile_h, tile_w = min(tile, height), min(tile, width)
    band_h = tile_h * scale
    out: np.ndarray | None = None
    band = weights = None
    band_top = 0  # the output row band[0] stands for: the current tile row's top
    for r, y in enumerate(rows):
        shared_above = rows[r - 1] + tile_h - y if r else 0
        shared_below = y + tile_h - rows[r + 1] if r + 1 < len(rows) else 0
        ramp_y = _ramp(band_h, shared_above * scale, shared_below * scale)
        for c, x in enumerate(cols):
            shared_left = cols[c - 1] + tile_w - x if c else 0
            shared_right = x + tile_w - cols[c + 1] if c + 1 < len(cols) else 0
            ramp_x = _ramp(tile_w * scale, shared_left * scale, shared_right * scale)
            piece = run(np.ascontiguousarray(image[None, :, y : y + tile_h, x : x + tile_w]))[0]
            if piece.shape[1:] != (band_h, tile_w * scale):
                raise ValueError(
                    f"a {tile_w}x{tile_h} tile came out {piece.shape[2]}x{piece.shape[1]}, "
                    f"not {scale}x its size: the graph is not fully convolutional at scale {scale}"
                )
            if out is None:
                channels = piece.shape[0]
                out = np.empty((height * scale, width * scale, channels), dtype)
                band = np.zeros((channels, band_h, width * scale), np.float32)
                weights = np.zeros((band_h, width * scale), np.float32)
            w = ramp_y[:, None] * ramp_x[None, :]
            band[:, :, x * scale : (x + tile_w) * scale] += piece * w
            weights[:, x * scale : (x + tile_w) * scale] += w
            if on_tile is not None:
                on_tile()
        # rows above the next tile row get nothing more: finish them, shift the rest up
        done = (rows[r + 1] if r + 1 < len(rows) else height) * scale - band_top
        finished = band[:, :done] / np.maximum(weights[:done], 1e-12)
        out[band_top : band_top + done] = _to_output(finished.transpose(1, 2, 0), out.dtype)
        band = np.concatenate([band[:, done:], np.zeros_like(band[:, :done])], axis=1)
        weights = np.concatenate([weights[done:], np.zeros_like(weights[:done])], axis=0)
        band_top += done
    assert out is not None
    return out


def tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    return len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))
