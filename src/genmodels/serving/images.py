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

from genmodels.data.pictures import IMAGE_FORMATS, SUFFIX_LIST, to_8bit


class ImageError(ValueError):
    """An uploaded image the service cannot use; the message says why."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def decode_base64_image(
    data: str, max_side: int, channels: int = 1, convert: bool = True
) -> np.ndarray:
    """A base64 image file (PNG, JPEG, WebP, BMP or TIFF; a data: URL prefix is allowed) as
    float32 [C, H, W] in [0, 1], grayscale (C = 1) or RGB (C = 3) as the model takes it.

    Width and height above max_side are refused before the pixels are decoded. With convert
    off, an image of the other kind (grayscale for an RGB model, colour for a grayscale one) is
    refused instead of converted.
    """
    if data.startswith("data:"):
        _, _, data = data.partition(",")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("image: not valid base64; send the image file base64-encoded") from None
    if not raw:
        raise ImageError("image: empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw))
            if img.format not in IMAGE_FORMATS:
                raise ImageError(f"image: {img.format} is not supported; send a {SUFFIX_LIST}")
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
        raise ImageError(f"image: cannot be decoded as {SUFFIX_LIST} ({exc})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("image: too many pixels", status=413) from None
    gray = is_grayscale(img)
    if not convert and gray != (channels == 1):
        have, need, article = ("grayscale", "RGB", "an") if gray else ("colour", "grayscale", "a")
        raise ImageError(
            f"image: {have}, but this model takes {need} images; send {article} {need} image or set "
            '"convert": true'
        )
    img = to_8bit(img)  # 16-bit and float pixels by their range: 49152 of 65535 is 0.75, not 1
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # transparent pixels count as background (black, as in the training data)
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
    pixels = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1).copy()


def is_grayscale(img: Image.Image) -> bool:
    """One channel of values (alpha aside), or a palette of greys only."""
    return img.mode in GRAY_MODES or (img.mode == "P" and _palette_is_gray(img))


def _palette_is_gray(img: Image.Image) -> bool:
    colours = np.asarray(img.convert("RGB"))
    return bool((colours[..., 0] == colours[..., 1]).all() and
                (colours[..., 1] == colours[..., 2]).all())  # fmt: skip


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """[C, H, W] float in [0, 1] resized with Pillow's area-aware filter, channel by channel."""
    if image.shape[1:] == (height, width):
        return image
    method = Image.Resampling.BOX if image.shape[1] > height else Image.Resampling.BILINEAR
    planes = [
        np.asarray(Image.fromarray(plane.astype(np.float32)).resize((width, height), method))
        for plane in image
    ]
    return np.clip(np.stack(planes).astype(np.float32), 0.0, 1.0)


def png_grid(images: np.ndarray, nrow: int | None = None, padding: int = 2) -> bytes:
    """A PNG of a grid of [N, C, H, W] images in [0, 1], C 1 or 3 (like torchvision's
    make_grid)."""
    n, c, h, w = images.shape
    nrow = max(1, min(nrow or math.ceil(math.sqrt(n)), n))
    rows = math.ceil(n / nrow)
    images = images.transpose(0, 2, 3, 1)  # NHWC
    if not np.isfinite(images).all():
        images = np.nan_to_num(images)
    pixels = (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if n == 1:  # a single image without a frame
        return encode_png(pixels[0])
    grid = np.zeros((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = pixels[i]
    return encode_png(grid)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(pixels: np.ndarray) -> bytes:
    """An 8-bit grayscale or RGB PNG of a uint8 [H, W] or [H, W, C] array (C 1 or 3), written
    directly.

    The format is small enough to write by hand, and this is the hot path of one-sample
    requests: Pillow's plugin machinery costs several times the compression.
    """
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    h, w, c = pixels.shape
    rows = np.zeros((h, w * c + 1), np.uint8)  # filter type 0 (none) before every row
    rows[:, 1:] = pixels.reshape(h, w * c)
    colour_type = 0 if c == 1 else 2  # grayscale or truecolour, 8 bits, no interlace
    header = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
        + _chunk(b"IEND", b"")
    )
