"""A missing or corrupt graph marks its model unavailable while the others keep serving."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch
from fastapi.testclient import TestClient

from genmodels.checksums import read_checksums, sha256_bytes, write_checksums
from genmodels.export import export_onnx
from genmodels.serving import ModelStore, create_app
from genmodels.training.recipe import Exportable

pytestmark = pytest.mark.faults


def unverified_served(store: ModelStore) -> int:
    """How many graphs the store serves whose file is not, byte for byte, what export recorded
    (the fault suite's count: it must be zero)."""
    count = 0
    for model in store.models.values():
        for graph in (g for g in model.graphs.values() if g.ok):
            path = Path(graph.source)
            recorded, _ = read_checksums(path.parent)
            count += recorded.get(path.name) != sha256_bytes(path.read_bytes())
    return count


def test_corrupt_and_missing_graphs_are_unavailable_others_serve(
    exported_copy, families, record_property
):
    (exported_copy / "gan" / "generator.onnx").write_bytes(b"\x08\x07 this is not a protobuf")
    (exported_copy / "ae" / "decoder.onnx").unlink()
    # an instance params names but that was never exported
    store = ModelStore.scan(exported_copy, families | {"ae_never": "autoencoder"})
    record_property("unverified_graphs_served", unverified_served(store))
    assert unverified_served(store) == 0
    with TestClient(create_app(store)) as client:
        health = client.get("/health").json()
        assert health["status"] == "degraded"
        models = health["models"]
        assert models["gan"]["status"] == "unavailable"
        assert "recorded when it was exported" in models["gan"]["graphs"]["generator"]["error"]
        assert models["ae"]["status"] == "degraded"  # the encoder still loads
        assert models["ae"]["graphs"]["encoder"]["status"] == "ok"
        assert (
            "decoder.onnx: missing; run `dvc repro export@ae`"
            in (models["ae"]["graphs"]["decoder"]["error"])
        )
        assert models["ae_never"]["status"] == "unavailable"
        others = {n: m["status"] for n, m in models.items() if n not in ("gan", "ae", "ae_never")}
        assert set(others.values()) == {"ok"}

        r = client.post("/generate/gan", json={"n": 1})
        assert r.status_code == 503 and "the file changed since" in r.json()["detail"]
        r = client.post("/reconstruct/ae", json={"image": "AAAA"})
        assert r.status_code == 503 and "missing" in r.json()["detail"]
        # an endpoint the broken model never had is still a plain 404
        r = client.post("/translate/gan", json={"image": "AAAA"})
        assert r.status_code == 404 and "does not translate" in r.json()["detail"]
        assert client.post("/generate/vae2", json={"n": 2}).status_code == 200
        assert client.post("/generate/cgan", json={"n": 2}).status_code == 200
        listed = {m["name"]: m for m in client.get("/models").json()["models"]}
        assert listed["gan"]["endpoints"] == [] and listed["ae"]["endpoints"] == []


def test_graph_off_the_contract_is_unavailable_with_the_reason(exported_copy):
    # an encoder file where the decoder should be
    (exported_copy / "ae" / "encoder.onnx").replace(exported_copy / "ae" / "decoder.onnx")
    # a "decoder" that takes an image, not z
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 784))
    bad = Exportable(
        name="decoder",
        module=module,
        example_inputs=(torch.rand(2, 1, 28, 28),),
        input_names=["image"],
        output_names=["out"],
        dynamic_axes={"image": {0: "batch"}},
        metadata={"family": "vae", "graph": "decoder", "task": "decode"},
    )
    export_onnx(bad, exported_copy / "vae2" / "decoder.onnx")
    for folder in ("ae", "vae2"):  # recorded as an export would: the contract is what fails
        write_checksums(exported_copy / folder)
    store = ModelStore.scan(exported_copy)
    decoder = store.models["ae"].graphs["decoder"]
    assert not decoder.ok and "metadata says it is the 'encoder' graph" in decoder.error
    decoder = store.models["vae2"].graphs["decoder"]
    assert not decoder.ok and "expects a float input 'z'" in decoder.error
    assert store.models["vae2"].endpoints == []
    assert store.models["gan"].status == "ok"


def test_a_graph_changed_after_export_is_never_served(exported_copy, families, record_property):
    """4 KB overwritten in the middle of a decoder still parses, and once answered NaN pixels
    with a healthy /health: its sha256 no longer matches what export recorded."""
    graph = exported_copy / "vae2" / "decoder.onnx"
    data = bytearray(graph.read_bytes())
    middle = len(data) // 2
    size = min(4096, len(data) - middle)
    data[middle : middle + size] = (bytes(range(256)) * 16)[:size]
    graph.write_bytes(bytes(data))
    (exported_copy / "gan" / "checksums.json").unlink()  # nothing recorded: unverified
    store = ModelStore.scan(exported_copy, families)
    record_property("unverified_graphs_served", unverified_served(store))
    assert unverified_served(store) == 0
    with TestClient(create_app(store)) as client:
        health = client.get("/health").json()
        assert health["status"] == "degraded"
        error = health["models"]["vae2"]["graphs"]["decoder"]["error"]
        assert "recorded when it was exported" in error and "dvc repro export@vae2" in error
        gan = health["models"]["gan"]["graphs"]["generator"]["error"]
        assert "not verified" in gan and "checksums.json: missing" in gan
        assert client.post("/decode/vae2", json={"z": [[0.0, 0.0]]}).status_code == 503
        assert health["models"]["vae2"]["graphs"]["encoder"]["status"] == "ok"
        assert client.post("/generate/cgan", json={"n": 2}).status_code == 200


def test_empty_or_absent_exported_dir_serves_health(tmp_path):
    store = ModelStore.scan(tmp_path / "nothing", {"ae": "autoencoder"})
    with TestClient(create_app(store)) as client:
        health = client.get("/health").json()
        assert health["models"]["ae"]["status"] == "unavailable"
        assert client.get("/").status_code == 200


def test_serving_does_not_import_torch(tiny_exported, tmp_path):
    code = (
        "import sys\n"
        "from genmodels.cli import main\n"
        "from genmodels.serving import ModelStore, create_app\n"
        "from fastapi.testclient import TestClient\n"
        # the registry path too: mlflow, and the champions it finds (none in a new store)
        "empty = ModelStore.from_registry({'ae': 'autoencoder'})\n"
        "assert empty.models['ae'].status == 'unavailable'\n"
        f"store = ModelStore.scan({str(tiny_exported)!r})\n"
        "client = TestClient(create_app(store))\n"
        "assert client.post('/generate/cgan', json={'n': 3}).status_code == 200\n"
        "assert client.post('/decode/vae2', json={'z': [[0, 0]]}).status_code == 200\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print('torch modules:', loaded)\n"
        "assert not loaded\n"
    )
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "torch modules: []" in proc.stdout


def test_a_graph_with_external_data_is_refused_not_read_from_the_working_dir(
    exported_copy, families, tmp_path, monkeypatch
):
    """Loaded from bytes, onnxruntime would read the weights file from the working directory;
    a served graph must be one self-contained file."""
    folder = exported_copy / "gan"
    model = onnx.load(str(folder / "generator.onnx"))
    onnx.save_model(model, str(folder / "generator.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)  # fmt: skip
    write_checksums(folder)  # recorded as if exported so: only the external data is wrong
    work = tmp_path / "work"
    work.mkdir()
    shutil.move(folder / "weights.bin", work / "weights.bin")  # only where the service runs
    monkeypatch.chdir(work)
    graph = ModelStore.scan(exported_copy, families).models["gan"].graphs["generator"]
    assert not graph.ok
    assert "refers to external data (weights.bin)" in graph.error
    assert "self-contained" in graph.error
