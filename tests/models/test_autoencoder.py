import pytest
import torch

from genmodels.config import AutoencoderParams
from genmodels.export import check_parity, export_onnx
from genmodels.models import build_recipe, data_info
from genmodels.models.autoencoder import pca_reconstruct, reconstruction_loss
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


def test_evaluate_compares_with_pca_and_draws_the_latent_plane(digits_prepared, tmp_path):
    params = AutoencoderParams(
        family="autoencoder", arch="mlp", latent_dim=2, hidden_dims=[32], epochs=1
    )
    recipe = build_recipe(params, data_info(digits_prepared), torch.device("cpu"))
    ctx = EvalContext(
        train_images=digits_prepared.train_images, train_labels=digits_prepared.train_labels,
        test_images=digits_prepared.test_images, test_labels=digits_prepared.test_labels,
        figures_dir=tmp_path, batch_size=100, n_grid=8, ssim_window=7, ssim_sigma=1.5, seed=0,
        device=torch.device("cpu"),
    )  # fmt: skip
    result = recipe.evaluate(ctx)
    assert result.metrics["latent_dim"] == 2 and result.metrics["n_test"] == len(
        digits_prepared.test_images
    )
    assert set(result.metrics["pca"]) == {"mse", "psnr", "ssim"}
    # an untrained AE is far worse than PCA; the comparison must show it
    assert result.metrics["mse"] > result.metrics["pca"]["mse"]
    assert {p.name for p in result.figures.values()} == {"reconstructions.png", "latent.png"}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in result.figures.values())
