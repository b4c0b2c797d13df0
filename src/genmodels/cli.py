"""The `genmodels` command: `genmodels serve` runs the inference service; `generate`,
`reconstruct`, `translate` and `upscale` run the exported graphs on files.

Imports nothing heavy at the top: every command runs without torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from genmodels.checksums import CHECKSUMS, instance_folders
from genmodels.errors import UserError
from genmodels.stage import LOG_FORMAT, run_logged

ENV_ARGS = "GENMODELS_SERVE_ARGS"  # how `serve` hands its arguments to worker processes
log = logging.getLogger("genmodels.serve")


def build_app(options: dict[str, Any]) -> tuple[Any, Any]:
    """The app and its serve settings from the CLI options (params file plus overrides)."""
    from pydantic import ValidationError

    from genmodels.config import ServeParams, load_params
    from genmodels.serving import ModelStore, create_app

    params = load_params(options["params"])
    overrides = {k: v for k, v in options.items() if k != "params" and v is not None}
    try:  # validated like params.yaml, so a bad --port is one clear message
        settings = ServeParams.model_validate(params.serve.model_dump() | overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in exc.errors()
        )
        raise UserError(f"bad serve option: {problems}") from None
    expected = {name: model.family for name, model in params.models.items()}
    threads = (settings.intra_op_threads, settings.inter_op_threads)
    if settings.from_registry:
        store = ModelStore.from_registry(
            expected, params.registry.alias, *threads, arena=settings.arena
        )
    else:
        store = ModelStore.scan(settings.exported_dir, expected, *threads, arena=settings.arena)
    serving = [name for name, m in store.models.items() if m.status != "unavailable"]
    if not serving:
        log.warning("no model can serve (see /health): export some with `dvc repro export`")
    log.info("%d models from %s: %s", len(serving), store.origin, ", ".join(serving))
    return create_app(store, settings), settings


def app_factory() -> Any:
    """The app of one uvicorn worker process (serve.workers > 1 where SO_REUSEPORT is missing)."""
    app, _ = build_app(json.loads(os.environ[ENV_ARGS]))
    return app


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    options = {
        "params": args.params,
        "host": args.host,
        "port": args.port,
        "exported_dir": args.exported_dir,
        "from_registry": True if args.from_registry else None,
        "workers": args.workers,
    }
    app, settings = build_app(options)
    log.info("http://%s:%d (%d worker(s))", settings.host, settings.port, settings.workers)
    from genmodels.serving.connections import header_timeout_protocol

    common = {"log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 5,
              "http": header_timeout_protocol(settings.header_timeout_seconds)}  # fmt: skip
    if settings.workers == 1:
        uvicorn.run(app, host=settings.host, port=settings.port, **common)
        return
    del app  # each worker builds its own app and onnxruntime sessions
    with _pinned_graphs(options, settings) as options:
        if sys.platform == "linux":
            _serve_reuse_port(options, settings.host, settings.port, settings.workers, common)
            return
        os.environ[ENV_ARGS] = json.dumps(options)
        uvicorn.run("genmodels.cli:app_factory", factory=True, workers=settings.workers,
                    host=settings.host, port=settings.port, **common)  # fmt: skip


@contextmanager
def _pinned_graphs(options: dict[str, Any], settings: Any) -> Iterator[dict[str, Any]]:
    """The options every worker starts from, its graphs pinned: exported_dir's graphs and
    checksums are copied once into a private folder that all workers (a restarted one too)
    load and verify, so a file changed on disk later cannot reach one worker and not another.
    """
    if settings.from_registry:
        yield options
        return
    source = Path(settings.exported_dir)
    with tempfile.TemporaryDirectory(prefix="genmodels-serve-graphs-") as snapshot:
        for folder in instance_folders(source):
            files = [*folder.glob("*.onnx"), folder / CHECKSUMS]
            for file in (f for f in files if f.is_file()):
                (Path(snapshot) / folder.name).mkdir(exist_ok=True)
                shutil.copyfile(file, Path(snapshot) / folder.name / file.name)
        log.info("%s pinned for the workers in %s", source, snapshot)
        yield {**options, "exported_dir": snapshot}


# ---------------------------------------------------------------- reuse-port workers
# uvicorn's workers share one listening socket, and whichever accepts first takes a whole burst
# of connections: under 32 clients one worker got ~95 % of the requests. One SO_REUSEPORT
# socket per worker lets the kernel spread connections over the workers by their addresses.


def _reuse_port_socket(host: str, port: int) -> Any:
    import socket

    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port"
        ) from None
    return sock


def _reuse_port_worker(
    options: dict[str, Any], sock: Any, common: dict[str, Any], loaded: Any
) -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    app, _ = build_app(options)
    loaded.set()
    uvicorn.Server(uvicorn.Config(app, **common)).run(sockets=[sock])


def _serve_reuse_port(
    options: dict[str, Any], host: str, port: int, workers: int, common: dict[str, Any]
) -> None:
    """Run `workers` processes, each on its own socket; restart one that dies; stop on a signal."""
    import multiprocessing
    import signal
    import threading

    multiprocessing.allow_connection_pickling()  # sockets travel to spawned children
    spawn = multiprocessing.get_context("spawn")
    sockets = [_reuse_port_socket(host, port) for _ in range(workers)]
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    def start(index: int) -> tuple[Any, Any]:
        loaded = spawn.Event()
        process = spawn.Process(
            target=_reuse_port_worker, args=(options, sockets[index], common, loaded), daemon=True
        )
        process.start()
        return process, loaded

    running = [start(i) for i in range(workers)]
    try:
        while not stop.wait(0.5):
            for index, (process, loaded) in enumerate(running):
                if process.is_alive() or stop.is_set():
                    continue
                if not loaded.is_set():  # died before serving: a broken set-up, not a crash
                    raise UserError(
                        f"worker {process.pid} exited at start (code {process.exitcode}); "
                        "run with --workers 1 to see why"
                    )
                log.warning("worker %d exited (code %s); starting another", process.pid,
                            process.exitcode)  # fmt: skip
                running[index] = start(index)
    finally:
        for process, _ in running:
            process.terminate()  # uvicorn finishes the requests in flight, then exits
        for process, _ in running:
            process.join(common["timeout_graceful_shutdown"] + 5)
            if process.is_alive():
                process.kill()
        for sock in sockets:
            sock.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="genmodels", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="the onnxruntime HTTP service and its web page")
    serve.add_argument("--params", default="params.yaml", help="the params file (params.yaml)")
    serve.add_argument("--host", help="address to bind (params serve.host: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (params serve.port)")
    serve.add_argument("--exported-dir", help="folder of <instance>/<graph>.onnx (exported)")
    serve.add_argument(
        "--from-registry",
        action="store_true",
        help="serve the champion versions of the MLflow registry instead of exported/",
    )
    serve.add_argument("--workers", type=int, help="server processes (params serve.workers)")
    from genmodels.serving.commands import add_commands, run_command

    add_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "serve":
        run_logged(_serve, args)
        return
    failures: list[int] = []
    run_logged(lambda a: failures.append(run_command(a)), args)
    sys.exit(1 if failures and failures[0] else 0)


if __name__ == "__main__":
    main()
