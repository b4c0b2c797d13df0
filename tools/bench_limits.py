"""make bench-limits: what the service's limits cost and bound -> reports/bench/limits.json.

`genmodels serve` (one worker) under 32 concurrent keep-alive clients of /upscale, each sending a
128x128 photo to the photo profile's upscaler, once per setting: no cap with onnxruntime's arena
kept (the service before the limits), then params' cap with the arena kept, shrunk after each
run, and off. Per setting: the worker's RSS before the burst (started and warmed up), at its
peak (VmHWM) and 5 s after it, and the HTTP latency p50/p99 and throughput under the 32 clients
and of one client alone. Then the cost of the cap on small requests: one /generate sample of the
default profile's GAN under 32 clients, capped and not. `targets` checks the peak against
params' serve.max_rss_mb, that memory is given back, and that params' arena is the cheapest
setting that gives it back (off only where it costs less than 10 % latency).
Not a stage: the figures depend on the machine; docs/benchmarks.md is rendered from the file.
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import onnxruntime as ort
import yaml

from bench_docs import update_docs
from bench_serve import _health_worker, _png, http_load, real_photo, start_service
from genmodels.config import load_params, read_yaml
from genmodels.errors import UserError
from genmodels.io import write_json
from genmodels.stage import run_stage
from timed_repro import cpu_model

log = logging.getLogger("bench_limits")
PHOTO_SIDE = 128
IDLE_SECONDS = 5.0  # after the burst, before "after" is read
UNCAPPED = 256  # serve.max_concurrent_inference's upper bound: more than the clients
MAX_ARENA_OFF_COST = 0.10  # "off" is chosen only where it costs less latency than this


def worker_memory(pid: int) -> dict[str, float]:
    """The worker's resident memory now and at its peak so far, in MB (Linux's /proc)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": fields["VmRSS"], "peak_mb": fields["VmHWM"]}


def serve_params(profile_params: Path, folder: Path, **serve) -> Path:
    """A copy of the profile's params with these serve settings, in `folder`."""
    params = read_yaml(profile_params)
    params["serve"] = {**params.get("serve", {}), **serve}
    path = folder / f"params-{len(list(folder.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def measure(params_path: Path, exported: Path, endpoint: str, body: dict, clients: int,
            requests: int) -> dict:  # fmt: skip
    """One service, one setting: memory before, at the peak of and after the burst, latency
    under `clients` and of a single client."""
    proc, port = start_service(str(params_path), str(exported), workers=1)
    try:
        pid = _health_worker(port)  # the one worker, up: start_service waited for it
        single = http_load(port, endpoint, body, clients=1, total=20)  # also the warm-up
        before = worker_memory(pid)
        burst = http_load(port, endpoint, body, clients=clients, total=requests)
        peak = worker_memory(pid)["peak_mb"]
        time.sleep(IDLE_SECONDS)
        after = worker_memory(pid)["rss_mb"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    grown = peak - before["rss_mb"]
    return {"rss_before_mb": before["rss_mb"], "rss_peak_mb": peak, "rss_after_mb": after,
            # of what the burst added at its peak, the share given back once it ended
            "returned_fraction": round((peak - after) / grown, 3) if grown > 0 else None,
            "burst": burst, "single_client": single}  # fmt: skip


def upscale_section(args, serve, folder: Path) -> dict:
    profile = Path(args.photos_profile)
    exported = profile / "exported"
    graph = exported / args.upscaler / "generator.onnx"
    if not graph.is_file():
        raise UserError(f"{graph}: missing; run `make repro-photos` first")
    endpoint, body = f"/upscale/{args.upscaler}", {"image": _png(real_photo(PHOTO_SIDE))}
    settings = {
        "uncapped_arena_keep": {"max_concurrent_inference": UNCAPPED, "arena": "keep"},
        "capped_arena_keep": {"arena": "keep"},
        "capped_arena_shrink": {"arena": "shrink"},
        "capped_arena_off": {"arena": "off"},
    }
    report = {"graph": str(graph), "endpoint": endpoint, "image": [PHOTO_SIDE, PHOTO_SIDE],
              "clients": args.clients, "requests": args.requests, "idle_seconds": IDLE_SECONDS,
              "settings": {}}  # fmt: skip
    for name, override in settings.items():
        cap = override.get("max_concurrent_inference", serve.max_concurrent_inference)
        path = serve_params(profile / "params.yaml", folder, max_concurrent_inference=cap,
                            arena=override["arena"], workers=1)  # fmt: skip
        log.info("%s: %s (cap %d, arena %s)", endpoint, name, cap, override["arena"])
        figures = measure(path, exported, endpoint, body, args.clients, args.requests)
        report["settings"][name] = {"max_concurrent_inference": cap, "arena": override["arena"],
                                    **figures}  # fmt: skip
        log.info("%s: %s", name, {k: v for k, v in figures.items() if k.startswith("rss")})
    return report


def generate_section(args, serve, folder: Path) -> dict:
    exported = Path("exported")
    graph = exported / args.generator / "generator.onnx"
    if not graph.is_file():
        return {"error": f"{graph}: missing; run `make repro` first"}
    endpoint, body = f"/generate/{args.generator}", {"n": 1, "seed": 0}
    report = {"graph": str(graph), "endpoint": endpoint, "clients": args.clients, "settings": {}}
    for name, cap in (("uncapped", UNCAPPED), ("capped", serve.max_concurrent_inference)):
        path = serve_params(Path(args.params), folder, max_concurrent_inference=cap, workers=1)
        figures = measure(path, exported, endpoint, body, args.clients, args.generate_requests)
        report["settings"][name] = {"max_concurrent_inference": cap, **figures}
    return report


def _cost(settings: dict, name: str, against: str) -> float:
    """How much slower `name` is than `against` at p50 under the burst (0.1: 10 % slower)."""
    return round(settings[name]["burst"]["p50_ms"] / settings[against]["burst"]["p50_ms"] - 1, 4)


def targets(upscale: dict, generate: dict, serve) -> dict:
    s = upscale["settings"]
    costs = {
        "cap_on_upscale": _cost(s, "capped_arena_keep", "uncapped_arena_keep"),
        "arena_shrink": _cost(s, "capped_arena_shrink", "capped_arena_keep"),
        "arena_off": _cost(s, "capped_arena_off", "capped_arena_keep"),
    }
    if "settings" in generate:
        costs["cap_on_generate"] = _cost(generate["settings"], "capped", "uncapped")
    given_back = {arena: s[f"capped_arena_{arena}"]["rss_after_mb"] for arena in ("shrink", "off")}
    # off where it costs under 10 % and keeps less memory after the burst; else shrink
    cheapest = "off" if (costs["arena_off"] - costs["arena_shrink"] < MAX_ARENA_OFF_COST
                         and given_back["off"] <= given_back["shrink"]) else "shrink"  # fmt: skip
    shipped = s[f"capped_arena_{serve.arena}"] if serve.arena != "keep" else s["capped_arena_keep"]
    return {
        "latency_cost": costs,
        "chosen_arena": serve.arena,
        "arena_by_the_rule": cheapest,
        "params_arena_follows_the_rule": serve.arena == cheapest,
        "peak_below_max_rss_mb": shipped["rss_peak_mb"] <= serve.max_rss_mb,
        "memory_given_back": shipped["rss_after_mb"] < s["uncapped_arena_keep"]["rss_after_mb"],
        "no_errors": all(v["burst"]["errors"] == 0 for v in s.values()),
    }


def main(args) -> None:
    params = load_params(args.params)
    serve = params.serve
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as folder:
        upscale = upscale_section(args, serve, Path(folder))
        generate = generate_section(args, serve, Path(folder))
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "cpu_model": cpu_model(),
            "loadavg_1min_at_start": round(os.getloadavg()[0], 2),
            "onnxruntime": ort.__version__,
        },
        "serve": {
            k: getattr(serve, k)
            for k in (
                "max_concurrent_inference",
                "max_waiting",
                "queue_timeout_seconds",
                "arena",
                "max_rss_mb",
                "intra_op_threads",
            )
        },  # fmt: skip
        "upscale": upscale,
        "generate": generate,
        "targets": targets(upscale, generate, serve),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(Path(args.out), report)
    for name, r in upscale["settings"].items():
        burst = r["burst"]
        print(f"{name:22s} RSS {r['rss_before_mb']:7.1f} -> peak {r['rss_peak_mb']:7.1f} -> "
              f"after {r['rss_after_mb']:7.1f} MB  p50 {burst['p50_ms']:8.1f} ms  "
              f"p99 {burst['p99_ms']:8.1f} ms  {burst['throughput_rps']:6.1f} req/s")  # fmt: skip
    print("targets:", report["targets"])
    print(f"written to {args.out}")
    if Path(args.out).resolve() == Path("reports/bench/limits.json").resolve():
        update_docs()


def add_args(parser) -> None:
    parser.add_argument("--out", default="reports/bench/limits.json")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--requests", type=int, default=64, help="/upscale requests in the burst")
    parser.add_argument("--generate-requests", type=int, default=3200,
                        help="/generate requests under the clients")  # fmt: skip
    parser.add_argument("--photos-profile", default="profiles/photos",
                        help="the profile whose upscaler takes the burst")  # fmt: skip
    parser.add_argument("--upscaler", default="srresnet", help="that upscaler's instance")
    parser.add_argument("--generator", default="gan",
                        help="the default profile's instance for /generate")  # fmt: skip


if __name__ == "__main__":
    run_stage(main, "Serving limits: memory and latency of the cap and the arena", add_args)
