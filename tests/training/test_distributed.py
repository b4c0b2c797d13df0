"""Two processes under torchrun (gloo) train like one process with the same global batch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from mlflow.tracking import MlflowClient

from helpers import REPO, stage_env, workspace

STEPS = 30
# An MLP autoencoder: no BatchNorm, whose statistics would differ per process by design.
PARAMS = {
    "train": {"seed": 5, "log_every": 5, "checkpoint_every": 10, "progress": "log",
              "num_threads": 1},
    "models": {"ae": {"family": "autoencoder", "arch": "mlp", "hidden_dims": [64],
                      "latent_dim": 8, "steps": STEPS, "batch_size": 64, "lr": 0.003}},
}  # fmt: skip
# Gradients are the same mean over the same 64 images, summed in another order: float32
# rounding, amplified a little by Adam over 30 steps.
WEIGHT_ATOL = 1e-4
LOSS_RTOL = 1e-4


def torchrun(ws, nproc: int, instance: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", str(REPO / "pipeline" / "train.py"),
               "--instance", instance]  # fmt: skip
    return subprocess.run(command, cwd=ws, env=stage_env(ws), capture_output=True, text=True,
                          timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def runs(digits_dir, tmp_path_factory):
    single = workspace(tmp_path_factory.mktemp("single"), PARAMS, digits_dir)
    double = workspace(tmp_path_factory.mktemp("ddp"), PARAMS, digits_dir)
    one = torchrun(single, 1, "ae")
    two = torchrun(double, 2, "ae")
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    return single, double, two


def test_two_processes_match_one_with_the_same_global_batch(runs):
    single, double, _ = runs
    a = torch.load(single / "models/ae/model.pt", weights_only=True)
    b = torch.load(double / "models/ae/model.pt", weights_only=True)
    for net in a:
        for key, value in a[net].items():
            assert torch.allclose(value, b[net][key], atol=WEIGHT_ATOL), f"{net}.{key}"
    fa = json.loads((single / "metrics/train/ae.json").read_text())
    fb = json.loads((double / "metrics/train/ae.json").read_text())
    assert fb["loss"] == pytest.approx(fa["loss"], rel=LOSS_RTOL)
    assert (fa["processes"], fb["processes"]) == (1, 2)
    assert fa["steps"] == fb["steps"] == STEPS and fb["batch_size"] == 64


def test_rank_zero_alone_writes(runs):
    _, double, result = runs
    client = MlflowClient(f"sqlite:///{double / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("genmodels-digits")
    (run,) = client.search_runs([experiment.experiment_id])  # one run, not one per process
    assert run.data.tags["processes"] == "2"
    assert len(client.get_metric_history(run.info.run_id, "loss")) == STEPS // 5
    rows = (double / "plots/train/ae.csv").read_text().splitlines()
    assert len(rows) == 1 + STEPS // 5
    files = sorted(p.relative_to(double).as_posix() for p in (double / "models").rglob("*"))
    assert files == ["models/ae", "models/ae/model.pt"]
    assert not (double / "checkpoints/ae/last.pt").exists()
    assert result.stderr.count("train@ae step 30/30") == 1  # one voice in the logs


def test_a_batch_that_does_not_split_is_a_clear_error(digits_dir, tmp_path):
    params = json.loads(json.dumps(PARAMS))
    params["models"]["ae"]["batch_size"] = 63
    ws = workspace(tmp_path, params, digits_dir)
    result = torchrun(ws, 2, "ae")
    assert result.returncode != 0
    assert "batch_size 63 does not split over 2 processes" in result.stderr


def test_a_gan_plays_on_two_processes(digits_dir, tmp_path):
    # two networks, alternating updates, a gradient penalty through DDP, the EMA on rank 0
    params = {
        "train": {"seed": 1, "log_every": 2, "checkpoint_every": 4, "progress": "log",
                  "num_threads": 1},
        "models": {"g": {"family": "gan", "g_channels": [16, 8], "d_channels": [8, 16],
                         "latent_dim": 8, "loss": "wgan_gp", "n_critic": 2, "steps": 8,
                         "batch_size": 32, "ema_decay": 0.9}},
    }  # fmt: skip
    ws = workspace(tmp_path, params, digits_dir)
    result = torchrun(ws, 2, "g")
    assert result.returncode == 0, result.stderr[-3000:]
    final = json.loads((ws / "metrics/train/g.json").read_text())
    assert final["processes"] == 2 and final["steps"] == 8 and "g_loss" in final
    saved = torch.load(ws / "models/g/model.pt", weights_only=True)
    assert {"generator", "discriminator", "ema"} <= set(saved)
    assert not any(k.startswith("module.") for k in saved["generator"])  # unwrapped weights
