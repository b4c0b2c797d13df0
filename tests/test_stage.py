"""The stage frame's allocator setting: freed activations stay in the heap between steps."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# A conv step whose activations (64x32x14x14 floats, 1.6 MB) are over glibc's 128 KiB mmap
# threshold; prints the minor page faults per step and the step's loss (the numbers must not
# depend on the allocator).
STEP_SCRIPT = """
import json, resource, sys
import torch
from genmodels.stage import keep_freed_memory
took = keep_freed_memory() if sys.argv[1] == "keep" else None
torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Conv2d(1, 32, 4, 2, 1), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(32, 64, 4, 2, 1),
    torch.nn.Flatten(), torch.nn.Linear(64 * 49, 1),
)
x = torch.rand(64, 1, 28, 28)
losses = []
def step():
    net.zero_grad()
    loss = net(x).square().mean()
    loss.backward()
    losses.append(loss.item())
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
grad = [p.grad.sum().item() for p in net.parameters()]
print(json.dumps({"took": took, "faults": faults, "losses": losses, "grad": grad}))
"""


def run_step(mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", STEP_SCRIPT, mode],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a glibc setting (Linux)")
def test_kept_memory_stops_the_page_faults_and_changes_no_number():
    default, kept = run_step("default"), run_step("keep")
    assert kept["took"] is True
    # glibc's default hands the activations back and faults them in again on every step
    assert default["faults"] > 500, default["faults"]
    assert kept["faults"] < default["faults"] / 5, (kept["faults"], default["faults"])
    assert kept["losses"] == default["losses"]
    assert kept["grad"] == default["grad"]


# A stage whose main records what the collector sees; an exit handler registered before the
# stage frame (so it runs after the frame's own) reports the state at exit.
FROZEN_SCRIPT = """
import atexit, gc, json, sys
seen = {}
atexit.register(lambda: print(json.dumps(seen | {"exit": gc.get_freeze_count()}), flush=True))
from genmodels.stage import run_stage

def main(args):
    seen["start"] = gc.get_freeze_count()
    cycle = []
    cycle.append(cycle)  # made in main: not frozen, the collector still frees it
    del cycle
    seen["collected"] = gc.collect()
    with open(sys.argv[-1], "w") as f:
        f.write("written")

sys.argv = ["stage", sys.argv[-1]]
run_stage(main, "a stage", lambda parser: parser.add_argument("out"))
"""


def test_a_stage_keeps_the_collector_off_long_lived_objects_and_loses_no_output(tmp_path):
    out = tmp_path / "out.txt"
    run = subprocess.run(
        [sys.executable, "-c", FROZEN_SCRIPT, str(out)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["start"] > 10_000  # the imports' objects, frozen before main ran
    assert seen["collected"] >= 1  # main's own garbage is still collected
    assert seen["exit"] >= seen["start"]  # frozen again at exit, after main's objects joined
    assert out.read_text() == "written"
