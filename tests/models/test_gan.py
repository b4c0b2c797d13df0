"""The GAN recipe: every loss and technique plays, resume is exact, the EMA generator exports."""

from __future__ import annotations

import pytest
import torch

from genmodels.config import GANParams, TrainParams
from genmodels.export import check_parity, export_onnx
from genmodels.models import build_recipe, data_info
from genmodels.training import Batch, Budget, Trainer, TrainOutputs
from genmodels.training.runtime import seed_everything
from helpers import Interrupted, interrupt_at

TINY = {"family": "gan", "g_channels": [16, 8], "d_channels": [8, 16], "latent_dim": 8,
        "batch_size": 32, "steps": 4}  # fmt: skip


def gan(prepared, **overrides):
    params = GANParams(**(TINY | overrides))
    return build_recipe(params, data_info(prepared), torch.device("cpu"))


def batch(prepared, n=32):
    return Batch(prepared.train_images[:n].float() / 255, prepared.train_labels[:n])


@pytest.mark.parametrize(
    "overrides",
    [
        {"loss": "minimax"},
        {"loss": "nonsaturating", "label_smoothing": 0.1, "d_norm": "batch"},
        {"loss": "lsgan", "minibatch_std": True},
        {"loss": "hinge", "spectral_norm": True, "lr_d": 4e-4},
        {"loss": "wgan_gp", "n_critic": 2, "d_norm": "layer"},
        {"loss": "nonsaturating", "r1_gamma": 1.0, "packing": 2},
        {"arch": "mlp", "g_hidden": [32], "d_hidden": [32], "minibatch_std": True},
    ],
)
def test_every_loss_and_technique_plays_the_game(digits_prepared, overrides):
    torch.manual_seed(0)
    recipe = gan(digits_prepared, **overrides)
    before = {k: v.clone() for k, v in recipe.generator.state_dict().items()}
    logs = [recipe.training_step(batch(digits_prepared), step) for step in range(4)]
    n_critic = overrides.get("n_critic", 1)
    # D learns every step, G every n_critic steps, and both are visible in the logs
    assert all({"d_loss", "d_real", "d_fake", "d_grad_norm"} <= set(log) for log in logs)
    assert sum("g_loss" in log for log in logs) == 4 // n_critic
    assert all(torch.isfinite(v).all() for log in logs for v in log.values())
    changed = any(not torch.equal(before[k], v) for k, v in recipe.generator.state_dict().items())
    assert changed
    if overrides.get("loss") == "wgan_gp":
        assert "gradient_penalty" in logs[0]
    if overrides.get("r1_gamma"):
        assert logs[0]["r1"] > 0


@pytest.mark.parametrize("n_critic", [1, 3])
def test_one_batch_of_fakes_serves_both_players(digits_prepared, n_critic):
    recipe = gan(digits_prepared, n_critic=n_critic)
    calls = []  # (step, autograd on) per generator call
    generate = recipe.generate

    def counted(generator, z, labels):
        calls.append((step, torch.is_grad_enabled()))
        return generate(generator, z, labels)

    recipe.generate = counted
    for step in range(6):
        recipe.training_step(batch(digits_prepared), step)
    assert [s for s, _ in calls] == list(range(6))  # one generator pass per step
    # a graph through G only in steps where G learns
    assert [on for _, on in calls] == [(s + 1) % n_critic == 0 for s in range(6)]


def test_generator_pixels_are_in_the_unit_range(digits_prepared):
    recipe = gan(digits_prepared)
    images = recipe.sample(torch.randn(10, 8) * 10)
    assert images.shape == (10, 1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1


def test_the_ema_generator_is_what_gets_sampled(digits_prepared):
    torch.manual_seed(0)
    recipe = gan(digits_prepared, ema_decay=0.9)
    for step in range(3):
        recipe.training_step(batch(digits_prepared), step)
    assert recipe.sampler() is recipe.ema.module
    z = torch.randn(4, 8)
    raw = recipe.generate(recipe.generator.eval(), z, torch.zeros(4, dtype=torch.long))
    assert not torch.allclose(recipe.sample(z), raw)


def test_progress_grids_are_saved_each_epoch_and_restored(digits_prepared):
    recipe = gan(digits_prepared)
    recipe.end_of_epoch(0)
    recipe.end_of_epoch(1)
    state = recipe.state_dict()
    assert state["progress"].shape == (2, 16, 1, 28, 28)
    fresh = gan(digits_prepared)
    fresh.load_state_dict(state)
    assert len(fresh.progress) == 2 and torch.equal(fresh.progress[1], recipe.progress[1])


def train_gan(prepared, tmp_path, fail_at=None):
    seed_everything(0)
    recipe = gan(prepared, loss="wgan_gp", n_critic=2, ema_decay=0.9, steps=12)
    interrupt_at(recipe, fail_at)  # an interruption after a checkpoint was written
    trainer = Trainer(
        recipe, prepared.train_images[:160], prepared.train_labels[:160], budget=Budget(steps=12),
        batch_size=32, settings=TrainParams(log_every=2, checkpoint_every=4, progress="log"),
        outputs=TrainOutputs.for_instance("g", "checkpoints", root=tmp_path), fingerprint="g",
    )  # fmt: skip
    return trainer.fit(), recipe


def test_interrupted_gan_training_resumes_to_the_same_weights(digits_prepared, tmp_path):
    straight, reference = train_gan(digits_prepared, tmp_path / "a")
    with pytest.raises(Interrupted):
        train_gan(digits_prepared, tmp_path / "b", fail_at=9)  # 5 steps per epoch
    assert (tmp_path / "b/checkpoints/g/last.pt").exists()
    resumed, recipe = train_gan(digits_prepared, tmp_path / "b")
    assert resumed["d_loss"] == straight["d_loss"] and resumed["g_loss"] == straight["g_loss"]
    for name, module in reference.modules().items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, recipe.modules()[name].state_dict()[key]), f"{name}.{key}"
    assert len(recipe.progress) == len(reference.progress) == 2


def test_truncation_scales_the_sampling_latents_and_is_exported(digits_prepared):
    recipe = gan(digits_prepared, truncation_psi=0.7)
    z = recipe.sampling_latents(6, torch.Generator().manual_seed(3))
    plain = torch.randn(6, 8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(z, 0.7 * plain)
    torch.testing.assert_close(
        recipe.sampling_latents(6, torch.Generator().manual_seed(3), psi=1.0), plain
    )
    (exportable,) = recipe.exportables()
    assert float(exportable.metadata["truncation_psi"]) == 0.7
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="truncation_psi"):
            GANParams(**(TINY | {"truncation_psi": bad}))


def test_exported_generator_matches_torch(digits_prepared, tmp_path):
    recipe = gan(digits_prepared)
    for step in range(2):
        recipe.training_step(batch(digits_prepared), step)
    (exportable,) = recipe.exportables()
    assert exportable.metadata["task"] == "generate"
    path = export_onnx(exportable, tmp_path / "generator.onnx")
    diff = check_parity(exportable, path, [(torch.randn(1, 8),), (torch.randn(7, 8),)])
    assert diff < 1e-4
