import math

import pytest
import torch

from genmodels.config import AutoencoderParams, NoiseParams, SparsityParams
from genmodels.export import check_parity, export_onnx
from genmodels.models import build_recipe, data_info
from genmodels.models.autoencoder import (
    kl_sparsity_penalty,
    l1_penalty,
    pca_reconstruct,
    reconstruction_loss,
    silent_fraction,
)
from genmodels.training import Batch, EvalContext


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_shapes_range_and_a_step_lowers_the_loss(arch, digits_prepared):
    params = AutoencoderParams(
        family="autoencoder",
        arch=arch,
        latent_dim=5,
        hidden_dims=[64],
        channels=[8, 16],
        epochs=1,
        lr=1e-2,
    )
    recipe = build_recipe(params, data_info(digits_prepared), torch.device("cpu"))
    images = digits_prepared.train_images[:64].float() / 255
    z = recipe.encoder(images)
    out = recipe.decoder(z)
    assert z.shape == (64, 5) and out.shape == images.shape
    assert out.min() >= 0 and out.max() <= 1
    batch = Batch(images, digits_prepared.train_labels[:64])
    first = recipe.training_step(batch, 0)["loss"].item()
    for step in range(1, 30):
        last = recipe.training_step(batch, step)["loss"].item()
    assert last < first


def test_reconstruction_losses_by_hand():
    recon = torch.tensor([[0.5, 0.25]])
    target = torch.tensor([[1.0, 0.0]])
    assert reconstruction_loss(recon, target, "mse").item() == pytest.approx((0.25 + 0.0625) / 2)
    expected = -(torch.log(torch.tensor(0.5)) + torch.log(torch.tensor(0.75))) / 2
    assert reconstruction_loss(recon, target, "bce").item() == pytest.approx(expected.item())


def test_pca_with_all_components_reconstructs_exactly(digits_prepared):
    train, test = digits_prepared.train_images[:300], digits_prepared.test_images[:50]
    full = pca_reconstruct(train, train, 299, seed=0)
    # float32 covariance eigendecomposition: exact up to ~1e-3 of a pixel
    assert torch.allclose(full, train.float() / 255, atol=5e-3)
    few = pca_reconstruct(train, test, 2, seed=0)
    many = pca_reconstruct(train, test, 30, seed=0)
    error = lambda r: ((r - test.float() / 255) ** 2).mean().item()  # noqa: E731
    assert error(many) < error(few)


def test_encoder_and_decoder_export_with_parity(digits_prepared, tmp_path):
    params = AutoencoderParams(family="autoencoder", latent_dim=6, channels=[8, 16], epochs=1)
    recipe = build_recipe(params, data_info(digits_prepared), torch.device("cpu"))
    real = digits_prepared.test_images[:16].float() / 255
    encoder, decoder = recipe.exportables(real)
    assert (encoder.input_names, encoder.output_names) == (["image"], ["z"])
    assert (decoder.input_names, decoder.output_names) == (["z"], ["image"])
    for part in (encoder, decoder):
        path = export_onnx(part, tmp_path / f"{part.name}.onnx", opset=18)
        assert check_parity(part, path, [part.real_inputs, (part.example_inputs[0][:1],)]) < 1e-4


def test_evaluate_compares_with_pca_and_draws_the_latent_plane(
    digits_prepared, digits_space, tmp_path
):
    params = AutoencoderParams(
        family="autoencoder", arch="mlp", latent_dim=2, hidden_dims=[32], epochs=1
    )
    recipe = build_recipe(params, data_info(digits_prepared), torch.device("cpu"))
    ctx = EvalContext(
        train_images=digits_prepared.train_images, train_labels=digits_prepared.train_labels,
        test_images=digits_prepared.test_images, test_labels=digits_prepared.test_labels,
        figures_dir=tmp_path, batch_size=100, n_grid=8, ssim_window=7, ssim_sigma=1.5, seed=0,
        device=torch.device("cpu"), space=digits_space, n_samples=200,
    )  # fmt: skip
    result = recipe.evaluate(ctx)
    assert result.metrics["latent_dim"] == 2 and result.metrics["n_test"] == len(
        digits_prepared.test_images
    )
    assert set(result.metrics["pca"]) == {"mse", "psnr", "ssim", "recon_accuracy"}
    # the evaluator reads the class of PCA's reconstructions better than the untrained AE's
    assert result.metrics["pca"]["recon_accuracy"] > result.metrics["recon_accuracy"]
    # an untrained AE is far worse than PCA; the comparison must show it
    assert result.metrics["mse"] > result.metrics["pca"]["mse"]
    assert {p.name for p in result.figures.values()} == {"reconstructions.png", "latent.png"}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in result.figures.values())


def test_sparsity_penalties_by_hand():
    codes = torch.tensor([[0.0, -2.0, 1.0], [1.0, 0.0, 0.0]])
    assert l1_penalty(codes).item() == pytest.approx((3.0 + 1.0) / 2)
    rates = torch.tensor([[0.1, 0.5], [0.3, 0.5]])  # batch means 0.2 and 0.5
    kl = lambda rho, q: rho * math.log(rho / q) + (1 - rho) * math.log((1 - rho) / (1 - q))  # noqa: E731
    assert kl_sparsity_penalty(rates, 0.05).item() == pytest.approx(
        kl(0.05, 0.2) + kl(0.05, 0.5), rel=1e-5
    )
    assert kl_sparsity_penalty(torch.full((4, 3), 0.05), 0.05).item() == pytest.approx(
        0.0, abs=1e-6
    )
    assert silent_fraction(codes, 0.5) == pytest.approx(3 / 6)


def test_l1_penalty_makes_the_code_sparse(digits_prepared):
    def trained(sparsity):
        torch.manual_seed(0)
        params = AutoencoderParams(
            family="autoencoder", arch="mlp", hidden_dims=[64], latent_dim=16, code_activation="relu",
            sparsity=sparsity, epochs=1, lr=3e-3,
        )  # fmt: skip
        recipe = build_recipe(params, data_info(digits_prepared), torch.device("cpu"))
        images = digits_prepared.train_images.float() / 255
        for step in range(150):
            part = slice((step * 64) % 1400, (step * 64) % 1400 + 64)
            recipe.training_step(Batch(images[part], digits_prepared.train_labels[part]), step)
        with torch.no_grad():
            return silent_fraction(recipe.encoder(images[:500]), 0.05)

    plain = trained(SparsityParams(kind="none"))
    sparse = trained(SparsityParams(kind="l1", weight=0.05))
    assert sparse > plain + 0.2


def test_denoising_instance_trains_a_plain_twin_on_the_same_batches(digits_prepared):
    params = AutoencoderParams(
        family="autoencoder", arch="mlp", hidden_dims=[32], latent_dim=8, epochs=1,
        noise=NoiseParams(kind="mask", level=0.5),
    )  # fmt: skip
    recipe = build_recipe(params, data_info(digits_prepared), torch.device("cpu"))
    assert set(recipe.modules()) == {"encoder", "decoder", "plain_encoder", "plain_decoder"}
    assert set(recipe.optimizers()) == {"adam", "plain_adam"}
    images = digits_prepared.train_images[:32].float() / 255
    logged = recipe.training_step(Batch(images, digits_prepared.train_labels[:32]), 0)
    assert {"loss", "plain_loss"} <= set(logged)
    # the denoiser's exported graphs are its own, never the twin's
    encoder, decoder = recipe.exportables()
    assert encoder.module is recipe.encoder and decoder.module is recipe.decoder
