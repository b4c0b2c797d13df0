"""`make sweep`: experiments on DVC's queue. Each `--set` is one experiment (its overrides,
separated by spaces, as `dvc exp run -S` takes them); all are queued with `dvc exp run --queue`,
run by `dvc queue start -j JOBS`, and waited for; `dvc exp show` then lists them.

Queued experiments run in DVC's own temporary copies of the repository: the workspace, its
params and git's HEAD stay as they are, even when a run fails or the sweep is interrupted
(`dvc queue kill` and `dvc queue remove --all` clear what is left). Targets limit what each
experiment reproduces, e.g. `evaluate@gan`.

    make sweep SWEEP_ARGS='--set "models.gan.lr=0.0002" --set "models.gan.loss=hinge" evaluate@gan'
"""

from __future__ import annotations

import argparse
import logging
import shlex
import subprocess
import sys
import time

from genmodels.errors import UserError
from genmodels.stage import run_logged

log = logging.getLogger("sweep")
POLL_SECONDS = 2.0


def dvc(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], text=True,
                            capture_output=True)  # fmt: skip
    if result.returncode != 0:
        raise UserError(f"dvc {' '.join(args)} failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def queue_counts() -> dict[str, int]:
    """Experiments by state in `dvc queue status` (Queued, Running, Success, Failed)."""
    counts: dict[str, int] = {}
    for line in dvc("queue", "status").splitlines()[1:]:
        for state in ("Queued", "Running", "Success", "Failed"):
            if f" {state} " in f" {line} ":
                counts[state] = counts.get(state, 0) + 1
    return counts


def run_queued(experiments: list[tuple[str | None, list[str]]], targets: list[str],
               jobs: int) -> int:  # fmt: skip
    """Queues each (name or None, its -S overrides) with `dvc exp run --queue`, starts `jobs`
    workers and waits for the queue to empty; returns how many of them failed."""
    before = queue_counts()
    if before.get("Queued") or before.get("Running"):
        raise UserError("DVC's queue is not empty: see `dvc queue status`; clear it with "
                        "`dvc queue remove --queued` or wait for it")  # fmt: skip
    for name, overrides in experiments:
        named = ["-n", name] if name else []
        flags = [flag for item in overrides for flag in ("-S", item)]
        dvc("exp", "run", "--queue", *named, *flags, *targets)
        log.info("queued %s: %s", name or "an experiment", " ".join(overrides))
    dvc("queue", "start", "-j", str(jobs))
    log.info("%d experiments on %d workers", len(experiments), jobs)
    while True:
        counts = queue_counts()
        if not counts.get("Queued") and not counts.get("Running"):
            return counts.get("Failed", 0) - before.get("Failed", 0)
        time.sleep(POLL_SECONDS)


def main(args: argparse.Namespace) -> None:
    if not args.set:
        raise UserError('no experiment: give one --set "key=value ..." per experiment')
    failed = run_queued([(None, shlex.split(overrides)) for overrides in args.set],
                        args.targets, args.jobs)  # fmt: skip
    print(dvc("exp", "show", "--only-changed"))
    if failed:
        raise UserError(f"{failed} of {len(args.set)} experiments failed: `dvc queue logs <name>` "
                        "shows why")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--set", action="append", default=[],
                        help='one experiment\'s overrides, e.g. "models.gan.lr=0.0002"')  # fmt: skip
    parser.add_argument("--jobs", type=int, default=2, help="queue workers (dvc queue start -j)")
    parser.add_argument("targets", nargs="*", help="stages each experiment reproduces (all)")
    run_logged(main, parser.parse_args())
