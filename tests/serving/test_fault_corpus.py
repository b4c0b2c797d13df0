"""The fault suite's malformed-request corpus against `genmodels serve`: every answer is a
well-formed response below 500 (JSON that parses strictly, or a PNG), and each bad request is
refused with a 4xx that says why."""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import socket
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.faults

JSON = {"Content-Type": "application/json"}
IMAGE_ENDPOINTS = ["/reconstruct/ae", "/translate/cyclegan", "/upscale/srgan"]
POST_ENDPOINTS = ["/generate/gan", "/generate/cgan", "/decode/ae", "/decode/vae2", *IMAGE_ENDPOINTS]


def _png(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _bomb_png(side: int) -> str:
    """A PNG whose header claims side x side pixels (its data is a few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    head = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\0" * 64)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


def _corpus() -> list[tuple[str, str, str, dict, bytes, str]]:
    """(case, method, path, headers, body, expected: "4xx", "2xx" or "any" below 500)."""
    cases: list[tuple[str, str, str, dict, bytes, str]] = []

    def post(case: str, path: str, body, expected: str = "4xx", headers: dict | None = None):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        cases.append((case, "POST", path, headers if headers is not None else JSON, raw, expected))

    small = _png(np.full((28, 28), 128, np.uint8))
    for path in POST_ENDPOINTS:
        post(f"{path} not JSON", path, b'{"n": 1')
        post(f"{path} empty body", path, b"")
        post(f"{path} a JSON list", path, b"[]")
        post(f"{path} JSON null", path, b"null")
        post(f"{path} text/plain", path, b"{}", headers={"Content-Type": "text/plain"})
        post(f"{path} no content type", path, b"{}", headers={})
        post(f"{path} bad content length", path, b"{}", headers={**JSON, "Content-Length": "x"})
        post(f"{path} unknown field", path, {"bogus": 1})
        post(f"{path} nested 100000 deep", path, b"[" * 100_000 + b"]" * 100_000)
        post(f"{path} bare NaN", path, b'{"n": NaN, "z": [[NaN, NaN]], "image": NaN}')
        post(f"{path} a number past float64", path, b'{"n": 1e999, "z": [[1e999, 1]]}')
        cases.append((f"{path} GET", "GET", path, {}, b"", "4xx"))
    post("body over max_body_bytes", "/decode/ae", b'{"z": [[' + b"0," * 2_100_000 + b"0]]}")
    for bad_n in ["3", True, -1, 0, 65, 3.5, 10**12, None, [], {}]:
        post(
            f"generate n={bad_n!r}",
            "/generate/gan",
            {"n": bad_n, "seed": 1} if bad_n is not None else {"n": "", "seed": 1},
        )
    for bad_seed in ["x", -1, 2**70, 1.5, True]:
        post(f"generate seed={bad_seed!r}", "/generate/gan", {"n": 1, "seed": bad_seed})
    for labels in [[99], [-1], ["1"], [True], [1, 2], [[1]], 5]:
        post(f"cgan labels={labels!r}", "/generate/cgan", {"n": 1, "labels": labels})
    post("labels for an unconditional model", "/generate/gan", {"n": 1, "labels": [1]})
    for nrow in [0, 1000, "2", True]:
        post(f"nrow={nrow!r}", "/generate/gan", {"n": 4, "nrow": nrow})
    for z in ["abc", [], [[]], [[1]], [[1, 2, 3]], [[1, 2], [1]], [["a", "b"]], [[True, False]],
              [[None, 1]], [[0.0] * 2] * 65]:  # fmt: skip
        post(f"decode z={str(z)[:40]}", "/decode/ae2", {"z": z})
    # finite outputs are served; a non-finite one is a 422 (test_app checks which)
    post("decode z overflowing to inf", "/decode/ae2", {"z": [[3e38, -3e38]]}, "any")
    post("decode z without its key", "/decode/ae2", {})
    post("generate explicit z overflowing", "/generate/gan", {"z": [[3e38] * 8]}, "any")
    post("decode a good z (PNG)", "/decode/ae2", {"z": [[0.1, 0.2]]}, "2xx",
         {**JSON, "Accept": "image/png"})  # fmt: skip
    post("generate with a malformed Accept", "/generate/gan", {"n": 1, "seed": 2}, "2xx",
         {**JSON, "Accept": "image/png;q=abc, */*;;"})  # fmt: skip
    images = {
        "missing": None,
        "empty": "",
        "not base64": "!!!not base64!!!",
        "base64 of text": base64.b64encode(b"hello, not an image").decode(),
        "truncated PNG": small[: len(small) // 2],
        "GIF": base64.b64encode(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").decode(),
        "a data URL without data": "data:image/png;base64,",
        "a data URL without a comma": "data:image/png;base64",
        "a 600 px side": _png(np.zeros((600, 20), np.uint8)),
        "a decompression bomb": _bomb_png(100_000),
        "a number": 5,
        "a list": [small],
    }
    for path in IMAGE_ENDPOINTS:
        for what, image in images.items():
            post(f"{path} image {what}", path, {} if image is None else {"image": image})
        post(f"{path} invert='yes'", path, {"image": small, "invert": "yes"})
        post(f"{path} convert=1", path, {"image": small, "convert": 1})
        post(f"{path} a 1x1 image", path, {"image": _png(np.zeros((1, 1), np.uint8))}, "2xx")
        sixteen = _png(np.full((28, 28), 49152, np.uint16))
        post(f"{path} a 16-bit image", path, {"image": sixteen}, "2xx")
    post("translate direction='xy'", "/translate/cyclegan", {"image": small, "direction": "xy"})
    post(
        "upscale over max_upscale_side",
        "/upscale/srgan",
        {"image": _png(np.zeros((200, 200), np.uint8))},
    )
    for path in ["/generate/nope", "/nope/gan", "/generate/../../etc/passwd", "/generate/%00",
                 "/generate/" + "x" * 10_000, "/decode/gan", "/upscale/ae", "/generate/evaluator?x=%%"]:  # fmt: skip
        post(f"route {path[:40]}", path, {"n": 1})
    cases.append(("DELETE /health", "DELETE", "/health", {}, b"", "4xx"))
    cases.append(("GET /health?junk=%%", "GET", "/health?junk=%%", {}, b"", "2xx"))
    return cases


CORPUS = _corpus()


def _send(url: str, method: str, path: str, headers: dict, body: bytes) -> tuple[int, str, bytes]:
    host, port = url.removeprefix("http://").split(":")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if "Content-Length" not in headers and method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        # refused before the whole body was sent (413): its answer is still to be read
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return answer.status, answer.getheader("content-type", ""), answer.read()


def _refuse_constant(name: str):
    raise ValueError(f"not JSON: {name}")


def _well_formed(kind: str, body: bytes) -> bool:
    try:
        if kind.startswith("application/json"):
            json.loads(body, parse_constant=_refuse_constant)  # NaN and Infinity are not JSON
        elif kind == "image/png":
            Image.open(io.BytesIO(body)).load()
        else:
            return False
    except ValueError:
        return False
    return True


def test_every_malformed_request_gets_a_well_formed_4xx(served, record_property):
    errors, server_errors, invalid, answers = [], 0, 0, {}
    for case, method, path, headers, body, expected in CORPUS:
        status, kind, answer = _send(served, method, path, headers, body)
        answers[case] = status
        server_errors += status >= 500
        valid = _well_formed(kind, answer)
        invalid += not valid
        refused_with_reason = not (400 <= status < 500) or (
            valid and kind.startswith("application/json") and "detail" in json.loads(answer)
        )
        if status >= 500 or not valid or expected[0] not in ("a", str(status)[0]):
            errors.append(f"{case}: {status} {kind} {answer[:120]!r} (expected {expected})")
        elif not refused_with_reason:
            errors.append(f"{case}: {status} without a detail saying why")
    record_property("requests", len(CORPUS))
    record_property("responses_5xx", server_errors)
    record_property("invalid_responses", invalid)
    record_property("answers", answers)  # each request's status, in reports/faults.json
    assert len(CORPUS) >= 136 and len(answers) == len(CORPUS), "case names must be unique"
    assert errors == [], "\n".join(errors)
