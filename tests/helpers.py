"""Helpers the tests share: the repo root and stage workspaces in temporary folders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def workspace(tmp: Path, params: dict, prepared_dir: Path | None = None) -> Path:
    """A folder with params.yaml (and prepared data) in which pipeline scripts can run."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    if prepared_dir is not None:
        shutil.copytree(prepared_dir, tmp / "data" / "prepared")
    return tmp


def stage_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    return env


def run_script(
    script: str, tmp: Path, *args: str, timeout: int = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "pipeline" / script), *args],
        cwd=tmp,
        env=stage_env(tmp),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Interrupted(Exception):
    """Raised by interrupt_at: a training process dying mid-run."""


def interrupt_at(recipe, fail_at: int | None) -> None:
    """Makes the recipe's training step raise Interrupted at step `fail_at` (None: never)."""
    if fail_at is None:
        return
    step_fn = recipe.training_step

    def failing(batch, step):
        if step == fail_at:
            raise Interrupted
        return step_fn(batch, step)

    recipe.training_step = failing


def evaluator_space(evaluator, prepared, settings, **space_options):
    """The evaluator space of `prepared` seen through a trained evaluator recipe, its reference
    computed on the spot (at settings.batch_size); `space_options` go to EvaluatorSpace."""
    from genmodels.metrics.space import EvaluatorSpace, compute_reference

    reference = compute_reference(
        "evaluator", evaluator.features, evaluator.probabilities, prepared.train_images,
        prepared.train_labels, prepared.test_images, prepared.test_labels, settings.batch_size,
    )  # fmt: skip
    return EvaluatorSpace(
        evaluator.features, evaluator.probabilities, reference, prepared.train_images,
        prepared.test_images, settings, prepared.num_classes, network=evaluator.classifier,
        **space_options,
    )  # fmt: skip
