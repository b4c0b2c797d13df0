"""Images in and out of the service with numpy and Pillow: no torch at serving time."""

from __future__ import annotations

import base64
import binascii
import io
import math
import struct
import warnings
import zlib

import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageError(ValueError):
    """An uploaded image the service cannot use; the message says why."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def decode_base64_image(data: str, max_side: int) -> np.ndarray:
    """A base64 PNG or JPEG (a data: URL prefix is allowed) as grayscale float32 [H, W] in [0, 1].

    Width and height above max_side are refused before the pixels are decoded.
    """
    if data.startswith("data:"):
        _, _, data = data.partition(",")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError(
            "image: not valid base64; send the PNG or JPEG file base64-encoded"
        ) from None
    if not raw:
        raise ImageError("image: empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw))
            if img.format not in ("PNG", "JPEG"):
                raise ImageError(f"image: {img.format} is not supported; send a PNG or a JPEG")
            width, height = img.size
            if width > max_side or height > max_side:
                raise ImageError(
                    f"image: {width}x{height} pixels is larger than the limit of "
                    f"{max_side}x{max_side}",
                    status=413,
                )
            img.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"image: cannot be decoded as PNG or JPEG ({exc})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("image: too many pixels", status=413) from None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # transparent pixels count as background (black, as in the training data)
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
    gray = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    return gray


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """[H, W] float in [0, 1] resized with Pillow's area-aware filter."""
    if image.shape == (height, width):
        return image
    img = Image.fromarray(image.astype(np.float32))  # mode F
    out = img.resize(
        (width, height),
        Image.Resampling.BOX if image.shape[0] > height else Image.Resampling.BILINEAR,
    )
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def png_grid(images: np.ndarray, nrow: int | None = None, padding: int = 2) -> bytes:
    """A PNG of a grid of [N, 1, H, W] images in [0, 1] (like torchvision's make_grid)."""
    n, _, h, w = images.shape
    nrow = max(1, min(nrow or math.ceil(math.sqrt(n)), n))
    rows = math.ceil(n / nrow)
    images = images[:, 0]
    if not np.isfinite(images).all():
        images = np.nan_to_num(images)
    pixels = (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if n == 1:  # a single image without a frame
        return encode_png(pixels[0])
    grid = np.zeros((rows * (h + padding) + padding, nrow * (w + padding) + padding), np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + c * (w + padding)
        grid[y : y + h, x : x + w] = pixels[i]
    return encode_png(grid)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(gray: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of a [H, W] uint8 array, written directly.

    The format is small enough to write by hand, and this is the hot path of one-sample
    requests: Pillow's plugin machinery costs several times the compression.
    """
    h, w = gray.shape
    rows = np.zeros((h, w + 1), np.uint8)  # filter type 0 (none) before every row
    rows[:, 1:] = gray
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit, grayscale, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
        + _chunk(b"IEND", b"")
    )
