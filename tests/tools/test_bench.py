"""`make bench` (tools/bench.py): the Trainer against a bare loop, on the real recipes."""

from __future__ import annotations

import sys

import torch

from genmodels.config import Params
from helpers import REPO

sys.path.insert(0, str(REPO / "tools"))
import bench  # noqa: E402


def test_trainer_and_bare_loop_alternate_and_the_overhead_is_measured(
    digits_dir, digits_prepared, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = Params.model_validate(
        {
            "data": {"name": "digits", "prepared_dir": str(digits_dir)},
            "train": {"log_every": 5},
            "models": {"ae": {"family": "autoencoder", "epochs": 1, "batch_size": 32}},
        }
    )
    result = bench.measure("ae", params, digits_prepared, torch.device("cpu"), 0.3, rounds=2)
    assert result["rounds"] == 2
    assert len(result["trainer_runs"]) == 2 and len(result["bare_runs"]) == 3
    assert all(r > 0 for r in result["trainer_runs"] + result["bare_runs"])
    # each round compares a Trainer run with the bare runs either side of it
    first = 1 - result["trainer_runs"][0] / ((result["bare_runs"][0] + result["bare_runs"][1]) / 2)
    assert abs(first - result["overhead_per_round"][0]) < 1e-3
    # the in-run share: the Trainer's bookkeeping is a small part of a step, never negative
    assert 0.0 <= result["trainer_overhead_in_run"] < 0.5
    assert 0.0 <= result["data_fraction"] < 0.5
