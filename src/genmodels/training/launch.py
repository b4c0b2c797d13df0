"""`python -m genmodels.training.launch --nproc N script.py [args]`: N processes of one script on
this machine, joined through a file rather than a TCP store.

torchrun's agent serves its rendezvous store on every network interface (TCPStore has no bind
address), so a one-machine run would listen beyond the machine while it trains. Here the
processes meet in a FileStore in a private temporary folder, and gloo and nccl are told to use
the loopback interface: nothing listens outside 127.0.0.1. Several machines still go through
torchrun (`make train-ddp TORCHRUN_ARGS=...`), whose rendezvous address the user gives.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RENDEZVOUS_ENV = "GENMODELS_RENDEZVOUS"  # a file:// init_method for torch.distributed
GRACE_SECONDS = 10  # after one process fails, how long the others get to stop on SIGTERM


def loopback_interface() -> str:
    """The loopback interface's name ("lo" on Linux, "lo0" on macOS)."""
    names = [name for _, name in socket.if_nameindex()]
    return next((n for n in ("lo", "lo0") if n in names), names[0] if names else "lo")


def worker_env(rank: int, nproc: int, rendezvous: str) -> dict[str, str]:
    loopback = loopback_interface()
    env = dict(os.environ)
    env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc),
               LOCAL_WORLD_SIZE=str(nproc), GLOO_SOCKET_IFNAME=loopback,
               NCCL_SOCKET_IFNAME=loopback)  # fmt: skip
    env[RENDEZVOUS_ENV] = rendezvous
    env.setdefault("OMP_NUM_THREADS", "1")  # as torchrun: N processes share the cores
    return env


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def launch(nproc: int, command: list[str]) -> int:
    """Runs `command` in nproc processes; the first failure stops the others, and its exit
    status is the launcher's."""
    with tempfile.TemporaryDirectory(prefix="genmodels-rendezvous-") as folder:
        rendezvous = (Path(folder) / "store").as_uri()
        processes = [subprocess.Popen(command, env=worker_env(rank, nproc, rendezvous))
                     for rank in range(nproc)]  # fmt: skip

        def forward(signum, _frame):
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signum)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while True:
                codes = [process.poll() for process in processes]
                failed = next((c for c in codes if c not in (None, 0)), None)
                if failed is not None:
                    _stop(processes)
                    return failed if failed > 0 else 128 - failed  # a signal's number: 128 + n
                if all(c == 0 for c in codes):
                    return 0
                time.sleep(0.1)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m genmodels.training.launch",
        description="Run a training script on N processes of this machine (loopback only).",
    )
    parser.add_argument("--nproc", type=int, default=2, help="processes (default 2)")
    parser.add_argument("script", help="the Python script every process runs")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    options = parser.parse_args(argv)
    if options.nproc < 1:
        parser.error(f"--nproc must be at least 1 (got {options.nproc})")
    if not Path(options.script).is_file():
        parser.error(f"{options.script}: no such script")
    return launch(options.nproc, [sys.executable, options.script, *options.args])


if __name__ == "__main__":
    sys.exit(main())
