"""make bench-tiles: a 2,000 x 2,000 photo upscaled by `genmodels upscale` in tiles, timed and
its peak memory read -> reports/bench/tiles.json.

The photo is scikit-image's astronaut (512 x 512) scaled to 2,000 x 2,000 with Pillow's bicubic
filter: no packaged photo is that large. The command runs as a user runs it, in a child process
whose peak resident memory (ru_maxrss) is read when it exits, against `infer.max_memory_mb` of
the params file. Not a stage: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import onnxruntime as ort
from PIL import Image
from skimage import data as photos

from bench_docs import update_docs
from genmodels.config import load_params
from timed_repro import cpu_model

SIDE = 2000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="profiles/photos", help="where the upscaler is")
    parser.add_argument("--model", default="srgan", help="the upscaling instance")
    parser.add_argument("--out", default="reports/bench/tiles.json")
    args = parser.parse_args()
    profile = Path(args.profile)
    params_path = profile / "params.yaml"
    infer = load_params(params_path).infer
    graph = profile / "exported" / args.model / "generator.onnx"
    if not graph.is_file():
        print(f"error: {graph}: missing; run `make repro-photos` first", file=sys.stderr)
        return 2
    scale = int(ort.InferenceSession(str(graph)).get_modelmeta().custom_metadata_map["scale"])
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "astronaut.png"
        Image.fromarray(photos.astronaut()).resize((SIDE, SIDE), Image.Resampling.BICUBIC).save(
            photo
        )
        command = [sys.executable, "-m", "genmodels.cli", "upscale", args.model, str(photo),
                   "--out", str(Path(tmp) / "out"), "--params", str(params_path),
                   "--exported-dir", str(profile / "exported")]  # fmt: skip
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return result.returncode
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        with Image.open(Path(tmp) / "out" / "astronaut.png") as upscaled:
            size = list(upscaled.size)
    report = {
        "input": [SIDE, SIDE],
        "output": size,
        "scale": scale,
        "graph": str(graph),
        "tile_side": infer.tile_side,
        "tile_overlap": infer.tile_overlap,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "max_memory_mb": infer.max_memory_mb,
        "within_bound": peak_mb <= infer.max_memory_mb,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": len(os.sched_getaffinity(0)),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    update_docs()
    return 0


if __name__ == "__main__":
    sys.exit(main())
