"""MLflow tracking: the only module that imports mlflow.

Default store: sqlite:///mlflow.db at the repository root with artifacts under mlartifacts/
(embedded, no server). MLFLOW_TRACKING_URI points at a real server instead.
One experiment per dataset; one run per stage execution, nested under a parent run per
`dvc repro` (or `dvc exp run`) and tagged dvc_repro with its id.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import psutil
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

# MLflow 3's UI opens an experiment without this tag on its GenAI pages (traces), not its runs
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


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
        for key, value in EXPERIMENT_KIND.items():
            if key not in found.tags:  # made before the tag; a kind set by hand stays
                client.set_experiment_tag(found.experiment_id, key, value)
        return found.experiment_id
    location = artifact_root.as_uri() if artifact_root else None
    return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)


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
    """Nested mappings as one level of dotted keys ("pca.psnr")."""
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


@dataclass(frozen=True)
class DvcInvocation:
    """The `dvc repro` (or `dvc exp run`) process running this stage."""

    id: str  # host:pid:start in ms, unique across the machines sharing a tracking server
    command: str  # "dvc repro", "dvc exp run -S ...", as typed
    started_ms: int


def dvc_invocation() -> DvcInvocation | None:
    """The dvc process above this stage, or None outside DVC (which sets DVC_STAGE for every
    stage command but gives no id to one invocation)."""
    if "DVC_STAGE" not in os.environ:
        return None
    try:
        for process in psutil.Process().parents():
            argv = process.cmdline()
            # `dvc ...` (its script) or `python -m dvc ...`
            at = next((i for i, arg in enumerate(argv[:3]) if Path(arg).name == "dvc"), None)
            if at is not None:
                started = int(process.create_time() * 1000)
                command = " ".join(["dvc", *argv[at + 1 :]])[:500]
                return DvcInvocation(f"{socket.gethostname()}:{process.pid}:{started}", command,
                                     started)  # fmt: skip
    except psutil.Error:  # a process that ended or that this user cannot read
        return None
    return None


def repro_parent(experiment: str, invocation: DvcInvocation, root: Path) -> str:
    """The parent run of one dvc invocation's stage runs, made by its first stage."""
    client = MlflowClient()
    found = client.search_runs(
        [experiment], filter_string=f"tags.dvc_repro_parent = '{invocation.id}'", max_results=1
    )
    if found:
        return found[0].info.run_id
    started = datetime.fromtimestamp(invocation.started_ms / 1000, UTC)
    run = client.create_run(
        experiment,
        start_time=invocation.started_ms,
        run_name=f"{invocation.command.split(' -')[0][:60]} {started:%Y-%m-%d %H:%M:%S}",
        tags={
            "dvc_repro_parent": invocation.id,
            "dvc_command": invocation.command,
            "git_commit": git_commit(root),
        }
        # a queued experiment's name (dvc exp show lists it by that name)
        | ({"dvc_experiment": os.environ["DVC_EXP_NAME"]} if "DVC_EXP_NAME" in os.environ else {}),
    )
    return run.info.run_id


@contextmanager
def stage_run(
    stage: str,
    dataset: str,
    params: Mapping[str, Any],
    run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[StageRun]:
    """An MLflow run for one DVC stage: its params section, git commit and stage name.

    Pass `run_id` to continue a run (a resumed training stage keeps its run and joins the
    invocation that finishes it). Under dvc the run is a child of the invocation's parent run,
    which shows RUNNING while a stage runs and ends with the last stage's status.
    """
    root = repo_root()
    # read before configure(): mlflow.set_tracking_uri exports the variable itself
    embedded = "MLFLOW_TRACKING_URI" not in os.environ
    configure(root)
    exp = experiment_id(dataset, root / "mlartifacts" if embedded else None)
    invocation = dvc_invocation()
    parent = repro_parent(exp, invocation, root) if invocation else None
    grouping = {"dvc_repro": invocation.id, "mlflow.parentRunId": parent} if invocation else {}
    client = MlflowClient()
    if parent:
        client.update_run(parent, status="RUNNING")
    status = "FAILED"
    try:
        with mlflow.start_run(
            run_id=run_id,
            experiment_id=None if run_id else exp,
            run_name=None if run_id else stage,
            tags=grouping or None,
        ) as run:
            if run_id is None:
                mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})
                mlflow.set_tags(
                    {"git_commit": git_commit(root), "dvc_stage": stage, "dataset": dataset}
                    | dict(tags or {})
                )
            yield StageRun(run.info.run_id)
        status = "FINISHED"
    finally:
        if parent:
            client.set_terminated(parent, status)


# ---------------------------------------------------------------- model registry
# Registered models are named <instance>-<graph> (vae-decoder, cgan-generator, ...); each
# version is an ONNX graph logged with the onnx flavour into the training run that made it.


def open_registry(dataset: str) -> str:
    """Points mlflow at the store (as a stage run does) and returns the dataset's experiment."""
    root = repo_root()
    embedded = "MLFLOW_TRACKING_URI" not in os.environ  # read before configure() sets it
    configure(root)
    return experiment_id(dataset, root / "mlartifacts" if embedded else None)


def stage_of(instance: str, stage: str) -> Any | None:
    """The newest run of an instance's `stage` ("train": train@<instance>, train_evaluator;
    "evaluate"), or None."""
    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return None
    runs = client.search_runs(
        experiments,
        filter_string=f"tags.instance = '{instance}' and tags.dvc_stage LIKE '{stage}%'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def _onnx_signature(model: Any) -> Any:
    """The tensor signature of an ONNX graph; symbolic axes (batch, height, ...) are -1."""
    import onnx
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    def specs(values: Any) -> Schema:
        out = []
        for value in values:
            tensor = value.type.tensor_type
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
            shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
            out.append(TensorSpec(dtype, shape, value.name))
        return Schema(out)

    return ModelSignature(inputs=specs(model.graph.input), outputs=specs(model.graph.output))


def find_version(name: str, tag: str, value: str) -> Any | None:
    """The newest version of `name` whose tag `tag` is `value`, or None."""
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except mlflow.exceptions.MlflowException:
        return None
    found = [v for v in versions if v.tags.get(tag) == value]
    return max(found, key=lambda v: int(v.version)) if found else None


# What a served ONNX graph needs: the list MLflow's requirement inference arrives at for these
# models, pinned to the installed versions. Inference starts a Python subprocess per model (2 s
# each, 45 of the register stage's 55 s).
SERVING_PACKAGES = ("mlflow", "numpy", "onnx", "onnxruntime")


def serving_requirements() -> list[str]:
    # all four are imported by the time a graph is logged: each has an installed version
    return [f"{package}=={version(package)}" for package in SERVING_PACKAGES]


def log_onnx_version(
    path: str | Path,
    name: str,
    input_example: Mapping[str, Any],
    run_id: str | None,
    experiment: str,
    tags: Mapping[str, str],
    description: str,
    metrics: Mapping[str, float],
    metrics_run_id: str | None,
) -> Any:
    """Logs one ONNX file with the onnx flavour (signature, input example) and registers it.

    With run_id the model is logged into that run (the training run), so the version's
    run_id leads back to it; the run itself is not reopened. `metrics` (what the gate judged)
    become the logged model's, logged into `metrics_run_id` (the evaluation run) or the model's
    run. Returns the ModelVersion.
    """
    import mlflow.onnx
    import onnx

    model = onnx.load(str(path))
    if run_id is not None:
        mlflow.set_experiment(experiment_id=MlflowClient().get_run(run_id).info.experiment_id)
    else:
        mlflow.set_experiment(experiment_id=experiment)
    info = mlflow.onnx.log_model(
        model,
        name=Path(path).stem,
        signature=_onnx_signature(model),
        input_example=dict(input_example),
        run_id=run_id,
        registered_model_name=name,
        save_as_external_data=False,
        onnx_execution_providers=["CPUExecutionProvider"],  # what every consumer here has
        pip_requirements=serving_requirements(),
        tags=dict(tags),
    )
    log_model_metrics(info.model_id, metrics_run_id or info.run_id, metrics)
    client = MlflowClient()
    version = str(info.registered_model_version)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.update_model_version(name, version, description=description)
    return client.get_model_version(name, version)


def log_model_metrics(model_id: str, run_id: str | None, metrics: Mapping[str, float]) -> None:
    """Metrics of a logged model (a registered version's source model), logged into `run_id`:
    MLflow 3 shows them on the model's page, linked from the version's, and on the
    experiment's Models tab. MLflow logs a metric only into a run: none, none logged."""
    now = int(time.time() * 1000)
    batch = [Metric(key, float(value), now, 0, model_id=model_id, run_id=run_id)
             for key, value in metrics.items()]  # fmt: skip
    if batch and run_id is not None:
        MlflowClient().log_batch(run_id, metrics=batch)


def alias_version(name: str, alias: str) -> Any | None:
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        return None


def set_alias(name: str, alias: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(name, alias, version)


def tag_version(name: str, version: str, tags: Mapping[str, str]) -> None:
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def alias_versions(alias: str) -> dict[str, Any]:
    """Registered model name -> its version holding `alias`, for every model that has one."""
    client = MlflowClient()
    out: dict[str, Any] = {}
    token = None
    while True:
        page = client.search_registered_models(max_results=200, page_token=token)
        for registered in page:
            if alias in registered.aliases:
                out[registered.name] = client.get_model_version_by_alias(registered.name, alias)
        token = page.token
        if not token:
            return out


def download_onnx(model_uri: str, dst: str | Path) -> Path:
    """The .onnx file of a registered version (models:/<name>/<version>), downloaded to dst."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst)))
    files = sorted(local.rglob("*.onnx")) if local.is_dir() else [local]
    if not files:
        raise FileNotFoundError(f"{model_uri}: no .onnx file among its artifacts")
    return files[0]
