"""The MLflow registry in a temporary sqlite store: gates, the champion alias, model serving."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import pytest
import yaml
from mlflow.tracking import MlflowClient

from genmodels import tracking
from genmodels.config import Bound
from genmodels.registry import check_gate, example_inputs, register_instance
from genmodels.serving import ModelStore
from helpers import REPO
from server_helpers import free_port, stop, wait_until_up
from tiny_graphs import export_rgb_models

GATE = {"psnr": {"min": 15.0}, "pca.mse": {"max": 0.05}}
BOUNDS = {k: Bound(**v) for k, v in GATE.items()}


def test_gate_checks_every_bound_and_names_the_failure():
    assert check_gate({"psnr": 20.0, "pca": {"mse": 0.01}}, BOUNDS, "autoencoder").passed
    low = check_gate({"psnr": 12.5, "pca": {"mse": 0.07}}, BOUNDS, "autoencoder")
    assert not low.passed
    assert low.reasons == [
        "psnr = 12.5 is below the minimum 15",
        "pca.mse = 0.07 is above the maximum 0.05",
    ]
    missing = check_gate({"psnr": 20.0}, BOUNDS, "autoencoder", "metrics/eval/x.json")
    assert missing.reasons == ["pca.mse: not in metrics/eval/x.json"]
    nan = check_gate({"psnr": float("nan"), "pca": {"mse": "n/a"}}, BOUNDS, "autoencoder")
    assert len(nan.reasons) == 2 and all("not a number" in r for r in nan.reasons)
    assert "no quality gate for family 'gan'" in check_gate({}, None, "gan").reasons[0]
    assert "missing" in check_gate(None, BOUNDS, "autoencoder", "m.json").reasons[0]


@pytest.fixture
def store_dir(tmp_path, monkeypatch):
    """A fresh sqlite MLflow store in a working folder of its own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def write_metrics(folder: Path, instance: str, metrics: dict) -> Path:
    path = folder / "metrics" / "eval" / f"{instance}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics))
    return path


def retrain(path: Path) -> None:
    """The same graph with other weights, as a new training run would export."""
    model = onnx.load(str(path))
    first = model.graph.initializer[0]
    weights = onnx.numpy_helper.to_array(first) + 0.05
    first.CopyFrom(onnx.numpy_helper.from_array(weights, first.name))
    onnx.save(model, str(path))


def train_run(instance: str, stage: str = "train") -> str:
    tags = {"instance": instance}  # as pipeline/train.py and evaluate.py tag their runs
    with tracking.stage_run(f"{stage}@{instance}", "testdata", {"lr": 0.1}, tags=tags) as run:
        return run.run_id


def test_input_examples_follow_each_graphs_contract(tiny_exported):
    upscaler = example_inputs(tiny_exported / "srgan/generator.onnx", batch=3)
    assert upscaler["image"].shape == (3, 1, 14, 14)  # 28 / scale 2: the size it was trained at
    assert upscaler["image"].min() >= 0 and upscaler["image"].max() <= 1
    conditional = example_inputs(tiny_exported / "cgan/generator.onnx", batch=4)
    assert conditional["label"].dtype == np.int64 and conditional["z"].shape[0] == 4


def test_rgb_graphs_register_with_their_channels_and_size(store_dir):
    """A photo upscaler's input example is RGB at the size it learned from over its scale; the
    signature keeps the spatial axes open (-1), so MLflow accepts photos of any size."""
    exported = export_rgb_models(store_dir / "exported")
    assert example_inputs(exported / "photo_sr/generator.onnx")["image"].shape == (2, 3, 8, 8)
    translator = example_inputs(exported / "photo2edges/generator_ab.onnx", batch=1)
    assert translator["image"].shape == (1, 3, 32, 32)

    experiment = tracking.open_registry("testdata")
    train_run("photo_sr")
    metrics = write_metrics(store_dir, "photo_sr", {"psnr": 19.0, "pca": {"mse": 0.02}})
    [record] = register_instance(
        "photo_sr", "srgan", exported, metrics, BOUNDS, "champion", experiment
    )
    assert (record["status"], record["alias"]) == ("registered", "champion")
    import mlflow.models

    uri = "models:/photo_sr-generator@champion"
    [spec] = mlflow.models.get_model_info(uri).signature.inputs.inputs
    assert (spec.name, spec.shape) == ("image", (-1, 3, -1, -1))
    model = mlflow.models.Model.load(uri)
    example = model.load_input_example(mlflow.artifacts.download_artifacts(uri))
    assert np.asarray(example["image"]).shape == (2, 3, 8, 8)


def test_champion_only_behind_the_gate_and_never_to_a_failing_version(
    store_dir, tiny_exported, families
):
    exported = Path(shutil.copytree(tiny_exported, store_dir / "exported"))
    experiment = tracking.open_registry("testdata")
    run_id = train_run("ae")
    evaluation_id = train_run("ae", "evaluate")
    train_run("vae2")
    good = write_metrics(store_dir, "ae", {"psnr": 19.0, "pca": {"mse": 0.02}})
    bad = write_metrics(store_dir, "vae2", {"psnr": 11.0, "pca": {"mse": 0.02}})

    ae = register_instance("ae", "autoencoder", exported, good, BOUNDS, "champion", experiment)
    assert [(r["name"], r["version"], r["alias"], r["status"]) for r in ae] == [
        ("ae-decoder", "1", "champion", "registered"),
        ("ae-encoder", "1", "champion", "registered"),
    ]
    vae = register_instance("vae2", "vae", exported, bad, BOUNDS, "champion", experiment)
    assert [(r["name"], r["alias"], r["gate"]) for r in vae] == [
        ("vae2-decoder", None, "failed"),
        ("vae2-encoder", None, "failed"),
    ]
    assert vae[0]["reasons"] == ["psnr = 11 is below the minimum 15"]

    client = MlflowClient()
    version = client.get_model_version_by_alias("ae-decoder", "champion")
    # linked to the training run, with the onnx flavour, its signature and an input example
    assert version.run_id == run_id and version.tags["training_run_id"] == run_id
    assert version.tags["gate"] == "passed" and version.tags["instance"] == "ae"
    # what the gate judged: tags on the version, metrics of its source model (MLflow 3's model
    # page), logged into the evaluation run that measured them
    assert version.tags["eval.psnr"] == "19" and version.tags["eval.pca.mse"] == "0.02"
    model_id = version.source.removeprefix("models:/")
    judged = {m.key: (m.value, m.run_id) for m in client.get_logged_model(model_id).metrics}
    assert judged == {"psnr": (19.0, evaluation_id), "pca.mse": (0.02, evaluation_id)}
    info = __import__("mlflow").models.get_model_info("models:/ae-decoder@champion")
    assert "onnx" in info.flavors
    assert info.signature.inputs.to_dict() == [
        {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": (-1, 8)}, "name": "z"}
    ]
    assert info.saved_input_example_info is not None
    refused = client.get_model_version("vae2-decoder", "1")
    assert refused.tags["gate"] == "failed" and "below the minimum" in refused.tags["gate_reasons"]
    assert not client.get_registered_model("vae2-decoder").aliases

    # the same files again: no new versions
    again = register_instance("ae", "autoencoder", exported, good, BOUNDS, "champion", experiment)
    assert [(r["version"], r["status"]) for r in again] == [("1", "unchanged"), ("1", "unchanged")]

    # a new decoder whose metrics fail: registered as version 2, the champion stays version 1
    retrain(exported / "ae" / "decoder.onnx")
    write_metrics(store_dir, "ae", {"psnr": 9.0, "pca": {"mse": 0.02}})
    worse = register_instance("ae", "autoencoder", exported, good, BOUNDS, "champion", experiment)
    assert worse[0]["version"] == "2" and worse[0]["alias"] is None
    assert str(client.get_model_version_by_alias("ae-decoder", "champion").version) == "1"
    # passing metrics again: the new version takes the alias
    write_metrics(store_dir, "ae", {"psnr": 25.0, "pca": {"mse": 0.02}})
    better = register_instance("ae", "autoencoder", exported, good, BOUNDS, "champion", experiment)
    assert better[0]["version"] == "2" and better[0]["alias"] == "champion"
    assert str(client.get_model_version_by_alias("ae-decoder", "champion").version) == "2"

    # the service from the registry: champions serve, refused graphs are unavailable
    store = ModelStore.from_registry(
        {"ae": "autoencoder", "vae2": "vae"}, cache_dir=store_dir / "c"
    )
    assert store.models["ae"].status == "ok"
    assert store.models["ae"].graphs["decoder"].version == "2"
    assert store.models["vae2"].status == "unavailable"
    assert "no version has the alias 'champion'" in store.models["vae2"].graphs["decoder"].error
    z = np.zeros((1, 8), np.float32)
    (want,) = ort.InferenceSession(str(exported / "ae" / "decoder.onnx")).run(None, {"z": z})
    np.testing.assert_allclose(store.models["ae"].decoder.run({"z": z})["image"], want)

    # the same through `genmodels serve --from-registry`, with two worker processes
    params = store_dir / "params.yaml"
    params.write_text(
        "models:\n  ae: {family: autoencoder, epochs: 1}\n  vae2: {family: vae, epochs: 1}\n"
    )
    port = free_port()
    cmd = [sys.executable, "-m", "genmodels.cli", "serve", "--from-registry", "--params",
           str(params), "--port", str(port), "--workers", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", proc, timeout=90)
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
        assert health["origin"] == "registry"
        assert {n: m["status"] for n, m in health["models"].items()} == {
            "ae": "ok",
            "vae2": "unavailable",
        }
        body = httpx.post(
            f"http://127.0.0.1:{port}/decode/ae", json={"z": z.tolist()}, timeout=10
        ).json()
        assert body["version"] == "2"
        np.testing.assert_allclose(np.array(body["images"], np.float32), want, atol=1e-6)
    finally:
        stop(proc)


def test_missing_export_is_recorded_not_a_crash(store_dir):
    experiment = tracking.open_registry("testdata")
    out = register_instance("gone", "gan", store_dir / "exported", store_dir / "m.json", None,
                            "champion", experiment)  # fmt: skip
    assert out == [
        {
            "instance": "gone",
            "family": "gan",
            "status": "missing",
            "reason": f"{store_dir / 'exported' / 'gone'}: no ONNX graphs; "
            "run `dvc repro export@gone`",
        }
    ]


def test_register_stage_script_writes_its_record(tmp_path, tiny_exported):
    shutil.copytree(tiny_exported / "ae", tmp_path / "exported" / "ae")
    shutil.copytree(tiny_exported / "vae2", tmp_path / "exported" / "vae2")
    # exported but not an entry of models: (like the evaluator): registered by its metadata
    shutil.copytree(tiny_exported / "evaluator", tmp_path / "exported" / "evaluator")
    # a corrupt file is recorded, not a crash
    (tmp_path / "exported" / "broken").mkdir()
    (tmp_path / "exported" / "broken" / "generator.onnx").write_bytes(b"not onnx")
    write_metrics(tmp_path, "ae", {"psnr": 19.0})
    write_metrics(tmp_path, "vae2", {"psnr": 19.0})
    params = {
        "data": {"name": "digits"},
        "models": {
            "ae": {"family": "autoencoder", "epochs": 1},
            "vae2": {"family": "vae", "epochs": 1},
            "broken": {"family": "autoencoder", "epochs": 1},
        },
        "register": {"gates": {"autoencoder": {"psnr": {"min": 15.0}}}},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    proc = subprocess.run(
        [sys.executable, str(REPO / "pipeline" / "register.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "reports" / "registry.json").read_text())
    got = {r["name"]: (r["alias"], r["reasons"]) for r in record["versions"]}
    broken_error = got["broken-generator"][1][0].split("(", 1)[1][:-1]
    assert broken_error  # onnxruntime's own words
    assert got == {
        "ae-decoder": ("champion", []),
        "ae-encoder": ("champion", []),
        # no gate in params: the vae family's default gate, whose metric is missing here
        "vae2-decoder": (None, ["nll_iwae: not in metrics/eval/vae2.json"]),
        "vae2-encoder": (None, ["nll_iwae: not in metrics/eval/vae2.json"]),
        "evaluator-classifier": (
            None,
            ["metrics/eval/evaluator.json: missing; run the evaluate stage first"],
        ),
        "broken-generator": (
            None,
            ["exported/broken/generator.onnx: not a loadable ONNX graph (" + broken_error + ")"],
        ),
    }
    # no training run in this store: the version says so instead of pointing nowhere
    assert all(r.get("run_id") is None for r in record["versions"])
    assert [r["status"] for r in record["versions"]].count("registered") == 5


def test_mlflow_models_serve_answers_like_onnxruntime(store_dir, tiny_exported):
    exported = Path(shutil.copytree(tiny_exported, store_dir / "exported"))
    experiment = tracking.open_registry("testdata")
    train_run("cgan")
    metrics = write_metrics(store_dir, "cgan", {"fid": 10.0})
    gate = {"fid": Bound(max=20.0)}
    (record,) = register_instance("cgan", "cgan", exported, metrics, gate, "champion", experiment)
    assert record["alias"] == "champion"

    port = free_port()
    bin_dir = Path(sys.executable).parent  # mlflow execs uvicorn from the PATH, as `uv run` has it
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.Popen(
        [str(bin_dir / "mlflow"), "models", "serve", "-m", "models:/cgan-generator@champion",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )  # fmt: skip
    try:
        wait_until_up(f"http://127.0.0.1:{port}/ping", proc, timeout=120)
        z = np.random.default_rng(3).standard_normal((4, 6)).astype(np.float32)
        labels = np.array([0, 3, 9, 5], np.int64)
        r = httpx.post(
            f"http://127.0.0.1:{port}/invocations",
            json={"inputs": {"z": z.tolist(), "label": labels.tolist()}},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        got = np.array(r.json()["predictions"]["image"], np.float32)
    finally:
        stop(proc)
    session = ort.InferenceSession(str(exported / "cgan" / "generator.onnx"))
    (want,) = session.run(None, {"z": z, "label": labels})
    assert got.shape == (4, 1, 28, 28)
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.faults
def test_a_registered_graph_changed_in_the_artifact_store_is_not_served(
    store_dir, tiny_exported, record_property
):
    """The registry version's onnx_sha256 tag is checked against the bytes downloaded: a file
    changed in the artifact store after registering leaves that graph unavailable."""
    exported = Path(shutil.copytree(tiny_exported, store_dir / "exported"))
    experiment = tracking.open_registry("testdata")
    train_run("ae")
    good = write_metrics(store_dir, "ae", {"psnr": 19.0, "pca": {"mse": 0.02}})
    register_instance("ae", "autoencoder", exported, good, BOUNDS, "champion", experiment)
    decoder = (exported / "ae" / "decoder.onnx").read_bytes()
    stored = [p for p in store_dir.rglob("*.onnx")
              if "exported" not in p.parts and p.read_bytes() == decoder]  # fmt: skip
    assert stored, "the registered decoder was not found in the artifact store"
    for path in stored:
        data = bytearray(path.read_bytes())
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(64)
        path.write_bytes(bytes(data))

    store = ModelStore.from_registry({"ae": "autoencoder"}, cache_dir=store_dir / "c")
    graphs = store.models["ae"].graphs
    record_property("unverified_graphs_served", int(graphs["decoder"].ok))
    assert store.models["ae"].status == "degraded"
    assert not graphs["decoder"].ok and "recorded when it was exported" in graphs["decoder"].error
    assert graphs["encoder"].ok
