"""The frame every pipeline script runs in: arguments, logging, and user errors as one line."""

from __future__ import annotations

import argparse
import atexit
import ctypes
import gc
import logging
import sys
from collections.abc import Callable

from genmodels.config import EVALUATOR
from genmodels.errors import UserError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# libraries that narrate their internals at INFO
QUIET_LOGGERS = ("onnxscript", "onnx_ir", "alembic", "mlflow.store.db.utils")
# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's own ceiling for its sliding threshold
TRIM_THRESHOLD_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Keeps freed blocks in the process's heap instead of handing them back to the kernel.

    glibc returns blocks over 128 KiB (and the heap's free top) to the kernel on free, so every
    training step page-faults its activations in again: ~3,000 faults and 5 ms of system time
    per GAN step on 2 cores. Kept, steps run 10-25 % faster with the same numbers; the cost is
    that the process stays at its peak memory. Linux with glibc only; elsewhere a no-op.
    Returns whether the allocator took both settings.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library symbols to reach (static or non-glibc)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    took_mmap = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    took_trim = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    return bool(took_mmap and took_trim)


def spare_the_collector() -> None:
    """Keeps the garbage collector off the objects that live as long as the process.

    torch, MLflow and SQLAlchemy leave ~570,000 objects behind their imports. Full collections
    walked them again and again (1.5 s of a stage), and the interpreter's shutdown walked them
    once more (1-2 s) after the stage's work was done. Frozen now and again at exit (the exit
    handlers that flush logs and runs still run): a frozen object is still freed when its last
    reference goes; only cycles among frozen objects wait for the process to end.
    """
    gc.freeze()
    atexit.register(gc.freeze)


def run_stage(
    main: Callable[[argparse.Namespace], None],
    description: str,
    add_args: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parses --params (and the stage's own arguments), runs main; a UserError exits with 2."""
    keep_freed_memory()
    spare_the_collector()
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="the params file (params.yaml)")
    if add_args is not None:
        add_args(parser)
    run_logged(main, parser.parse_args())


def run_logged(main: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> None:
    """Runs main with INFO logging; a UserError is one line on stderr and exit status 2."""
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
