"""Atomic file writes: an interrupted stage never leaves a half-written output behind."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from genmodels.atomic import atomic_path


def write_with(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def save_torch(obj: Any, path: str | Path) -> Path:
    """torch.save through a file object: the archive's inner folder is then always `archive`,
    not the random temp name, so the same tensors give the same bytes (and DVC hash)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    return write_with(path, write)


def load_torch(path: str | Path, missing: str, fix: str) -> Any:
    """torch.load (weights_only) of a file on the CPU; one UserError naming the file for a
    missing one (`missing` says what it is) or a damaged one, each ending with `fix`."""
    from genmodels.errors import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no {missing}; {fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many kinds of error on a damaged file
        # its first line only: torch's unpickler errors run to a page of advice
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path}: corrupt or unreadable ({first}); {fix}") from None


def write_text(path: str | Path, text: str) -> Path:
    return write_with(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
