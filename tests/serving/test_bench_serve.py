"""`make bench-serve` (pipeline/bench_serve.py): in-process latencies per thread setting."""

from __future__ import annotations

import sys

import torch
from torch import nn

from helpers import REPO

sys.path.insert(0, str(REPO / "pipeline"))
import bench_serve  # noqa: E402


def test_thread_settings_add_every_core_beside_the_services_own():
    assert bench_serve.thread_settings(1, 2) == {"serving": (1, False), "all_cores": (2, True)}
    assert bench_serve.thread_settings(2, 2) == {"serving": (2, False)}


def test_each_runtime_is_compared_at_its_best_setting(tmp_path):
    decoder = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 784), nn.Sigmoid()).eval()
    path = tmp_path / "decoder.onnx"
    torch.onnx.export(decoder, (torch.randn(1, 2),), path, input_names=["z"],
                      output_names=["image"], dynamic_axes={"z": {0: "batch"}},
                      dynamo=False)  # fmt: skip
    settings = bench_serve.thread_settings(1, 2)
    threads = torch.get_num_threads()
    try:
        result = bench_serve.bench_graph(path, decoder, settings, budget_s=0.02)
    finally:
        torch.set_num_threads(threads)
    assert {result[name]["threads"] for name in settings} == {1, 2}
    for batch in (1, 64):
        key = f"batch_{batch}"
        best = result[f"best_{key}"]
        for runtime in ("onnxruntime", "pytorch_eager"):
            p50s = {name: result[name][runtime][key]["p50_ms"] for name in settings}
            assert best[runtime]["p50_ms"] == min(p50s.values())
            assert p50s[best[runtime]["setting"]] == best[runtime]["p50_ms"]
        ratio = best["pytorch_eager"]["p50_ms"] / best["onnxruntime"]["p50_ms"]
        assert result[f"speedup_{key}"] == round(ratio, 2)


def test_a_graph_without_its_module_is_timed_alone(tmp_path):
    path = tmp_path / "relu.onnx"
    torch.onnx.export(nn.ReLU(), (torch.randn(1, 2),), path, input_names=["z"],
                      output_names=["out"], dynamic_axes={"z": {0: "batch"}},
                      dynamo=False)  # fmt: skip
    result = bench_serve.bench_graph(path, "model.pt: missing", {"serving": (1, False)}, 0.01)
    assert result["serving"]["pytorch_eager"] == {"error": "model.pt: missing"}
    assert result["serving"]["onnxruntime"]["batch_1"]["runs"] > 0
    assert "speedup_batch_1" not in result
