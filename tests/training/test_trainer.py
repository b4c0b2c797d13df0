"""The Trainer on real recipes: a two-player game, determinism, and resume after a kill."""

from __future__ import annotations

import functools
import json
import math
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genmodels.config import AutoencoderParams, TrainParams
from genmodels.models import build_recipe, data_info
from genmodels.training import Budget, DataInfo, Recipe, Trainer, TrainOutputs
from genmodels.training.runtime import adam, seed_everything
from helpers import REPO, run_script, stage_env, workspace


class MeanMatchingGame(Recipe):
    """A tiny GAN: D tells real 4x4 images from G's; G must learn their brightness."""

    family = "test_game"

    def __init__(self, data: DataInfo):
        super().__init__(None, data, torch.device("cpu"))
        self.generator = nn.Sequential(nn.Linear(4, 16), nn.Sigmoid(), nn.Unflatten(1, (1, 4, 4)))
        self.discriminator = nn.Sequential(
            nn.Flatten(), nn.Linear(16, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1)
        )
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=5e-3, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=5e-3, betas=(0.5, 0.999))

    def modules(self):
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self):
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def training_step(self, batch, step):
        real = batch.images
        fake = self.generator(torch.randn(len(real), 4))
        real_logits, fake_logits = self.discriminator(real), self.discriminator(fake.detach())
        d_loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        d_loss = d_loss + F.binary_cross_entropy_with_logits(
            fake_logits, torch.zeros_like(fake_logits)
        )
        self.opt_d.zero_grad()
        d_loss.backward()
        self.opt_d.step()
        logits = self.discriminator(fake)
        g_loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}

    def evaluate(self, ctx):
        raise NotImplementedError

    def exportables(self, real_images=None):
        return []


def outputs_in(tmp_path, name="m") -> TrainOutputs:
    return TrainOutputs.for_instance(name, "checkpoints", root=tmp_path)


def test_two_player_recipe_alternates_and_learns(tmp_path):
    seed_everything(0)
    real = (200 + torch.randint(-20, 20, (512, 1, 4, 4))).to(torch.uint8)  # mean ~0.78
    game = MeanMatchingGame(DataInfo("toy", (1, 4, 4), 10))
    with torch.no_grad():
        before = game.generator(torch.randn(256, 4)).mean().item()
    trainer = Trainer(
        game, real, torch.zeros(512, dtype=torch.long), budget=Budget(epochs=40), batch_size=64,
        settings=TrainParams(log_every=20, progress="log"), outputs=outputs_in(tmp_path), fingerprint="x",
    )  # fmt: skip
    final = trainer.fit()
    with torch.no_grad():
        after = game.generator(torch.randn(256, 4)).mean().item()
    target = real.float().mean().item() / 255
    assert abs(before - target) > 0.2
    assert abs(after - target) < 0.05
    # both players took every step
    assert (
        game.opt_d.state_dict()["state"][0]["step"]
        == game.opt_g.state_dict()["state"][0]["step"]
        == 320
    )
    assert {"d_loss", "g_loss", "steps"} <= set(final)
    header = outputs_in(tmp_path).plots.read_text().splitlines()[0].split(",")
    assert header == ["step", "epoch", "d_loss", "g_loss"]
    saved = torch.load(outputs_in(tmp_path).weights, weights_only=True)
    assert set(saved) == {"generator", "discriminator"}


def train_ae(prepared, tmp_path, steps=40) -> tuple[dict, dict]:
    seed_everything(0)
    params = AutoencoderParams(
        family="autoencoder",
        arch="conv",
        channels=[8, 16],
        latent_dim=4,
        steps=steps,
        batch_size=32,
    )
    recipe = build_recipe(params, data_info(prepared), torch.device("cpu"))
    trainer = Trainer(
        recipe, prepared.train_images, prepared.train_labels, budget=Budget(steps=steps),
        batch_size=32, settings=TrainParams(log_every=10, checkpoint_every=15, progress="log"),
        outputs=outputs_in(tmp_path), fingerprint="ae",
    )  # fmt: skip
    return trainer.fit(), recipe.state_dict()


def test_same_params_same_numbers_on_cpu(digits_prepared, tmp_path):
    first, weights_a = train_ae(digits_prepared, tmp_path / "a")
    second, weights_b = train_ae(digits_prepared, tmp_path / "b")
    assert first["loss"] == second["loss"]
    assert (tmp_path / "a/plots/train/m.csv").read_text() == (
        tmp_path / "b/plots/train/m.csv"
    ).read_text()
    for name in weights_a:
        for key, tensor in weights_a[name].items():
            assert torch.equal(tensor, weights_b[name][key]), f"{name}.{key} differs"
    assert not (tmp_path / "a/checkpoints/m/last.pt").exists()  # removed once training ends


def test_a_checkpoint_from_other_params_is_not_resumed(digits_prepared, tmp_path):
    ckpt = outputs_in(tmp_path).checkpoint
    ckpt.parent.mkdir(parents=True)
    torch.save({"fingerprint": "something else"}, ckpt)
    final, _ = train_ae(digits_prepared, tmp_path, steps=10)
    assert final["steps"] == 10


TOTAL = 400  # steps; 1437 digits / batch 64 = 22 per epoch, so checkpoints fall mid-epoch
RESUME_PARAMS = {
    "train": {"seed": 3, "log_every": 5, "checkpoint_every": 7, "progress": "log", "num_threads": 1},
    "models": {
        "ae": {
            "family": "autoencoder", "arch": "conv", "channels": [8, 16], "latent_dim": 8,
            "steps": TOTAL, "batch_size": 64,
        }
    },
}  # fmt: skip


@pytest.mark.faults
def test_killed_training_resumes_to_the_same_result(digits_dir, tmp_path):
    plain = workspace(tmp_path / "plain", RESUME_PARAMS, digits_dir)
    done = run_script("train.py", plain, "--instance", "ae")
    assert done.returncode == 0, done.stderr

    killed = workspace(tmp_path / "killed", RESUME_PARAMS, digits_dir)
    checkpoint = killed / "checkpoints" / "ae" / "last.pt"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "pipeline" / "train.py"), "--instance", "ae"],
        cwd=killed, env=stage_env(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training ended before it could be killed"
    step = torch.load(checkpoint, weights_only=True)["trainer"]["step"]
    assert 0 < step < TOTAL
    assert not (killed / "models" / "ae" / "model.pt").exists()

    resumed = run_script("train.py", killed, "--instance", "ae")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming train@ae from checkpoint at step {step}/{TOTAL}" in resumed.stderr
    assert (plain / "metrics/train/ae.json").exists()
    a = json.loads((plain / "metrics/train/ae.json").read_text())
    b = json.loads((killed / "metrics/train/ae.json").read_text())
    assert a["loss"] == b["loss"] and a["steps"] == b["steps"] == TOTAL
    assert (plain / "plots/train/ae.csv").read_text() == (killed / "plots/train/ae.csv").read_text()
    wa = torch.load(plain / "models/ae/model.pt", weights_only=True)
    wb = torch.load(killed / "models/ae/model.pt", weights_only=True)
    assert all(torch.equal(wa["decoder"][k], wb["decoder"][k]) for k in wa["decoder"])


class CountingRecipe(Recipe):
    """Logs the step on every step and `odd` on odd steps only; its monitor counts its calls."""

    family = "test_counting"

    def __init__(self):
        super().__init__(None, DataInfo("toy", (1, 2, 2), 10), torch.device("cpu"))
        self.net = nn.Linear(1, 1)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.0)
        self.monitor_calls = 0

    def modules(self):
        return {"net": self.net}

    def optimizers(self):
        return {"sgd": self.opt}

    def training_step(self, batch, step):
        logged = {"step_value": float(step)}
        if step % 2 == 1:
            logged["odd"] = float(step)
        return logged

    def monitor(self):
        self.monitor_calls += 1
        return {"calls": float(self.monitor_calls)}

    def summarise(self, history):
        return {"rows": len(history)}

    def evaluate(self, ctx):
        raise NotImplementedError

    def exportables(self, real_images=None):
        return []


def test_rows_average_each_number_over_the_steps_that_logged_it(tmp_path):
    recipe = CountingRecipe()
    images = torch.zeros(16, 1, 2, 2, dtype=torch.uint8)
    trainer = Trainer(
        recipe, images, torch.zeros(16, dtype=torch.long), budget=Budget(steps=16),
        batch_size=4, settings=TrainParams(log_every=4, monitor_every=8, progress="log"),
        outputs=outputs_in(tmp_path), fingerprint="count",
    )  # fmt: skip
    final = trainer.fit()
    rows = [line.split(",") for line in outputs_in(tmp_path).plots.read_text().splitlines()]
    assert rows[0] == ["step", "epoch", "step_value", "odd", "monitor_calls"]
    # steps 0..3: mean 1.5; odd steps 1 and 3: mean 2; the monitor joins every second row
    assert rows[1] == ["4", "1", "1.5", "2", ""]
    assert rows[2] == ["8", "2", "5.5", "6", "1"]
    assert rows[4] == ["16", "4", "13.5", "14", "2"]
    assert recipe.monitor_calls == 2
    # the final figures: means over the last epoch (4 steps), and the recipe's summary
    assert final["step_value"] == 13.5 and final["odd"] == 14.0 and final["rows"] == 4


def test_monitor_interval_must_fall_on_logged_rows():
    with pytest.raises(ValueError, match="multiple of log_every"):
        TrainParams(log_every=50, monitor_every=120)


@pytest.mark.parametrize(
    "switches", [{"mixed_precision": "bf16", "channels_last": "on"}, {"compile": True}]
)
def test_the_gpu_path_switches_train_the_same_recipe(digits_prepared, tmp_path, monkeypatch,
                                                    switches):  # fmt: skip
    # forced on the CPU: training runs and the saved weights load into a bare recipe.
    # compile: dynamo's eager backend checks the wrapping; inductor's codegen is torch's to test
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    seed_everything(0)
    params = AutoencoderParams(family="autoencoder", arch="conv", channels=[8, 16], latent_dim=4,
                               steps=6, batch_size=32)  # fmt: skip
    recipe = build_recipe(params, data_info(digits_prepared), torch.device("cpu"))
    settings = TrainParams(log_every=3, progress="log", **switches)
    trainer = Trainer(
        recipe, digits_prepared.train_images, digits_prepared.train_labels, budget=Budget(steps=6),
        batch_size=32, settings=settings, outputs=outputs_in(tmp_path), fingerprint="gpu-path",
    )  # fmt: skip
    compiled = switches.get("compile", False)
    assert (type(recipe.encoder).__name__ == "OptimizedModule") == compiled
    final = trainer.fit()
    assert final["bf16"] == ("mixed_precision" in switches) and final["compile"] == compiled
    assert final["channels_last"] == ("channels_last" in switches)
    assert math.isfinite(final["loss"])
    saved = torch.load(outputs_in(tmp_path).weights, weights_only=True)
    fresh = build_recipe(params, data_info(digits_prepared), torch.device("cpu"))
    fresh.load_state_dict(saved)  # no wrapper prefixes in the saved names


def test_the_gpu_path_is_off_on_the_cpu_by_default(digits_prepared, tmp_path):
    final, _ = train_ae(digits_prepared, tmp_path, steps=3)
    assert not final["bf16"] and not final["channels_last"] and not final["compile"]


def test_adam_runs_the_fused_kernel_with_the_plain_update_rule():
    torch.manual_seed(0)
    weights = [torch.randn(64, 32), torch.randn(32)]
    grads = [torch.randn_like(w) for w in weights]
    results = []
    for build in (
        lambda ps: adam(ps, lr=0.01, betas=(0.5, 0.999), weight_decay=0.1),
        lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.5, 0.999), weight_decay=0.1),
    ):
        params = [w.clone().requires_grad_(True) for w in weights]
        optimizer = build(params)
        for _ in range(20):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            optimizer.step()
        results.append(params)
        if len(results) == 1:
            assert optimizer.defaults["fused"] is True
    for start, fused, plain in zip(weights, *results, strict=True):
        assert (fused - start).abs().max() > 0.05  # 20 steps of lr 0.01 moved it
        assert torch.allclose(fused, plain, atol=1e-6)
    decoupled = adam([torch.zeros(3, requires_grad=True)], lr=0.1, decoupled_weight_decay=True)
    assert isinstance(decoupled, torch.optim.AdamW) and decoupled.defaults["fused"] is True
