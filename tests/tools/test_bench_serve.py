"""`make bench-serve` (tools/bench_serve.py): in-process latencies per thread setting, and the
targets checked against params.yaml's bench thresholds."""

from __future__ import annotations

import sys

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from genmodels.config import BenchParams
from helpers import REPO

sys.path.insert(0, str(REPO / "tools"))
import bench_serve  # noqa: E402


def export(module, example, path, names, axes):
    """module as an ONNX graph at path (torch's TorchScript exporter: quick for a tiny net)."""
    torch.onnx.export(module, (example,), path, input_names=names[:1], output_names=names[1:],
                      dynamic_axes={names[0]: axes}, dynamo=False)  # fmt: skip
    return path


def at_one_and_two_threads(measure):
    """measure(settings) under the service's one thread and both cores; torch's thread count
    restored after."""
    settings = bench_serve.thread_settings(1, 2)
    threads = torch.get_num_threads()
    try:
        return settings, measure(settings)
    finally:
        torch.set_num_threads(threads)


def test_thread_settings_add_every_core_beside_the_services_own():
    assert bench_serve.thread_settings(1, 2) == {"serving": (1, False), "all_cores": (2, True)}
    assert bench_serve.thread_settings(2, 2) == {"serving": (2, False)}


def test_each_runtime_is_compared_at_its_best_setting(tmp_path):
    decoder = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 784), nn.Sigmoid()).eval()
    path = export(decoder, torch.randn(1, 2), tmp_path / "decoder.onnx", ["z", "image"],
                  {0: "batch"})  # fmt: skip
    settings, result = at_one_and_two_threads(
        lambda settings: bench_serve.bench_graph(path, decoder, settings, budget_s=0.02)
    )
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
    path = export(nn.ReLU(), torch.randn(1, 2), tmp_path / "relu.onnx", ["z", "out"], {0: "batch"})
    result = bench_serve.bench_graph(path, "model.pt: missing", {"serving": (1, False)}, 0.01)
    assert result["serving"]["pytorch_eager"] == {"error": "model.pt: missing"}
    assert result["serving"]["onnxruntime"]["batch_1"]["runs"] > 0
    assert "speedup_batch_1" not in result


def _graphs(speedup: float, p99_ms: float) -> dict[str, dict]:
    """bench_serve's per-graph results, reduced to what the targets read."""
    http = {"endpoint": "/generate/gan", "p99_ms": p99_ms}
    return {
        "gan/generator": {"speedup_batch_1": speedup, "http": http},
        "vae/encoder": {"speedup_batch_1": 0.5, "http": {"endpoint": "/reconstruct/vae",
                                                         "p99_ms": 99.0}},
        "evaluator/classifier": {"speedup_batch_1": 0.5},
    }  # fmt: skip


def test_targets_use_the_params_thresholds_and_name_them():
    lenient = BenchParams(min_speedup_batch_1=1.4, max_http_p99_ms=15.0)
    strict = BenchParams(min_speedup_batch_1=2.0, max_http_p99_ms=10.0)
    assert bench_serve.evaluate_targets(_graphs(1.5, 12.0), lenient) == {
        "onnxruntime_1.4x_faster_at_batch_1": {"gan/generator": True},
        "http_p99_at_most_15_ms": {"gan/generator": True},
    }
    # only decoders and generators, only /generate: encoders and the classifier are not judged
    assert bench_serve.evaluate_targets(_graphs(1.5, 12.0), strict) == {
        "onnxruntime_2x_faster_at_batch_1": {"gan/generator": False},
        "http_p99_at_most_10_ms": {"gan/generator": False},
    }
    # the bounds are inclusive
    exact = BenchParams(min_speedup_batch_1=1.5, max_http_p99_ms=12.0)
    assert all(
        met["gan/generator"]
        for met in bench_serve.evaluate_targets(_graphs(1.5, 12.0), exact).values()
    )


def test_the_default_thresholds_keep_the_reports_target_names():
    assert bench_serve.target_names(BenchParams()) == (
        "onnxruntime_2x_faster_at_batch_1",
        "http_p99_at_most_20_ms",
    )


def test_thresholds_must_be_positive():
    for bad in ({"min_speedup_batch_1": 0}, {"max_http_p99_ms": -1.0}):
        with pytest.raises(ValidationError):
            BenchParams(**bad)


def test_the_photo_upscaler_is_timed_against_both_eager_forms(tmp_path):
    from tiny_graphs import Upscaler

    module = Upscaler(2, channels=3).eval()
    path = export(module, torch.rand(1, 3, 8, 8), tmp_path / "generator.onnx",
                  ["image", "high_res"], {0: "batch", 2: "height", 3: "width"})  # fmt: skip
    modules = {"pytorch_eager": module, "pytorch_eager_exported_form": module}
    settings, result = at_one_and_two_threads(
        lambda settings: bench_serve.photo_latency(path, modules, settings, budget_s=0.01)
    )
    assert result["input"] == [1, 3, 128, 128]
    for runtime in ("onnxruntime", *modules):
        p50s = {name: result[name][runtime]["p50_ms"] for name in settings}
        assert result["best"][runtime]["p50_ms"] == min(p50s.values())
    ort_p50 = result["best"]["onnxruntime"]["p50_ms"]
    assert result["speedup_batch_1"] == round(
        result["best"]["pytorch_eager"]["p50_ms"] / ort_p50, 2
    )


def test_photo_targets_name_their_thresholds():
    section = {"graph": "g.onnx", "latency": {"speedup_batch_1": 1.6},
               "tiled": {"max_memory_mb": 2048, "within_bound": False}}  # fmt: skip
    assert bench_serve.photo_targets(section, BenchParams()) == {
        "upscaler_onnxruntime_1.5x_faster_at_batch_1": {"g.onnx": True},
        "tiled_upscale_within_2048_mb": {"g.onnx": False},
    }
    strict = BenchParams(min_upscaler_speedup_batch_1=2.0)
    assert bench_serve.photo_targets(section, strict)[
        "upscaler_onnxruntime_2x_faster_at_batch_1"
    ] == {"g.onnx": False}
    assert bench_serve.photo_targets({"error": "missing"}, BenchParams()) == {}
