"""The conditional GAN: labels steer the generator, projection arithmetic, evaluation, export."""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch
from torch import nn

from genmodels.config import CGANParams
from genmodels.export import check_parity, export_onnx
from genmodels.models import build_recipe, data_info
from genmodels.models.cgan import pairwise_diversity
from genmodels.nn.dcgan import ConcatDiscriminator, Discriminator, ProjectionDiscriminator
from genmodels.training import Batch, EvalContext

TINY = {"family": "cgan", "g_channels": [16, 8], "d_channels": [8, 16], "latent_dim": 8,
        "embed_dim": 4, "batch_size": 32, "steps": 4}  # fmt: skip


def cgan(prepared, **overrides):
    return build_recipe(CGANParams(**(TINY | overrides)), data_info(prepared), torch.device("cpu"))


def test_label_conditioning_changes_the_output(digits_prepared):
    torch.manual_seed(0)
    recipe = cgan(digits_prepared)
    z = torch.randn(1, 8).expand(10, 8)
    images = recipe.sample(z, torch.arange(10))
    # the same z, ten labels: ten different images
    flat = images.flatten(1)
    assert torch.cdist(flat, flat).fill_diagonal_(1.0).min() > 1e-4
    again = recipe.sample(z, torch.arange(10))
    assert torch.equal(images, again)


class Flatten(nn.Module):
    out_features = 2

    def forward(self, x):
        return x.flatten(1)


def test_projection_discriminator_arithmetic_by_hand():
    base = Discriminator(Flatten())
    d = ProjectionDiscriminator(base, num_classes=3)
    with torch.no_grad():
        base.head.weight.copy_(torch.tensor([[1.0, -2.0]]))
        base.head.bias.fill_(0.5)
        d.embed.weight.copy_(torch.tensor([[0.0, 0.0], [3.0, 1.0], [-1.0, 2.0]]))
    # features are images mapped to [-1, 1]: pixels 1 and 0.25 give phi = (1, -0.5)
    images = torch.tensor([[[[1.0, 0.25]]], [[[1.0, 0.25]]], [[[1.0, 0.25]]]])
    out = d(images, torch.tensor([0, 1, 2])).squeeze(1)
    psi = 1 * 1 + (-2) * (-0.5) + 0.5  # 2.5
    assert out.tolist() == pytest.approx([psi, psi + 3 - 0.5, psi - 1 - 1])


@pytest.mark.parametrize("overrides", [{}, {"minibatch_std": True}])
def test_concat_discriminator_is_the_stacked_one_hot_maps(digits_prepared, overrides):
    """The label maps enter the first conv as one response per class: same scores and gradients
    as stacking ten one-hot channels on every image."""
    torch.manual_seed(0)
    recipe = cgan(digits_prepared, conditioning="concat", **overrides)
    d = recipe.discriminator
    assert isinstance(d, ConcatDiscriminator)
    images = (digits_prepared.train_images[:16].float() / 255).requires_grad_(True)
    labels = digits_prepared.train_labels[:16]
    fast = d(images, labels)
    (fast_image_grad,) = torch.autograd.grad(fast.sum(), images, retain_graph=True)
    fast.sum().backward()
    fast_weight_grads = [p.grad.clone() for p in d.parameters()]
    d.zero_grad()
    stacked = d.base(images, d.label_maps(labels, 28, 28, images.dtype))
    (stacked_image_grad,) = torch.autograd.grad(stacked.sum(), images, retain_graph=True)
    stacked.sum().backward()
    torch.testing.assert_close(fast, stacked, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast_image_grad, stacked_image_grad, rtol=1e-4, atol=1e-6)
    for fast_grad, parameter in zip(fast_weight_grads, d.parameters(), strict=True):
        torch.testing.assert_close(fast_grad, parameter.grad, rtol=1e-4, atol=1e-5)


def test_concat_discriminator_gradients_repeat_exactly_on_two_threads(digits_prepared):
    """Training is bit-reproducible on the CPU: the per-class response is gathered with a
    deterministic backward (advanced indexing's accumulating backward was not, on 2 threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        recipe = cgan(digits_prepared, conditioning="concat", d_channels=[64, 128])
        d = recipe.discriminator
        images = digits_prepared.train_images[:64].float() / 255
        labels = digits_prepared.train_labels[:64]
        grads = []
        for _ in range(4):
            d.zero_grad()
            d(images, labels).square().mean().backward()
            grads.append(torch.cat([p.grad.flatten() for p in d.parameters()]))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(grads[0], g) for g in grads[1:])


@pytest.mark.parametrize("overrides", [{}, {"conditioning": "concat", "loss": "hinge"},
                                       {"loss": "wgan_gp", "n_critic": 2, "spectral_norm": True},
                                       {"mode_seeking": 1.0, "minibatch_std": True}])  # fmt: skip
def test_training_steps_play_with_labels(digits_prepared, overrides):
    torch.manual_seed(0)
    recipe = cgan(digits_prepared, **overrides)
    x = digits_prepared.train_images[:32].float() / 255
    logs = [recipe.training_step(Batch(x, digits_prepared.train_labels[:32]), s) for s in range(4)]
    assert all(torch.isfinite(v).all() for log in logs for v in log.values())
    assert sum("g_loss" in log for log in logs) == 4 // overrides.get("n_critic", 1)
    if overrides.get("mode_seeking"):
        assert all(log["mode_seeking_ratio"] > 0 for log in logs)


@pytest.mark.parametrize("n", [32, 31])
def test_mode_seeking_pairs_latents_within_one_generator_pass(digits_prepared, n):
    torch.manual_seed(0)
    recipe = cgan(digits_prepared, mode_seeking=1.0)
    seen = []  # (z, labels) of every generator call
    generate = recipe.generate

    def recorded(generator, z, labels):
        seen.append((z, labels))
        return generate(generator, z, labels)

    judged = []  # the labels of every discriminator call
    discriminate = recipe.discriminate

    def judged_under(images, labels):
        judged.append(labels)
        return discriminate(images, labels)

    recipe.generate, recipe.discriminate = recorded, judged_under
    x = digits_prepared.train_images[:n].float() / 255
    real_labels = digits_prepared.train_labels[:n]
    log = recipe.training_step(Batch(x, real_labels), 0)
    assert len(seen) == 1  # the pairs come from the one fake batch, not a second pass
    z, labels = seen[0]
    pairs = n // 2
    assert torch.equal(labels[:pairs], real_labels[:pairs])
    assert torch.equal(labels[pairs : 2 * pairs], real_labels[:pairs])  # same label, other z
    assert torch.equal(labels[2 * pairs :], real_labels[2 * pairs : n])  # odd one out: its own
    assert not torch.equal(z[:pairs], z[pairs : 2 * pairs])
    # D judges the reals under their labels and the fakes (for D, then for G) under theirs
    assert [torch.equal(j, real_labels) for j in judged] == [True, False, False]
    assert all(torch.equal(j, labels) for j in judged[1:])
    assert log["mode_seeking_ratio"] > 0


def test_packing_is_refused_for_a_cgan():
    with pytest.raises(ValueError, match="one label each"):
        CGANParams(**(TINY | {"packing": 2}))


def test_pairwise_diversity_by_hand():
    points = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    # distances 5, 0, 5 between the three distinct pairs
    assert pairwise_diversity(points) == pytest.approx(10 / 3)


def test_evaluation_reports_conditional_accuracy_per_class(digits_prepared, digits_space, tmp_path):
    torch.manual_seed(0)
    recipe = cgan(digits_prepared)
    ctx = EvalContext(
        train_images=digits_prepared.train_images, train_labels=digits_prepared.train_labels,
        test_images=digits_prepared.test_images, test_labels=digits_prepared.test_labels,
        figures_dir=tmp_path, batch_size=100, n_grid=8, ssim_window=7, ssim_sigma=1.5, seed=0,
        device=torch.device("cpu"), space=digits_space, n_samples=200,
    )  # fmt: skip
    m = recipe.evaluate(ctx).metrics
    assert len(m["per_class"]) == 10
    assert 0 <= m["conditional_accuracy"] <= 1 and m["evaluator_accuracy"] > 0.5
    mean_class = sum(c["accuracy"] for c in m["per_class"]) / 10
    assert m["conditional_accuracy"] == pytest.approx(mean_class)  # 20 samples of every class
    assert {"fid", "precision", "recall", "class_coverage", "diversity_ratio_min"} <= set(m)
    assert (tmp_path / "classes.png").read_bytes()[:4] == b"\x89PNG"


def test_exported_generator_takes_int64_labels(digits_prepared, tmp_path):
    recipe = cgan(digits_prepared)
    (exportable,) = recipe.exportables()
    assert exportable.metadata["num_classes"] == "10"
    path = export_onnx(exportable, tmp_path / "generator.onnx")
    inputs = [(torch.randn(5, 8), torch.tensor([0, 3, 9, 9, 1]))]
    assert check_parity(exportable, path, inputs) < 1e-4
    session = ort.InferenceSession(str(path))
    assert [i.type for i in session.get_inputs()] == ["tensor(float)", "tensor(int64)"]
