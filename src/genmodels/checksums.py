"""The sha256 of every exported graph, written by export beside the graphs and checked by
everything that loads them (the service, the file commands): a graph whose bytes differ from
what export checked is never served. Torch-free: the file commands import it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

CHECKSUMS = "checksums.json"  # in each exported/<instance>/: {"<graph>.onnx": "<sha256>"}


def instance_folders(exported_dir: str | Path) -> list[Path]:
    """exported_dir/<instance>/ folders, sorted; hidden ones (an export's staging and previous
    folders) are not instances."""
    root = Path(exported_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_checksums(folder: Path) -> dict[str, str]:
    """folder/checksums.json for every .onnx file in folder; the recorded digests."""
    sums = {p.name: sha256_bytes(p.read_bytes()) for p in sorted(folder.glob("*.onnx"))}
    (folder / CHECKSUMS).write_text(json.dumps(sums, indent=2, sort_keys=True) + "\n")
    return sums


def read_checksums(folder: Path) -> tuple[dict[str, str], str | None]:
    """The digests folder/checksums.json records, and why there are none when it cannot be
    read (None when it was read)."""
    path = folder / CHECKSUMS
    try:
        sums = json.loads(path.read_text())
    except FileNotFoundError:
        return {}, f"{path}: missing, so no graph here can be verified"
    except (OSError, ValueError) as exc:
        return {}, f"{path}: unreadable ({exc})"
    if not isinstance(sums, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in sums.items()
    ):
        return {}, f"{path}: not a mapping of graph file to sha256"
    return sums, None
