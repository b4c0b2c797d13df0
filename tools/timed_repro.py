"""`make repro`: runs `dvc repro` and, when it ran stages, records its wall time in
reports/bench/repro.json (stages run, seconds in all and per stage, machine), then renders the
figures section of docs/benchmarks.md from the reports (tools/bench_docs.py). Run in a profile's
folder (`make repro-photos`), it records the profile's run in that folder's reports/bench/."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_docs import update_docs

OUT = Path("reports/bench/repro.json")
REPO = Path(__file__).resolve().parent.parent


def cpu_model() -> str | None:
    """The processor's name: wall times differ several-fold between machines of 2 cores."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else None


def copy_pipeline(root: Path) -> Path:
    """The pipeline's code and DVC files under `root`, a git repository of its own (without
    params.yaml: the caller writes the params it runs), for a run away from the workspace."""
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    for folder in ("pipeline", "src", ".dvc"):
        shutil.copytree(REPO / folder, root / folder,
                        ignore=shutil.ignore_patterns("tmp", "cache", "__pycache__"))  # fmt: skip
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def main() -> int:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", *sys.argv[1:]],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
    )  # fmt: skip
    stages, starts = [], []
    for line in process.stdout:
        sys.stdout.write(line)
        if line.startswith("Running stage '"):
            stages.append(line.split("'")[1])
            starts.append(time.perf_counter())
    code = process.wait()
    seconds = time.perf_counter() - started
    # a stage lasts until the next one starts (DVC runs them one at a time)
    ends = [*starts[1:], started + seconds]
    if code == 0 and stages:
        record = {
            "seconds": round(seconds, 1),
            "stages_run": len(stages),
            "stages": stages,
            "stage_seconds": {
                stage: round(end - start, 1)
                for stage, start, end in zip(stages, starts, ends, strict=True)
            },
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "cpu_model": cpu_model(),
        }
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(record, indent=2) + "\n")
        print(f"dvc repro ran {len(stages)} stages in {seconds / 60:.1f} min -> {OUT}")
        if Path("docs/benchmarks.md").exists():  # the default run; a profile keeps its own record
            update_docs()
    return code


if __name__ == "__main__":
    sys.exit(main())
