"""The frame every pipeline script runs in: arguments, logging, and user errors as one line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from genmodels.config import EVALUATOR
from genmodels.errors import UserError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# libraries that narrate their internals at INFO
QUIET_LOGGERS = ("onnxscript", "onnx_ir", "alembic", "mlflow.store.db.utils")


def run_stage(
    main: Callable[[argparse.Namespace], None],
    description: str,
    add_args: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parses --params (and the stage's own arguments), runs main; a UserError exits with 2."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="the params file (params.yaml)")
    if add_args is not None:
        add_args(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        main(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def dvc_stage_name(kind: str, instance: str) -> str:
    """The DVC stage that runs `kind` for an instance: train@ae_k2, or train_evaluator."""
    return f"{kind}_{EVALUATOR}" if instance == EVALUATOR else f"{kind}@{instance}"
