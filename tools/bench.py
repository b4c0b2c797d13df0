"""bench (`make bench`): training throughput of every instance through the Trainer against a
bare PyTorch loop over the same recipe and batch, the time spent waiting for data, the evaluate
stage's cost per instance, and the pipeline's wall time -> reports/bench/train.json.

The bare loop is the least a training loop can be: slice a batch from the in-memory tensors,
call the family's training_step. The Trainer adds its bookkeeping (logging sums, log rows,
progress, checkpoint schedule, MLflow metric rows); the difference is its overhead. Both run
on the same recipe after a warm-up, alternated (bare, Trainer, bare, ...), each Trainer run
against the bare runs either side of it, so that a drift in the machine's speed does not bias
one side. Many short rounds rather than a few long ones: the drift is slow, so close
neighbours differ less, and the median of nine pairs moves less than that of three.
Not a stage (the numbers depend on the machine); the figures section of docs/benchmarks.md is
rendered from the file at the end (tools/bench_docs.py).
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from bench_docs import update_docs
from genmodels.config import EVALUATOR, TrainParams, load_params
from genmodels.data.prepared import load_prepared
from genmodels.io import write_json
from genmodels.models import build_recipe, data_info
from genmodels.models.evaluator import load_space
from genmodels.report import markdown_table
from genmodels.stage import run_stage
from genmodels.training import Batch, Budget, Trainer, TrainOutputs
from genmodels.training.recipe import DataInfo
from genmodels.training.runtime import seed_everything, select_device, set_threads
from timed_repro import cpu_model

OUT = Path("reports/bench/train.json")
WARMUP_STEPS = 5
log = logging.getLogger("bench")


def bare_loop(recipe, images, labels, batch_size: int, steps: int, first_step: int) -> float:
    """Images per second of `steps` training steps with nothing around them."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(first_step))
    per_epoch = len(images) // batch_size
    started = time.perf_counter()
    for step in range(first_step, first_step + steps):
        at = (step % per_epoch) * batch_size
        idx = order[at : at + batch_size]
        recipe.training_step(Batch(images[idx].float().div_(255.0), labels[idx]), step)
    return steps * batch_size / (time.perf_counter() - started)


def steps_for(recipe, images, labels, batch_size: int, seconds: float) -> int:
    """Warms the recipe up and returns how many steps fill about `seconds`."""
    started = time.perf_counter()
    bare_loop(recipe, images, labels, batch_size, WARMUP_STEPS, 0)
    per_step = (time.perf_counter() - started) / WARMUP_STEPS
    return max(10, int(seconds / per_step))


def trainer_segment(recipe, instance: str, data, params, batch: int, steps: int, tag: str):
    """One Trainer.fit of `steps` steps on the same recipe: its final metrics, and the share of
    its loop spent outside the training steps and the batch slicing (both of which the bare loop
    does too), measured within the same run and so free of the machine's drift."""
    inside = 0.0
    step_function = recipe.training_step

    def timed_step(*args):
        nonlocal inside
        started = time.perf_counter()
        try:
            return step_function(*args)
        finally:
            inside += time.perf_counter() - started

    settings = TrainParams(
        seed=params.train.seed, log_every=params.train.log_every, progress="log",
        checkpoint_every=10**9, monitor_every=0, device=params.train.device,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            recipe, data.train_images, data.train_labels, budget=Budget(steps=steps),
            batch_size=batch, settings=settings,
            outputs=TrainOutputs.for_instance(instance, "checkpoints", root=Path(tmp)),
            fingerprint=f"bench-{instance}-{tag}", name=f"bench@{instance}",
        )  # fmt: skip
        recipe.training_step = timed_step  # an instance attribute: what the Trainer calls
        try:
            final = trainer.fit()
        finally:
            del recipe.training_step
    # the loop's time from images/s, which the Trainer computes before rounding (train_seconds
    # is rounded to 10 ms, a few percent of a short run)
    loop_seconds = final["steps"] * final["batch_size"] / final["images_per_second"]
    final["around_steps"] = 1 - inside / loop_seconds - final["data_fraction"]
    return final


def measure(instance: str, params, data, device, seconds: float, rounds: int) -> dict:
    """Trainer and bare loop alternated: bare, Trainer, bare, ..., bare (rounds Trainer runs).

    Each Trainer run is compared with the mean of the bare runs just before and after it, and
    the overhead is the median over rounds: the machine's speed drifts (other work on it), and
    a comparison of neighbours cancels most of that drift.
    """
    model = params.model(instance)
    seed_everything(params.train.seed)
    recipe = build_recipe(model, data_info(data), device, instance)
    recipe.attach_data(params.data.prepared_dir)
    if getattr(recipe, "needs_space", False):  # a loss computed in the evaluator space
        with torch.random.fork_rng(devices=[]):
            recipe.attach_space(load_space(params, data, device), params.train.monitor_samples)
    recipe.train(True)
    images, labels = data.train_images.to(device), data.train_labels.to(device)
    batch = min(model.batch_size, len(images))
    steps = steps_for(recipe, images, labels, batch, seconds)
    first = WARMUP_STEPS
    bare = [bare_loop(recipe, images, labels, batch, steps, first)]
    trainer, data_fraction, around = [], [], []
    for round_ in range(rounds):
        final = trainer_segment(recipe, instance, data, params, batch, steps, str(round_))
        trainer.append(final["images_per_second"])
        data_fraction.append(final["data_fraction"])
        around.append(final["around_steps"])
        first += 2 * steps
        bare.append(bare_loop(recipe, images, labels, batch, steps, first))
    overheads = [1 - t / ((bare[i] + bare[i + 1]) / 2) for i, t in enumerate(trainer)]
    return {
        "family": model.family,
        "batch_size": batch,
        "steps_per_run": steps,
        "rounds": rounds,
        "trainer_images_per_second": round(statistics.median(trainer), 1),
        "bare_images_per_second": round(statistics.median(bare), 1),
        "trainer_runs": [round(t, 1) for t in trainer],
        "bare_runs": [round(b, 1) for b in bare],
        "overhead_per_round": [round(o, 4) for o in overheads],
        "trainer_overhead": round(statistics.median(overheads), 4),
        # the same overhead from inside each Trainer run: loop time outside steps and slicing
        "trainer_overhead_in_run": round(statistics.median(around), 4),
        "data_fraction": round(max(data_fraction), 5),
    }


def throughput_by_shape(instance: str, params, device, shapes: list[tuple[int, int, int]],
                        seconds: float, rounds: int) -> dict:  # fmt: skip
    """The bare loop's images/s of one instance built for each image shape, on random uint8
    images of that shape; shapes alternated round by round (the machine's speed drifts)."""
    model = params.model(instance)
    setups = {}
    for shape in shapes:
        seed_everything(params.train.seed)
        info = DataInfo(f"random {shape}", shape, 10, tuple(str(c) for c in range(10)))
        recipe = build_recipe(model, info, device, instance)
        recipe.train(True)
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (2048, *shape), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, 10, (2048,), generator=generator)
        batch = model.batch_size
        images, labels = images.to(device), labels.to(device)
        steps = steps_for(recipe, images, labels, batch, seconds)
        setups["x".join(map(str, shape))] = (recipe, images, labels, batch, steps)
    runs: dict[str, list[float]] = {name: [] for name in setups}
    for round_ in range(rounds):
        for name, (recipe, images, labels, batch, steps) in setups.items():
            runs[name].append(bare_loop(recipe, images, labels, batch, steps, round_ * steps))
    return {
        name: {
            "family": model.family,
            "batch_size": setups[name][3],
            "images_per_second": round(statistics.median(found), 1),
            "runs": [round(r, 1) for r in found],
        }
        for name, found in runs.items()
    }


def main(args) -> None:
    params = load_params(args.params)
    set_threads(params.train.num_threads)
    device = select_device(params.train.device)
    data = load_prepared(params.data.prepared_dir)
    logging.getLogger("genmodels.training.trainer").setLevel(logging.WARNING)
    instances = [EVALUATOR, *params.models] if args.only is None else args.only
    # the DCGAN at the default data's shape and at CIFAR-10's (3x32x32)
    by_shape = throughput_by_shape("gan", params, device, [tuple(data.image_shape), (3, 32, 32)],
                                   args.seconds, args.rounds)  # fmt: skip
    log.info("bench: gan by shape %s", by_shape)
    results = {}
    for instance in instances:
        log.info("bench: %s", instance)
        results[instance] = measure(instance, params, data, device, args.seconds, args.rounds)
        log.info("bench: %s %s", instance, results[instance])

    evaluate_cost = {}
    for path in sorted(Path("metrics/eval").glob("*.json")):
        seconds = json.loads(path.read_text()).get("evaluate_seconds")
        if seconds is not None:
            evaluate_cost[path.stem] = seconds
    repro_path = Path("reports/bench/repro.json")
    repro = json.loads(repro_path.read_text()) if repro_path.exists() else None
    last = json.loads(OUT.read_text()) if OUT.exists() else {}
    if args.only is not None and last.get("cpu_model") == cpu_model():
        # a partial run updates the last report from the same processor
        results = last.get("training", {}) | results
    report = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu_model": cpu_model(),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "training": results,
        "gan_by_shape": by_shape,
        "evaluate_seconds": evaluate_cost,
        "repro": repro,
    }
    write_json(OUT, report)
    header = ["instance", "family", "batch", "Trainer img/s", "bare loop img/s",
              "Trainer overhead (vs bare)", "(in run)", "data wait"]  # fmt: skip
    rows = [[name, r["family"], r["batch_size"], r["trainer_images_per_second"],
             r["bare_images_per_second"], f"{100 * r['trainer_overhead']:.1f}%",
             f"{100 * r['trainer_overhead_in_run']:.1f}%",
             f"{100 * r['data_fraction']:.2f}%"] for name, r in results.items()]  # fmt: skip
    print(markdown_table(header, rows))
    update_docs()


if __name__ == "__main__":

    def arguments(parser) -> None:
        parser.add_argument("--seconds", type=float, default=1.5, help="time per timed run")
        parser.add_argument("--rounds", type=int, default=9, help="Trainer runs, between bare runs")
        parser.add_argument(
            "--only", nargs="*", help="these instances only (none: the shapes only)"
        )

    run_stage(main, "Benchmark training throughput against a bare loop", arguments)
