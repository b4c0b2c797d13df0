"""make bench-serve: serving speed of every exported graph -> reports/bench/serve.json.

Per graph: latency p50/p99 at batch 1 and 64 of onnxruntime and of the PyTorch eager module
it was exported from (rebuilt from models/<instance>/model.pt), in this process, both at the
service's thread count and both with every core, the speed-ups comparing each at its best;
and, against `genmodels serve` on 127.0.0.1, HTTP p50/p99 and throughput under 32 concurrent
keep-alive clients each asking for one 28x28 sample. The `photos` section: the photo
profile's upscaler (profiles/photos) at 128x128 -> 512x512, batch 1, in onnxruntime and eager;
a 2,000 x 2,000 photo upscaled in tiles by `genmodels upscale`; HTTP /upscale of a 128x128
photo under 8 clients (`--only photos` re-measures just that section). `targets` says which graphs meet the
thresholds of params.yaml's `bench` section (named in each target and listed in `thresholds`).
Not a stage: the numbers depend on the machine, so they are written but not tracked by DVC; the
figures section of docs/benchmarks.md is rendered from the file at the end (tools/bench_docs.py).
"""

import asyncio
import base64
import http.client
import io
import json
import logging
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import chdir
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image
from skimage import data as photos

from bench_docs import update_docs
from genmodels.config import BenchParams, load_params
from genmodels.data.prepared import load_prepared
from genmodels.errors import UserError
from genmodels.io import write_json
from genmodels.models import data_info, load_trained
from genmodels.registry import example_inputs
from genmodels.serving.store import ModelStore, session_options
from genmodels.stage import run_stage
from genmodels.training.recipe import unwrap
from timed_repro import cpu_model

log = logging.getLogger("bench_serve")
BATCHES = (1, 64)


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000.0
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "runs": len(ms),
    }


def time_interleaved(calls: dict, budget_s: float, max_runs: int, chunk: int = 25) -> dict:
    """Latencies of each call, measured in alternating chunks after a warm-up.

    Alternating keeps a load that varies over time (other work on the machine) from favouring
    whichever runtime happened to be timed in the quiet moment.
    """
    for call in calls.values():
        for _ in range(10):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    end = time.perf_counter() + budget_s * len(calls)
    while min(len(t) for t in times.values()) < max_runs and (
        min(len(t) for t in times.values()) < 4 * chunk or time.perf_counter() < end
    ):
        for name, call in calls.items():
            for _ in range(chunk):
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    return {name: percentiles(t) for name, t in times.items()}


def torch_modules(params, instances: set[str]) -> dict[str, dict[str, torch.nn.Module]]:
    """instance -> graph name -> its eager module (CPU, eval), or an error string."""
    out: dict[str, dict] = {}
    info = data_info(load_prepared(params.data.prepared_dir))
    for instance in sorted(instances):
        try:
            recipe = load_trained(params.model(instance), instance, info, torch.device("cpu"))
            out[instance] = {e.name: e.module.cpu().eval() for e in recipe.exportables()}
        except (UserError, KeyError) as exc:
            out[instance] = {"error": str(exc)}
    return out


def thread_settings(serving_threads: int, cpus: int) -> dict[str, tuple[int, bool]]:
    """name -> (threads, onnxruntime spinning): the service's setting (one worker per core,
    one thread per request, no spinning), and each runtime given every core as an
    in-process caller would have it (torch's default thread count, onnxruntime's default
    spinning)."""
    settings = {"serving": (serving_threads, False)}
    if cpus > serving_threads:
        settings["all_cores"] = (cpus, True)
    return settings


def bench_setting(path: Path, module, threads: int, spinning: bool, budget_s: float) -> dict:
    options = session_options(threads, 1, spinning)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    torch.set_num_threads(threads)
    result: dict = {"threads": threads, "onnxruntime": {}, "pytorch_eager": {}}
    for batch in BATCHES:
        feed = example_inputs(path, batch=batch)
        calls = {"onnxruntime": lambda feed=feed: session.run(None, feed)}
        if isinstance(module, torch.nn.Module):
            args = tuple(torch.from_numpy(v) for v in feed.values())

            def eager(args=args):
                with torch.inference_mode():
                    module(*args)

            calls["pytorch_eager"] = eager
        timed = time_interleaved(calls, budget_s, 2000 if batch == 1 else 200)
        for name, stats in timed.items():
            result[name][f"batch_{batch}"] = stats
    if not isinstance(module, torch.nn.Module):
        result["pytorch_eager"] = {"error": module}
    return result


def bench_graph(path: Path, module, settings: dict[str, tuple[int, bool]],
                budget_s: float) -> dict:  # fmt: skip
    """Latencies under every thread setting; the speed-ups compare each runtime at its best
    setting (the lower p50), so that neither is held to a thread count that suits the other."""
    result = {name: bench_setting(path, module, threads, spinning, budget_s)
              for name, (threads, spinning) in settings.items()}  # fmt: skip
    if not isinstance(module, torch.nn.Module):
        return result
    for batch in BATCHES:
        best = {}
        for runtime in ("onnxruntime", "pytorch_eager"):
            name = min(settings, key=lambda n: result[n][runtime][f"batch_{batch}"]["p50_ms"])
            best[runtime] = {"setting": name, **result[name][runtime][f"batch_{batch}"]}
        result[f"best_batch_{batch}"] = best
        result[f"speedup_batch_{batch}"] = round(
            best["pytorch_eager"]["p50_ms"] / best["onnxruntime"]["p50_ms"], 2
        )
    return result


# ---------------------------------------------------------------- HTTP load


def _request(path: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Accept: image/png\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def _client(port: int, requests: list[bytes], times: list[float], errors: list[str]):
    """One keep-alive connection sending its requests one after the other."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request in requests:
            start = time.perf_counter()
            writer.write(request)
            status = (await reader.readline()).split(b" ", 2)
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            times.append(time.perf_counter() - start)
            if len(status) < 2 or status[1] != b"200" or not body.startswith(b"\x89PNG"):
                errors.append(f"{status[1:2]} {body[:120]!r}")
    finally:
        writer.close()


def http_load(port: int, path: str, body: dict, clients: int, total: int) -> dict:
    """HTTP p50/p99 and throughput of `total` requests spread over `clients` connections."""
    times: list[float] = []
    errors: list[str] = []
    per = [[_request(path, body) for _ in range(total // clients)] for _ in range(clients)]

    async def run() -> float:
        warm = [_client(port, [_request(path, body)] * 5, [], errors) for _ in range(clients)]
        await asyncio.gather(*warm)
        start = time.perf_counter()
        await asyncio.gather(*(_client(port, r, times, errors) for r in per))
        return time.perf_counter() - start

    elapsed = asyncio.run(run())
    return {
        **percentiles(times),
        "throughput_rps": round(len(times) / elapsed, 1),
        "clients": clients,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def http_target(model: dict, graph: str) -> tuple[str, dict] | None:
    """The request that asks this graph for one 28x28 sample, or None (no such endpoint)."""
    name = model["name"]
    task = model["graphs"][graph]["task"]
    sample = Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8))
    if task in ("generate", "decode"):
        return f"/generate/{name}", {"n": 1, "seed": 0}
    if task == "encode" and "reconstruct" in model["endpoints"]:
        return f"/reconstruct/{name}", {"image": _png(sample)}
    if task == "translate":
        direction = graph.removeprefix("generator_")
        return f"/translate/{name}", {"image": _png(sample), "direction": direction}
    if task == "upscale":
        scale = int(model.get("scale") or 1)
        return f"/upscale/{name}", {"image": _png(sample.resize((28 // scale, 28 // scale)))}
    return None


def _png(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health_worker(port: int) -> int | None:
    """The pid of the worker answering /health on a new connection, or None (not up yet)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/health")
        return json.loads(connection.getresponse().read())["worker"]
    except (OSError, http.client.HTTPException, ValueError, KeyError):
        return None
    finally:
        connection.close()


def start_service(params_path: str, exported: str, workers: int) -> tuple[subprocess.Popen, int]:
    """`genmodels serve` in a subprocess, returned once every worker answers."""
    port = _free_port()
    cmd = [sys.executable, "-m", "genmodels.cli", "serve", "--params", params_path,
           "--exported-dir", exported, "--port", str(port), "--workers", str(workers)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    seen: set[int] = set()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("genmodels serve exited at start")
        if (pid := _health_worker(port)) is not None:
            seen.add(pid)
            if len(seen) == workers:
                return proc, port
        else:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"genmodels serve: {len(seen)} of {workers} workers answered within 60 s")


# ---------------------------------------------------------------- the photo upscaler

PHOTO_SIDE = 128  # the upscaler's input in the in-process and HTTP figures
LARGE_SIDE = 2000  # the photo upscaled in tiles


def real_photo(side: int) -> Image.Image:
    """scikit-image's astronaut (a real 512 x 512 photo) resized to side x side (bicubic)."""
    return Image.fromarray(photos.astronaut()).resize((side, side), Image.Resampling.BICUBIC)


def photo_modules(profile: Path, instance: str) -> dict[str, torch.nn.Module]:
    """The upscaler as trained (what a PyTorch user runs: generator.upscale) and in the form
    that was exported (the same function rearranged for onnxruntime), in eager mode."""
    with chdir(profile):  # the profile's paths are relative to its folder
        params = load_params("params.yaml")
        info = data_info(load_prepared(params.data.prepared_dir))
        recipe = load_trained(params.model(instance), instance, info, torch.device("cpu"))
    trained = unwrap(recipe.generator).eval()
    [exported] = recipe.exportables()

    class Trained(torch.nn.Module):
        def forward(self, image):
            return trained.upscale(image)

    return {"pytorch_eager": Trained(), "pytorch_eager_exported_form": exported.module.eval()}


def photo_latency(graph: Path, modules: dict, settings: dict, budget_s: float) -> dict:
    """Batch-1 latency at 128x128 of onnxruntime and each eager form under every thread
    setting; the speed-ups compare each at its best setting."""
    image = np.asarray(real_photo(PHOTO_SIDE), dtype=np.float32).transpose(2, 0, 1)[None] / 255
    tensor = torch.from_numpy(image)
    result: dict = {"input": [1, 3, PHOTO_SIDE, PHOTO_SIDE]}
    for name, (threads, spinning) in settings.items():
        options = session_options(threads, 1, spinning)
        session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        torch.set_num_threads(threads)
        calls = {"onnxruntime": lambda s=session: s.run(None, {"image": image})}
        for key, module in modules.items():

            def eager(module=module):
                with torch.inference_mode():
                    module(tensor)

            calls[key] = eager
        result[name] = {"threads": threads,
                        **time_interleaved(calls, budget_s, max_runs=200, chunk=5)}  # fmt: skip
    best = {}
    for runtime in ("onnxruntime", *modules):
        setting = min(settings, key=lambda n: result[n][runtime]["p50_ms"])
        best[runtime] = {"setting": setting, **result[setting][runtime]}
    result["best"] = best
    ort_p50 = best["onnxruntime"]["p50_ms"]
    result["speedup_batch_1"] = round(best["pytorch_eager"]["p50_ms"] / ort_p50, 2)
    result["speedup_batch_1_exported_form"] = round(
        best["pytorch_eager_exported_form"]["p50_ms"] / ort_p50, 2
    )
    return result


def tiled_upscale(profile: Path, instance: str, max_memory_mb: int) -> dict:
    """`genmodels upscale` on a 2,000 x 2,000 photo as a user runs it, in a child process whose
    peak resident memory (ru_maxrss) is read when it exits."""
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "astronaut.png"
        real_photo(LARGE_SIDE).save(photo)
        command = [sys.executable, "-m", "genmodels.cli", "upscale", instance, str(photo),
                   "--out", str(Path(tmp) / "out"), "--params", str(profile / "params.yaml"),
                   "--exported-dir", str(profile / "exported")]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            return {"error": done.stderr.strip()[-500:]}
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        with Image.open(Path(tmp) / "out" / "astronaut.png") as upscaled:
            size = list(upscaled.size)
    return {
        "input": [LARGE_SIDE, LARGE_SIDE],
        "output": size,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "max_memory_mb": max_memory_mb,
        "within_bound": peak_mb <= max_memory_mb,
    }


def photo_section(args, settings: dict, workers: int) -> dict:
    """The photo profile's upscaler: in-process latency, a large photo in tiles, and HTTP."""
    profile, instance = Path(args.photos_profile), args.photos_model
    graph = profile / "exported" / instance / "generator.onnx"
    if not graph.is_file():
        return {"error": f"{graph}: missing; run `make repro-photos` first"}
    params = load_params(profile / "params.yaml")
    meta = ort.InferenceSession(str(graph)).get_modelmeta().custom_metadata_map
    report: dict = {"graph": str(graph), "scale": int(meta["scale"]),
                    "tile_side": params.infer.tile_side,
                    "tile_overlap": params.infer.tile_overlap}  # fmt: skip
    log.info("%s: in-process latency at %dx%d", graph, PHOTO_SIDE, PHOTO_SIDE)
    report["latency"] = photo_latency(graph, photo_modules(profile, instance), settings,
                                      args.budget)  # fmt: skip
    log.info("%s: a %dx%d photo in tiles", graph, LARGE_SIDE, LARGE_SIDE)
    report["tiled"] = tiled_upscale(profile, instance, params.infer.max_memory_mb)
    proc, port = start_service(str(profile / "params.yaml"), str(profile / "exported"), workers)
    try:
        endpoint = f"/upscale/{instance}"
        log.info("%s: HTTP under %d clients", endpoint, args.photos_clients)
        body = {"image": _png(real_photo(PHOTO_SIDE))}
        report["http"] = {"endpoint": endpoint, "image": [PHOTO_SIDE, PHOTO_SIDE],
                          **http_load(port, endpoint, body, args.photos_clients,
                                      args.photos_requests)}  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return report


def photo_targets(section: dict, bench: BenchParams) -> dict[str, dict[str, bool]]:
    """target -> {graph: met}: onnxruntime's speed-up over the eager upscaler as trained, and
    the tiled 2,000 x 2,000 upscale within infer.max_memory_mb."""
    if "error" in section:
        return {}
    name = section["graph"]
    tiled = section.get("tiled", {})
    return {
        f"upscaler_onnxruntime_{bench.min_upscaler_speedup_batch_1:g}x_faster_at_batch_1": {
            name: section["latency"]["speedup_batch_1"] >= bench.min_upscaler_speedup_batch_1
        },
        f"tiled_upscale_within_{tiled.get('max_memory_mb', 0)}_mb": {
            name: bool(tiled.get("within_bound"))
        },
    }


def target_names(bench: BenchParams) -> tuple[str, str]:
    """The two targets' names, each holding its threshold: onnxruntime_2x_faster_at_batch_1,
    http_p99_at_most_20_ms at the defaults."""
    return (
        f"onnxruntime_{bench.min_speedup_batch_1:g}x_faster_at_batch_1",
        f"http_p99_at_most_{bench.max_http_p99_ms:g}_ms",
    )


def evaluate_targets(graphs: dict[str, dict], bench: BenchParams) -> dict[str, dict[str, bool]]:
    """target -> graph -> met: onnxruntime's batch-1 speed-up over eager for every decoder and
    generator (at least bench.min_speedup_batch_1), and the HTTP p99 of every /generate graph
    (at most bench.max_http_p99_ms)."""
    speedup, p99 = target_names(bench)
    targets: dict[str, dict[str, bool]] = {speedup: {}, p99: {}}
    for name, r in graphs.items():
        if "speedup_batch_1" in r and name.split("/")[1] in ("decoder", "generator"):
            targets[speedup][name] = r["speedup_batch_1"] >= bench.min_speedup_batch_1
        if "http" in r and r["http"]["endpoint"].startswith("/generate/"):
            targets[p99][name] = r["http"]["p99_ms"] <= bench.max_http_p99_ms
    return targets


def graph_section(args, params, threads: dict, workers: int) -> dict:
    """Every exported graph of the default run: in-process latencies, then HTTP."""
    exported = Path(params.serve.exported_dir)
    store = ModelStore.scan(exported)
    graphs = [(m, g) for m in store.models.values() for g in m.graphs.values() if g.ok]
    if not graphs:
        raise UserError(f"{exported}: no loadable ONNX graphs; run `dvc repro` (export) first")
    modules = torch_modules(params, {m.name for m, _ in graphs})
    results: dict = {}
    for model, graph in graphs:
        module = modules[model.name].get(graph.name, modules[model.name].get("error"))
        log.info("%s/%s: in-process latency", model.name, graph.name)
        results[f"{model.name}/{graph.name}"] = bench_graph(
            Path(graph.source), module, threads, args.budget
        )

    proc, port = start_service(args.params, str(exported), workers)
    try:
        described = {m.name: m.describe() for m in store.models.values()}
        for model, graph in graphs:
            target = http_target(described[model.name], graph.name)
            if target is None:
                continue
            log.info("%s/%s: HTTP %s under %d clients", model.name, graph.name, target[0],
                     args.clients)  # fmt: skip
            results[f"{model.name}/{graph.name}"]["http"] = {
                "endpoint": target[0],
                **http_load(port, *target, clients=args.clients, total=args.requests),
            }
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return results


def main(args) -> None:
    params = load_params(args.params)
    cpus = os.cpu_count() or 1
    threads = thread_settings(params.serve.intra_op_threads or cpus, cpus)
    workers = args.workers or params.serve.workers
    out = Path(args.out)
    if args.only == "photos" and out.is_file():
        report = json.loads(out.read_text())  # the graphs' figures stay as they were
    else:
        report = {"graphs": {}}
    machine = {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "thread_settings": {
            name: {"threads": n, "onnxruntime_spinning": spin}
            for name, (n, spin) in threads.items()
        },
        "workers": workers,
        # other work on the machine skews every number: the load when the bench started
        "loadavg_1min_at_start": round(os.getloadavg()[0], 2),
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
    }
    if args.only != "photos":  # --only photos keeps the machine the graphs were measured on
        report["machine"] = machine
        report["http"] = {"clients": args.clients, "requests": args.requests,
                          "accept": "image/png"}  # fmt: skip
        report["graphs"] = graph_section(args, params, threads, workers)
    report["photos"] = {**photo_section(args, threads, workers), "machine": machine}
    report["thresholds"] = params.bench.model_dump()  # params.yaml's bench section
    report["targets"] = {
        **evaluate_targets(report.get("graphs", {}), params.bench),
        **photo_targets(report["photos"], params.bench),
    }
    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json(out, report)
    nan = float("nan")
    for name, r in report.get("graphs", {}).items():
        best = r.get("best_batch_1", {})
        ort1 = best.get("onnxruntime", r["serving"]["onnxruntime"]["batch_1"])["p50_ms"]
        eager = best.get("pytorch_eager", {}).get("p50_ms", nan)
        http = r.get("http", {})
        print(f"{name:28s} best ort b1 p50 {ort1:8.3f} ms  eager {eager:8.3f} ms  "
              f"x{r.get('speedup_batch_1', nan):5.2f}  http p99 {http.get('p99_ms', nan):7.2f} ms "
              f"{http.get('throughput_rps', nan):7.0f} req/s")  # fmt: skip
    print("photos:", json.dumps(report["photos"], indent=1))
    for target, met in report["targets"].items():
        missed = ", ".join(name for name, ok in met.items() if not ok) or "none"
        print(f"{target}: {sum(met.values())} of {len(met)} graphs (missed: {missed})")
    print(f"written to {args.out}")
    if out.resolve() == Path("reports/bench/serve.json").resolve():
        update_docs()


def add_args(parser) -> None:
    parser.add_argument("--out", default="reports/bench/serve.json")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--requests", type=int, default=3200, help="HTTP requests per graph")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per latency series")
    parser.add_argument("--workers", type=int, help="server processes (params serve.workers)")
    parser.add_argument(
        "--only", choices=["photos"], help="re-measure only this section; the rest of --out is kept"
    )
    parser.add_argument(
        "--photos-profile",
        default="profiles/photos",
        help="the profile whose upscaler the photos section measures",
    )
    parser.add_argument("--photos-model", default="srgan", help="that upscaler's instance")
    parser.add_argument(
        "--photos-clients", type=int, default=8, help="concurrent HTTP clients of /upscale"
    )
    parser.add_argument("--photos-requests", type=int, default=160,
                        help="HTTP /upscale requests in all")  # fmt: skip


if __name__ == "__main__":
    run_stage(main, "Serving benchmark: onnxruntime vs PyTorch eager, and HTTP", add_args)
