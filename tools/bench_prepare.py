"""bench-prepare (`make bench-prepare`): the prepare stage on a CIFAR-10-sized folder, 50,000 RGB
PNG files of 32x32 in ten class subfolders, written afresh in a temporary folder
-> reports/bench/prepare.json.

The files are random pixels (PNG barely compresses them, so decoding costs what real photos of
that size cost). prepare() runs as the stage runs it, data.name folder, twice; the report keeps
each wall time, their median and the target of params bench.max_prepare_seconds.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

from bench_docs import update_docs
from genmodels.config import DataParams, load_params
from genmodels.data.prepare import prepare
from genmodels.io import write_json
from genmodels.stage import run_stage
from timed_repro import cpu_model

OUT = Path("reports/bench/prepare.json")
log = logging.getLogger("bench_prepare")


def write_folder(root: Path, count: int, side: int, classes: int, seed: int = 0) -> None:
    """`count` random RGB PNG files of side x side, spread over `classes` subfolders."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        folder = root / f"class_{index % classes}"
        if index < classes:
            folder.mkdir(parents=True)
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:05d}.png")


def main(args) -> None:
    target = load_params(args.params).bench.max_prepare_seconds
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        started = time.perf_counter()
        write_folder(folder, args.count, args.side, args.classes)
        log.info("wrote %d PNG files in %.1f s", args.count, time.perf_counter() - started)
        data = DataParams(name="folder", folder=str(folder), prepared_dir=str(Path(tmp) / "out"),
                          test_fraction=args.test_fraction)  # fmt: skip
        seconds = []
        for run in range(args.runs):
            started = time.perf_counter()
            manifest = prepare(data)
            seconds.append(time.perf_counter() - started)
            log.info("prepare run %d: %.1f s", run + 1, seconds[-1])
    median = statistics.median(seconds)
    report = {
        "what": f"prepare of {args.count} RGB PNG files of {args.side}x{args.side} in "
        f"{args.classes} class subfolders (data.name folder)",
        "files": args.count,
        "counts": manifest["counts"],
        "image_shape": manifest["image_shape"],
        "seconds": seconds,
        "median_seconds": median,
        "target_max_seconds": target,
        "target_met": median <= target,
        "cpu_model": cpu_model(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(OUT, report)
    log.info("median %.1f s (target at most %.0f s): %s", median, target,
             "met" if report["target_met"] else "NOT met")  # fmt: skip
    update_docs()


def add_args(parser) -> None:
    parser.add_argument("--count", type=int, default=50_000, help="files (CIFAR-10: 50,000)")
    parser.add_argument("--side", type=int, default=32, help="pixels per side")
    parser.add_argument("--classes", type=int, default=10, help="class subfolders")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--runs", type=int, default=2, help="prepare runs timed")


if __name__ == "__main__":
    run_stage(main, description=__doc__, add_args=add_args)
