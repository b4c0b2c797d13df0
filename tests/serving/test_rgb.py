"""The service on RGB models that take any size: colour in and out, grayscale converted or
refused, /models saying channels, size and scale."""

from __future__ import annotations

import base64
import io

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from genmodels.config import ServeParams
from genmodels.serving import ModelStore, create_app
from tiny_graphs import export_rgb_models

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def rgb_exported(tmp_path_factory):
    return export_rgb_models(tmp_path_factory.mktemp("rgb"))


@pytest.fixture(scope="module")
def client(rgb_exported):
    store = ModelStore.scan(rgb_exported)
    with TestClient(create_app(store, ServeParams(max_upscale_side=64))) as c:
        yield c


def encoded(pixels: np.ndarray, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def test_models_report_channels_size_and_scale(client):
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert (models["photo_sr"]["channels"], models["photo_sr"]["size"]) == (3, [16, 16])
    assert models["photo_sr"]["scale"] == 2
    assert (models["photo2edges"]["channels"], models["photo2edges"]["size"]) == (3, [32, 32])
    shape = models["photo_sr"]["graphs"]["generator"]["inputs"][0]["shape"]
    assert shape[1] == 3 and isinstance(shape[2], str) and isinstance(shape[3], str)


def test_a_colour_photo_is_upscaled_in_colour(client, rgb_exported):
    photo = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    r = client.post("/upscale/photo_sr", json={"image": encoded(photo)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["shape"] == [1, 3, 40, 60]
    session = ort.InferenceSession(str(rgb_exported / "photo_sr" / "generator.onnx"))
    expected = session.run(
        None, {"image": (photo.transpose(2, 0, 1)[None] / 255).astype(np.float32)}
    )
    assert np.allclose(np.asarray(body["images"]), expected[0], atol=1e-6)
    png = client.post(
        "/upscale/photo_sr", json={"image": encoded(photo)}, headers={"Accept": "image/png"}
    )
    shown = Image.open(io.BytesIO(png.content))
    assert shown.mode == "RGB" and shown.size == (60, 40)
    assert np.array_equal(
        np.asarray(shown),
        (np.clip(expected[0][0], 0, 1).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8),
    )


def test_grayscale_is_converted_for_an_rgb_model_unless_conversion_is_off(client):
    gray = RNG.integers(0, 256, (12, 12), dtype=np.uint8)
    r = client.post("/upscale/photo_sr", json={"image": encoded(gray)})
    assert r.status_code == 200 and r.json()["shape"] == [1, 3, 24, 24]
    r = client.post("/upscale/photo_sr", json={"image": encoded(gray), "convert": False})
    assert r.status_code == 422
    assert r.json()["detail"] == (
        'image: grayscale, but this model takes RGB images; send an RGB image or set "convert": true'
    )


def test_a_translation_brings_the_photo_to_the_size_the_model_learned(client):
    photo = RNG.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    r = client.post(
        "/translate/photo2edges",
        json={"image": encoded(photo, "JPEG"), "direction": "ab"},
        headers={"Accept": "image/png"},
    )
    assert r.status_code == 200, r.text
    shown = Image.open(io.BytesIO(r.content))
    assert shown.mode == "RGB" and shown.size == (32, 32)
