"""`genmodels serve --workers 2` on Linux: one SO_REUSEPORT socket per worker process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server_helpers import free_port, stop, wait_until_up

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT balancing: Linux")
CONNECTIONS = 16


def workers_answering(url: str) -> set[int]:
    """The worker pids that answer /health on CONNECTIONS separate connections."""
    pids = set()
    for _ in range(CONNECTIONS):
        with httpx.Client(timeout=10) as client:  # a new connection, a new source port
            pids.add(client.get(url + "/health").json()["worker"])
    return pids


def wait_for_workers(url: str, accept, timeout: float = 60) -> set[int]:
    """The answering pids once accept(pids) holds; fails after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = workers_answering(url)
        if accept(pids):
            return pids
        time.sleep(0.3)
    raise AssertionError(f"workers answering: {pids}, not as expected within {timeout}s")


def wait_until_gone(pid: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"worker {pid} still runs {timeout}s after the server stopped")


@pytest.fixture
def exported(tiny_exported, tmp_path):
    """A copy of the graphs a test may change while the service runs."""
    return Path(shutil.copytree(tiny_exported, tmp_path / "exported"))


@pytest.fixture
def two_workers(exported, tmp_path):
    port = free_port()
    params = tmp_path / "params.yaml"
    params.write_text("models:\n  ae: {family: autoencoder, epochs: 1}\n")
    cmd = [sys.executable, "-m", "genmodels.cli", "serve", "--params", str(params),
           "--exported-dir", str(exported), "--port", str(port), "--workers", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/health", proc, timeout=90)
        yield proc, url
    finally:
        stop(proc)


def test_connections_spread_over_workers_and_a_dead_worker_is_replaced(two_workers):
    proc, url = two_workers
    # both workers listen a moment after the first; 16 connections all hashed to one: 2**-15
    first = wait_for_workers(url, lambda pids: len(pids) == 2)
    assert proc.pid not in first  # the supervisor itself serves nothing

    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    replaced = wait_for_workers(url, lambda pids: len(pids) == 2 and victim not in pids)
    assert max(first) in replaced
    assert httpx.post(url + "/decode/vae2", json={"z": [[0.0, 0.0]]}).status_code == 200

    proc.terminate()  # stops the workers too, and exits cleanly
    assert proc.wait(timeout=30) == 0
    for pid in replaced:
        wait_until_gone(pid)


@pytest.mark.faults
def test_every_worker_serves_the_graphs_verified_at_start(two_workers, exported):
    """A graph broken on disk while serving never reaches a restarted worker: all workers load
    the copy pinned at start, so /health does not flip between them."""
    proc, url = two_workers
    first = wait_for_workers(url, lambda pids: len(pids) == 2)
    decoder = exported / "vae2" / "decoder.onnx"
    decoder.write_bytes(decoder.read_bytes()[:-64] + bytes(64))  # broken after start
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_for_workers(url, lambda pids: len(pids) == 2 and victim not in pids)
    for _ in range(CONNECTIONS):
        with httpx.Client(timeout=10) as client:  # each connection may reach either worker
            assert client.get(url + "/health").json()["models"]["vae2"]["status"] == "ok"
            decoded = client.post(url + "/decode/vae2", json={"z": [[0.0, 0.0]]})
            assert decoded.status_code == 200


def test_a_port_in_use_is_one_clear_message(tiny_exported, tmp_path):
    port = free_port()
    params = tmp_path / "params.yaml"
    params.write_text("models:\n  ae: {family: autoencoder, epochs: 1}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        cmd = [sys.executable, "-m", "genmodels.cli", "serve", "--params", str(params),
               "--exported-dir", str(tiny_exported), "--port", str(port), "--workers", "2"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "pick another --port" in done.stderr
