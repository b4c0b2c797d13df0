"""tests/server_helpers.stop: a server is stopped whole, its own children included when it leads
a process group (mlflow server's uvicorn worker and job consumers)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from server_helpers import stop

# a leader that starts two children and waits for them, as `mlflow server` does
FAMILY = "sleep 60 & sleep 60 & echo started; wait"


def start_family() -> subprocess.Popen:
    """The leader of a new process group, once both its children run."""
    proc = subprocess.Popen(["sh", "-c", FAMILY], start_new_session=True, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout.readline() == "started\n"
    return proc


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
def test_stop_with_group_ends_the_leader_and_its_children():
    proc = start_family()
    stop(proc, group=True, timeout=5)
    assert proc.returncode is not None and not group_alive(proc.pid)


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
def test_stop_without_group_ends_only_the_process():
    proc = start_family()
    try:
        stop(proc, timeout=5)
        assert proc.returncode is not None
        assert group_alive(proc.pid)  # its children were left running
    finally:
        stop(proc, group=True, timeout=5)
    assert not group_alive(proc.pid)
