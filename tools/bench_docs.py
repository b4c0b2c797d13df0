"""`make bench-docs`: renders the figures section of docs/benchmarks.md from the benchmark
reports: reports/bench/train.json (`make bench`), repro.json (`make repro`), serve.json
(`make bench-serve`; its `photos` section also in docs/deployment.md), prepare.json
(`make bench-prepare`), demo.json (`make demo`) and reports/ablation/gan.json (`make ablation`).

Only the part between the markers `<!-- bench:start -->` and `<!-- bench:end -->` is rewritten;
the text around it (the method of each benchmark) is left as it is. Every number in that part
comes from the reports, and a report that is not there yet is named with the target that
writes it. Each of those tools calls `update_docs()` once it has written its report.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DOC = Path("docs/benchmarks.md")
DEPLOYMENT = Path("docs/deployment.md")  # holds the photos section too, between its markers
BENCH_DIR = Path("reports/bench")
ABLATION = Path("reports/ablation/gan.json")
START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
PHOTOS_START, PHOTOS_END = "<!-- photos:start -->", "<!-- photos:end -->"
# the ablation table: (column, key in metrics/eval/gan.json, decimals; None: as written)
ABLATION_COLUMNS: list[tuple[str, str, int | None]] = [
    ("FID", "fid", 2), ("precision", "precision", 4), ("recall", "recall", 4),
    ("classes covered", "class_coverage", None), ("class KL", "class_kl", 4),
    ("oscillation index", "oscillation_index", 4), ("train s", "train_seconds", 1),
]  # fmt: skip


def cell(value: Any, decimals: int | None = None) -> str:
    """A table cell: '-' for nothing, floats with `decimals` (or as short as they are exact)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{decimals}f}" if decimals is not None else f"{value:g}"
    return str(value)


def percent(fraction: float | None, decimals: int = 1) -> str:
    return "-" if fraction is None else f"{100 * fraction:.{decimals}f} %"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _missing(name: str, target: str) -> str:
    return f"No `{name}` yet: run `{target}`."


def training_section(train: dict | None) -> str:
    out = ["### Training throughput (`make bench`, `reports/bench/train.json`)", ""]
    if not train:
        return "\n".join([*out, _missing("reports/bench/train.json", "make bench")])
    facts = [f"device {train.get('device', '-')}", f"{cell(train.get('threads'))} threads"]
    if train.get("cpu_model"):
        facts.append(f"processor {train['cpu_model']}")
    out += ["Measured with " + ", ".join(facts) + ".", ""]
    header = ["instance", "family", "batch", "Trainer img/s", "bare loop img/s",
              "Trainer overhead vs bare (median)", "rounds: lowest to highest", "in run",
              "data wait", "evaluate stage s"]  # fmt: skip
    evaluate = train.get("evaluate_seconds") or {}
    rows = []
    for name, r in sorted((train.get("training") or {}).items()):
        rounds = r.get("overhead_per_round") or []
        spread = f"{100 * min(rounds):.1f} to {100 * max(rounds):.1f} %" if rounds else "-"
        rows.append([
            name, cell(r.get("family")), cell(r.get("batch_size")),
            cell(r.get("trainer_images_per_second")), cell(r.get("bare_images_per_second")),
            f"{percent(r.get('trainer_overhead'))} ({cell(r.get('rounds'))} rounds)", spread,
            percent(r.get("trainer_overhead_in_run")), percent(r.get("data_fraction"), 2),
            cell(evaluate.get(name)),
        ])  # fmt: skip
    out.append(table(header, rows))
    by_shape = shape_section(train)
    return "\n".join([*out, "", by_shape] if by_shape else out)


def _stage_group(stage: str) -> str:
    """train@gan -> train, train_evaluator -> train, prepare -> prepare."""
    return stage.split("@")[0].removesuffix("_evaluator")


def shape_section(train: dict | None) -> str:
    """The DCGAN's bare-loop throughput at each image shape measured by `make bench`."""
    by_shape = (train or {}).get("gan_by_shape")
    if not by_shape:
        return ""
    rows = [[name, cell(r.get("batch_size")), cell(r.get("images_per_second")),
             ", ".join(cell(x) for x in r.get("runs", []))]
            for name, r in by_shape.items()]  # fmt: skip
    return "\n".join([
        "The `gan` instance's DCGAN at the default data's shape and at CIFAR-10's (random images "
        "of that shape, bare loop, shapes alternated round by round):", "",
        table(["shape (CxHxW)", "batch", "img/s (median)", "rounds"], rows),
    ])  # fmt: skip


def repro_section(repro: dict | None) -> str:
    out = ["### Pipeline wall time (`make repro`, `reports/bench/repro.json`)", ""]
    if not repro:
        return "\n".join([*out, _missing("reports/bench/repro.json", "make repro")])
    seconds = repro.get("seconds")
    total = f"{seconds / 60:.1f} min ({cell(seconds)} s)" if seconds is not None else "-"
    machine = ", ".join(
        text for text in (
            repro.get("cpu_model"),
            f"{repro['cpus']} CPUs" if repro.get("cpus") else None,
            repro.get("machine"),
        ) if text
    )  # fmt: skip
    out += [
        f"`dvc repro` ran {cell(repro.get('stages_run'))} stages in {total} "
        f"on {machine or 'an unrecorded machine'}.",
        "",
    ]
    stage_seconds = repro.get("stage_seconds") or {}
    groups: dict[str, list[tuple[str, float]]] = {}
    for stage in repro.get("stages") or list(stage_seconds):
        if stage in stage_seconds:
            groups.setdefault(_stage_group(stage), []).append((stage, stage_seconds[stage]))
    rows = []
    for group, stages in groups.items():
        longest = max(stages, key=lambda s: s[1])
        rows.append([group, str(len(stages)), f"{sum(s for _, s in stages):.1f}",
                     f"{longest[0]} ({cell(longest[1])} s)"])  # fmt: skip
    out.append(table(["stages", "count", "seconds in all", "longest"], rows))
    every = [[stage, cell(s)] for stage, s in (x for g in groups.values() for x in g)]
    out += ["", "<details><summary>Every stage, in the order it ran</summary>", "",
            table(["stage", "seconds"], every), "", "</details>"]  # fmt: skip
    return "\n".join(out)


def _p50(stats: dict | None, batch: int) -> str:
    value = ((stats or {}).get(f"batch_{batch}") or {}).get("p50_ms")
    return cell(value, 3) if value is not None else "-"


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{cell(ratio, 2)}x"


def serve_section(serve: dict | None) -> str:
    out = ["### Serving speed (`make bench-serve`, `reports/bench/serve.json`)", ""]
    if not serve:
        return "\n".join([*out, _missing("reports/bench/serve.json", "make bench-serve")])
    machine = serve.get("machine") or {}
    settings = machine.get("thread_settings") or {}
    names = sorted(settings, key=lambda n: (n != "serving", n)) or ["serving"]  # service first
    described = "; ".join(
        f"{name}: {cell(settings[name].get('threads'))} thread(s), "
        + ("with" if settings[name].get("onnxruntime_spinning") else "without")
        + " onnxruntime spinning"
        for name in names if name in settings
    )  # fmt: skip
    http = serve.get("http") or {}
    facts = [f"{cell(machine.get('cpus'))} CPUs ({machine.get('processor', '-')})"]
    if machine.get("cpu_model"):
        facts.insert(0, machine["cpu_model"])
    facts += [
        f"{cell(machine.get('workers'))} server workers",
        f"onnxruntime {machine.get('onnxruntime', '-')}, torch {machine.get('torch', '-')}",
        f"load average {cell(machine.get('loadavg_1min_at_start'))} at the start",
    ]
    out += [
        "Measured on " + "; ".join(facts) + ".",
        f"Thread settings: {described or '-'}. HTTP: {cell(http.get('clients'))} clients, "
        f"{cell(http.get('requests'))} requests per graph, answers as "
        f"{http.get('accept', '-')}.",
        "",
    ]
    which = " / ".join(names)
    header = [
        "graph", f"ORT b1 p50 ms ({which})", f"eager b1 p50 ms ({which})", "speed-up b1",
        "ORT b64 p50 ms (best)", "eager b64 p50 ms (best)", "speed-up b64", "endpoint",
        "HTTP p50 ms", "HTTP p99 ms", "HTTP req/s", "errors",
    ]  # fmt: skip
    rows = []
    for graph, r in sorted((serve.get("graphs") or {}).items()):
        best64 = r.get("best_batch_64") or {}
        h = r.get("http") or {}
        rows.append([
            graph,
            " / ".join(_p50((r.get(n) or {}).get("onnxruntime"), 1) for n in names),
            " / ".join(_p50((r.get(n) or {}).get("pytorch_eager"), 1) for n in names),
            _times(r.get("speedup_batch_1")),
            cell((best64.get("onnxruntime") or {}).get("p50_ms"), 2),
            cell((best64.get("pytorch_eager") or {}).get("p50_ms"), 2),
            _times(r.get("speedup_batch_64")),
            f"`{h['endpoint']}`" if h.get("endpoint") else "-",
            cell(h.get("p50_ms"), 1), cell(h.get("p99_ms"), 1),
            cell(h.get("throughput_rps"), 0), cell(h.get("errors")),
        ])  # fmt: skip
    out.append(table(header, rows))
    targets = serve.get("targets") or {}
    if targets:
        thresholds = serve.get("thresholds")
        applied = (
            "the thresholds applied, from params.yaml's `bench` section: "
            + ", ".join(f"`{key}: {cell(value)}`" for key, value in sorted(thresholds.items()))
            if thresholds
            else "the thresholds applied are the values in the targets' names (this report "
            "lists no `thresholds`)"
        )
        out += ["", f"Targets; {applied}.", ""]
        rows = []
        for target, met in targets.items():
            missed = [graph for graph, ok in met.items() if not ok]
            rows.append([f"`{target}`", f"{sum(bool(v) for v in met.values())} of {len(met)}",
                         ", ".join(missed) or "none"])  # fmt: skip
        out.append(table(["target", "graphs meeting it", "missed by"], rows))
    return "\n".join(out)


def prepare_section(prepare: dict | None) -> str:
    out = ["### Preparing a folder of images (`make bench-prepare`, `reports/bench/prepare.json`)",
           ""]  # fmt: skip
    if not prepare:
        return "\n".join([*out, _missing("reports/bench/prepare.json", "make bench-prepare")])
    runs = ", ".join(f"{cell(t, 1)} s" for t in prepare.get("seconds", []))
    met = "met" if prepare.get("target_met") else "not met"
    out.append(
        f"{prepare.get('what', '-')}: median {cell(prepare.get('median_seconds'), 1)} s "
        f"(runs: {runs}), target at most {cell(prepare.get('target_max_seconds'))} s, {met}. "
        f"Processor {prepare.get('cpu_model') or '-'}."
    )
    return "\n".join(out)


def photos_section(serve: dict | None) -> str:
    """The photo profile's upscaler: onnxruntime against eager at 128x128, a 2,000 x 2,000
    photo in tiles, and HTTP /upscale under load (serve.json's `photos`)."""
    out = ["### The photo upscaler (`make bench-serve`, `reports/bench/serve.json`: `photos`)", ""]
    photos = (serve or {}).get("photos")
    if not photos:
        return "\n".join([*out, _missing("reports/bench/serve.json", "make bench-serve")])
    if "error" in photos:
        return "\n".join([*out, f"Not measured: {photos['error']}."])
    latency, tiled, http = (
        photos.get("latency", {}),
        photos.get("tiled", {}),
        photos.get("http", {}),
    )
    best = latency.get("best", {})

    def at_best(runtime: str) -> str:
        stats = best.get(runtime) or {}
        return f"{cell(stats.get('p50_ms'), 1)} ms ({stats.get('setting', '-')})"

    side = (latency.get("input") or [0, 0, "-", "-"])[2:]
    out.append(
        f"`{photos.get('graph')}` ({photos.get('scale')}x), batch 1 at {side[0]} x {side[1]}, "
        f"p50 at each runtime's best thread setting: onnxruntime {at_best('onnxruntime')}, "
        f"PyTorch eager as trained {at_best('pytorch_eager')}: "
        f"{_times(latency.get('speedup_batch_1'))}; eager in the exported form (the same "
        f"function rearranged for onnxruntime) {at_best('pytorch_eager_exported_form')}: "
        f"{_times(latency.get('speedup_batch_1_exported_form'))}."
    )
    if "error" in tiled:
        out += ["", f"Tiled upscale failed: {tiled['error']}"]
    elif tiled:
        width, height = tiled.get("input", ["-", "-"])
        out_w, out_h = tiled.get("output", ["-", "-"])
        bound = "within" if tiled.get("within_bound") else "above"
        out += ["", f"`genmodels upscale` on a {width} x {height} photo ({out_w} x {out_h} out), "
                f"tiles of {photos.get('tile_side')} pixels sharing {photos.get('tile_overlap')}: "
                f"{cell(tiled.get('seconds'), 1)} s, peak memory "
                f"{cell(tiled.get('peak_rss_mb'), 0)} MB, {bound} the bound of "
                f"{tiled.get('max_memory_mb')} MB (`infer.max_memory_mb`)."]  # fmt: skip
    if http:
        image = http.get("image") or ["-", "-"]
        out += ["", f"HTTP `{http.get('endpoint')}` of a {image[0]} x {image[1]} photo under "
                f"{cell(http.get('clients'))} clients: p50 {cell(http.get('p50_ms'), 1)} ms, "
                f"p99 {cell(http.get('p99_ms'), 1)} ms, {cell(http.get('throughput_rps'), 1)} "
                f"requests/s, {cell(http.get('errors'))} errors."]  # fmt: skip
    # the section's own record (re-measured alone by --only photos), else the whole run's
    machine = photos.get("machine") or (serve or {}).get("machine") or {}
    out += ["", f"Processor {machine.get('cpu_model') or '-'}, {cell(machine.get('cpus'))} CPUs, "
            f"{cell(machine.get('workers'))} server workers."]  # fmt: skip
    return "\n".join(out)


def limits_section(limits: dict | None) -> str:
    """The service's limits under a burst of /upscale: memory and latency of each setting."""
    out = ["### The service's limits (`make bench-limits`, `reports/bench/limits.json`)", ""]
    if not limits:
        return "\n".join([*out, _missing("reports/bench/limits.json", "make bench-limits")])
    upscale = limits.get("upscale", {})
    out.append(
        f"`{upscale.get('endpoint')}` of a {cell((upscale.get('image') or ['-'])[0])} x "
        f"{cell((upscale.get('image') or ['-', '-'])[1])} photo, one worker, "
        f"{cell(upscale.get('clients'))} concurrent clients; RSS of the worker warmed up, at its "
        f"peak, and {cell(upscale.get('idle_seconds'))} s after the burst:"
    )
    header = ["setting", "cap", "arena", "RSS before MB", "peak MB", "after MB", "given back",
              "p50 ms", "p99 ms", "req/s", "1 client p50 ms", "errors"]  # fmt: skip
    rows = []
    for name, r in upscale.get("settings", {}).items():
        burst, single = r.get("burst", {}), r.get("single_client", {})
        rows.append([name, cell(r.get("max_concurrent_inference")), cell(r.get("arena")),
                     cell(r.get("rss_before_mb"), 0), cell(r.get("rss_peak_mb"), 0),
                     cell(r.get("rss_after_mb"), 0), percent(r.get("returned_fraction"), 0),
                     cell(burst.get("p50_ms"), 1),
                     cell(burst.get("p99_ms"), 1), cell(burst.get("throughput_rps"), 1),
                     cell(single.get("p50_ms"), 1), cell(burst.get("errors"))])  # fmt: skip
    out += ["", table(header, rows)]
    generate = limits.get("generate", {})
    if "settings" in generate:
        parts = [f"{name} (cap {cell(r.get('max_concurrent_inference'))}): p50 "
                 f"{cell(r['burst'].get('p50_ms'), 2)} ms, p99 {cell(r['burst'].get('p99_ms'), 2)} "
                 f"ms, {cell(r['burst'].get('throughput_rps'), 0)} req/s"
                 for name, r in generate["settings"].items()]  # fmt: skip
        out += ["", f"One `{generate.get('endpoint')}` sample under "
                f"{cell(generate.get('clients'))} clients: {'; '.join(parts)}."]  # fmt: skip
    targets = limits.get("targets", {})
    costs = ", ".join(f"{name.replace('_', ' ')} {percent(v)}"
                      for name, v in targets.get("latency_cost", {}).items())  # fmt: skip
    serve = limits.get("serve", {})
    out += ["", f"Latency cost at p50 under the burst: {costs}. `serve.arena` is "
            f"`{targets.get('chosen_arena')}` (the rule picks "
            f"`{targets.get('arena_by_the_rule')}`); "
            f"peak within `serve.max_rss_mb` = {cell(serve.get('max_rss_mb'))} MB: "
            f"{cell(targets.get('peak_below_max_rss_mb'))}; memory given back: "
            f"{cell(targets.get('memory_given_back'))}. Processor "
            f"{(limits.get('machine') or {}).get('cpu_model') or '-'}."]  # fmt: skip
    return "\n".join(out)


def demo_section(demo: dict | None) -> str:
    out = ["### The demo profile (`make demo`, `reports/bench/demo.json`)", ""]
    if not demo:
        return "\n".join([*out, _missing("reports/bench/demo.json", "make demo")])
    minutes = (demo.get("seconds") or 0) / 60
    met = "within" if minutes <= 5 else "over"
    out.append(
        f"`dvc repro` of {', '.join(f'`{s}`' for s in demo.get('stages', []))} in "
        f"`{demo.get('profile')}` ({cell(demo.get('stages_to_run'))} stages out of date at the "
        f"start): {cell(demo.get('seconds'), 1)} s "
        f"({cell(minutes, 1)} min, {met} the 5-minute target). Processor "
        f"{demo.get('cpu_model') or '-'}, {cell(demo.get('cpus'))} CPUs."
    )
    return "\n".join(out)


def ablation_section(ablation: dict | None) -> str:
    out = ["### GAN loss ablation (`make ablation`, `reports/ablation/gan.json`)", ""]
    if not ablation:
        return "\n".join([*out, _missing("reports/ablation/gan.json", "make ablation")])
    header = ["variant", "loss", *(label for label, _, _ in ABLATION_COLUMNS)]
    rows = [
        [name, cell(r.get("loss")), *(cell(r.get(key), d) for _, key, d in ABLATION_COLUMNS)]
        for name, r in ablation.items()
    ]
    out.append(table(header, rows))
    return "\n".join(out)


def figures(bench_dir: Path = BENCH_DIR, ablation: Path = ABLATION) -> str:
    """The generated markdown: one section per report."""
    train = _load(bench_dir / "train.json")
    repro = _load(bench_dir / "repro.json") or (train or {}).get("repro")
    return "\n\n".join([
        "<!-- generated by tools/bench_docs.py (make bench-docs) from reports/bench/*.json and "
        "reports/ablation/gan.json: edit those, not this part -->",
        training_section(train),
        repro_section(repro),
        serve_section(_load(bench_dir / "serve.json")),
        photos_section(_load(bench_dir / "serve.json")),
        limits_section(_load(bench_dir / "limits.json")),
        prepare_section(_load(bench_dir / "prepare.json")),
        demo_section(_load(bench_dir / "demo.json")),
        ablation_section(_load(ablation)),
    ])  # fmt: skip


def splice(text: str, block: str, start: str = START, end: str = END) -> str:
    """`text` with what lies between the markers replaced by `block`; the rest untouched."""
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"expected one {start} followed by one {end}")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{block}\n{end}{tail}"


def render(doc: Path = DOC, bench_dir: Path = BENCH_DIR, ablation: Path = ABLATION) -> str:
    """Rewrites the figures section of `doc` from the reports; returns the page."""
    old = doc.read_text()
    text = splice(old, figures(bench_dir, ablation))
    if text != old:
        doc.write_text(text)
    return text


def deployment_block(bench_dir: Path = BENCH_DIR) -> str:
    """The photo upscaler's figures without their heading: the deployment page has its own."""
    return photos_section(_load(bench_dir / "serve.json")).split("\n", 2)[2]


def render_deployment(doc: Path = DEPLOYMENT, bench_dir: Path = BENCH_DIR) -> str:
    """Rewrites the photo upscaler's figures in the deployment page; returns the page."""
    old = doc.read_text()
    text = splice(old, deployment_block(bench_dir), PHOTOS_START, PHOTOS_END)
    if text != old:
        doc.write_text(text)
    return text


def update_docs(doc: Path = DOC, deployment: Path = DEPLOYMENT) -> bool:
    """render() and render_deployment(), for the benchmark tools: a page that cannot be
    rendered is reported, never fatal (the report the tool has written stays)."""
    try:
        render(doc)
        render_deployment(deployment)
    except (OSError, ValueError) as exc:
        print(f"warning: {doc} or {deployment} not rendered: {exc}", file=sys.stderr)
        return False
    print(f"rendered {doc} and {deployment}")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doc", type=Path, default=DOC, help="the page (docs/benchmarks.md)")
    parser.add_argument(
        "--deployment",
        type=Path,
        default=DEPLOYMENT,
        help="the page with the photo upscaler's figures (docs/deployment.md)",
    )
    args = parser.parse_args()
    render(args.doc)
    render_deployment(args.deployment)
    print(f"rendered {args.doc} and {args.deployment}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
