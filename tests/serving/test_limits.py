"""The service's limits: a deadline on request headers and bodies, and a cap on the inferences
running at once (the rest wait their turn or get 503 with Retry-After)."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time

import numpy as np
import pytest

from genmodels.serving.app import ApiError, InferenceGate
from genmodels.serving.store import ModelStore

pytestmark = pytest.mark.faults

TIMEOUTS = "{header_timeout_seconds: 1, body_timeout_seconds: 1}"


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _answer_and_close(sock: socket.socket, limit: float = 10.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    sock.settimeout(limit)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def _status_and_detail(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["detail"]


HEADERS_LATE = "request headers not received within 1 s; send them at once"
BODY_LATE = "request body not received within 1 s of its headers"


@pytest.mark.parametrize(
    "sent, detail",
    [
        (b"", HEADERS_LATE),
        (b"POST /generate/gan HTTP/1.1\r\nHost: x\r\nContent-Type: appl", HEADERS_LATE),
        (b"POST /generate/gan HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         b'Content-Length: 100\r\n\r\n{"n":', BODY_LATE),
    ],
    ids=["nothing", "half the headers", "a declared body never sent"],
)  # fmt: skip
def test_headers_and_bodies_have_deadlines(serve_with, sent, detail):
    url = serve_with(TIMEOUTS)
    with socket.create_connection(_address(url)) as sock:
        sock.sendall(sent)
        answer, seconds = _answer_and_close(sock)
    assert _status_and_detail(answer) == (408, detail)
    assert 0.9 < seconds < 5


def test_a_kept_alive_connection_still_serves_its_next_requests(serve_with):
    url = serve_with(TIMEOUTS)
    connection = http.client.HTTPConnection(*_address(url), timeout=10)
    try:
        for _ in range(3):  # 3 x 0.6 s: longer than the deadline in all, never within one head
            time.sleep(0.6)
            connection.request("GET", "/health")
            answer = connection.getresponse()
            assert answer.status == 200 and json.loads(answer.read())["status"] == "ok"
        assert connection.sock is not None  # one connection all along
    finally:
        connection.close()


def test_hundreds_of_silent_connections_are_all_closed(serve_with):
    url = serve_with(TIMEOUTS)
    sockets = [socket.create_connection(_address(url)) for _ in range(300)]
    started = time.monotonic()
    try:
        for sock in sockets:
            sock.settimeout(max(0.1, started + 6 - time.monotonic()))
            assert sock.recv(65536).startswith(b"HTTP/1.1 408")
    finally:
        for sock in sockets:
            sock.close()
    assert time.monotonic() - started < 6


class SlowGraph:
    """Stands for a graph whose inference takes `seconds` on a worker thread."""

    task = "upscale"

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at_once = self.most_at_once = 0

    def run(self, feed):
        self.at_once += 1
        self.most_at_once = max(self.most_at_once, self.at_once)
        time.sleep(self.seconds)
        self.at_once -= 1
        return {"image": feed["image"]}


async def _burst(gate: InferenceGate, graph: SlowGraph, clients: int) -> list:
    feed = {"image": np.zeros((1, 3, 64, 64), np.float32)}
    return await asyncio.gather(*(gate.run(graph, feed) for _ in range(clients)),
                                return_exceptions=True)  # fmt: skip


def test_inference_is_capped_and_the_overflow_is_told_to_retry():
    graph, gate = SlowGraph(0.2), InferenceGate(limit=2, max_waiting=3, timeout=10)
    answers = asyncio.run(_burst(gate, graph, clients=8))
    served = [a for a in answers if isinstance(a, dict)]
    refused = [a for a in answers if isinstance(a, ApiError)]
    assert graph.most_at_once == 2  # never more than the cap on the threads
    assert (len(served), len(refused)) == (5, 3)  # 2 running + 3 waiting; 3 told to retry
    assert all(r.status_code == 503 and r.headers == {"Retry-After": "1"} for r in refused)
    assert "2 inferences running and 3 waiting" in refused[0].detail
    assert gate.as_json() == {"running": 0, "waiting": 0, "refused": 3}


def test_a_wait_longer_than_the_queue_timeout_is_503():
    graph, gate = SlowGraph(0.5), InferenceGate(limit=1, max_waiting=10, timeout=0.1)
    answers = asyncio.run(_burst(gate, graph, clients=3))
    assert isinstance(answers[0], dict)
    for refused in answers[1:]:
        assert isinstance(refused, ApiError) and refused.status_code == 503
        assert refused.detail == "busy: no turn within 0.1 s; try again shortly"


@pytest.mark.parametrize(
    "arena, pooled, shrinks", [("keep", True, False), ("shrink", True, True), ("off", False, False)]
)
def test_each_arena_setting_reaches_every_session_and_run(tiny_exported, arena, pooled, shrinks):
    """serve.arena: "off" builds sessions without onnxruntime's CPU arena, "shrink" runs each
    request with the option that hands the arena's growth back, "keep" is onnxruntime's own."""
    store = ModelStore.scan(tiny_exported, arena=arena, only="ae")
    for graph in store.get("ae").graphs.values():
        assert graph.session.get_session_options().enable_cpu_mem_arena is pooled
        entry = graph.run_options and graph.run_options.get_run_config_entry(
            "memory.enable_memory_arena_shrinkage"
        )
        assert (entry == "cpu:0") is shrinks
    image = store.get("ae").decoder.run({"z": np.zeros((2, 8), np.float32)})["image"]
    assert image.shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="arena must be one of shrink, off, keep"):
        ModelStore.scan(tiny_exported, arena="sometimes", only="ae")
