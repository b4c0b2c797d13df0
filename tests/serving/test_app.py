"""Endpoints on tiny graphs of every kind, with FastAPI's TestClient."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import onnxruntime as ort
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from genmodels.checksums import write_checksums
from genmodels.config import ServeParams
from genmodels.export import export_onnx
from genmodels.serving import ModelStore, create_app
from tiny_graphs import AE2_LATENT_RANGE, CLASS_NAMES, _meta, _z_graph

LIMITS = ServeParams(max_n=64, max_body_bytes=200_000, max_image_side=256, max_upscale_side=32)


@pytest.fixture(scope="module")
def client(tiny_exported, families):
    store = ModelStore.scan(tiny_exported, families)
    with TestClient(create_app(store, LIMITS)) as c:
        yield c


def session(root, instance, graph):
    return ort.InferenceSession(str(root / instance / f"{graph}.onnx"))


def png_b64(pixels: np.ndarray, mode: str = "L", fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def test_health_and_models_list_every_graph(client, families):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert set(health["models"]) == set(families)
    assert all(m["status"] == "ok" for m in health["models"].values())
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert models["ae"]["endpoints"] == ["generate", "decode", "reconstruct"]
    assert models["vae2"]["latent_dim"] == 2
    assert models["cgan"]["num_classes"] == 10
    assert models["cgan"]["endpoints"] == ["generate"]
    assert models["cyclegan"]["directions"] == ["ab", "ba"]
    assert models["cyclegan"]["domains"] == {"a": "clean", "b": "noisy"}
    assert models["srgan"]["scale"] == 2 and models["srgan"]["endpoints"] == ["upscale"]
    # the data each learned from: its images' channels and size, its class names
    assert models["cgan"]["class_names"][7] == "Sneaker"
    assert models["ae2"]["class_names"] == CLASS_NAMES  # a model that is not conditional too
    assert "class_names" not in models["ae"]  # none recorded
    # an autoencoder's 2-D plane: where its codes lie; a VAE's is its prior (none recorded)
    assert models["ae2"]["latent_range"] == AE2_LATENT_RANGE
    assert "latent_range" not in models["vae2"]
    assert (models["srgan"]["channels"], models["srgan"]["size"]) == (1, [28, 28])
    assert (models["ae"]["channels"], models["ae"]["size"]) == (1, [28, 28])  # none recorded
    assert models["evaluator"]["endpoints"] == []
    decoder = models["ae"]["graphs"]["decoder"]
    assert decoder["inputs"] == [{"name": "z", "shape": ["batch", 8], "type": "tensor(float)"}]
    assert decoder["outputs"][0]["name"] == "image"
    assert decoder["version"].startswith("sha256:")


def test_api_docs_are_served_offline(client):
    """FastAPI's /docs and /redoc, with their scripts and styles from this service."""
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
        assert sources and all(u.startswith("/") for u in sources), (page, sources)
        assert any(u.startswith("/docs-assets/") and u.endswith(".js") for u in sources)
        for url in sources:
            if url.startswith("/docs-assets/"):
                asset = client.get(url)
                assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert "/generate/{name}" in client.get("/openapi.json").json()["paths"]


def test_generate_matches_onnxruntime_for_the_seeded_z(client, tiny_exported):
    r = client.post("/generate/gan", json={"n": 5, "seed": 7})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    z = np.random.default_rng(7).standard_normal((5, 6), dtype=np.float32)
    np.testing.assert_allclose(np.array(body["z"], np.float32), z)
    (want,) = session(tiny_exported, "gan", "generator").run(None, {"z": z})
    got = np.array(body["images"], np.float32)
    assert body["shape"] == [5, 1, 28, 28] and got.shape == (5, 1, 28, 28)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert body["seed"] == 7 and r.headers["x-seed"] == "7"
    again = client.post("/generate/gan", json={"n": 5, "seed": 7}).json()
    assert again["images"] == body["images"]


def test_generate_without_seed_returns_the_seed_it_drew(client):
    a = client.post("/generate/gan", json={"n": 2}).json()
    b = client.post("/generate/gan", json={"n": 2, "seed": a["seed"]}).json()
    assert a["images"] == b["images"]


def test_generate_from_a_vae_decoder_and_explicit_z(client, tiny_exported):
    z = [[0.5, -1.0], [2.0, 0.0]]
    body = client.post("/generate/vae2", json={"z": z}).json()
    (want,) = session(tiny_exported, "vae2", "decoder").run(None, {"z": np.array(z, np.float32)})
    np.testing.assert_allclose(np.array(body["images"]), want, atol=1e-6)
    decoded = client.post("/decode/vae2", json={"z": z}).json()
    assert decoded["images"] == body["images"]


def test_cgan_labels_pick_the_class(client, tiny_exported):
    body = client.post("/generate/cgan", json={"n": 3, "seed": 1, "labels": [9, 0, 4]}).json()
    assert body["labels"] == [9, 0, 4]
    z = np.array(body["z"], np.float32)
    (want,) = session(tiny_exported, "cgan", "generator").run(
        None, {"z": z, "label": np.array([9, 0, 4], np.int64)}
    )
    np.testing.assert_allclose(np.array(body["images"]), want, atol=1e-6)
    cycled = client.post("/generate/cgan", json={"n": 12, "seed": 1}).json()
    assert cycled["labels"] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_seeded_latents_follow_the_graphs_truncation_and_explicit_z_is_kept(client):
    seeded = client.post("/generate/cgan", json={"n": 3, "seed": 5}).json()
    plain = np.random.default_rng(5).standard_normal((3, 6), dtype=np.float32)
    np.testing.assert_allclose(np.array(seeded["z"], np.float32), 0.5 * plain, rtol=1e-6)
    given = [[1.0] * 6, [-2.0] * 6]
    assert client.post("/generate/cgan", json={"z": given}).json()["z"] == given


def test_png_by_accept_header_is_a_grid(client):
    r = client.post(
        "/generate/gan", json={"n": 6, "seed": 0, "nrow": 3}, headers={"Accept": "image/png"}
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    # 3 x 2 tiles of 28 with 2-pixel padding, like torchvision's make_grid
    assert img.size == (3 * 30 + 2, 2 * 30 + 2) and img.mode == "L"
    one = client.post("/generate/gan", json={"seed": 0}, headers={"Accept": "image/png"})
    assert Image.open(io.BytesIO(one.content)).size == (28, 28)
    browser = "text/html,application/xhtml+xml,image/png;q=0.9,*/*;q=0.8"
    r = client.post("/generate/gan", json={}, headers={"Accept": browser})
    assert r.headers["content-type"] == "image/png"
    r = client.post("/generate/gan", json={}, headers={"Accept": "*/*"})
    assert r.headers["content-type"] == "application/json"


def test_reconstruct_matches_encoder_then_decoder(client, tiny_exported):
    rng = np.random.default_rng(0)
    pixels = (rng.random((28, 28)) * 255).astype(np.uint8)
    for instance, code in (("ae", "z"), ("vae2", "mean")):
        body = client.post(f"/reconstruct/{instance}", json={"image": png_b64(pixels)}).json()
        x = (pixels.astype(np.float32) / 255.0)[None, None]
        outputs = session(tiny_exported, instance, "encoder").run(None, {"image": x})
        names = [o.name for o in session(tiny_exported, instance, "encoder").get_outputs()]
        z = dict(zip(names, outputs, strict=True))[code]
        (want,) = session(tiny_exported, instance, "decoder").run(None, {"z": z})
        np.testing.assert_allclose(np.array(body["z"]), z, atol=1e-5)
        np.testing.assert_allclose(np.array(body["images"]), want, atol=1e-5)


def test_uploads_are_grayscale_resized_and_alpha_is_background(client, tiny_exported):
    # a 56x56 RGB JPEG is made gray and resized to 28x28 before the encoder
    rgb = np.zeros((56, 56, 3), np.uint8)
    rgb[:, 28:] = 255
    body = client.post("/reconstruct/ae", json={"image": png_b64(rgb, "RGB", "JPEG")}).json()
    x = np.array(body["input"])
    assert x.shape == (1, 1, 28, 28)
    assert x[0, 0, :, :12].max() < 0.05 and x[0, 0, :, 16:].min() > 0.95
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3] = 255  # white but fully transparent: background, black
    data_url = "data:image/png;base64," + png_b64(rgba, "RGBA")
    body = client.post("/reconstruct/ae", json={"image": data_url}).json()
    assert np.array(body["input"]).max() == 0.0
    inverted = client.post("/reconstruct/ae", json={"image": data_url, "invert": True}).json()
    assert np.array(inverted["input"]).min() == 1.0


def test_translate_both_directions(client, tiny_exported):
    pixels = np.tile(np.arange(28, dtype=np.uint8) * 9, (28, 1))
    x = (pixels.astype(np.float32) / 255.0)[None, None]
    for direction in ("ab", "ba"):
        r = client.post(
            "/translate/cyclegan", json={"image": png_b64(pixels), "direction": direction}
        )
        assert r.status_code == 200 and r.json()["direction"] == direction
        (want,) = session(tiny_exported, "cyclegan", f"generator_{direction}").run(
            None, {"image": x}
        )
        np.testing.assert_allclose(np.array(r.json()["images"]), want, atol=1e-5)


def test_upscale_keeps_the_input_size_and_multiplies_it(client, tiny_exported):
    pixels = (np.random.default_rng(1).random((12, 20)) * 255).astype(np.uint8)
    r = client.post("/upscale/srgan", json={"image": png_b64(pixels)})
    assert r.status_code == 200
    body = r.json()
    assert body["shape"] == [1, 1, 24, 40] and body["scale"] == 2
    x = (pixels.astype(np.float32) / 255.0)[None, None]
    (want,) = session(tiny_exported, "srgan", "generator").run(None, {"image": x})
    np.testing.assert_allclose(np.array(body["images"]), want, atol=1e-5)
    png = client.post(
        "/upscale/srgan", json={"image": png_b64(pixels)}, headers={"Accept": "image/png"}
    )
    assert Image.open(io.BytesIO(png.content)).size == (40, 24)


def test_index_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/static/app.js" in page.text and "/static/style.css" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    # nothing is loaded from another host: the service runs offline
    assert "http://" not in page.text and "https://" not in page.text
    assert "https://" not in client.get("/static/app.js").text


def big_png(side: int) -> str:
    return png_b64(np.zeros((side, side), np.uint8))


def not_an_image() -> str:
    return base64.b64encode(b"GIF89a this is not a picture").decode()


def truncated_png() -> str:
    raw = base64.b64decode(
        png_b64((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8))
    )
    return base64.b64encode(raw[: len(raw) // 2]).decode()


NAN_BODY = '{"z": [[NaN, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]}'
INF_BODY = '{"z": [[Infinity, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]}'
JSON = {"Content-Type": "application/json"}

# (what, method, path, request kwargs, expected status)
BAD_REQUESTS = [
    ("wrong z width", "/decode/ae", {"json": {"z": [[0.0, 1.0]]}}, 422),
    ("ragged z", "/decode/ae", {"json": {"z": [[0.0] * 8, [0.0] * 7]}}, 422),
    ("z not numbers", "/decode/ae", {"json": {"z": [["a"] * 8]}}, 422),
    ("z not a matrix", "/decode/ae", {"json": {"z": [0.0] * 8}}, 422),
    ("empty z", "/decode/ae", {"json": {"z": []}}, 422),
    ("NaN in z", "/decode/ae", {"content": NAN_BODY, "headers": JSON}, 422),
    ("infinity in z", "/decode/ae", {"content": INF_BODY, "headers": JSON}, 422),
    (
        "huge number in z",
        "/decode/ae",
        {"content": '{"z": [[1e400, 0, 0, 0, 0, 0, 0, 0]]}', "headers": JSON},
        422,
    ),
    (
        "NaN in generate z",
        "/generate/gan",
        {"content": '{"z": [[NaN, 0, 0, 0, 0, 0]]}', "headers": JSON},
        422,
    ),
    ("n above the limit", "/generate/gan", {"json": {"n": 65}}, 422),
    ("n zero", "/generate/gan", {"json": {"n": 0}}, 422),
    ("n negative", "/generate/gan", {"json": {"n": -3}}, 422),
    ("n not an integer", "/generate/gan", {"json": {"n": 2.5}}, 422),
    ("too many z rows", "/decode/ae", {"json": {"z": [[0.0] * 8] * 65}}, 422),
    ("n and z disagree", "/generate/gan", {"json": {"n": 3, "z": [[0.0] * 6]}}, 422),
    ("negative seed", "/generate/gan", {"json": {"seed": -1}}, 422),
    ("huge seed", "/generate/gan", {"json": {"seed": 2**70}}, 422),
    ("unknown field", "/generate/gan", {"json": {"n": 1, "temperature": 2}}, 422),
    ("unknown model", "/generate/nope", {"json": {"n": 1}}, 404),
    ("model without that endpoint", "/translate/gan", {"json": {"image": big_png(28)}}, 404),
    ("classifier cannot generate", "/generate/evaluator", {"json": {}}, 404),
    ("label out of range", "/generate/cgan", {"json": {"labels": [10]}}, 422),
    ("negative label", "/generate/cgan", {"json": {"labels": [-1]}}, 422),
    ("labels on an unconditional model", "/generate/gan", {"json": {"labels": [1]}}, 422),
    ("labels and n disagree", "/generate/cgan", {"json": {"n": 2, "labels": [1]}}, 422),
    ("undecodable image", "/reconstruct/ae", {"json": {"image": not_an_image()}}, 422),
    ("truncated png", "/reconstruct/ae", {"json": {"image": truncated_png()}}, 422),
    ("image not base64", "/reconstruct/ae", {"json": {"image": "%%%not base64%%%"}}, 422),
    ("empty image", "/reconstruct/ae", {"json": {"image": ""}}, 422),
    ("image too many pixels", "/reconstruct/ae", {"json": {"image": big_png(300)}}, 413),
    ("upscale input too large", "/upscale/srgan", {"json": {"image": big_png(40)}}, 413),
    ("missing image", "/translate/cyclegan", {"json": {"direction": "ab"}}, 422),
    (
        "bad direction",
        "/translate/cyclegan",
        {"json": {"image": big_png(28), "direction": "xy"}},
        422,
    ),
    ("malformed JSON", "/generate/gan", {"content": '{"n": 1,', "headers": JSON}, 422),
    ("JSON not an object", "/generate/gan", {"content": "[1, 2]", "headers": JSON}, 422),
    (
        "body too large",
        "/decode/ae",
        {"content": b"{" + b" " * 200_001 + b"}", "headers": JSON},
        413,
    ),
    (
        "wrong content type",
        "/generate/gan",
        {"content": "n=1", "headers": {"Content-Type": "text/plain"}},
        415,
    ),
    ("no content type", "/generate/gan", {"content": b'{"n": 1}'}, 415),
    ("form upload", "/reconstruct/ae", {"files": {"image": ("x.png", b"\x89PNG")}}, 415),
    ("unacceptable Accept", "/generate/gan", {"json": {}, "headers": {"Accept": "text/csv"}}, 406),
]


@pytest.mark.parametrize(
    ("path", "kwargs", "status"), [b[1:] for b in BAD_REQUESTS], ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_requests_get_a_4xx_with_a_message(client, path, kwargs, status):
    r = client.post(path, **kwargs)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and len(detail) > 5


def test_chunked_body_over_the_limit_is_refused(client):
    def chunks():
        yield b'{"z": ['
        for _ in range(3000):
            yield b"[0, 0, 0, 0, 0, 0, 0, 0]," * 4
        yield b"[0, 0, 0, 0, 0, 0, 0, 0]]}"

    r = client.post("/decode/ae", content=chunks(), headers=JSON)
    assert r.status_code == 413, r.text
    assert "limit" in r.json()["detail"]


def test_get_on_a_post_endpoint_and_unknown_paths(client):
    assert client.get("/generate/gan").status_code == 405
    assert client.get("/nothing-here").status_code == 404


def test_a_colour_image_for_a_grayscale_model_is_refused_when_conversion_is_off(client):
    colour = np.random.default_rng(1).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    image = png_b64(colour, mode="RGB")
    assert client.post("/reconstruct/ae", json={"image": image}).status_code == 200
    r = client.post("/reconstruct/ae", json={"image": image, "convert": False})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("image: colour, but this model takes grayscale images")


class Overflowing(torch.nn.Module):
    """A decoder whose output is NaN once z * z overflows float32 (inf - inf)."""

    def forward(self, z):
        energy = (z * z).sum(1)
        return (energy - energy).view(-1, 1, 1, 1).expand(-1, 1, 28, 28)


@pytest.mark.faults
def test_a_non_finite_output_is_a_422_naming_the_input_never_bare_nan(tmp_path):
    """Latents this large overflow the decoder to NaN: the answer names z, as valid JSON."""
    meta = _meta("gan", "ovf", "generator", "generate", latent_dim=2)
    export_onnx(_z_graph("generator", Overflowing(), 2, meta), tmp_path / "ovf" / "generator.onnx")
    write_checksums(tmp_path / "ovf")
    store = ModelStore.scan(tmp_path, {"ovf": "gan"})
    with TestClient(create_app(store, LIMITS)) as overflowing:
        assert overflowing.post("/decode/ovf", json={"z": [[1.0, 2.0]]}).status_code == 200
        for path in ("/decode/ovf", "/generate/ovf"):
            for accept in ("application/json", "image/png"):
                r = overflowing.post(path, json={"z": [[3e38, -3e38]]}, headers={"Accept": accept})
                assert r.status_code == 422, (path, accept, r.text[:200])
                detail = json.loads(r.text)["detail"]  # strict JSON: no bare NaN tokens
                assert detail.startswith("z: ") and "not finite" in detail


@pytest.mark.faults
def test_fields_are_strict_no_coercion_from_strings_or_booleans(client):
    image = png_b64(np.zeros((28, 28), np.uint8))
    cases = [
        ("/generate/gan", {"n": "3"}),
        ("/generate/gan", {"n": True}),
        ("/generate/gan", {"seed": "7"}),
        ("/generate/cgan", {"labels": [True, False]}),
        ("/decode/ae2", {"z": [["1", "2"]]}),
        ("/decode/ae2", {"z": [[True, False]]}),
        ("/reconstruct/ae", {"image": image, "invert": "yes"}),
        ("/reconstruct/ae", {"image": image, "convert": 1}),
    ]
    for path, body in cases:
        r = client.post(path, json=body)
        assert r.status_code == 422, (path, body, r.status_code)
        field = next(iter(body if "image" not in body else {k: v for k, v in body.items()
                                                            if k != "image"}))  # fmt: skip
        assert field in r.json()["detail"], (body, r.json())
    # JSON numbers stay numbers: an integer where a float is expected is fine
    assert client.post("/decode/ae2", json={"z": [[1, 2]]}).status_code == 200
