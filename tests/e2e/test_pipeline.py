"""The real `dvc repro` in a temporary copy of the repository, on tiny params."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import yaml
from mlflow.tracking import MlflowClient

from helpers import REPO

pytestmark = pytest.mark.e2e

DATASET = "fashion_mnist" if Path("/usr/share/datasets/fashion-mnist").exists() else "digits"


def tiny_params() -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"] |= {"name": DATASET, "limit_train": 512, "limit_test": 256, "download": False}
    params["train"] |= {"log_every": 2, "checkpoint_every": 5, "progress": "log"}
    for model in params["models"].values():
        model |= {"epochs": 1, "batch_size": 64}
    params["evaluate"] |= {"batch_size": 256, "n_grid": 8}
    params["export"] |= {"n_parity": 16}
    return params


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    for folder in ("pipeline", "src", ".dvc"):
        shutil.copytree(
            REPO / folder,
            root / folder,
            ignore=shutil.ignore_patterns("tmp", "cache", "__pycache__"),
        )
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the default store
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def reproduced(repo_copy) -> Path:
    dvc(repo_copy, "repro")
    return repo_copy


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_prepare_outputs(reproduced):
    data = read_json(reproduced / "metrics/data.json")
    assert data["train_count"] == 512 and data["test_count"] == 256
    manifest = read_json(reproduced / "data/prepared/manifest.json")
    assert manifest["dataset"] == DATASET and manifest["counts"] == {"train": 512, "test": 256}


def test_train_outputs(reproduced):
    final = read_json(reproduced / "metrics/train/ae.json")
    assert final["steps"] == 512 // 64 and 0 < final["loss"] < 1
    rows = (reproduced / "plots/train/ae.csv").read_text().splitlines()
    assert rows[0] == "step,epoch,loss" and len(rows) == 1 + 4
    assert (reproduced / "models/ae/model.pt").stat().st_size > 0
    assert not (reproduced / "checkpoints/ae/last.pt").exists()


def test_evaluate_and_report_outputs(reproduced):
    metrics = read_json(reproduced / "metrics/eval/ae.json")
    for key in ("mse", "psnr", "ssim", "latent_dim"):
        assert isinstance(metrics[key], int | float)
    assert set(metrics["pca"]) == {"mse", "psnr", "ssim"}
    assert 0 < metrics["mse"] < 0.2 and 0 < metrics["ssim"] <= 1
    figure = reproduced / "reports/figures/ae/reconstructions.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (reproduced / "reports/evaluation.md").read_text()
    assert "| ae | 32 |" in report and "figures/ae/reconstructions.png" in report


def test_export_outputs_run_in_onnxruntime(reproduced):
    parity = read_json(reproduced / "metrics/export/ae.json")
    assert set(parity) == {"encoder", "decoder"}
    assert all(graph["max_abs_diff"] <= 1e-4 for graph in parity.values())
    decoder = ort.InferenceSession(str(reproduced / "exported/ae/decoder.onnx"))
    (image,) = decoder.run(None, {"z": np.zeros((3, 32), dtype=np.float32)})
    assert image.shape == (3, 1, 28, 28) and image.min() >= 0 and image.max() <= 1


def test_every_stage_logged_to_mlflow(reproduced):
    client = MlflowClient(f"sqlite:///{reproduced / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"genmodels-{DATASET}")
    runs = client.search_runs([experiment.experiment_id])
    stages = {run.data.tags["dvc_stage"] for run in runs}
    assert stages == {"prepare", "train@ae", "evaluate@ae", "report", "export@ae"}
    train = next(r for r in runs if r.data.tags["dvc_stage"] == "train@ae")
    assert train.data.params["model.latent_dim"] == "32" and "git_commit" in train.data.tags
    assert len(client.get_metric_history(train.info.run_id, "loss")) == 4
    assert (reproduced / "mlartifacts").is_dir()


def test_dvc_metrics_and_plots_work(reproduced):
    shown = json.loads(dvc(reproduced, "metrics", "show", "--json").stdout)
    files = next(iter(shown.values()))["data"]
    assert {"metrics/data.json", "metrics/eval/ae.json", "metrics/export/ae.json"} <= set(files)
    dvc(reproduced, "plots", "show", "-o", "plots_html")
    assert (reproduced / "plots_html/index.html").exists()


def test_second_repro_does_nothing(reproduced):
    out = dvc(reproduced, "repro").stdout
    assert "Running stage" not in out


def test_changing_epochs_reruns_training_and_dependents_only(reproduced):
    params = yaml.safe_load((reproduced / "params.yaml").read_text())
    params["models"]["ae"]["epochs"] = 2
    (reproduced / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stale = set(json.loads(dvc(reproduced, "status", "--json").stdout))
    assert {"train@ae", "evaluate@ae", "export@ae", "report"} <= stale
    assert "prepare" not in stale
