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
from importlib.metadata import version
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


# ---------------------------------------------------------------- model registry
# Registered models are named <instance>-<graph> (vae-decoder, cgan-generator, ...); each
# version is an ONNX graph logged with the onnx flavour into the training run that made it.


def open_registry(dataset: str) -> str:
    """Points mlflow at the store (as a stage run does) and returns the dataset's experiment."""
    root = repo_root()
    embedded = "MLFLOW_TRACKING_URI" not in os.environ  # read before configure() sets it
    configure(root)
    return experiment_id(dataset, root / "mlartifacts" if embedded else None)


def training_run(instance: str) -> Any | None:
    """The newest training run of an instance (train@<instance>, train_evaluator), or None."""
    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return None
    runs = client.search_runs(
        experiments,
        filter_string=f"tags.instance = '{instance}' and tags.dvc_stage LIKE 'train%'",
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
) -> Any:
    """Logs one ONNX file with the onnx flavour (signature, input example) and registers it.

    With run_id the model is logged into that run (the training run), so the version's
    run_id leads back to it; the run itself is not reopened. Returns the ModelVersion.
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
    client = MlflowClient()
    version = str(info.registered_model_version)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.update_model_version(name, version, description=description)
    return client.get_model_version(name, version)


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
