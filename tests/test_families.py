"""The family table: every family's row is whole, and adding a family is one file and one row.

The toy family lives in a module this test writes to a temporary folder (a params class and a
Recipe); one row in FAMILIES is all that joins it to the pipeline. It then goes through the real
stage functions (train, evaluate, export, report, register) and the real service.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import textwrap

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from genmodels.config import parse_params
from genmodels.errors import UserError
from genmodels.families import ENDPOINT_TASKS, FAMILIES, TASKS, Family, GraphSpec, family
from genmodels.serving import ModelStore, create_app
from genmodels.training import Recipe
from helpers import REPO

TOY_MODULE = '''
"""A toy family: a linear autoencoder."""

import torch
import torch.nn.functional as F
from torch import nn

from genmodels.config import ModelBase
from genmodels.training import EvalResult, Exportable, Recipe


class ToyParams(ModelBase):
    latent_dim: int = 4


class ToyRecipe(Recipe):
    def __init__(self, params, data, device):
        super().__init__(params, data, device)
        c, h, w = data.image_shape
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, params.latent_dim))
        self.decoder = nn.Sequential(
            nn.Linear(params.latent_dim, c * h * w), nn.Sigmoid(), nn.Unflatten(1, (c, h, w))
        )
        weights = [*self.encoder.parameters(), *self.decoder.parameters()]
        self.optimizer = torch.optim.Adam(weights, lr=params.lr)

    def modules(self):
        return {"encoder": self.encoder, "decoder": self.decoder}

    def optimizers(self):
        return {"adam": self.optimizer}

    def training_step(self, batch, step):
        loss = F.mse_loss(self.decoder(self.encoder(batch.images)), batch.images)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach()}

    @torch.no_grad()
    def evaluate(self, ctx):
        images = ctx.test_images.float() / 255
        recon = self.decoder(self.encoder(images))
        mse = F.mse_loss(recon, images).item()
        accuracy = ctx.space.accuracy(recon, ctx.test_labels)
        return EvalResult(metrics={"mse": mse, "recon_accuracy": accuracy}, figures={})

    def exportables(self, real_images=None):
        c, h, w = self.data.image_shape
        k = self.params.latent_dim
        return [
            Exportable("encoder", self.encoder, (torch.rand(2, c, h, w),), ["image"], ["z"],
                       {"image": {0: "batch"}}, metadata={"task": "encode"}),
            Exportable("decoder", self.decoder, (torch.randn(2, k),), ["z"], ["image"],
                       {"z": {0: "batch"}}, metadata={"task": "decode"}),
        ]
'''


def test_every_row_is_whole():
    for name, row in FAMILIES.items():
        assert row.name == name
        assert issubclass(row.recipe_class(), Recipe)
        assert row.params_class().model_fields["family"]
        assert row.graphs and all(g.task in TASKS for g in row.graphs)
        assert set(row.endpoints) <= set(ENDPOINT_TASKS)
        # every endpoint it offers can run on one of its graphs
        tasks = {g.task for g in row.graphs}
        assert all(tasks & set(ENDPOINT_TASKS[e]) for e in row.endpoints)
        assert row.gate and 1 <= len(row.headline) <= 10
        assert callable(row.report_section())


def test_an_unknown_family_is_named_with_the_known_ones():
    with pytest.raises(UserError, match=r"unknown model family 'gann'; known: autoencoder, "):
        family("gann")
    with pytest.raises(UserError, match=r"models\.g\.family: unknown family 'gann'; allowed: "):
        parse_params({"models": {"g": {"family": "gann", "epochs": 1}}})
    with pytest.raises(UserError, match=r"register\.gates: .*unknown families \['gann'\]"):
        parse_params({"models": {"a": {"family": "gan", "epochs": 1}},
                      "register": {"gates": {"gann": {"fid": {"max": 1}}}}})  # fmt: skip


def stage(name: str):
    """A pipeline script's module, imported from its file: its main() is the stage."""
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "pipeline" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name: str, **args) -> None:
    stage(name).main(argparse.Namespace(params="params.yaml", **args))


@pytest.fixture
def toy_family(tmp_path, monkeypatch):
    """The toy module on sys.path and its one row in the table."""
    folder = tmp_path / "toy_code"
    folder.mkdir()
    (folder / "toy_family.py").write_text(textwrap.dedent(TOY_MODULE))
    monkeypatch.syspath_prepend(str(folder))
    spec = importlib.util.spec_from_file_location("toy_family", folder / "toy_family.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "toy_family", module)
    spec.loader.exec_module(module)
    row = Family(
        name="toy",
        params=module.ToyParams,
        recipe="toy_family:ToyRecipe",
        graphs=(GraphSpec("encoder", "encode"), GraphSpec("decoder", "decode")),
        endpoints=("decode", "reconstruct"),
        gate={"mse": {"max": 0.5}},
        headline=("mse", "recon_accuracy"),
    )
    monkeypatch.setitem(FAMILIES, "toy", row)
    return row


def test_a_family_is_one_file_and_one_row(toy_family, digits_dir, tmp_path, monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(digits_dir, work / "data" / "prepared")
    params = {
        "data": {"name": "digits", "download": False},
        "train": {"log_every": 5, "checkpoint_every": 50, "progress": "log"},
        "evaluator": {"channels": [8, 16], "features": 32, "epochs": 2, "batch_size": 64},
        "evaluate": {"n_samples": 100, "kid_subsets": 2, "kid_subset_size": 50,
                     "memorisation_samples": 20},
        "models": {"toy1": {"family": "toy", "epochs": 2, "batch_size": 64, "lr": 0.01}},
    }  # fmt: skip
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")

    run("train", instance="evaluator")
    run("evaluate_evaluator")
    run("train", instance="toy1")
    assert (work / "models" / "toy1" / "model.pt").is_file()
    assert json.loads((work / "metrics" / "train" / "toy1.json").read_text())["steps"] > 0

    run("evaluate", instance="toy1")
    evaluated = json.loads((work / "metrics" / "eval" / "toy1.json").read_text())
    assert evaluated["family"] == "toy" and 0 < evaluated["mse"] < 0.5
    # the row's headline is what dvc metrics show lists
    summary = json.loads((work / "metrics" / "summary" / "toy1.json").read_text())
    assert set(summary) == {"mse", "recon_accuracy"}

    run("export", instance="toy1")
    parity = json.loads((work / "metrics" / "export" / "toy1.json").read_text())
    assert set(parity) == {"encoder", "decoder"}
    assert all(graph["max_abs_diff"] <= 1e-4 for graph in parity.values())

    run("report", print_only=False)
    assert "| toy1 |" in (work / "reports" / "evaluation.md").read_text()
    assert "## toy\n" in (work / "reports" / "summary.md").read_text()

    run("register")
    record = json.loads((work / "reports" / "registry.json").read_text())
    toy = {r["name"]: r for r in record["versions"] if r["instance"] == "toy1"}
    assert set(toy) == {"toy1-encoder", "toy1-decoder"}
    assert all(r["alias"] == "champion" and r["metrics"] == {"mse": evaluated["mse"]}
               for r in toy.values())  # fmt: skip

    store = ModelStore.scan(work / "exported", {"toy1": "toy"})
    with TestClient(create_app(store)) as client:
        models = {m["name"]: m for m in client.get("/models").json()["models"]}
        toy = models["toy1"]
        assert toy["family"] == "toy" and toy["status"] == "ok"
        assert toy["endpoints"] == ["decode", "reconstruct"]  # the row's, not every task's
        decoded = client.post("/decode/toy1", json={"z": [[0.0] * 4, [1.0] * 4]})
        assert decoded.status_code == 200, decoded.text
        images = np.asarray(decoded.json()["images"])
        assert images.shape == (2, 1, 28, 28) and 0 <= images.min() <= images.max() <= 1
        assert client.post("/generate/toy1", json={"n": 1}).status_code == 404
