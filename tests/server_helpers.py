"""Servers the tests start on 127.0.0.1: a free port, waiting for it to answer, stopping it, and
the addresses a server process really listens on."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float) -> None:
    """Polls url until it answers 200; fails with the server's output if it dies or hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"server exited with {proc.returncode}:\n{out[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def stop(proc: subprocess.Popen, group: bool = False, timeout: float = 15) -> None:
    """Stops `proc`: SIGTERM, then SIGKILL after `timeout` seconds. With `group` (a process
    started with start_new_session=True), every process of its group goes too: `mlflow server`
    leaves its uvicorn worker and job consumers running when only it is terminated."""

    def ended() -> bool:
        proc.poll()  # reaps the leader, which killpg would otherwise still find
        if not group:
            return proc.returncode is not None
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:  # the whole group has ended
            return True
        return False

    for sig in (signal.SIGTERM, signal.SIGKILL):
        if ended():
            break
        try:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not ended():
            time.sleep(0.2)
    proc.wait(timeout=timeout)


def child_processes(*words: str) -> list[int]:
    """The pids of this process's children whose command line holds all of `words` (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # ended meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # after "pid (comm) state"
        if ppid == os.getpid() and all(word in argv for word in words):
            found.append(int(entry.name))
    return found


def listening(pid: int) -> set[tuple[str, int]]:
    """(host, port) of every TCP socket process `pid` listens on, as the kernel reports them:
    the sockets among its open files, looked up in its network namespace's TCP tables (Linux)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():  # no IPv6 in this kernel
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: TCP_LISTEN
                continue
            host_hex, port_hex = local.split(":")
            # the address is printed as 32-bit words in the machine's byte order
            words = [int(host_hex[i : i + 8], 16) for i in range(0, len(host_hex), 8)]
            address = struct.pack(f"={len(words)}I", *words)
            found.add((socket.inet_ntop(family, address), int(port_hex, 16)))
    return found
