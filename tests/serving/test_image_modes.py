"""Every image mode Pillow decodes reaches a model with its values in [0, 1]: through the
service's upload decoding and through the file commands' (prepare's) decoding."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from genmodels.data.pictures import decode
from genmodels.serving.images import decode_base64_image

pytestmark = pytest.mark.faults

QUARTERS = np.array([[0.25, 0.75], [0.0, 1.0]])  # the grey levels each test image holds


def _palette_image() -> Image.Image:
    image = Image.frombytes("P", (2, 2), np.array([[1, 3], [0, 4]], np.uint8).tobytes())
    image.putpalette([0, 0, 0, 64, 64, 64, 0, 0, 0, 191, 191, 191, 255, 255, 255] + [0] * 753)
    return image


def _mode_images() -> dict[str, tuple[Image.Image, str]]:
    """One 2x2 image per mode, holding QUARTERS in that mode's own range, and the file format
    that keeps the mode."""
    grey8 = np.round(QUARTERS * 255).astype(np.uint8)
    cmyk = np.zeros((2, 2, 4), np.uint8)
    cmyk[..., 3] = 255 - grey8  # black ink only: grey = 1 - K
    la = np.stack([grey8, np.full_like(grey8, 255)], axis=-1)
    return {
        "1": (Image.fromarray(QUARTERS >= 0.5), "PNG"),
        "L": (Image.fromarray(grey8), "PNG"),
        "I;16": (Image.fromarray(np.round(QUARTERS * 65535).astype(np.uint16)), "PNG"),
        "I": (Image.fromarray(np.round(QUARTERS * 65535).astype(np.int32)), "TIFF"),
        "F": (Image.fromarray(QUARTERS.astype(np.float32)), "TIFF"),
        "P": (_palette_image(), "PNG"),
        "RGB": (Image.fromarray(np.stack([grey8] * 3, axis=-1)), "PNG"),
        "RGBA": (Image.fromarray(np.stack([grey8] * 3 + [la[..., 1]], axis=-1)), "PNG"),
        "CMYK": (Image.frombytes("CMYK", (2, 2), cmyk.tobytes()), "TIFF"),
        "LA": (Image.frombytes("LA", (2, 2), la.tobytes()), "PNG"),
    }


def _file_bytes(image: Image.Image, file_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, file_format)
    written = Image.open(io.BytesIO(buffer.getvalue()))
    assert written.mode == image.mode, f"{file_format} did not keep mode {image.mode}"
    return buffer.getvalue()


def _expected(mode: str) -> np.ndarray:
    return (QUARTERS >= 0.5).astype(float) if mode == "1" else QUARTERS


@pytest.mark.parametrize("mode", list(_mode_images()))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_pillow_mode_reaches_the_service_in_the_unit_range(mode, channels):
    image, file_format = _mode_images()[mode]
    data = base64.b64encode(_file_bytes(image, file_format)).decode()
    pixels = decode_base64_image(data, max_side=64, channels=channels)
    assert pixels.shape == (channels, 2, 2) and pixels.dtype == np.float32
    for plane in pixels:  # one 8-bit step of tolerance: the models take 8-bit pictures
        np.testing.assert_allclose(plane, _expected(mode), atol=1 / 255 + 1e-6)


@pytest.mark.parametrize("mode", list(_mode_images()))
def test_every_pillow_mode_is_read_the_same_way_from_files(mode):
    image, file_format = _mode_images()[mode]
    picture = decode(_file_bytes(image, file_format), channels=1, size=None)
    np.testing.assert_allclose(np.asarray(picture) / 255, _expected(mode), atol=1 / 255 + 1e-6)


def test_sixteen_bit_levels_stay_apart():
    """The defect: 16384 and 49152 both reached the model as 1.0."""
    image = Image.fromarray(np.array([[16384, 49152]], np.uint16))
    data = base64.b64encode(_file_bytes(image, "PNG")).decode()
    pixels = decode_base64_image(data, max_side=64, channels=1)[0, 0]
    assert pixels[0] == pytest.approx(0.25, abs=1 / 255) and pixels[1] == pytest.approx(
        0.75, abs=1 / 255
    )
