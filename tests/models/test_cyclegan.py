"""The CycleGAN recipe: the history buffer, the losses on hand-made tensors, training, the
learning-rate schedule, exact resume, evaluation against the true pairs, and both ONNX graphs."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from genmodels.config import CycleGANParams, DomainParams, TrainParams, parse_params
from genmodels.data.domains import transform
from genmodels.errors import UserError
from genmodels.export import check_parity, export_onnx
from genmodels.models import build_recipe, data_info
from genmodels.models.cyclegan import ImagePool, cycle_loss, identity_loss
from genmodels.training import Batch, Budget, EvalContext, Trainer, TrainOutputs
from genmodels.training.runtime import seed_everything
from helpers import Interrupted, interrupt_at

TINY = {"family": "cyclegan", "g_channels": 4, "g_blocks": 1, "d_channels": 4, "d_layers": 1,
        "batch_size": 8, "steps": 6}  # fmt: skip
NO_BATCH = Batch(torch.zeros(1), torch.zeros(1))  # the recipe draws its own A and B batches


def cyclegan(prepared, prepared_dir=None, **overrides):
    params = CycleGANParams(**(TINY | overrides))
    recipe = build_recipe(params, data_info(prepared), torch.device("cpu"))
    if prepared_dir is not None:
        recipe.attach_data(prepared_dir)
    return recipe


# -- the history buffer -------------------------------------------------------------------------
def numbered(start: int, count: int) -> torch.Tensor:
    """`count` 1x2x2 images, image i filled with the value start + i."""
    return (
        torch.arange(start, start + count, dtype=torch.float32)
        .view(-1, 1, 1, 1)
        .expand(-1, 1, 2, 2)
    )


def values(images: torch.Tensor) -> list[int]:
    return images[:, 0, 0, 0].int().tolist()


def test_history_buffer_fills_to_its_size_returning_the_new_images():
    pool = ImagePool(50, seed=0)
    for start in range(0, 50, 10):
        assert values(pool.query(numbered(start, 10))) == list(range(start, start + 10))
    assert pool.count == 50 and sorted(values(pool.images)) == list(range(50))


def test_full_history_buffer_swaps_half_of_the_images_for_stored_ones():
    pool = ImagePool(50, seed=0)
    pool.query(numbered(0, 50))
    swapped = 0
    for given in range(50, 2050):  # one image at a time: each outcome is visible in the pool
        (returned,) = values(pool.query(numbered(given, 1)))
        stored = set(values(pool.images))
        if returned == given:  # returned as it is, and not stored
            assert given not in stored
        else:  # an older image came back, and the new one took its slot
            assert returned < given and returned not in stored and given in stored
            swapped += 1
    assert pool.count == 50 and len(set(values(pool.images))) == 50
    assert 0.45 < swapped / 2000 < 0.55  # p = 1/2


def test_history_buffer_is_deterministic_under_a_seed_and_resumes_from_its_state():
    a, b, c = ImagePool(50, seed=3), ImagePool(50, seed=3), ImagePool(50, seed=4)
    first = [a.query(numbered(i * 30, 30)) for i in range(4)]
    assert all(torch.equal(x, b.query(numbered(i * 30, 30))) for i, x in enumerate(first))
    assert not all(torch.equal(x, c.query(numbered(i * 30, 30))) for i, x in enumerate(first))
    resumed = ImagePool(50, seed=99)
    resumed.load_state_dict(a.state_dict(), torch.device("cpu"))
    for i in range(4, 8):
        assert torch.equal(a.query(numbered(i * 30, 30)), resumed.query(numbered(i * 30, 30)))


def test_history_buffer_of_size_zero_passes_images_through():
    images = torch.rand(4, 1, 3, 3)
    assert torch.equal(ImagePool(0, seed=0).query(images), images)


# -- the losses ---------------------------------------------------------------------------------
def test_cycle_and_identity_losses_on_hand_made_tensors():
    original = torch.tensor([[[[0.0, 1.0], [0.5, 0.25]]]])
    round_trip = torch.tensor([[[[0.5, 0.5], [0.5, 1.0]]]])
    # |0.5| + |-0.5| + 0 + |0.75| over 4 pixels
    assert cycle_loss(round_trip, original).item() == pytest.approx(0.4375)
    assert identity_loss(round_trip, original).item() == pytest.approx(0.4375)
    assert cycle_loss(original, original).item() == 0.0
    batch = torch.stack([original[0], round_trip[0]])  # the mean runs over the batch too
    assert cycle_loss(batch, torch.zeros_like(batch)).item() == pytest.approx((1.75 + 2.5) / 8)


class Constant(nn.Module):
    """A stand-in generator that outputs `value` everywhere (a zero weight carries gradients)."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return torch.full_like(x, self.value) + self.weight * x


def test_generator_objective_weighs_cycle_by_lambda_and_identity_by_half_of_it(digits_prepared,
                                                                               digits_dir):  # fmt: skip
    recipe = cyclegan(digits_prepared, digits_dir, cycle_weight=10.0, identity_weight=0.5)
    recipe.g_ab, recipe.g_ba = Constant(0.25), Constant(0.75)
    logs = recipe.training_step(NO_BATCH, 0)
    a = recipe._domain_batch("a", recipe._train_a, 0, salt=0)
    b = recipe._domain_batch("b", recipe._train_b, 0, salt=1)
    # a -> b -> a ends at G_ba's constant, b -> a -> b at G_ab's; identity maps likewise
    assert logs["cycle_a"].item() == pytest.approx((a - 0.75).abs().mean().item(), abs=1e-6)
    assert logs["cycle_b"].item() == pytest.approx((b - 0.25).abs().mean().item(), abs=1e-6)
    assert logs["identity_a"].item() == pytest.approx(logs["cycle_a"].item(), abs=1e-6)
    assert logs["identity_b"].item() == pytest.approx(logs["cycle_b"].item(), abs=1e-6)
    cycles = logs["cycle_a"] + logs["cycle_b"]
    expected = logs["g_adv_ab"] + logs["g_adv_ba"] + 10.0 * cycles + 5.0 * cycles
    assert logs["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


# -- the networks ---------------------------------------------------------------------------------


# -- training ---------------------------------------------------------------------------------------
def test_training_steps_change_all_four_networks(digits_prepared, digits_dir):
    seed_everything(0)
    recipe = cyclegan(digits_prepared, digits_dir)
    before = {n: [p.clone() for p in m.parameters()] for n, m in recipe.modules().items()}
    logs = [recipe.training_step(NO_BATCH, step) for step in range(3)]
    keys = {"loss", "g_adv_ab", "g_adv_ba", "cycle_a", "cycle_b", "identity_a", "identity_b",
            "d_a", "d_b", "lr"}  # fmt: skip
    assert all(keys <= set(log) for log in logs)
    assert all(torch.isfinite(v).all() for log in logs for v in log.values())
    for name, module in recipe.modules().items():
        assert any(
            not torch.equal(b, p) for b, p in zip(before[name], module.parameters(), strict=True)
        ), name
    assert recipe.pool_a.count == recipe.pool_b.count == 3 * TINY["batch_size"]


def test_batches_come_from_the_domains_in_a_seeded_order_per_pass(digits_prepared, digits_dir):
    recipe = cyclegan(digits_prepared, digits_dir, batch_size=64)
    n = len(recipe.domains.train_a)
    per_pass = n // 64
    first_pass = torch.cat(
        [recipe._domain_batch("a", recipe._train_a, s, 0) for s in range(per_pass)]
    )
    # one pass draws distinct images of domain A only
    flat = (first_pass * 255).round().to(torch.uint8).flatten(1)
    assert len(torch.unique(flat, dim=0)) == per_pass * 64
    known = recipe.domains.train_a.flatten(1)
    assert (flat[:, None] == known[None]).all(-1).any(1).all()
    again = cyclegan(digits_prepared, digits_dir, batch_size=64)
    assert torch.equal(again._domain_batch("a", again._train_a, per_pass + 1, 0),
                       recipe._domain_batch("a", recipe._train_a, per_pass + 1, 0))  # fmt: skip


def test_training_without_domains_is_a_clear_error(digits_prepared):
    with pytest.raises(UserError, match="attach_data"):
        cyclegan(digits_prepared).training_step(NO_BATCH, 0)


def test_learning_rate_is_constant_then_decays_linearly(digits_prepared, digits_dir):
    recipe = cyclegan(digits_prepared, digits_dir, steps=10, decay_start=0.5, lr=1e-3)
    lrs = [recipe.training_step(NO_BATCH, step)["lr"].item() for step in range(10)]
    assert lrs[:6] == pytest.approx([1e-3] * 6)
    # 1 - (t - 5) / 6 after step 5: 5/6, 4/6, ..., 2/6
    assert lrs[6:] == pytest.approx([1e-3 * k / 6 for k in (5, 4, 3, 2)])
    assert recipe.opt_d.param_groups[0]["lr"] == pytest.approx(1e-3 / 6)


def test_an_epochs_budget_counts_steps_over_the_prepared_training_set(digits_prepared, digits_dir):
    recipe = cyclegan(digits_prepared, digits_dir, steps=None, epochs=2, batch_size=64)
    assert recipe.total_steps() == 2 * (len(digits_prepared.train_images) // 64)


def train_cyclegan(prepared, prepared_dir, tmp_path, fail_at=None):
    seed_everything(0)
    recipe = cyclegan(prepared, prepared_dir, steps=12, pool_size=10)
    interrupt_at(recipe, fail_at)  # an interruption after a checkpoint was written
    trainer = Trainer(
        recipe, prepared.train_images[:80], prepared.train_labels[:80], budget=Budget(steps=12),
        batch_size=8, settings=TrainParams(log_every=2, checkpoint_every=4, progress="log"),
        outputs=TrainOutputs.for_instance("c", "checkpoints", root=tmp_path), fingerprint="c",
    )  # fmt: skip
    return trainer.fit(), recipe


def test_interrupted_training_resumes_to_the_same_weights(digits_prepared, digits_dir, tmp_path):
    straight, reference = train_cyclegan(digits_prepared, digits_dir, tmp_path / "a")
    with pytest.raises(Interrupted):
        train_cyclegan(digits_prepared, digits_dir, tmp_path / "b", fail_at=9)
    assert (tmp_path / "b/checkpoints/c/last.pt").exists()
    resumed, recipe = train_cyclegan(digits_prepared, digits_dir, tmp_path / "b")
    for key in ("loss", "d_a", "d_b", "lr"):
        assert resumed[key] == straight[key], key
    for name, module in reference.modules().items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, recipe.modules()[name].state_dict()[key]), f"{name}.{key}"
    assert torch.equal(recipe.pool_a.images, reference.pool_a.images)
    assert torch.equal(recipe.pool_b.generator.get_state(), reference.pool_b.generator.get_state())


def test_weights_remember_their_domains(digits_prepared, digits_dir, tmp_path):
    recipe = cyclegan(digits_prepared, digits_dir)
    state = recipe.state_dict()
    assert json.loads(state["domains"])["domain_b"] == "digits:edges"
    fresh = cyclegan(digits_prepared)
    fresh.load_state_dict(state)
    assert fresh.domain_names() == ("digits", "digits:edges")
    from genmodels.config import DataParams
    from genmodels.data.prepare import prepare

    other = tmp_path / "other"
    prepare(DataParams(name="digits", prepared_dir=str(other), download=False, limit_train=40,
                       limit_test=10, domains=DomainParams(transform="invert")))  # fmt: skip
    with pytest.raises(UserError, match="domains changed"):
        fresh.attach_data(other)


# -- evaluation and export ----------------------------------------------------------------------------
def test_evaluate_measures_both_directions_against_the_true_pairs(digits_prepared, digits_dir,
                                                                  digits_space, tmp_path):  # fmt: skip
    seed_everything(0)
    recipe = cyclegan(digits_prepared, digits_dir)
    for step in range(2):
        recipe.training_step(NO_BATCH, step)
    ctx = EvalContext(
        train_images=digits_prepared.train_images, train_labels=digits_prepared.train_labels,
        test_images=digits_prepared.test_images, test_labels=digits_prepared.test_labels,
        figures_dir=tmp_path, batch_size=256, n_grid=8, ssim_window=11, ssim_sigma=1.5, seed=0,
        device=torch.device("cpu"), space=digits_space,
    )  # fmt: skip
    result = recipe.evaluate(ctx)
    m = result.metrics
    assert m["domain_a"] == "digits" and m["domain_b"] == "digits:edges"
    for d in ("ab", "ba"):
        keys = {"l1", "mse", "psnr", "ssim", "identity", "l1_ratio_vs_identity", "cycle_l1", "fid",
                "fid_true_pairs"}  # fmt: skip
        assert keys <= set(m[d])
        assert set(m[d]["identity"]) == {"l1", "mse", "psnr", "ssim"}
        assert m[d]["l1_ratio_vs_identity"] == pytest.approx(m[d]["identity"]["l1"] / m[d]["l1"])
    # the identity baseline is the same pair of images in both directions
    assert m["ab"]["identity"] == m["ba"]["identity"]
    a = digits_prepared.test_images.float() / 255
    b = transform(a, DomainParams())
    assert m["ab"]["identity"]["l1"] == pytest.approx((a - b).abs().mean().item(), abs=2e-3)
    assert 0 <= m["ba"]["label_preservation"] <= 1 and m["ba"]["label_accuracy_true_pairs"] > 0.5
    assert m["label_preservation"] == m["ba"]["label_preservation"]
    assert m["l1_ratio_min"] == min(
        m["ab"]["l1_ratio_vs_identity"], m["ba"]["l1_ratio_vs_identity"]
    )
    assert isinstance(m["target_met"], bool)
    for path in result.figures.values():
        assert path.read_bytes()[:4] == b"\x89PNG"
    assert {p.name for p in result.figures.values()} == {"translation_ab.png", "translation_ba.png"}


def test_both_generators_export_with_parity(digits_prepared, digits_dir, tmp_path):
    seed_everything(0)
    recipe = cyclegan(digits_prepared, digits_dir)
    recipe.training_step(NO_BATCH, 0)
    real = digits_prepared.test_images[:16].float() / 255
    exportables = recipe.exportables(real)
    assert [e.name for e in exportables] == ["generator_ab", "generator_ba"]
    for exportable, direction in zip(exportables, ("ab", "ba"), strict=True):
        assert exportable.input_names == ["image"] and exportable.output_names == ["translated"]
        assert exportable.metadata == {"task": "translate", "direction": direction,
                                       "domain_a": "digits", "domain_b": "digits:edges",
                                       "size_multiple": "4", "pixel_range": "0,1"}  # fmt: skip
        path = export_onnx(exportable, tmp_path / f"{exportable.name}.onnx")
        # fully convolutional: sizes other than the 28x28 it trained at, multiples of 4
        inputs = [(torch.rand(1, 1, 28, 28),), (torch.rand(5, 1, 28, 28),), exportable.real_inputs,
                  (torch.rand(2, 1, 56, 32),)]  # fmt: skip
        assert check_parity(exportable, path, inputs) < 1e-4
    # the B -> A graph is checked on real domain-B images: the true pairs of the test images
    assert torch.equal(exportables[1].real_inputs[0], recipe.domains.test_b[:16].float() / 255)


def test_params_are_validated():
    base = {"models": {"c": {"family": "cyclegan", "steps": 10}}}
    assert parse_params(base).models["c"].cycle_weight == 10.0
    for bad in ({"g_downsampling": 3}, {"loss": "wgan_gp"}, {"pool_size": -1},
                {"decay_start": 1.5}, {"identity_weigth": 0.5}):  # fmt: skip
        with pytest.raises(UserError):
            parse_params({"models": {"c": {"family": "cyclegan", "steps": 10, **bad}}})
