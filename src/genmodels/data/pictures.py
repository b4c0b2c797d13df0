"""Which files are images and how one is decoded: Pillow only, no torch, so that the file
command line (`genmodels upscale ...`) reads a file exactly as `prepare` does.

Every file is decoded with Pillow (EXIF orientation applied), 16-bit and float images brought to
8 bits by their range, transparency shown on white, and converted to grayscale or RGB; when a
size is set, it is scaled on its shorter side and centre-cropped (`ImageOps.fit`).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
SUFFIX_LIST = "PNG, JPEG, WebP, BMP or TIFF"
# formats whose orientation tag lives outside info["exif"] or usually comes with the file
ORIENTED_FORMATS = frozenset({"JPEG", "MPO", "TIFF", "WEBP"})
# what Pillow names the formats of IMAGE_SUFFIXES (JPEG files from phones may be MPO)
IMAGE_FORMATS = frozenset({"PNG", "JPEG", "MPO", "WEBP", "BMP", "DIB", "TIFF"})


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def find_images(folder: Path) -> list[Path]:
    """Every image file under `folder`, its subfolders included, in sorted order (hidden files
    and folders left out)."""
    found = []
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found += [Path(directory) / name for name in sorted(files) if is_image_file(Path(name))]
    return found


def to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and float images (PNG, TIFF) brought to 8 bits by their range, not clipped."""
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image, dtype=np.int64)
        top = 65535 if image.mode.startswith("I;16") or values.max() > 255 else 255
        return Image.fromarray((values * 255 // top).clip(0, 255).astype(np.uint8))
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if values.max() <= 1.0 else 1.0
        return Image.fromarray((values * scale).round().clip(0, 255).astype(np.uint8))
    return image


def fit(image: Image.Image, channels: int, size: int | None) -> Image.Image:
    """An opened image as 8-bit grayscale (channels 1) or RGB (3), upright, and fitted to
    size x size (shorter side scaled, centre crop) when a size is given."""
    image.load()  # decodes now: a truncated file fails here
    if image.format in ORIENTED_FORMATS or "exif" in image.info:  # reading EXIF costs time
        image = ImageOps.exif_transpose(image)
    image = to_8bit(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # transparent pixels shown on white, as a viewer does, not on black
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    mode = "L" if channels == 1 else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    if size is not None and image.size != (size, size):
        image = ImageOps.fit(image, (size, size), Image.Resampling.BICUBIC)
    return image


def decode(data: bytes, channels: int, size: int | None) -> Image.Image:
    """One file's bytes through `fit`."""
    with Image.open(io.BytesIO(data)) as opened:
        return fit(opened, channels, size)
