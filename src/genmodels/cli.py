"""The `genmodels` command: `genmodels serve` runs the inference service.

Imports nothing heavy at the top: `genmodels serve` must start without torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from genmodels.errors import UserError
from genmodels.stage import LOG_FORMAT, QUIET_LOGGERS

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
        store = ModelStore.from_registry(expected, params.registry.alias, *threads)
    else:
        store = ModelStore.scan(settings.exported_dir, expected, *threads)
    serving = [name for name, m in store.models.items() if m.status != "unavailable"]
    if not serving:
        log.warning("no model can serve (see /health): export some with `dvc repro export`")
    log.info("%d models from %s: %s", len(serving), store.origin, ", ".join(serving))
    return create_app(store, settings), settings


def app_factory() -> Any:
    """The app of one uvicorn worker process (serve.workers > 1)."""
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
    common = {"host": settings.host, "port": settings.port, "log_level": "warning",
              "access_log": False, "timeout_graceful_shutdown": 5}  # fmt: skip
    if settings.workers == 1:
        uvicorn.run(app, **common)
        return
    # worker processes build their own app (and onnxruntime sessions) from the same options
    os.environ[ENV_ARGS] = json.dumps(options)
    uvicorn.run("genmodels.cli:app_factory", factory=True, workers=settings.workers, **common)


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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        _serve(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
