"""MLflow tracking: experiments open on their runs, and the stage runs of one dvc invocation
are found together (children of one parent run, one dvc_repro tag)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from genmodels import tracking
from helpers import REPO

KIND = "mlflow.experimentKind"


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_experiments_open_on_their_training_runs(store):
    experiment = tracking.open_registry("fresh")
    client = MlflowClient(store)
    assert client.get_experiment(experiment).tags[KIND] == "custom_model_development"
    # made before the tag: tagged when next opened; a kind chosen by hand stays
    older = client.create_experiment("genmodels-older")
    chosen = client.create_experiment("genmodels-chosen", tags={KIND: "genai_development"})
    tracking.open_registry("older"), tracking.open_registry("chosen")
    assert client.get_experiment(older).tags[KIND] == "custom_model_development"
    assert client.get_experiment(chosen).tags[KIND] == "genai_development"


# A stage as DVC runs it: DVC_STAGE set, under a `dvc` process (here a script named dvc that
# runs each stage the way DVC does, through the shell, and stops at the first failure).
STAGE = """
import sys
from genmodels import tracking
with tracking.stage_run(sys.argv[1], "testdata", {"lr": 0.1}):
    if sys.argv[1] == "broken":
        raise SystemExit(1)
"""
FAKE_DVC = """#!{python}
import os, subprocess, sys
for stage in sys.argv[2:]:
    env = dict(os.environ, DVC_STAGE=stage)
    if subprocess.run(f"{python} {script} {{stage}}", shell=True, env=env).returncode:
        sys.exit(1)
"""


def invoke(folder: Path, *stages: str, **env_vars: str) -> int:
    script = folder / "stage.py"
    script.write_text(STAGE)
    dvc = folder / "bin" / "dvc"
    dvc.parent.mkdir(exist_ok=True)
    dvc.write_text(FAKE_DVC.format(python=sys.executable, script=script))
    dvc.chmod(0o755)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), **env_vars)
    return subprocess.run([str(dvc), "repro", *stages], cwd=folder, env=env, timeout=240,
                          capture_output=True).returncode  # fmt: skip


@pytest.mark.skipif(sys.platform == "win32", reason="a script run through its #! line")
def test_stage_runs_of_one_dvc_invocation_share_a_parent_run(store, tmp_path):
    assert invoke(tmp_path, "prepare", "train@ae") == 0
    # as a queued experiment (DVC names it)
    assert invoke(tmp_path, "train@vae", "broken", "never", DVC_EXP_NAME="lr-sweep") == 1
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("genmodels-testdata").experiment_id
    runs = client.search_runs([experiment], order_by=["attributes.start_time ASC"])
    parents = [r for r in runs if "dvc_repro_parent" in r.data.tags]
    children = [r for r in runs if "dvc_repro_parent" not in r.data.tags]
    assert [r.info.run_name for r in children] == ["prepare", "train@ae", "train@vae", "broken"]
    assert len(parents) == 2
    commands = ("dvc repro prepare train@ae", "dvc repro train@vae broken never")
    for parent, stages, command in zip(parents, (children[:2], children[2:]), commands,
                                       strict=True):  # fmt: skip
        invocation = parent.data.tags["dvc_repro_parent"]
        assert parent.info.run_name.startswith("dvc repro ")
        assert parent.data.tags["dvc_command"] == command
        for child in stages:
            assert child.data.tags["dvc_repro"] == invocation
            assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        # it spans its stages and ends with the last one's status
        assert parent.info.start_time <= stages[0].info.start_time
        assert parent.info.end_time >= stages[-1].info.end_time
    assert [p.info.status for p in parents] == ["FINISHED", "FAILED"]
    assert [p.data.tags.get("dvc_experiment") for p in parents] == [None, "lr-sweep"]
    assert parents[0].data.tags["dvc_repro_parent"] != parents[1].data.tags["dvc_repro_parent"]
    # the saved filter of docs/team.md finds one invocation's stage runs
    found = client.search_runs(
        [experiment], f"tags.dvc_repro = '{parents[0].data.tags['dvc_repro_parent']}'"
    )
    assert {r.info.run_name for r in found} == {"prepare", "train@ae"}


def test_a_stage_run_outside_dvc_stands_alone(store, monkeypatch):
    monkeypatch.delenv("DVC_STAGE", raising=False)
    with tracking.stage_run("train@ae", "testdata", {}) as run:
        pass
    tags = MlflowClient(store).get_run(run.run_id).data.tags
    assert "mlflow.parentRunId" not in tags and "dvc_repro" not in tags
