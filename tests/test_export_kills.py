"""The export's kill points: an export killed with SIGKILL at each step leaves the previous
graphs served whole (or, between the two renames of the fallback swap, none), never a mix and
never a file MLflow or DVC would pick up; the next export then swaps its graphs in cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genmodels.checksums import read_checksums, sha256_bytes
from genmodels.export import export_and_check
from genmodels.serving.store import ModelStore
from helpers import REPO

pytestmark = pytest.mark.faults

INSTANCE = "ae"
GRAPHS = ["decoder.onnx", "encoder.onnx"]
EXPORT = dict(opset=18, atol=1e-4, real_batch=4)

# The child: exports tiny_graphs' autoencoder (its weights shifted by `shift`, so that the new
# graphs differ from the old) and kills itself with SIGKILL at the kill point named in argv.
CHILD = """
import json, os, signal, sys
from types import SimpleNamespace
sys.path.insert(0, sys.argv[4])
import torch
import genmodels.atomic, genmodels.export as export
from tiny_graphs import tiny_exportables

out_dir, point, shift = sys.argv[1], sys.argv[2], float(sys.argv[3])
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
graphs = tiny_exportables()[sys.argv[5]]
with torch.no_grad():
    for g in graphs:
        for p in g.module.parameters():
            p.add_(shift)

def after(calls, function):
    count = [0]
    def wrapped(*args, **kwargs):
        count[0] += 1
        if count[0] > calls:
            die()
        return function(*args, **kwargs)
    return wrapped

if point == "after_first_graph":
    export.export_onnx = after(1, export.export_onnx)
elif point == "inside_a_graph_write":  # the temporary file is written, not yet renamed
    genmodels.atomic.os = SimpleNamespace(**{**vars(os), "replace": lambda *a: die()})
elif point == "after_checksums":
    real = export.write_checksums
    export.write_checksums = lambda folder: (real(folder), die())
elif point == "at_the_swap":
    export._exchange = lambda a, b: die()
elif point == "after_the_swap":  # the old graphs, now in the staging folder, not yet removed
    real = export._exchange
    export._exchange = lambda a, b: (real(a, b), die())
elif point == "between_two_renames":  # a file system without atomic exchange
    export._exchange = lambda a, b: False
    export.os = SimpleNamespace(**{**vars(os), "rename": after(1, os.rename)})
export.export_and_check(graphs, out_dir, **json.loads(sys.argv[6]))
"""

# kill point -> which graphs are served right after the kill
KILL_POINTS = {
    "after_first_graph": "old",
    "inside_a_graph_write": "old",
    "after_checksums": "old",
    "at_the_swap": "old",
    "after_the_swap": "new",
    "between_two_renames": None,  # the instance is unavailable, never a mix
}


def _shifted(shift: float):
    from tiny_graphs import tiny_exportables

    graphs = tiny_exportables()[INSTANCE]
    with torch.no_grad():
        for graph in graphs:
            for p in graph.module.parameters():
                p.add_(shift)
    return graphs


def _inputs() -> dict[str, tuple[str, np.ndarray]]:
    """graph -> its input's name and fixed values: what tells old graphs from new ones."""
    generator = np.random.default_rng(1)
    return {"encoder": ("image", generator.random((3, 1, 28, 28), dtype=np.float32)),
            "decoder": ("z", generator.standard_normal((3, 8), dtype=np.float32))}  # fmt: skip


def _outputs(graphs) -> dict[str, np.ndarray]:
    """Each graph's output in torch on the fixed inputs."""
    inputs = _inputs()
    with torch.no_grad():
        return {g.name: g.module(torch.from_numpy(inputs[g.name][1])).numpy() for g in graphs}


def _served(exported: Path) -> tuple[str, dict[str, np.ndarray], int]:
    """The instance's status in a fresh store, its graphs' outputs on the same inputs, and how
    many graphs it serves whose bytes do not match the checksums export recorded."""
    store = ModelStore.scan(exported, expected={INSTANCE: "autoencoder"})
    assert list(store.models) == [INSTANCE]  # a killed export's hidden folders are no instance
    model = store.get(INSTANCE)
    inputs = _inputs()
    recorded, _ = read_checksums(exported / INSTANCE)
    outputs, unverified = {}, 0
    for name, graph in model.graphs.items():
        if graph.ok:
            outputs[name] = next(iter(graph.run(dict([inputs[name]])).values()))
            file = Path(graph.source)
            unverified += recorded.get(file.name) != sha256_bytes(file.read_bytes())
    return model.status, outputs, unverified


def _which(outputs: dict[str, np.ndarray], old: dict, new: dict) -> str:
    """ "old", "new", or "mixed" when the graphs come from different exports."""
    sources = set()
    for name, got in outputs.items():
        if np.allclose(got, old[name], atol=1e-4):
            sources.add("old")
        elif np.allclose(got, new[name], atol=1e-4):
            sources.add("new")
        else:
            sources.add("neither")
    return sources.pop() if len(sources) == 1 else "mixed"


def _leftovers(exported: Path) -> list[str]:
    """Files an artifact logger or DVC would pick up: any not hidden by .dvcignore's patterns."""
    seen = []
    for path in exported.rglob("*"):
        parts = path.relative_to(exported).parts
        hidden = any(p.startswith(".") and p.endswith((".staging", ".previous", ".tmp"))
                     for p in parts)  # fmt: skip
        if path.is_file() and not hidden:
            seen.append("/".join(parts))
    return sorted(seen)


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_killed_export_leaves_whole_graphs_and_the_next_one_swaps_in(
    tmp_path, point, record_property
):
    exported = tmp_path / "exported"
    old_graphs, new_graphs = _shifted(0.0), _shifted(0.05)
    old, new = _outputs(old_graphs), _outputs(new_graphs)
    export_and_check(old_graphs, exported / INSTANCE, **EXPORT)
    status, outputs, unverified = _served(exported)
    assert status == "ok" and _which(outputs, old, new) == "old"

    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(exported / INSTANCE), point, "0.05", str(REPO / "tests"),
         INSTANCE, json.dumps(EXPORT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]

    status, outputs, unverified = _served(exported)
    record_property("unverified_graphs_served", unverified)
    assert unverified == 0
    expected = KILL_POINTS[point]
    if expected is None:
        assert status == "unavailable" and outputs == {}
    else:
        assert status == "ok" and _which(outputs, old, new) == expected
        assert sorted(p.name for p in (exported / INSTANCE).iterdir()) == [
            "checksums.json",
            *GRAPHS,
        ]
    served_files = [f"{INSTANCE}/{g}" for g in ["checksums.json", *GRAPHS]]
    assert _leftovers(exported) == ([] if expected is None else served_files)

    # the next export clears what the killed one left and swaps its graphs in whole
    export_and_check(_shifted(0.05), exported / INSTANCE, **EXPORT)
    status, outputs, unverified = _served(exported)
    assert status == "ok" and _which(outputs, old, new) == "new" and unverified == 0
    assert sorted(p.name for p in exported.iterdir()) == [INSTANCE]
    assert sorted(p.name for p in (exported / INSTANCE).iterdir()) == ["checksums.json", *GRAPHS]
