"""The Trainer: drives any Recipe through a budget of epochs or steps.

It knows no model by name. Batches are sliced from uint8 tensors held on the device; every
`checkpoint_every` steps the whole training state (modules, optimizers, RNG, logged history)
is written atomically, and a rerun with the same fingerprint resumes from it, so an interrupted
run ends with the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from genmodels.config import TrainParams
from genmodels.io import save_torch, write_json, write_text
from genmodels.training import distributed
from genmodels.training.distributed import World
from genmodels.training.recipe import Batch, Recipe

log = logging.getLogger(__name__)

SINGLE_PROCESS = World()

# Given an MLflow run id to resume (or None), opens the run; returns an object with log_metrics.
RunOpener = Callable[[str | None], AbstractContextManager[Any]]


@dataclass(frozen=True)
class Budget:
    epochs: int | None = None
    steps: int | None = None

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.steps if self.steps is not None else self.epochs * steps_per_epoch


@dataclass(frozen=True)
class TrainOutputs:
    weights: Path
    metrics: Path
    plots: Path
    checkpoint: Path

    @classmethod
    def for_instance(cls, instance: str, checkpoint_dir: str | Path, root: Path = Path()):
        return cls(
            weights=root / "models" / instance / "model.pt",
            metrics=root / "metrics" / "train" / f"{instance}.json",
            plots=root / "plots" / "train" / f"{instance}.csv",
            checkpoint=root / checkpoint_dir / instance / "last.pt",
        )


class _NoRun:
    run_id = None

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def log_artifact(self, path, artifact_path=None) -> None:
        pass


class Trainer:
    def __init__(
        self,
        recipe: Recipe,
        images: Tensor,
        labels: Tensor,
        *,
        budget: Budget,
        batch_size: int,
        settings: TrainParams,
        outputs: TrainOutputs,
        fingerprint: str,
        open_run: RunOpener | None = None,
        name: str = "train",
        world: World = SINGLE_PROCESS,
    ):
        if images.dtype != torch.uint8:
            raise TypeError("the Trainer expects uint8 images (pixels 0..255)")
        self.recipe = recipe
        self.device = recipe.device
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = min(batch_size, len(images))
        # under torchrun each process takes its share of every global batch
        self.world = world
        self.local_batch = distributed.check_batch(self.batch_size, world)
        # drop the ragged last batch: every step sees the same batch size (BatchNorm, GANs)
        self.steps_per_epoch = max(1, len(images) // self.batch_size)
        self.total_steps = budget.total_steps(self.steps_per_epoch)
        self.settings = settings
        self.outputs = outputs
        self.fingerprint = fingerprint
        # rank 0 alone records: MLflow, checkpoints, metrics and plots
        no_run = lambda run_id: nullcontext(_NoRun())  # noqa: E731
        self.open_run = (open_run or no_run) if world.is_main else no_run
        self.name = name
        self._accelerate(settings)
        if world.distributed:
            recipe.wrap_trained(distributed.wrapper(world, self.device))
        if settings.compile:  # after DDP, so that dynamo sees its buckets
            recipe.wrap_trained(torch.compile)
        if world.distributed or settings.compile:
            # one weight init for all (DDP broadcast rank 0's when it wrapped them), but each
            # rank its own noise (latents, dropout) from here on; a one-process run without
            # compile keeps the RNG as seeding and building the recipe left it
            torch.manual_seed(settings.seed * 1009 + world.rank)

    def _accelerate(self, settings: TrainParams) -> None:
        """The GPU path: bf16 autocast, channels-last layout, torch.compile (from params)."""
        cuda = self.device.type == "cuda"
        bf16 = settings.mixed_precision == "bf16" or (
            settings.mixed_precision == "auto" and cuda and torch.cuda.is_bf16_supported()
        )
        # bf16 keeps float32's range: no loss scaling, and losses autocast keeps in float32
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16)
        self.channels_last = settings.channels_last == "on" or (
            settings.channels_last == "auto" and cuda
        )
        if self.channels_last:
            for module in self.recipe.modules().values():
                module.to(memory_format=torch.channels_last)
        self.acceleration = {"bf16": bf16, "channels_last": self.channels_last,
                             "compile": settings.compile}  # fmt: skip

    # -- state ------------------------------------------------------------------------------
    def _fresh_state(self) -> dict[str, Any]:
        return {
            "step": 0,
            "history": [],  # one row per log interval
            "window": {},  # sums since the last logged row
            "window_count": {},  # per key: a recipe may log a number on some steps only
            "epoch": {},  # sums over the current epoch: the final figures
            "epoch_count": {},
            "run_id": None,
            "elapsed": 0.0,
        }

    def _save_checkpoint(self, state: dict[str, Any]) -> None:
        payload = {
            "fingerprint": self.fingerprint,
            "trainer": state,
            "recipe": self.recipe.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.recipe.optimizers().items()},
            "schedulers": {k: s.state_dict() for k, s in self.recipe.schedulers().items()},
            # every rank's too: what a rank keeps of its own (the CycleGAN's history pools: its
            # fakes and its own generator) goes back to that rank
            "extra": distributed.gather_objects(self.recipe.extra_state(), self.world),
            # every rank's generator state, so each resumes its own noise
            "rng_cpu": distributed.gather_objects(torch.get_rng_state(), self.world),
            "rng_cuda": distributed.gather_objects(
                torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [], self.world
            ),
        }
        if self.world.is_main:
            save_torch(payload, self.outputs.checkpoint)
        distributed.barrier(self.world)

    def _read_checkpoint(self) -> dict[str, Any] | None:
        path = self.outputs.checkpoint
        if not path.exists():
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged checkpoint is only lost time: start over
            log.warning("ignoring unreadable checkpoint %s (%s); training from scratch", path, exc)
            return None
        if payload.get("fingerprint") != self.fingerprint:
            log.info("checkpoint %s is from other params or data; training from scratch", path)
            return None
        return payload

    def _load_checkpoint(self) -> dict[str, Any] | None:
        # rank 0 decides, so that every process resumes from the same step or none does
        payload = self._read_checkpoint() if self.world.is_main else None
        payload = distributed.broadcast_object(payload, self.world)
        if payload is None:
            return None
        self.recipe.load_state_dict(payload["recipe"])
        for key, opt in self.recipe.optimizers().items():
            opt.load_state_dict(payload["optimizers"][key])
        for key, sched in self.recipe.schedulers().items():
            sched.load_state_dict(payload["schedulers"][key])
        extra = payload["extra"]  # a dict in checkpoints from before it held every rank's
        self.recipe.load_extra_state(extra[self.world.rank] if isinstance(extra, list) else extra)
        torch.set_rng_state(payload["rng_cpu"][self.world.rank].cpu())
        if payload["rng_cuda"][self.world.rank]:
            torch.cuda.set_rng_state_all([s.cpu() for s in payload["rng_cuda"][self.world.rank]])
        state = payload["trainer"]
        log.info(
            "resuming %s from checkpoint at step %d/%d", self.name, state["step"], self.total_steps
        )
        return state

    # -- loop -------------------------------------------------------------------------------
    def _epoch_order(self, epoch: int) -> Tensor:
        # the order depends only on (seed, epoch), so a resumed epoch sees the same batches
        gen = torch.Generator().manual_seed(self.settings.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.images), generator=gen).to(self.device)

    def _batch(self, order: Tensor, index_in_epoch: int) -> Batch:
        idx = order[index_in_epoch * self.batch_size : (index_in_epoch + 1) * self.batch_size]
        idx = idx[self.world.rank :: self.world.size]  # this process's shard
        images = self.images[idx].float().div_(255.0)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return Batch(images=images, labels=self.labels[idx])

    def _use_bar(self) -> bool:
        mode = self.settings.progress
        on_terminal = mode == "bar" or (mode == "auto" and sys.stderr.isatty())
        return on_terminal and self.world.is_main

    def fit(self) -> dict[str, Any]:
        state = self._load_checkpoint() or self._fresh_state()
        self.recipe.train(True)
        log_every, ckpt_every = self.settings.log_every, self.settings.checkpoint_every
        monitor_every = self.settings.monitor_every
        with self.open_run(state["run_id"]) as run:
            state["run_id"] = run.run_id
            bar = tqdm(
                total=self.total_steps,
                initial=state["step"],
                desc=self.name,
                disable=not self._use_bar(),
                dynamic_ncols=True,
            )
            started = time.perf_counter() - state["elapsed"]
            last_line = 0.0
            order = None
            for step in range(state["step"], self.total_steps):
                epoch, index = divmod(step, self.steps_per_epoch)
                if order is None or index == 0:
                    order = self._epoch_order(epoch)
                    if index == 0:
                        state["epoch"], state["epoch_count"] = {}, {}
                fetch_started = time.perf_counter()
                batch = self._batch(order, index)
                state["data_seconds"] = state.get("data_seconds", 0.0) + (
                    time.perf_counter() - fetch_started
                )
                with self.autocast:
                    values = self.recipe.training_step(batch, step)
                for key, value in values.items():
                    value = value.detach() if isinstance(value, Tensor) else float(value)
                    for sums, counts in (("window", "window_count"), ("epoch", "epoch_count")):
                        state[sums][key] = state[sums].get(key, 0.0) + value
                        state[counts][key] = state[counts].get(key, 0) + 1
                done = step + 1
                bar.update(1)
                if done % self.steps_per_epoch == 0:
                    self.recipe.end_of_epoch(epoch)
                if done % log_every == 0 or done == self.total_steps:
                    row = self._flush_window(state, done, epoch)
                    watch = monitor_every and (
                        done % monitor_every == 0 or done == self.total_steps
                    )
                    if watch and self.world.is_main:
                        watched = self.recipe.monitor()
                        row |= {f"monitor_{k}": v for k, v in watched.items()}
                    run.log_metrics({k: v for k, v in row.items() if k not in ("step",)}, step=done)
                    bar.set_postfix(
                        {k: f"{v:.4g}" for k, v in row.items() if k not in ("step", "epoch")}
                    )
                    now = time.perf_counter()
                    quiet = self._use_bar() or not self.world.is_main
                    if not quiet and (now - last_line > 5 or done == self.total_steps):
                        last_line = now
                        shown = ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "step")
                        log.info("%s step %d/%d: %s", self.name, done, self.total_steps, shown)
                if done % ckpt_every == 0 and done < self.total_steps:
                    state["step"] = done
                    state["elapsed"] = time.perf_counter() - started
                    self._save_checkpoint(_to_floats(state))
            bar.close()
            state["step"] = self.total_steps
            elapsed = time.perf_counter() - started
            final = self._final_metrics(state, elapsed)
            if self.world.is_main:
                run.log_metrics({f"final_{k}": v for k, v in final.items()})
                self._write_outputs(state, final)
                run.log_artifact(self.outputs.plots)
                run.log_artifact(self.outputs.metrics)
                self.outputs.checkpoint.unlink(missing_ok=True)
        distributed.barrier(self.world)
        return final

    def _flush_window(self, state: dict[str, Any], done: int, epoch: int) -> dict[str, float]:
        means = {k: float(v) / state["window_count"][k] for k, v in state["window"].items()}
        row = {"step": done, "epoch": epoch + 1} | distributed.mean_over_ranks(means, self.world)
        state["history"].append(row)
        state["window"], state["window_count"] = {}, {}
        return row

    def _final_metrics(self, state: dict[str, Any], elapsed: float) -> dict[str, Any]:
        means = {k: float(v) / state["epoch_count"][k] for k, v in state["epoch"].items()}
        final: dict[str, Any] = distributed.mean_over_ranks(means, self.world)
        images = self.total_steps * self.batch_size
        final |= {
            "steps": self.total_steps,
            "epochs": round(self.total_steps / self.steps_per_epoch, 4),
            "batch_size": self.batch_size,
            "processes": self.world.size,
            **self.acceleration,
            "train_seconds": round(elapsed, 2),
            "images_per_second": round(images / elapsed, 1) if elapsed > 0 else math.inf,
            # time spent slicing batches from the in-memory tensors: never the bottleneck
            "data_seconds": round(state.get("data_seconds", 0.0), 3),
            "data_fraction": round(state.get("data_seconds", 0.0) / elapsed, 5) if elapsed else 0,
        }
        final |= self.recipe.summarise(state["history"])
        return final

    def _write_outputs(self, state: dict[str, Any], final: dict[str, Any]) -> None:
        save_torch(self.recipe.state_dict(), self.outputs.weights)
        write_json(self.outputs.metrics, final)
        columns = list(dict.fromkeys(k for row in state["history"] for k in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in state["history"]:
            writer.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )
        write_text(self.outputs.plots, buffer.getvalue())


def _to_floats(state: dict[str, Any]) -> dict[str, Any]:
    """Tensor sums to plain floats so the checkpoint loads with weights_only=True anywhere."""
    out = dict(state)
    for key in ("window", "epoch"):
        out[key] = {k: float(v) for k, v in state[key].items()}
    state.update({"window": out["window"], "epoch": out["epoch"]})
    return out
