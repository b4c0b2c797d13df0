import copy

import pytest
import torch

from genmodels.config import VAEParams
from genmodels.export import check_parity, export_onnx
from genmodels.metrics.likelihood import kl_standard_normal
from genmodels.models import build_recipe, data_info
from genmodels.models.vae import reparameterise
from genmodels.training import Batch, EvalContext


def vae(prepared, **overrides):
    settings = dict(family="vae", arch="mlp", hidden_dims=[64], latent_dim=2, epochs=1) | overrides
    return build_recipe(VAEParams(**settings), data_info(prepared), torch.device("cpu"))


def test_reparameterisation_draws_from_the_posterior():
    torch.manual_seed(0)
    mean, logvar = torch.tensor([1.0, -2.0]), torch.tensor([0.0, 2 * torch.log(torch.tensor(0.5))])
    z = reparameterise(mean, logvar, samples=200_000)
    assert torch.allclose(z.mean(0), mean, atol=0.01)
    assert torch.allclose(z.std(0), torch.tensor([1.0, 0.5]), atol=0.01)


def test_lecture_loss_is_1000_mse_plus_closed_form_kl(digits_prepared):
    recipe = vae(digits_prepared, likelihood="gaussian", recon_weight=1000.0)
    x = digits_prepared.train_images[:16].float() / 255
    before = copy.deepcopy(recipe.state_dict())
    torch.manual_seed(7)
    logged = recipe.training_step(Batch(x, digits_prepared.train_labels[:16]), 0)
    recipe.load_state_dict(before)  # the same weights and noise, by hand
    with torch.no_grad():
        mean, logvar = recipe.encoder(x)
        torch.manual_seed(7)
        recon = torch.sigmoid(recipe.decoder(reparameterise(mean, logvar)))
    mse = (recon - x).pow(2).flatten(1).mean(1)
    expected = 1000 * mse.mean() + kl_standard_normal(mean, logvar).mean()
    assert logged["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_kl_warmup_ramps_the_weight_to_beta(digits_prepared):
    recipe = vae(digits_prepared, beta=0.5, kl_warmup_steps=100)
    assert recipe.kl_weight(0) == pytest.approx(0.005)
    assert recipe.kl_weight(49) == pytest.approx(0.25)
    assert recipe.kl_weight(5000) == 0.5


def test_bernoulli_vae_binarises_dynamically_and_learns(digits_prepared):
    torch.manual_seed(0)
    recipe = vae(digits_prepared, arch="conv", channels=[8, 16], latent_dim=4, lr=3e-3)
    x = digits_prepared.train_images[:64].float() / 255
    a, b = recipe.targets(x), recipe.targets(x)
    assert set(a.unique().tolist()) <= {0.0, 1.0} and not torch.equal(a, b)
    batch = Batch(x, digits_prepared.train_labels[:64])
    first = recipe.training_step(batch, 0)["loss"].item()
    for step in range(1, 60):
        last = recipe.training_step(batch, step)["loss"].item()
    assert last < 0.8 * first


def eval_context(prepared, tmp_path, digits_space) -> EvalContext:
    return EvalContext(
        train_images=prepared.train_images, train_labels=prepared.train_labels,
        test_images=prepared.test_images[:200], test_labels=prepared.test_labels[:200],
        figures_dir=tmp_path, batch_size=100, n_grid=8, ssim_window=7, ssim_sigma=1.5, seed=0,
        device=torch.device("cpu"), space=digits_space, n_samples=200,
    )  # fmt: skip


def test_evaluation_bounds_and_lecture_figures(digits_prepared, digits_space, tmp_path):
    torch.manual_seed(0)
    recipe = vae(digits_prepared, iwae_k=64, iwae_images=200)
    x = digits_prepared.train_images.float() / 255
    for step in range(80):
        part = slice((step * 64) % 1400, (step * 64) % 1400 + 64)
        recipe.training_step(Batch(x[part], digits_prepared.train_labels[part]), step)
    result = recipe.evaluate(eval_context(digits_prepared, tmp_path, digits_space))
    m = result.metrics
    assert m["elbo"] == pytest.approx(-(m["recon"] + m["kl"]), rel=1e-5)
    # the importance-weighted bound is tighter than the ELBO on the same images
    assert m["nll_iwae"] < -m["elbo_on_iwae_images"]
    assert m["iwae_k"] == 64 and m["iwae_images"] == 200 and 0 <= m["active_units"] <= 2
    # prior samples are judged like a GAN's, in the evaluator space
    samples = m["samples"]
    assert samples["n_samples"] == 200 and samples["fid"] > 0
    assert 0 <= samples["precision"] <= 1 and 1 <= samples["class_coverage"] <= 10
    assert 0 <= m["recon_accuracy"] <= 1
    names = {p.name for p in result.figures.values()}
    assert names == {"reconstructions.png", "samples.png", "interpolation.png", "decoded_origin.png",
                     "latent.png", "manifold.png"}  # fmt: skip


def test_iwae_with_one_sample_equals_the_elbo_in_expectation(digits_prepared):
    torch.manual_seed(0)
    recipe = vae(digits_prepared, likelihood="bernoulli")
    x = torch.bernoulli(digits_prepared.test_images[:20].float() / 255)
    with torch.no_grad():
        mean, logvar = recipe.encoder(x)
        draws = 400
        elbo = torch.stack(
            [
                recipe.log_likelihood(recipe.decoder(reparameterise(mean, logvar)), x)
                for _ in range(draws)
            ]
        ).mean(0) - kl_standard_normal(mean, logvar)
        k1 = torch.stack([recipe.iwae_nll(x, 1, 1000) for _ in range(draws)]).mean(0)
    # the K = 1 bound uses the sampled KL, the ELBO the closed form: equal in expectation
    assert torch.allclose(-k1, elbo, rtol=0.01)


def test_iwae_decoded_in_batches_gives_the_same_bound(digits_prepared):
    recipe = vae(digits_prepared, arch="conv", channels=[8, 16], likelihood="bernoulli")
    recipe.train(False)
    x = torch.bernoulli(digits_prepared.test_images[:6].float() / 255)
    bounds = []
    for decode_batch in (10_000, 7):  # all samples at once; batches that split images' samples
        torch.manual_seed(3)
        bounds.append(recipe.iwae_nll(x, 50, 200, decode_batch))
    assert bounds[0].shape == (6,) and torch.isfinite(bounds[0]).all()
    assert torch.allclose(bounds[0], bounds[1], rtol=1e-5, atol=1e-4)


def test_decoder_and_encoder_export_with_parity(digits_prepared, tmp_path):
    recipe = vae(digits_prepared, arch="conv", channels=[8, 16], latent_dim=3)
    real = digits_prepared.test_images[:8].float() / 255
    decoder, encoder = recipe.exportables(real)
    assert encoder.output_names == ["mean", "logvar"] and decoder.output_names == ["image"]
    for part in (decoder, encoder):
        path = export_onnx(part, tmp_path / f"{part.name}.onnx", opset=18)
        assert check_parity(part, path, [part.real_inputs]) < 1e-4
    with torch.no_grad():
        image = decoder.module(torch.randn(5, 3))
    assert image.shape == (5, 1, 28, 28) and image.min() >= 0 and image.max() <= 1
