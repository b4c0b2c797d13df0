"""make demo: the demo profile (profiles/demo) trained and exported by `dvc repro`, timed into
reports/bench/demo.json, then served with its page's address printed.

Only the stages the service needs run (each instance's export, and what it depends on), so the
first run takes minutes; a second one finds them up to date and serves at once. `--no-serve`
stops after the timing (for a benchmark or CI).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from bench_docs import update_docs
from timed_repro import cpu_model

PROFILE = Path("profiles/demo")


def write_report(out: str, targets: list[str], stale: int | None, seconds: float) -> None:
    report = {
        "profile": str(PROFILE),
        "stages": targets,
        "stages_to_run": stale,  # out of date when it started (dvc status)
        "seconds": round(seconds, 1),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"demo profile trained and exported in {seconds / 60:.1f} min -> {out}")
    update_docs()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-serve", action="store_true", help="train and export, then stop")
    parser.add_argument("--out", default="reports/bench/demo.json")
    args = parser.parse_args()
    params = yaml.safe_load((PROFILE / "params.yaml").read_text())
    targets = [f"export@{name}" for name in params["models"]]
    status = subprocess.run(["dvc", "status", "--json", "--with-deps", *targets], cwd=PROFILE,
                            capture_output=True, text=True)  # fmt: skip
    stale = len(json.loads(status.stdout or "{}")) if status.returncode == 0 else None
    started = time.perf_counter()
    done = subprocess.run(["dvc", "repro", *targets], cwd=PROFILE)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        print(f"error: dvc repro in {PROFILE} failed (exit {done.returncode}); see above",
              file=sys.stderr)  # fmt: skip
        return done.returncode
    if stale == 0:  # nothing ran: the figure of the run that trained them stays
        print(f"the demo profile is up to date ({args.out} unchanged)")
    else:
        write_report(args.out, targets, stale, seconds)
    if args.no_serve:
        return 0
    serve = params.get("serve", {})
    host, port = serve.get("host", "127.0.0.1"), serve.get("port", 8000)
    print(f"\n  the page: http://{host}:{port}/   (API docs: http://{host}:{port}/docs; "
          "Ctrl-C stops)\n", flush=True)  # fmt: skip
    command = [sys.executable, "-m", "genmodels.cli", "serve", "--params",
               str(PROFILE / "params.yaml"), "--exported-dir", str(PROFILE / "exported")]  # fmt: skip
    try:
        return subprocess.run(command).returncode
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
