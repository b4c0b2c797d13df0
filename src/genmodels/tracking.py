"""MLflow tracking: the only module that imports mlflow.

Default store: sqlite:///mlflow.db at the repository root with artifacts under mlartifacts/
(embedded, no server). MLFLOW_TRACKING_URI points at a real server instead.
One experiment per dataset; one run per stage execution.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient


def repo_root() -> Path:
    """The directory holding dvc.yaml (DVC runs stages there), else the working directory."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists():
            return folder
    return here


def tracking_uri(root: Path | None = None) -> str:
    root = root or repo_root()
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"


def configure(root: Path | None = None) -> str:
    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    return uri


def experiment_id(dataset: str, artifact_root: Path | None) -> str:
    """The dataset's experiment; its artifacts go under `artifact_root` (None: the server's)."""
    name = f"genmodels-{dataset}"
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = artifact_root.as_uri() if artifact_root else None
    return client.create_experiment(name, artifact_location=location)


def git_commit(root: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root or repo_root(),
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root or repo_root(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class StageRun:
    """Thin handle on the active MLflow run of one stage execution."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        numeric = {
            k: float(v)
            for k, v in flatten(metrics).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        if numeric:
            mlflow.log_metrics(numeric, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_artifacts(self, folder: str | Path, artifact_path: str | None = None) -> None:
        mlflow.log_artifacts(str(folder), artifact_path=artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        mlflow.set_tags(dict(tags))


@contextmanager
def stage_run(
    stage: str,
    dataset: str,
    params: Mapping[str, Any],
    run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[StageRun]:
    """An MLflow run for one DVC stage: its params section, git commit and stage name.

    Pass `run_id` to continue a run (a resumed training stage keeps its run).
    """
    root = repo_root()
    # read before configure(): mlflow.set_tracking_uri exports the variable itself
    embedded = "MLFLOW_TRACKING_URI" not in os.environ
    configure(root)
    exp = experiment_id(dataset, root / "mlartifacts" if embedded else None)
    with mlflow.start_run(
        run_id=run_id, experiment_id=None if run_id else exp, run_name=None if run_id else stage
    ) as run:
        if run_id is None:
            mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})
            mlflow.set_tags(
                {"git_commit": git_commit(root), "dvc_stage": stage, "dataset": dataset}
                | dict(tags or {})
            )
        yield StageRun(run.info.run_id)
