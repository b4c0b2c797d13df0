"""`make gpu-check`: the GPU path checked on a CUDA machine -> reports/bench/gpu.json.

1. Every family trains `--steps` steps through pipeline/train.py as the train stage runs it: in
   float32 (no autocast, contiguous layout, eager), in float32 from the next seed, and with
   bf16 autocast, channels-last and torch.compile from the first seed. The mean of each logged
   loss over the last quarter of the run must agree within a tolerance (below). The evaluator
   trains first: the SRGAN's content loss reads its features.
2. DDP over NCCL: the gan instance on two processes (genmodels.training.launch), where the
   machine has two GPUs; one GPU cannot hold two NCCL ranks, so with one the check says so.
3. The whole default pipeline, timed: `dvc repro` in a temporary copy of the repository, with
   the default params (`train.device: auto`).

Tolerance. bf16 keeps 8 significand bits, so every activation of the fast run is rounded by
up to 2^-9 of its value and the two runs drift apart step by step: what must agree is the level
a loss reaches, not its path. How far that level moves for reasons that are not bugs is
measured, not assumed: float32 trains a third time from the next seed. A loss passes when the
fast run's late mean differs from float32's by at most NOISE_FACTOR (2) times what the other
seed's differs, and never less than FLOOR (2 %) of it. A broken path (NaN, divergence, a
layout that scrambles images) misses by far more than a change of seed does.
`--device cpu --no-compile` runs the same checks on a CPU (a smoke test).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from genmodels.errors import UserError
from genmodels.io import write_json
from genmodels.stage import run_stage
from timed_repro import copy_pipeline

REPO = Path(__file__).resolve().parent.parent
OUT = Path("reports/bench/gpu.json")
NOISE_FACTOR = 2.0
FLOOR = 0.02
# the three runs of each family: name -> (seed offset, GPU switches on)
RUNS = {"float32": (0, False), "float32_next_seed": (1, False), "bf16_compiled": (0, True)}
log = logging.getLogger("gpu_check")


def check_params(params: dict, instances: list[str], steps: int, device: str,
                 fast: bool, compile_: bool, seed_offset: int = 0) -> dict:  # fmt: skip
    """The repository's params with every checked instance (and the evaluator) at `steps`
    steps, on `device`, with the GPU switches on (`fast`) or off, the seed moved by
    `seed_offset`."""
    params = json.loads(json.dumps(params))
    params["train"] |= {
        "seed": params["train"]["seed"] + seed_offset,
        "device": device, "mixed_precision": "bf16" if fast else "off",
        "channels_last": "on" if fast else "off", "compile": fast and compile_,
        "monitor_every": 0, "checkpoint_every": 10**9, "log_every": max(1, steps // 40),
        "progress": "log",
    }  # fmt: skip
    for section in [params["evaluator"], *(params["models"][i] for i in instances)]:
        section.pop("epochs", None)
        section["steps"] = steps
        if "pretrain_steps" in section:  # the SRGAN: half MSE, half adversarial
            section["pretrain_steps"] = steps // 2
    params["models"] = {i: params["models"][i] for i in instances}
    return params


def workspace(root: Path, params: dict, prepared: Path) -> Path:
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(prepared, root / "data" / "prepared")
    return root


def stage(ws: Path, script: str, *args: str, nproc: int = 1) -> float:
    """Runs pipeline/<script> in the workspace as its stage does; its wall seconds."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{ws / 'mlflow.db'}")
    command = [sys.executable, str(REPO / "pipeline" / script), *args]
    if nproc > 1:
        command[1:1] = ["-m", "genmodels.training.launch", f"--nproc={nproc}"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ws, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"{script} {' '.join(args)} in {ws} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def train(ws: Path, instance: str, nproc: int = 1) -> float:
    seconds = stage(ws, "train.py", "--instance", instance, nproc=nproc)
    if instance == "evaluator":  # the reference features the SRGAN's content loss reads
        stage(ws, "evaluate_evaluator.py")
    return seconds


def late_means(plots: Path) -> dict[str, float]:
    """Each logged loss's mean over the last quarter of the rows of a plots/train CSV."""
    rows = list(csv.DictReader(plots.open()))
    late = rows[-max(1, len(rows) // 4) :]
    means = {}
    for key in rows[0]:
        if "loss" not in key and key not in ("mse", "l1"):
            continue
        values = [float(r[key]) for r in late if r.get(key) not in (None, "")]
        if values:
            means[key] = sum(values) / len(values)
    return means


def compare(slow: dict[str, float], next_seed: dict[str, float],
            fast: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    """Per loss: the fast run's relative difference from float32 against the tolerance that
    float32's own change of seed sets."""
    found = {}
    for key, reference in slow.items():
        scale = max(abs(reference), 1e-3)
        seed_difference = abs(next_seed.get(key, math.nan) - reference) / scale
        tolerance = max(NOISE_FACTOR * seed_difference, FLOOR)
        value = fast.get(key, math.nan)
        difference = abs(value - reference) / scale
        found[key] = {"float32": reference, "bf16_compiled": value,
                      "relative_difference": difference,
                      "next_seed_relative_difference": seed_difference,
                      "tolerance": tolerance, "ok": difference <= tolerance}  # fmt: skip
    return found


def one_instance_per_family(params: dict) -> list[str]:
    """The first instance of each family, the SRGAN's own (srgan variant) preferred."""
    chosen: dict[str, str] = {}
    for name, model in params["models"].items():
        if model["family"] not in chosen or model.get("variant") == "srgan":
            chosen[model["family"]] = name
    return list(chosen.values())


def main(args) -> None:
    import torch

    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("no CUDA device here: run make gpu-check on a machine with one "
                        "(--device cpu runs the same checks on the CPU, as a smoke test)")  # fmt: skip
    prepared = Path(args.prepared)
    if not (prepared / "manifest.json").is_file():
        raise UserError(f"{prepared}: no prepared data; run `dvc repro prepare` (or dvc pull)")
    params = yaml.safe_load(Path(args.params).read_text())
    instances = args.instances.split(",") if args.instances else one_instance_per_family(params)
    unknown = [i for i in instances if i not in params["models"]]
    if unknown:
        raise UserError(f"--instances: {', '.join(unknown)} not in models: of {args.params}")
    report: dict[str, Any] = {"device": device, "steps": args.steps, "families": {}}
    if device == "cuda":
        report["gpu"] = torch.cuda.get_device_name(0)
        report["gpus"] = torch.cuda.device_count()
    with tempfile.TemporaryDirectory() as tmp:
        spaces = {}
        for name, (offset, fast) in RUNS.items():
            settings = check_params(params, instances, args.steps, device, fast, args.compile,
                                    offset)  # fmt: skip
            spaces[name] = workspace(Path(tmp) / name, settings, prepared)
        seconds: dict[str, dict[str, float]] = {}
        for instance in ["evaluator", *instances]:
            for name, ws in spaces.items():
                seconds.setdefault(instance, {})[name] = round(train(ws, instance), 1)
            found = compare(*(late_means(ws / f"plots/train/{instance}.csv")
                              for ws in spaces.values()))  # fmt: skip
            report["families"][instance] = {"losses": found, "seconds": seconds[instance],
                                            "ok": all(f["ok"] for f in found.values())}  # fmt: skip
            log.info("%s: %s", instance, "ok" if report["families"][instance]["ok"] else "DIFFERS")
            write_json(args.out, report)  # what is checked survives a later failure
        report["ddp_nccl"] = ddp_check(spaces["bf16_compiled"], device, instances)
    report["pipeline"] = time_pipeline() if args.pipeline else "not run (--no-pipeline)"
    report["ok"] = all(f["ok"] for f in report["families"].values())
    report["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json(args.out, report)
    log.info("-> %s: %s", args.out, "every family within tolerance" if report["ok"] else
             "a family outside its tolerance")  # fmt: skip


def ddp_check(ws: Path, device: str, instances: list[str]) -> dict[str, Any] | str:
    import torch

    if device != "cuda":
        return "not run: NCCL needs CUDA"
    if torch.cuda.device_count() < 2:
        return "not run: one GPU (NCCL needs a device per process)"
    instance = "gan" if "gan" in instances else instances[0]
    seconds = train(ws, instance, nproc=2)
    metrics = json.loads((ws / f"metrics/train/{instance}.json").read_text())
    return {"instance": instance, "processes": metrics["processes"], "seconds": round(seconds, 1)}


def time_pipeline() -> dict[str, Any]:
    """`make repro`'s timed `dvc repro` (tools/timed_repro.py) of the default params in a
    temporary copy of the repository: its record of the run."""
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_pipeline(Path(tmp))
        shutil.copy(REPO / "params.yaml", root / "params.yaml")
        env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}")
        result = subprocess.run([sys.executable, str(REPO / "tools" / "timed_repro.py")],
                                cwd=root, env=env, capture_output=True, text=True)  # fmt: skip
        if result.returncode != 0:
            raise UserError(f"dvc repro failed:\n{result.stdout[-3000:]}")
        return json.loads((root / "reports/bench/repro.json").read_text())


def add_args(parser) -> None:
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--steps", type=int, default=300, help="steps per family and setting")
    parser.add_argument("--instances", default="", help="comma-separated (one per family)")
    parser.add_argument("--prepared", default="data/prepared", help="the prepared data")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="bf16 and channels-last without torch.compile")  # fmt: skip
    parser.add_argument("--no-pipeline", dest="pipeline", action="store_false",
                        help="skip the timed dvc repro")  # fmt: skip
    parser.add_argument("--out", default=str(OUT))


if __name__ == "__main__":
    run_stage(main, description=__doc__.splitlines()[0], add_args=add_args)
