"""Two processes (gloo, started by genmodels.training.launch as `make train-ddp` does) train like
one process with the same global batch, and listen on loopback only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from genmodels.config import GANParams, TrainParams
from genmodels.models import build_recipe, data_info
from genmodels.training import Budget, Trainer, TrainOutputs
from genmodels.training.runtime import seed_everything
from helpers import REPO, stage_env, workspace
from server_helpers import free_port

STEPS = 30
# An MLP autoencoder: no BatchNorm, whose statistics would differ per process by design.
PARAMS = {
    "train": {"seed": 5, "log_every": 5, "checkpoint_every": 10, "progress": "log",
              "num_threads": 1},
    "models": {"ae": {"family": "autoencoder", "arch": "mlp", "hidden_dims": [64],
                      "latent_dim": 8, "steps": STEPS, "batch_size": 64, "lr": 0.003}},
}  # fmt: skip
# Gradients are the same mean over the same 64 images, summed in another order: float32
# rounding, amplified a little by Adam over 30 steps.
WEIGHT_ATOL = 1e-4
LOSS_RTOL = 1e-4


def launch(ws, nproc: int, instance: str | None = None,
           script: Path = REPO / "pipeline" / "train.py") -> subprocess.CompletedProcess:  # fmt: skip
    command = [sys.executable, "-m", "genmodels.training.launch", f"--nproc={nproc}", str(script)]
    if instance is not None:
        command += ["--instance", instance]
    return subprocess.run(command, cwd=ws, env=stage_env(ws), capture_output=True, text=True,
                          timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def runs(digits_dir, tmp_path_factory):
    single = workspace(tmp_path_factory.mktemp("single"), PARAMS, digits_dir)
    double = workspace(tmp_path_factory.mktemp("ddp"), PARAMS, digits_dir)
    one = launch(single, 1, "ae")
    two = launch(double, 2, "ae")
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    return single, double, two


def test_two_processes_match_one_with_the_same_global_batch(runs):
    single, double, _ = runs
    a = torch.load(single / "models/ae/model.pt", weights_only=True)
    b = torch.load(double / "models/ae/model.pt", weights_only=True)
    for net in a:
        for key, value in a[net].items():
            assert torch.allclose(value, b[net][key], atol=WEIGHT_ATOL), f"{net}.{key}"
    fa = json.loads((single / "metrics/train/ae.json").read_text())
    fb = json.loads((double / "metrics/train/ae.json").read_text())
    assert fb["loss"] == pytest.approx(fa["loss"], rel=LOSS_RTOL)
    assert (fa["processes"], fb["processes"]) == (1, 2)
    assert fa["steps"] == fb["steps"] == STEPS and fb["batch_size"] == 64


def test_rank_zero_alone_writes(runs):
    _, double, result = runs
    client = MlflowClient(f"sqlite:///{double / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("genmodels-digits")
    (run,) = client.search_runs([experiment.experiment_id])  # one run, not one per process
    assert run.data.tags["processes"] == "2"
    assert len(client.get_metric_history(run.info.run_id, "loss")) == STEPS // 5
    rows = (double / "plots/train/ae.csv").read_text().splitlines()
    assert len(rows) == 1 + STEPS // 5
    files = sorted(p.relative_to(double).as_posix() for p in (double / "models").rglob("*"))
    assert files == ["models/ae", "models/ae/model.pt"]
    assert not (double / "checkpoints/ae/last.pt").exists()
    assert result.stderr.count("train@ae step 30/30") == 1  # one voice in the logs


def test_two_torchrun_nodes_match_one_process(runs, digits_dir, tmp_path):
    """Two single-process "nodes" joined by torchrun's c10d rendezvous on 127.0.0.1, each in its
    own folder as on its own machine: the same weights as one process with the same global
    batch, written by rank 0's node alone (c10d, not --node_rank, decides which node that is)."""
    single, _, _ = runs
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = [workspace(tmp_path / f"node{rank}", PARAMS, digits_dir) for rank in (0, 1)]
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
             "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}", "--rdzv_id=genmodels-test",
             "--local_addr=127.0.0.1", str(REPO / "pipeline" / "train.py"), "--instance", "ae"],
            cwd=node, env=stage_env(node), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        for node in nodes
    ]  # fmt: skip
    outputs = [process.communicate(timeout=300) for process in started]
    for process, (_, err) in zip(started, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    written = [node for node in nodes if (node / "models/ae/model.pt").exists()]
    assert len(written) == 1
    a = torch.load(single / "models/ae/model.pt", weights_only=True)
    b = torch.load(written[0] / "models/ae/model.pt", weights_only=True)
    for net in a:
        for key, value in a[net].items():
            assert torch.allclose(value, b[net][key], atol=WEIGHT_ATOL), f"{net}.{key}"
    trained = json.loads((written[0] / "metrics/train/ae.json").read_text())
    assert trained["processes"] == 2 and trained["batch_size"] == 64


def test_a_batch_that_does_not_split_is_a_clear_error(digits_dir, tmp_path):
    params = json.loads(json.dumps(PARAMS))
    params["models"]["ae"]["batch_size"] = 63
    ws = workspace(tmp_path, params, digits_dir)
    result = launch(ws, 2, "ae")
    assert result.returncode != 0
    assert "batch_size 63 does not split over 2 processes" in result.stderr


def test_a_gan_plays_on_two_processes(digits_dir, tmp_path):
    # two networks, alternating updates, a gradient penalty through DDP, the EMA on rank 0
    params = {
        "train": {"seed": 1, "log_every": 2, "checkpoint_every": 4, "progress": "log",
                  "num_threads": 1},
        "models": {"g": {"family": "gan", "g_channels": [16, 8], "d_channels": [8, 16],
                         "latent_dim": 8, "loss": "wgan_gp", "n_critic": 2, "steps": 8,
                         "batch_size": 32, "ema_decay": 0.9}},
    }  # fmt: skip
    ws = workspace(tmp_path, params, digits_dir)
    result = launch(ws, 2, "g")
    assert result.returncode == 0, result.stderr[-3000:]
    final = json.loads((ws / "metrics/train/g.json").read_text())
    assert final["processes"] == 2 and final["steps"] == 8 and "g_loss" in final
    saved = torch.load(ws / "models/g/model.pt", weights_only=True)
    assert {"generator", "discriminator", "ema"} <= set(saved)
    assert not any(k.startswith("module.") for k in saved["generator"])  # unwrapped weights


# -- each process its own noise -------------------------------------------------------------------
# Run by the launcher in a workspace: the real recipes and Trainer on 2 processes, built as
# pipeline/train.py builds them (seeded, then the process group, then the recipe). Rank 0 saves
# what every rank saw, gathered: a GAN's first latents and its weights once DDP wrapped it; the
# CycleGAN's first history-pool draws; and, for a CycleGAN run interrupted after a checkpoint and
# resumed, each rank's pools and weights beside those of the same run uninterrupted.
PROBE = """
from pathlib import Path

import torch

from genmodels.config import load_params
from genmodels.data.prepared import load_prepared
from genmodels.models import build_recipe, data_info
from genmodels.training import Budget, Trainer, TrainOutputs, distributed
from genmodels.training.runtime import seed_everything, set_threads

from helpers import Interrupted, interrupt_at  # tests/ is put on sys.path first


params = load_params("params.yaml")
set_threads(params.train.num_threads)
world = distributed.world_from_env()
device = distributed.start(world, torch.device("cpu"))
data = load_prepared("data/prepared")
found = {}


def trainer(instance, root, steps, fail_at=None):
    seed_everything(params.train.seed)
    model = params.model(instance)
    recipe = build_recipe(model, data_info(data), device)
    recipe.attach_data("data/prepared")
    interrupt_at(recipe, fail_at)
    built = Trainer(recipe, data.train_images[:96], data.train_labels[:96],
                    budget=Budget(steps=steps), batch_size=model.batch_size,
                    settings=params.train, fingerprint=instance, world=world,
                    outputs=TrainOutputs.for_instance(instance, "checkpoints", root=Path(root)))
    return recipe, built


def gathered(obj):
    return distributed.gather_objects(obj, world)


def pool_draws(pool):
    copy = torch.Generator()
    copy.set_state(pool.generator.get_state())
    return torch.rand(16, generator=copy)


def pools(recipe):
    return {name: getattr(recipe, name).state_dict() for name in ("pool_a", "pool_b")}


# the GAN: one training step's latents, and the weights every rank starts from
gan, run = trainer("g", "gan", steps=1)
latents = []
latent = gan.latent
gan.latent = lambda n: latents.append(latent(n)) or latents[-1]
found["weights"] = gathered(gan.state_dict()["generator"])
run.fit()
found["latents"] = gathered(latents[0])

# the CycleGAN: the pools' draws, straight and resumed after an interruption
cycle, run = trainer("c", "straight", steps=8)
found["pool_draws"] = gathered({k: pool_draws(getattr(cycle, k)) for k in ("pool_a", "pool_b")})
run.fit()
found["straight"] = gathered({"pools": pools(cycle), "weights": cycle.state_dict()})
try:
    trainer("c", "resumed", steps=8, fail_at=5)[1].fit()  # after the checkpoint at step 4
except Interrupted:
    pass
cycle, run = trainer("c", "resumed", steps=8)
run.fit()
found["resumed"] = gathered({"pools": pools(cycle), "weights": cycle.state_dict()})
if world.is_main:
    torch.save(found, "probe.pt")
distributed.stop(world)
"""
PROBE_PARAMS = {
    "train": {"seed": 7, "log_every": 2, "checkpoint_every": 4, "progress": "log",
              "num_threads": 1},
    "models": {
        "g": {"family": "gan", "g_channels": [16, 8], "d_channels": [8, 16], "latent_dim": 8,
              "steps": 1, "batch_size": 32},
        # 4 images per process per step: the pools of 4 are full after the first step, and
        # every later image is a coin flip of the pool's generator
        "c": {"family": "cyclegan", "g_channels": 4, "g_blocks": 1, "d_channels": 4,
              "d_layers": 1, "batch_size": 8, "steps": 8, "pool_size": 4},
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def probed(digits_dir, tmp_path_factory):
    ws = workspace(tmp_path_factory.mktemp("probe"), PROBE_PARAMS, digits_dir)
    tests = str(REPO / "tests")
    (ws / "probe.py").write_text(f"import sys\n\nsys.path.insert(0, {tests!r})\n" + PROBE)
    result = launch(ws, 2, script=ws / "probe.py")
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(ws / "probe.pt", weights_only=True)


def test_each_process_draws_its_own_latents_from_the_same_weights(probed):
    z0, z1 = probed["latents"]
    assert z0.shape == z1.shape == (16, 8)  # each process's half of the global batch of 32
    assert not torch.equal(z0, z1), "both processes drew the same latents"
    w0, w1 = probed["weights"]  # one weight init for all: DDP broadcast rank 0's
    assert all(torch.equal(w0[k], w1[k]) for k in w0)


def test_each_process_draws_its_own_history_pool_choices(probed):
    d0, d1 = probed["pool_draws"]
    for pool in ("pool_a", "pool_b"):
        assert not torch.equal(d0[pool], d1[pool]), f"both processes share the {pool} draws"
    assert not torch.equal(d0["pool_a"], d0["pool_b"])


def test_a_resumed_run_gives_each_process_back_its_own_pools(probed):
    for rank, (straight, resumed) in enumerate(zip(probed["straight"], probed["resumed"],
                                                   strict=True)):  # fmt: skip
        for pool in ("pool_a", "pool_b"):
            for key in ("images", "generator"):
                assert torch.equal(straight["pools"][pool][key], resumed["pools"][pool][key]), (
                    f"rank {rank} {pool}.{key}"
                )
        for net in ("g_ab", "g_ba", "d_a", "d_b"):
            for key, value in straight["weights"][net].items():
                assert torch.equal(value, resumed["weights"][net][key]), f"rank {rank} {net}.{key}"
    # the processes' pools hold their own fakes (their own shards of each batch)
    assert not torch.equal(probed["straight"][0]["pools"]["pool_a"]["images"],
                           probed["straight"][1]["pools"]["pool_a"]["images"])  # fmt: skip


def test_one_process_keeps_its_noise_and_weights(digits_prepared, tmp_path, monkeypatch):
    # the Trainer leaves the RNG of a one-process run as it is: the first step's latents are
    # the draws that follow building the recipe under torch.manual_seed(seed), as before
    seed_everything(3)
    params = GANParams(family="gan", g_channels=[16, 8], d_channels=[8, 16], latent_dim=8,
                       steps=1, batch_size=32)  # fmt: skip
    recipe = build_recipe(params, data_info(digits_prepared), torch.device("cpu"))
    weights = {k: v.clone() for k, v in recipe.state_dict()["generator"].items()}
    after_build = torch.get_rng_state()
    trainer = Trainer(
        recipe, digits_prepared.train_images, digits_prepared.train_labels,
        budget=Budget(steps=1), batch_size=32, settings=TrainParams(seed=3, progress="log"),
        outputs=TrainOutputs.for_instance("g", "checkpoints", root=tmp_path), fingerprint="g",
    )  # fmt: skip
    assert torch.equal(torch.get_rng_state(), after_build)
    assert all(torch.equal(weights[k], v) for k, v in recipe.state_dict()["generator"].items())
    latents = []
    latent = recipe.latent
    monkeypatch.setattr(recipe, "latent", lambda n: latents.append(latent(n)) or latents[-1])
    trainer.fit()
    torch.set_rng_state(after_build)
    assert torch.equal(latents[0], torch.randn(32, 8))

    # torch.compile on one process reseeds to seed * 1009, as it always did
    monkeypatch.setattr(torch, "compile", lambda module: module)
    Trainer(
        recipe, digits_prepared.train_images, digits_prepared.train_labels,
        budget=Budget(steps=1), batch_size=32, settings=TrainParams(seed=3, compile=True),
        outputs=TrainOutputs.for_instance("g", "checkpoints", root=tmp_path), fingerprint="g",
    )  # fmt: skip
    z = torch.randn(4, 8)
    torch.manual_seed(3 * 1009)
    assert torch.equal(z, torch.randn(4, 8))


# -- listening on loopback only -------------------------------------------------------------------
LISTENERS = """
import json, os, sys
from pathlib import Path

sys.path.insert(0, {tests!r})
from server_helpers import listening

from genmodels.training import distributed

world = distributed.world_from_env()
distributed.start(world, distributed.torch.device("cpu"))
if world.is_main:  # while every process is in the group: the launcher and both ranks
    launcher = os.getppid()
    pids = [launcher, *map(int, Path(f"/proc/{{launcher}}/task/{{launcher}}/children").read_text().split())]
    found = sorted([pid, host, port] for pid in pids for host, port in listening(pid))
    Path("listening.json").write_text(json.dumps({{"pids": pids, "listening": found}}))
distributed.stop(world)
"""


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net")
def test_one_machine_listens_on_loopback_only(digits_dir, tmp_path):
    ws = workspace(tmp_path, PARAMS, digits_dir)
    (ws / "listeners.py").write_text(LISTENERS.format(tests=str(REPO / "tests")))
    result = launch(ws, 2, script=ws / "listeners.py")
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads((ws / "listening.json").read_text())
    assert len(found["pids"]) == 3  # the launcher and its two processes
    assert found["listening"], "gloo's sockets were not seen"
    for pid, host, port in found["listening"]:
        assert host in ("127.0.0.1", "::1"), f"pid {pid} listens on {host}:{port}"


def test_a_failing_process_stops_the_others(digits_dir, tmp_path):
    ws = workspace(tmp_path, PARAMS, digits_dir)
    (ws / "fails.py").write_text(
        "import os, sys, time\nif os.environ['RANK'] == '1':\n    sys.exit(3)\ntime.sleep(120)\n"
    )
    result = launch(ws, 2, script=ws / "fails.py")
    assert result.returncode == 3  # rank 1's status, rank 0 stopped well before its 120 s
