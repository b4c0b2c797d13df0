"""`make bench-docs` (tools/bench_docs.py): the figures of docs/benchmarks.md come from the
reports, between the markers, and nothing else on the page changes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / "tools"))
import bench_docs  # noqa: E402

HEAD = "# Benchmarks\n\nThe method, written by hand.\n\n## Latest figures\n\n"
TAIL = "\n\n## After the figures\n\nAlso written by hand.\n"

# the shapes of reports/bench/*.json and reports/ablation/gan.json, as the tools write them
REPRO = {
    "seconds": 93.5,
    "stages_run": 4,
    "stages": ["prepare", "train_evaluator", "train@gan", "evaluate@gan"],
    "stage_seconds": {"prepare": 3.5, "train_evaluator": 20.0, "train@gan": 61.25,
                      "evaluate@gan": 8.75},
    "finished": "2031-01-02T03:04:05+00:00",
    "cpus": 3,
    "machine": "x86_64",
    "cpu_model": "Test CPU 9000",
}  # fmt: skip
TRAIN = {
    "device": "cpu",
    "threads": 3,
    "evaluate_seconds": {"gan": 7.77},
    "repro": REPRO,
    "training": {
        "gan": {
            "bare_images_per_second": 3232.5,
            "bare_runs": [3531.7, 3864.1, 3409.4],
            "batch_size": 64,
            "data_fraction": 0.00783,
            "family": "gan",
            "overhead_per_round": [-0.0152, 0.0673],
            "rounds": 2,
            "steps_per_run": 84,
            "trainer_images_per_second": 3014.9,
            "trainer_overhead": 0.0159,
            "trainer_overhead_in_run": 0.0036,
            "trainer_runs": [3754.0, 3694.8],
        }
    },
}


def _latency(p50: float) -> dict:
    return {"p50_ms": p50, "p99_ms": p50 * 3, "runs": 2000}


SERVE = {
    "graphs": {
        "gan/generator": {
            "all_cores": {"onnxruntime": {"batch_1": _latency(0.0501), "batch_64": _latency(2.5)},
                          "pytorch_eager": {"batch_1": _latency(0.2222),
                                            "batch_64": _latency(3.5)},
                          "threads": 3},
            "serving": {"onnxruntime": {"batch_1": _latency(0.0456), "batch_64": _latency(1.54)},
                        "pytorch_eager": {"batch_1": _latency(0.2123),
                                          "batch_64": _latency(2.1)},
                        "threads": 1},
            "best_batch_1": {"onnxruntime": {**_latency(0.0456), "setting": "serving"},
                             "pytorch_eager": {**_latency(0.2123), "setting": "serving"}},
            "best_batch_64": {"onnxruntime": {**_latency(1.54), "setting": "serving"},
                              "pytorch_eager": {**_latency(2.1), "setting": "serving"}},
            "http": {"clients": 32, "endpoint": "/generate/gan", "errors": 0,
                     "first_error": None, "p50_ms": 6.54, "p99_ms": 13.71, "runs": 3200,
                     "throughput_rps": 4288.4},
            "speedup_batch_1": 4.66,
            "speedup_batch_64": 1.36,
        },
        "evaluator/classifier": {
            "serving": {"onnxruntime": {"batch_1": _latency(0.075), "batch_64": _latency(1.7)},
                        "pytorch_eager": {"error": "model.pt: missing"}, "threads": 1},
        },
    },
    "http": {"accept": "image/png", "clients": 32, "requests": 3200},
    "machine": {
        "cpus": 3, "loadavg_1min_at_start": 0.34, "onnxruntime": "1.32.0",
        "processor": "x86_64", "torch": "2.14.1+cpu", "workers": 2,
        "thread_settings": {"all_cores": {"onnxruntime_spinning": True, "threads": 3},
                            "serving": {"onnxruntime_spinning": False, "threads": 1}},
    },
    "thresholds": {"max_http_p99_ms": 12.5, "min_speedup_batch_1": 4.5},
    "targets": {"http_p99_at_most_12.5_ms": {"gan/generator": False},
                "onnxruntime_4.5x_faster_at_batch_1": {"gan/generator": True}},
}  # fmt: skip
ABLATION = {
    "minimax": {"class_coverage": 9, "class_kl": 0.10239884, "fid": 25.88884957984135,
                "loss": "minimax", "oscillation_index": 0.03864137855749615,
                "precision": 0.5836, "recall": 0.3076, "train_seconds": 111.95},
    "wgan-gp": {"class_coverage": 3, "class_kl": 6.342043587614382, "fid": 81.74995791483282,
                "loss": "wgan_gp", "oscillation_index": 0.008226730980863,
                "precision": 0.4834, "recall": 0.0, "train_seconds": 129.18},
}  # fmt: skip


def _write_reports(root: Path, **reports: dict) -> tuple[Path, Path]:
    bench, ablation = root / "reports" / "bench", root / "reports" / "ablation"
    bench.mkdir(parents=True)
    ablation.mkdir(parents=True)
    for name, data in reports.items():
        target = ablation / "gan.json" if name == "ablation" else bench / f"{name}.json"
        target.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return bench, ablation / "gan.json"


def _page(tmp_path: Path, between: str = "stale figures, typed by hand: 42\n") -> Path:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"{HEAD}{bench_docs.START}\n{between}{bench_docs.END}{TAIL}")
    return doc


def _rows(text: str, first_cell: str) -> list[list[str]]:
    """The cells of every table row that starts with `first_cell`."""
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith(f"| {first_cell} |")
    ]


def test_the_figures_come_from_the_reports_and_the_rest_is_untouched(tmp_path):
    bench, ablation = _write_reports(
        tmp_path, train=TRAIN, repro=REPRO, serve=SERVE, ablation=ABLATION
    )
    doc = _page(tmp_path)
    text = bench_docs.render(doc, bench, ablation)
    assert doc.read_text() == text
    assert text.startswith(HEAD + bench_docs.START + "\n")
    assert text.endswith("\n" + bench_docs.END + TAIL)
    assert "typed by hand: 42" not in text
    inside = text[text.index(bench_docs.START) : text.index(bench_docs.END)]

    # training: the medians, the spread of the rounds, the shares, the evaluate cost
    assert _rows(inside, "gan")[0] == [
        "gan", "gan", "64", "3014.9", "3232.5", "1.6 % (2 rounds)", "-1.5 to 6.7 %", "0.4 %",
        "0.78 %", "7.77",
    ]  # fmt: skip
    # the pipeline's wall time and its machine (no time of day in docs/), per group and stage
    assert "ran 4 stages in 1.6 min (93.5 s)" in inside
    assert "2031-01-02" not in inside and "Test CPU 9000" in inside
    assert _rows(inside, "train")[0] == ["train", "2", "81.2", "train@gan (61.25 s)"]
    assert _rows(inside, "evaluate@gan")[0] == ["evaluate@gan", "8.75"]
    # serving: each thread setting's batch-1 p50, the speed-ups, HTTP
    assert _rows(inside, "gan/generator")[0] == [
        "gan/generator", "0.046 / 0.050", "0.212 / 0.222", "4.66x", "1.54", "2.10", "1.36x",
        "`/generate/gan`", "6.5", "13.7", "4288", "0",
    ]  # fmt: skip
    assert _rows(inside, "evaluator/classifier")[0][1:4] == ["0.075 / -", "- / -", "-"]
    assert (
        "Thread settings: serving: 1 thread(s), without onnxruntime spinning; "
        "all_cores: 3 thread(s), with onnxruntime spinning." in inside
    )
    # the targets with the thresholds that were applied
    assert "`max_http_p99_ms: 12.5`" in inside and "`min_speedup_batch_1: 4.5`" in inside
    assert _rows(inside, "`http_p99_at_most_12.5_ms`")[0][1:] == ["0 of 1", "gan/generator"]
    assert _rows(inside, "`onnxruntime_4.5x_faster_at_batch_1`")[0][1:] == ["1 of 1", "none"]
    # the ablation
    assert _rows(inside, "minimax")[0] == [
        "minimax", "minimax", "25.89", "0.5836", "0.3076", "9", "0.1024", "0.0386", "112.0"
    ]  # fmt: skip
    assert _rows(inside, "wgan-gp")[0][2] == "81.75"

    # rendering again from the same reports changes nothing
    assert bench_docs.render(doc, bench, ablation) == text


def test_missing_reports_are_named_and_repro_falls_back_to_the_train_report(tmp_path):
    bench, ablation = _write_reports(tmp_path, train=TRAIN)
    doc = _page(tmp_path, between="")
    inside = bench_docs.render(doc, bench, ablation)
    assert "No `reports/bench/serve.json` yet: run `make bench-serve`." in inside
    assert "No `reports/ablation/gan.json` yet: run `make ablation`." in inside
    assert "ran 4 stages in 1.6 min (93.5 s)" in inside  # the copy inside train.json


def test_a_report_without_thresholds_says_where_they_are(tmp_path):
    older = {k: v for k, v in SERVE.items() if k != "thresholds"}
    bench, ablation = _write_reports(tmp_path, serve=older)
    text = bench_docs.render(_page(tmp_path), bench, ablation)
    assert "the values in the targets' names" in text


@pytest.mark.parametrize(
    "body",
    [
        "no markers at all\n",
        f"{bench_docs.END}\nreversed\n{bench_docs.START}\n",
        f"{bench_docs.START}\n{bench_docs.START}\n{bench_docs.END}\n",
    ],
)
def test_a_page_without_one_pair_of_markers_is_refused_and_left_alone(tmp_path, body):
    bench, ablation = _write_reports(tmp_path, repro=REPRO)
    doc = tmp_path / "benchmarks.md"
    doc.write_text(body)
    with pytest.raises(ValueError, match="bench:start"):
        bench_docs.render(doc, bench, ablation)
    assert doc.read_text() == body
    assert not bench_docs.update_docs(doc)  # the tools warn and carry on


def test_the_committed_page_is_rendered_from_the_committed_reports():
    doc = REPO / "docs" / "benchmarks.md"
    text = doc.read_text()
    block = bench_docs.figures(
        REPO / "reports" / "bench", REPO / "reports" / "ablation" / "gan.json"
    )
    assert bench_docs.splice(text, block) == text, "run `make bench-docs`"
    deployment = (REPO / "docs" / "deployment.md").read_text()
    block = bench_docs.deployment_block(REPO / "reports" / "bench")
    spliced = bench_docs.splice(deployment, block, bench_docs.PHOTOS_START, bench_docs.PHOTOS_END)
    assert spliced == deployment, "run `make bench-docs`"


def test_the_photo_upscaler_is_rendered_from_serve_json_or_named_when_missing(tmp_path):
    best = {
        "onnxruntime": {"p50_ms": 76.21, "setting": "all_cores"},
        "pytorch_eager": {"p50_ms": 153.0, "setting": "all_cores"},
        "pytorch_eager_exported_form": {"p50_ms": 108.4, "setting": "all_cores"},
    }
    photos = {
        "graph": "profiles/photos/exported/srgan/generator.onnx",
        "scale": 4,
        "tile_side": 192,
        "tile_overlap": 48,
        "latency": {
            "input": [1, 3, 128, 128],
            "best": best,
            "speedup_batch_1": 2.01,
            "speedup_batch_1_exported_form": 1.42,
        },
        "tiled": {
            "input": [2000, 2000],
            "output": [8000, 8000],
            "seconds": 81.27,
            "peak_rss_mb": 734.4,
            "max_memory_mb": 2048,
            "within_bound": True,
        },
        "http": {
            "endpoint": "/upscale/srgan",
            "image": [128, 128],
            "clients": 8,
            "p50_ms": 301.2,
            "p99_ms": 612.9,
            "throughput_rps": 12.3,
            "errors": 0,
        },
    }
    serve = {"photos": photos, "machine": {"cpu_model": "Test CPU", "cpus": 2, "workers": 2}}
    text = bench_docs.photos_section(serve)
    assert "onnxruntime 76.2 ms (all_cores), PyTorch eager as trained 153.0 ms" in text
    assert ": 2.01x;" in text and ": 1.42x." in text
    assert "81.3 s, peak memory 734 MB, within the bound of 2048 MB" in text
    assert "under 8 clients: p50 301.2 ms, p99 612.9 ms, 12.3 requests/s, 0 errors" in text
    over = {**photos, "tiled": {**photos["tiled"], "within_bound": False}}
    assert "above the bound of 2048 MB" in bench_docs.photos_section({"photos": over})
    missing = "run `make repro-photos` first"
    assert missing in bench_docs.photos_section({"photos": {"error": f"x: {missing}"}})
    # re-measured alone (--only photos): its own machine, not the graphs' one
    alone = {**serve, "photos": {**photos, "machine": {"cpu_model": "Other CPU", "cpus": 2}}}
    assert "Processor Other CPU, 2 CPUs" in bench_docs.photos_section(alone)
    assert "Processor Test CPU, 2 CPUs, 2 server workers." in text
    assert "No `reports/bench/serve.json` yet: run `make bench-serve`." in (
        bench_docs.photos_section(None)
    )

    page = tmp_path / "deployment.md"
    page.write_text(f"# Deployment\n\n{bench_docs.PHOTOS_START}\nold\n{bench_docs.PHOTOS_END}\n")
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "serve.json").write_text(json.dumps(serve))
    rendered = bench_docs.render_deployment(page, bench)
    assert "old" not in rendered and "p99 612.9 ms" in rendered and "###" not in rendered


def _setting(cap, arena, before, peak, after, p50, rps):
    return {"max_concurrent_inference": cap, "arena": arena, "rss_before_mb": before,
            "rss_peak_mb": peak, "rss_after_mb": after,
            "returned_fraction": round((peak - after) / (peak - before), 3),
            "burst": {"p50_ms": p50, "p99_ms": 2 * p50, "throughput_rps": rps, "errors": 0},
            "single_client": {"p50_ms": p50 / 10}}  # fmt: skip


def test_limits_section_tabulates_each_setting_and_the_targets():
    limits = {
        "machine": {"cpu_model": "Test CPU"},
        "serve": {"max_rss_mb": 1024},
        "upscale": {
            "endpoint": "/upscale/srresnet",
            "image": [128, 128],
            "clients": 32,
            "idle_seconds": 5.0,
            "settings": {
                "uncapped_arena_keep": _setting(256, "keep", 300.0, 2400.4, 2390.0, 3000.0, 9.5),
                "capped_arena_shrink": _setting(2, "shrink", 300.0, 512.6, 331.2, 3100.0, 9.1),
            },
        },
        "generate": {
            "endpoint": "/generate/gan",
            "clients": 32,
            "settings": {"capped": _setting(2, "shrink", 1, 2, 1, 4.25, 2000.0)},
        },
        "targets": {
            "latency_cost": {"cap_on_upscale": 0.0333, "arena_off": 0.081},
            "chosen_arena": "shrink",
            "arena_by_the_rule": "shrink",
            "peak_below_max_rss_mb": True,
            "memory_given_back": True,
        },
    }
    text = bench_docs.limits_section(limits)
    assert (
        "| uncapped_arena_keep | 256 | keep | 300 | 2400 | 2390 | 0 % | 3000.0 | 6000.0 | 9.5 |"
        in text
    )
    assert (
        "| capped_arena_shrink | 2 | shrink | 300 | 513 | 331 | 85 % | 3100.0 | 6200.0 | 9.1 |"
        in text
    )
    assert "and 5 s after the burst" in text
    assert "capped (cap 2): p50 4.25 ms, p99 8.50 ms, 2000 req/s" in text
    assert "cap on upscale 3.3 %, arena off 8.1 %" in text
    assert "`serve.max_rss_mb` = 1024 MB: yes; memory given back: yes" in text
    assert "run `make bench-limits`" in bench_docs.limits_section(None)
