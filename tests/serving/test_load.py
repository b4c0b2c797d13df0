"""`genmodels serve` on 127.0.0.1 under concurrent clients: bounded, loopback only."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import numpy as np
from PIL import Image

from server_helpers import child_processes, listening

THREADS = 16
REQUESTS = 20  # per thread
DEADLINE_S = 90


def test_concurrent_clients_get_only_well_formed_answers(served):
    def client(i: int) -> list[str]:
        errors = []
        with httpx.Client(base_url=served, timeout=20) as http:
            for j in range(REQUESTS):
                kind = (i + j) % 3
                if kind == 0:
                    r = http.post("/generate/gan", json={"n": 1, "seed": j})
                    ok = r.status_code == 200 and np.array(r.json()["images"]).shape == (
                        1,
                        1,
                        28,
                        28,
                    )
                elif kind == 1:
                    r = http.post(
                        "/generate/cgan",
                        json={"n": 4, "labels": [i % 10] * 4},
                        headers={"Accept": "image/png"},
                    )
                    ok = r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (62, 62)
                else:
                    r = http.post("/decode/vae2", json={"z": [[i / 8 - 1, j / 10 - 1]]})
                    body = r.json() if r.status_code == 200 else {}
                    ok = body.get("shape") == [1, 1, 28, 28]
                if not ok:
                    errors.append(f"{r.request.url}: {r.status_code} {r.text[:200]}")
        return errors

    start = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(client, range(THREADS), timeout=DEADLINE_S))
    elapsed = time.monotonic() - start
    errors = [e for result in results for e in result]
    assert errors == [], errors[:5]
    assert elapsed < DEADLINE_S
    # the service is still healthy afterwards
    assert httpx.get(served + "/health", timeout=5).json()["status"] == "ok"


def test_server_binds_loopback_and_refuses_bad_input_over_http(served):
    # the address its socket is bound to, as the kernel has it: loopback and the asked-for port
    (server,) = child_processes("genmodels.cli", "serve")
    assert listening(server) == {("127.0.0.1", urlsplit(served).port)}
    r = httpx.post(served + "/generate/gan", content=b'{"n": 1', timeout=10,
                   headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 422
    r = httpx.post(served + "/generate/gan", json={"n": 65}, timeout=10)  # serve.max_n is 64
    assert r.status_code == 422 and "64" in r.json()["detail"]
