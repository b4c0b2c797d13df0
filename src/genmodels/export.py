"""torch -> ONNX export of a recipe's exportables and the onnxruntime parity check.

The dynamo exporter (torch.export + onnxscript) is used: on torch 2.14 it handles every layer
the families use (Linear, Conv2d, ConvTranspose2d, PixelShuffle, Embedding, norms) with
symbolic batch and spatial axes, and it is the exporter torch maintains.
"""

from __future__ import annotations

import copy
import ctypes
import logging
import os
import shutil
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from errno import EINVAL, ENOSYS, EOPNOTSUPP, EPERM
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn

from genmodels.atomic import atomic_path
from genmodels.checksums import write_checksums
from genmodels.nn.blocks import DecomposedPReLU
from genmodels.training.recipe import Exportable

log = logging.getLogger(__name__)


class ParityError(RuntimeError):
    """An exported graph's outputs differ from its torch module's by more than the tolerance."""

    def __init__(self, message: str, report: dict[str, dict[str, Any]] | None = None):
        super().__init__(message)
        self.report = report  # the full export report, every graph included


def _dynamic_shapes(exportable: Exportable) -> tuple[dict[int, torch.export.Dim] | None, ...]:
    # One Dim per axis name, so inputs sharing a name ("batch") are constrained to be equal.
    dims: dict[str, torch.export.Dim] = {}
    shapes = []
    for name in exportable.input_names:
        axes = exportable.dynamic_axes.get(name)
        if axes:
            shapes.append({i: dims.setdefault(d, torch.export.Dim(d)) for i, d in axes.items()})
        else:
            shapes.append(None)
    # Positional, so the module's argument names need not match the graph's input names.
    return tuple(shapes)


def onnx_friendly(module: nn.Module) -> nn.Module:
    """The module with every nn.PReLU rewritten (a copy; the module itself is unchanged): a
    shared slope as LeakyReLU with that slope, which onnxruntime fuses into a convolution
    before it; per-channel slopes decomposed (DecomposedPReLU). Both give the same numbers."""
    if not any(isinstance(m, nn.PReLU) for m in module.modules()):
        return module
    module = copy.deepcopy(module)
    for name, child in list(module.named_modules()):
        if isinstance(child, nn.PReLU):
            parent, _, attr = name.rpartition(".")
            rewritten = (
                nn.LeakyReLU(child.weight.item())
                if child.num_parameters == 1
                else DecomposedPReLU(child)
            )
            setattr(module.get_submodule(parent) if parent else module, attr, rewritten)
    return module


def export_onnx(exportable: Exportable, path: str | Path, opset: int = 18) -> Path:
    """Exports exportable.module to one self-contained .onnx file, written atomically.

    The module is moved to CPU and eval mode. Axes named in dynamic_axes become symbolic; the
    same name on several inputs is one dimension. metadata_props holds exportable.metadata
    plus doc, input_names, output_names and producer.
    """
    if opset < 17:
        raise ValueError(f"ONNX opset {opset} is too old for the exporter; use 17 or newer")
    unknown = set(exportable.dynamic_axes) - set(exportable.input_names)
    if unknown:
        raise ValueError(f"{exportable.name}: dynamic_axes name unknown inputs {sorted(unknown)}")
    path = Path(path)
    module = onnx_friendly(exportable.module.cpu().eval())
    inputs = tuple(t.cpu() for t in exportable.example_inputs)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # torch warns about an axis name shared by several inputs even when the names agree.
        warnings.filterwarnings(
            "ignore", r"# The axis name: (\S+) will not be used, .* another axis: \1\.$"
        )
        program = torch.onnx.export(
            module,
            inputs,
            dynamo=True,
            dynamic_shapes=_dynamic_shapes(exportable),
            opset_version=opset,
            input_names=list(exportable.input_names),
            output_names=list(exportable.output_names),
            external_data=False,
            verbose=False,
        )
    model = program.model_proto
    log.info("exported %s in %.2fs", exportable.name, time.perf_counter() - start)

    got = ([i.name for i in model.graph.input], [o.name for o in model.graph.output])
    want = (list(exportable.input_names), list(exportable.output_names))
    if got != want:
        raise RuntimeError(f"{exportable.name}: graph inputs/outputs are {got}, expected {want}")

    props = {
        **exportable.metadata,
        "doc": exportable.doc,
        "input_names": ",".join(exportable.input_names),
        "output_names": ",".join(exportable.output_names),
        "producer": "genmodels",
    }
    for key, value in props.items():
        model.metadata_props.add(key=key, value=str(value))
    model.doc_string = exportable.doc
    onnx.checker.check_model(model)
    with atomic_path(path) as tmp:
        onnx.save_model(model, tmp, format="protobuf", save_as_external_data=False)
    return path


def session_for(path: str | Path, intra_op_threads: int = 0) -> ort.InferenceSession:
    """A CPU onnxruntime session; 0 threads lets onnxruntime choose."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _flatten(outputs: Any) -> list[Tensor]:
    if isinstance(outputs, Tensor):
        return [outputs]
    if isinstance(outputs, dict):
        outputs = outputs.values()
    return [t for out in outputs for t in _flatten(out)]


def _max_abs_diff(expected: np.ndarray, actual: np.ndarray) -> float:
    # A shape mismatch or a NaN on one side only is a parity failure, not a number to average.
    if expected.shape != actual.shape:
        return float("inf")
    if expected.size == 0:
        return 0.0
    diff = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
    both_nan = np.isnan(expected) & np.isnan(actual)
    diff[both_nan] = 0.0
    diff[np.isnan(diff)] = np.inf
    return float(diff.max())


def check_parity(
    exportable: Exportable,
    path: str | Path,
    inputs: Iterable[Sequence[Tensor]],
) -> float:
    """Max absolute difference between torch (CPU, eval) and onnxruntime over all outputs.

    Moves exportable.module to CPU and eval mode. A missing output, a shape mismatch or a NaN
    on one side only counts as an infinite difference.
    """
    session = session_for(path)
    module = exportable.module.cpu().eval()
    worst = 0.0
    for batch in inputs:
        batch = tuple(t.cpu() for t in batch)
        with torch.no_grad():
            expected = [t.numpy() for t in _flatten(module(*batch))]
        feed = dict(zip(exportable.input_names, (t.numpy() for t in batch), strict=True))
        actual = session.run(list(exportable.output_names), feed)
        if len(actual) != len(expected):
            return float("inf")
        for e, a in zip(expected, actual, strict=True):
            worst = max(worst, _max_abs_diff(e, a))
    return worst


def random_inputs_like(
    exportable: Exportable, batch_sizes: Sequence[int] = (1, 7), seed: int = 0
) -> list[tuple[Tensor, ...]]:
    """Random inputs shaped like the example inputs, one tuple per batch size.

    Axis 0 is resized on inputs whose axis 0 is dynamic. Float inputs are uniform in [0, 1)
    when 4-D (images) and standard normal otherwise; integer inputs (labels) are uniform in
    [0, max(example) + 1).
    """
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in batch_sizes:
        batch = []
        for name, example in zip(exportable.input_names, exportable.example_inputs, strict=True):
            shape = list(example.shape)
            if 0 in exportable.dynamic_axes.get(name, {}):
                shape[0] = n
            if example.is_floating_point():
                draw = torch.rand if example.dim() == 4 else torch.randn
                batch.append(draw(shape, generator=gen, dtype=example.dtype))
            else:
                high = int(example.max().item()) + 1 if example.numel() else 1
                batch.append(torch.randint(0, high, shape, generator=gen, dtype=example.dtype))
        out.append(tuple(batch))
    return out


def _chunks(inputs: tuple[Tensor, ...], size: int) -> list[tuple[Tensor, ...]]:
    n = inputs[0].shape[0]
    return [tuple(t[i : i + size] for t in inputs) for i in range(0, n, size)]


def export_and_check(
    exportables: Sequence[Exportable],
    out_dir: str | Path,
    opset: int,
    atol: float,
    real_batch: int,
) -> dict[str, dict[str, Any]]:
    """Exports each graph to out_dir/<name>.onnx and checks its parity with torch.

    Parity is checked on random inputs at batch sizes 1 and 7, on real_inputs, when given,
    in chunks of real_batch, and on parity_inputs (other input sizes), whose shapes the report
    lists. Every graph is exported and checked before a ParityError is raised,
    so the returned report is complete; the caller writes it, then fails.
    """
    out_dir = Path(out_dir)
    _recover(out_dir)
    staging = _hidden(out_dir, "staging")
    shutil.rmtree(staging, ignore_errors=True)  # what a killed run left
    staging.mkdir(parents=True)
    try:
        report = _export_each(exportables, staging, out_dir, opset, real_batch)
        failed = {
            name: r["max_abs_diff"] for name, r in report.items() if not r["max_abs_diff"] <= atol
        }
        if failed:
            details = ", ".join(f"{name} differs by {diff:.3g}" for name, diff in failed.items())
            raise ParityError(
                f"ONNX graphs do not match their torch modules: {details} (tolerance {atol:g}); "
                f"see the export report for every graph; {out_dir} keeps its previous graphs",
                report,
            )
        write_checksums(staging)
        _swap_in(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _export_each(exportables: Sequence[Exportable], staging: Path, out_dir: Path, opset: int,
                 real_batch: int) -> dict[str, dict[str, Any]]:  # fmt: skip
    report: dict[str, dict[str, Any]] = {}
    for exportable in exportables:
        path = export_onnx(exportable, staging / f"{exportable.name}.onnx", opset)
        inputs = random_inputs_like(exportable)
        if exportable.real_inputs is not None:
            inputs += _chunks(exportable.real_inputs, real_batch)
        inputs += [tuple(batch) for batch in exportable.parity_inputs]
        diff = check_parity(exportable, path, inputs)
        log.info("%s: max |torch - onnxruntime| = %.3g", exportable.name, diff)
        report[exportable.name] = {
            "max_abs_diff": diff,
            "path": str(out_dir / path.name),  # where it is served from once swapped in
            "opset": opset,
            "inputs": list(exportable.input_names),
            "outputs": list(exportable.output_names),
        }
        if exportable.parity_inputs:  # the input shapes checked, when graphs vary in size
            shapes = {tuple(batch[0].shape): None for batch in inputs}
            report[exportable.name]["checked_shapes"] = [list(shape) for shape in shapes]
    return report


def _hidden(folder: Path, role: str) -> Path:
    """A hidden sibling of folder (.dvcignore and MLflow's artifact logging never see it)."""
    return folder.parent / f".{folder.name}.{role}"


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two folders in one atomic step (Linux's renameat2 with RENAME_EXCHANGE); False
    where the kernel, libc or file system cannot."""
    if sys.platform != "linux":
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # a libc without it (glibc < 2.28, musl < 1.2.5)
        return False
    at_cwd, rename_exchange = -100, 2
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), rename_exchange) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (ENOSYS, EINVAL, EPERM, EOPNOTSUPP):  # not supported here
        return False
    raise OSError(errno, os.strerror(errno), str(b))


def _swap_in(staging: Path, out_dir: Path) -> None:
    """The checked graphs replace an instance's graphs as a whole, by one rename: the first
    export renames staging into place; later ones exchange the two folders atomically, so a
    kill at any point leaves the old graphs or the new ones. Where exchange is not supported,
    the old folder is renamed aside first: a kill between the two renames leaves no folder
    (nothing served for the instance, never a mix) and the next export restores the old one."""
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    if _exchange(staging, out_dir):
        shutil.rmtree(staging, ignore_errors=True)  # now the old graphs
        return
    previous = _hidden(out_dir, "previous")
    shutil.rmtree(previous, ignore_errors=True)
    os.rename(out_dir, previous)
    os.rename(staging, out_dir)
    shutil.rmtree(previous, ignore_errors=True)


def _recover(out_dir: Path) -> None:
    """An export killed between the two renames of _swap_in: put the previous graphs back."""
    previous = _hidden(out_dir, "previous")
    if previous.is_dir() and not out_dir.exists():
        os.rename(previous, out_dir)
        log.warning("%s: restored from %s (an export was interrupted)", out_dir, previous)
