"""The service in a subprocess on the tiny graphs (tests/tiny_graphs.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from server_helpers import free_port, stop, wait_until_up
from tiny_graphs import export_rgb_models


@pytest.fixture
def exported_copy(tiny_exported, tmp_path) -> Path:
    """A copy a test may break (delete or corrupt a file)."""
    return Path(shutil.copytree(tiny_exported, tmp_path / "exported"))


def serve_in_subprocess(exported: Path, tmp_path: Path, serve: str = "{max_n: 64}"):
    """`genmodels serve` on 127.0.0.1 in a subprocess (params `serve: <serve>`): yields its
    base URL, then stops it."""
    port = free_port()
    params = tmp_path / "params.yaml"
    params.write_text(f"models:\n  ae: {{family: autoencoder, epochs: 1}}\nserve: {serve}\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "genmodels.cli",
            "serve",
            "--params",
            str(params),
            "--exported-dir",
            str(exported),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/health", proc, timeout=60)
        yield url
    finally:
        stop(proc)


@pytest.fixture
def served(tiny_exported, tmp_path):
    yield from serve_in_subprocess(tiny_exported, tmp_path)


@pytest.fixture
def served_rgb(tmp_path):
    """The service on two RGB models that take any size (tiny_graphs.export_rgb_models)."""
    yield from serve_in_subprocess(export_rgb_models(tmp_path / "exported"), tmp_path)


@pytest.fixture
def serve_with(tiny_exported, tmp_path):
    """Starts the service on the tiny graphs with the given `serve:` params; stops it after."""
    running = []

    def start(serve: str) -> str:
        server = serve_in_subprocess(tiny_exported, tmp_path, serve)
        running.append(server)
        return next(server)

    yield start
    for server in running:
        server.close()  # its finally: stops the process
