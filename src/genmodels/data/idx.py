"""Reading and validating IDX files (the MNIST format), plain or gzipped.

Every check that fails raises a UserError naming the file: a damaged download must never turn
into a silently smaller or garbled dataset.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from genmodels.errors import UserError

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
IMAGE_SIZE = 28
NUM_CLASSES = 10

GZIP_MAGIC = b"\x1f\x8b"
FIX_HINT = "delete it and run again to fetch a fresh copy, or replace it with an intact one"


def _fail(path: Path, problem: str) -> UserError:
    return UserError(f"{path}: {problem}; {FIX_HINT}")


def read_idx_bytes(path: str | Path) -> bytes:
    """The file's content, gunzipped when it is gzip (by suffix or by its first bytes)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if path.suffix != ".gz" and not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise _fail(path, f"corrupt gzip stream ({str(exc) or type(exc).__name__})") from None


def _header(data: bytes, path: Path, expected_magic: int, ndims: int) -> tuple[int, ...]:
    """The dimensions that the header declares, after checking the magic number."""
    header_size = 4 + 4 * ndims
    if len(data) < header_size:
        raise _fail(path, f"too short for an IDX header ({len(data)} bytes, need {header_size})")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise _fail(
            path,
            f"not an IDX file of this kind: magic 0x{magic:08x}, expected 0x{expected_magic:08x}",
        )
    return tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndims, offset=4))


def _check_size(data: bytes, path: Path, header_size: int, count: int, item_size: int) -> None:
    expected = header_size + count * item_size
    if len(data) < expected:
        raise _fail(
            path,
            f"truncated: the header declares {count} items ({expected} bytes) "
            f"but the content has {len(data)} bytes",
        )
    if len(data) > expected:
        raise _fail(
            path,
            f"{len(data) - expected} trailing bytes after the {count} items the header declares",
        )


def read_images(path: str | Path) -> torch.Tensor:
    """An IDX image file as a uint8 tensor [N, 1, 28, 28]."""
    path = Path(path)
    data = read_idx_bytes(path)
    count, rows, cols = _header(data, path, IMAGES_MAGIC, ndims=3)
    if (rows, cols) != (IMAGE_SIZE, IMAGE_SIZE):
        raise _fail(path, f"images are {rows}x{cols}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
    _check_size(data, path, header_size=16, count=count, item_size=rows * cols)
    pixels = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, 1, rows, cols)
    return torch.from_numpy(pixels.copy())  # copy: frombuffer views read-only bytes


def read_labels(path: str | Path, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """An IDX label file as an int64 tensor [N], every value in 0..num_classes-1."""
    path = Path(path)
    data = read_idx_bytes(path)
    (count,) = _header(data, path, LABELS_MAGIC, ndims=1)
    _check_size(data, path, header_size=8, count=count, item_size=1)
    labels = np.frombuffer(data, dtype=np.uint8, offset=8)
    out_of_range = np.flatnonzero(labels >= num_classes)
    if out_of_range.size:
        first = int(out_of_range[0])
        raise _fail(
            path,
            f"{out_of_range.size} labels outside 0..{num_classes - 1} "
            f"(first: {labels[first]} at index {first})",
        )
    return torch.from_numpy(labels.astype(np.int64))


def read_split(
    images_path: str | Path, labels_path: str | Path
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of one split, checked to pair up one to one."""
    images = read_images(images_path)
    labels = read_labels(labels_path)
    if len(images) != len(labels):
        raise UserError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
            f"labels; the two files do not belong together: {FIX_HINT}"
        )
    return images, labels
