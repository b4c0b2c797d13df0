"""The end-to-end tests' shared pieces: tiny params, a temporary copy of the repository and
`dvc` run in it (tests/e2e)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from helpers import REPO

sys.path.insert(0, str(REPO / "tools"))
from timed_repro import copy_pipeline  # noqa: E402

DATASET = "fashion_mnist" if Path("/usr/share/datasets/fashion-mnist").exists() else "digits"


EVALUATOR_EPOCHS = 5
SAME_PATH_AS_AE_K32 = ("ae_k2", "ae_k8")


def tiny_params() -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"] |= {"name": DATASET, "limit_train": 512, "limit_test": 256, "download": False}
    params["train"] |= {"log_every": 1, "checkpoint_every": 5, "progress": "log",
                        "monitor_every": 4, "monitor_samples": 64}  # fmt: skip
    params["evaluator"].pop("steps", None)
    params["evaluator"] |= {"epochs": EVALUATOR_EPOCHS, "batch_size": 32}  # enough to beat chance
    # One instance per code path: ae_k2 and ae_k8 are ae_k32 at other latent sizes, and each
    # instance costs three stage start-ups.
    for twin in SAME_PATH_AS_AE_K32:
        del params["models"][twin]
    for model in params["models"].values():
        # 8 steps of 64 for every instance: one epoch of the 512 images, or a step budget
        if model["family"] == "srgan":
            model |= {"steps": 8, "batch_size": 64}
            if model["variant"] == "srgan":
                model["pretrain_steps"] = 4  # 4 MSE steps, then 4 adversarial ones
            continue
        model.pop("steps", None)
        model |= {"epochs": 1, "batch_size": 64}
        if model["family"] == "vae":
            model |= {"iwae_k": 16, "iwae_images": 32, "kl_warmup_steps": 4}
    params["evaluate"] |= {"batch_size": 256, "n_grid": 8, "n_samples": 200, "kid_subsets": 5,
                           "kid_subset_size": 100, "memorisation_samples": 50}  # fmt: skip
    params["export"] |= {"n_parity": 16}
    # 8 steps reach no default gate; a tiny autoencoder beats 5 dB: champions to serve
    params["register"]["gates"] = {"autoencoder": {"psnr": {"min": 5.0}}}
    return params


def copy_repo(root: Path, params: dict) -> Path:
    """The pipeline's code and DVC files under `root`, with `params` as its params.yaml."""
    copy_pipeline(root)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def dvc(root: Path, *args: str, tracking_uri: str | None = None) -> subprocess.CompletedProcess:
    """`dvc` in root, logging to `tracking_uri` (None: the embedded store in root)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=2400,  # the whole tiny DAG: about 10 min on a slow 2-core machine
    )
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result
