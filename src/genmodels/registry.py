"""The register stage's logic: quality gates and registering exported graphs in MLflow.

A new version of <instance>-<graph> gets the alias (champion) only when the instance's
evaluation metrics pass its family's gate; otherwise it is registered without the alias and
the reasons are recorded on the version and in the stage's record. A failing version never
takes the alias from the current holder. The MLflow calls live in genmodels.tracking.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from genmodels import tracking
from genmodels.checksums import instance_folders
from genmodels.config import Bound

log = logging.getLogger(__name__)


@dataclass
class GateResult:
    passed: bool
    reasons: list[str] = field(default_factory=list)  # why it failed; empty when passed
    checked: dict[str, float] = field(default_factory=dict)  # metric -> value compared


def _lookup(metrics: Mapping[str, Any], path: str) -> Any:
    node: Any = metrics
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def check_gate(
    metrics: Mapping[str, Any] | None,
    gate: Mapping[str, Bound] | None,
    family: str,
    metrics_file: str = "the metrics file",
) -> GateResult:
    """Every bound of the family's gate against the metrics; a missing metric fails it."""
    if metrics is None:
        return GateResult(False, [f"{metrics_file}: missing; run the evaluate stage first"])
    if not gate:
        return GateResult(
            False,
            [
                f"no quality gate for family {family!r}: give one in genmodels/families.py or "
                "params register.gates"
            ],  # fmt: skip
        )
    result = GateResult(True)
    for path, bound in gate.items():
        try:
            value = _lookup(metrics, path)
        except KeyError:
            result.reasons.append(f"{path}: not in {metrics_file}")
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            result.reasons.append(f"{path}: {value!r} in {metrics_file} is not a number")
            continue
        result.checked[path] = float(value)
        if bound.min is not None and value < bound.min:
            result.reasons.append(f"{path} = {value:.4g} is below the minimum {bound.min:g}")
        if bound.max is not None and value > bound.max:
            result.reasons.append(f"{path} = {value:.4g} is above the maximum {bound.max:g}")
    result.passed = not result.reasons
    return result


def example_inputs(path: str | Path, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """A small valid input of an ONNX graph, for MLflow's input example.

    Symbolic axes get `batch` (axis 0), the image channels and the size the graph learned from
    (metadata image_channels, image_height and image_width; an upscaler's input is that size
    over its scale; 28x28 grayscale where not recorded); float 4-D inputs are images in [0, 1],
    other floats N(0, 1), integers labels below the graph's num_classes.
    """
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map

    def number(key: str, default: int) -> int:
        value = meta.get(key, "")
        return int(value) if value.isdigit() and int(value) > 0 else default

    classes = number("num_classes", 10)
    scale = number("scale", 1) if meta.get("task") == "upscale" else 1
    image_axes = (
        number("image_channels", 1),
        max(1, number("image_height", 28) // scale),
        max(1, number("image_width", 28) // scale),
    )
    rng = np.random.default_rng(seed)
    feed = {}
    for node in session.get_inputs():
        shape = [
            d if isinstance(d, int) else (batch if i == 0 else image_axes[min(i, 3) - 1])
            for i, d in enumerate(node.shape)
        ]
        if node.type == "tensor(int64)":
            feed[node.name] = (np.arange(shape[0]) % classes).astype(np.int64)
        elif len(shape) == 4:
            feed[node.name] = rng.random(shape, dtype=np.float32)
        else:
            feed[node.name] = rng.standard_normal(shape, dtype=np.float32)
    return feed


def exported_families(exported_dir: str | Path) -> dict[str, str]:
    """instance -> family of every exported_dir/<instance>/ with a graph naming its family."""
    out = {}
    for folder in instance_folders(exported_dir):
        for path in sorted(folder.glob("*.onnx")):
            try:
                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            except Exception:  # a corrupt file: register_instance reports it
                continue
            family = session.get_modelmeta().custom_metadata_map.get("family")
            if family:
                out[folder.name] = family
                break
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def register_instance(
    instance: str,
    family: str,
    exported_dir: str | Path,
    metrics_path: str | Path,
    gate: Mapping[str, Bound] | None,
    alias: str,
    experiment: str,
) -> list[dict[str, Any]]:
    """Registers every graph of exported_dir/<instance>/ and records what happened to each.

    A graph whose file is already the newest registered version with the same sha256 is not
    registered again (re-running the stage is idempotent); its alias is still re-checked.
    """
    folder = Path(exported_dir) / instance
    graphs = sorted(folder.glob("*.onnx")) if folder.is_dir() else []
    if not graphs:
        reason = f"{folder}: no ONNX graphs; run `dvc repro export@{instance}`"
        return [{"instance": instance, "family": family, "status": "missing", "reason": reason}]
    metrics_path = Path(metrics_path)
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    gate_result = check_gate(metrics, gate, family, str(metrics_path))
    run = tracking.stage_of(instance, "train")
    run_id = run.info.run_id if run is not None else None
    evaluation = tracking.stage_of(instance, "evaluate")
    records = []
    for path in graphs:
        name = f"{instance}-{path.stem}"
        digest = sha256(path)
        version = tracking.find_version(name, "onnx_sha256", digest)
        status = "unchanged"
        if version is None:
            try:
                example = example_inputs(path)
            except Exception as exc:  # onnxruntime has several error types for a bad file
                reason = f"{path}: not a loadable ONNX graph ({str(exc).splitlines()[0][:200]})"
                log.warning("%s: not registered: %s", name, reason)
                records.append({"name": name, "instance": instance, "family": family,
                                "graph": path.stem, "status": "unreadable", "alias": None,
                                "reasons": [reason]})  # fmt: skip
                continue
            status = "registered"
            tags = {
                "instance": instance,
                "family": family,
                "graph": path.stem,
                "onnx_sha256": digest,
                "training_run_id": run_id or "unknown",
            }
            doc = f"{path.stem} of {instance} ({family}), exported to {path}."
            version = tracking.log_onnx_version(
                path, name, example, run_id, experiment, tags, doc, gate_result.checked,
                evaluation.info.run_id if evaluation is not None else None,
            )  # fmt: skip
        # the judged values also as tags: the registry's version page lists tags, not metrics
        gate_tags = {
            "gate": "passed" if gate_result.passed else "failed",
            "gate_reasons": "; ".join(gate_result.reasons)[:4000] or "-",
        } | {f"eval.{key}": f"{value:.6g}" for key, value in gate_result.checked.items()}
        tracking.tag_version(name, version.version, gate_tags)
        holder = tracking.alias_version(name, alias)
        given = None
        if gate_result.passed:
            if holder is None or holder.version != version.version:
                tracking.set_alias(name, alias, version.version)
            given = alias
        elif holder is not None and holder.version == version.version:
            # it earned the alias under an earlier gate: a failing version never *takes* it,
            # but one that holds it keeps it until a passing version replaces it
            given = alias
        records.append(
            {
                "name": name,
                "instance": instance,
                "family": family,
                "graph": path.stem,
                "version": str(version.version),
                "status": status,
                "alias": given,
                "gate": gate_tags["gate"],
                "reasons": gate_result.reasons,
                "metrics": gate_result.checked,
                "run_id": version.run_id,
                "onnx_sha256": digest,
            }
        )
        log.info(
            "%s: version %s %s, %s",
            name,
            version.version,
            status,
            f"alias {alias}" if given else "no alias: " + "; ".join(gate_result.reasons),
        )
    return records
