"""Every family at its defaults (params.yaml), trained briefly on data unlike Fashion-MNIST:
thin white strokes on black, four classes by the strokes' direction, written as PNG files in
class folders and prepared by the real folder code. Each model must not be constant and must
beat its trivial baseline; the SRResNet once collapsed to an all-black output on such data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from genmodels.config import DataParams, DomainParams, load_params
from genmodels.data.prepare import prepare
from genmodels.data.prepared import load_prepared
from genmodels.metrics.fid import fid
from genmodels.metrics.image import psnr
from genmodels.metrics.space import EvaluatorSpace, SuiteSettings
from genmodels.models import build_recipe, data_info
from genmodels.models.srgan import bicubic_upscale, downsample
from genmodels.training import Batch
from helpers import REPO, evaluator_space

ANGLES = {"horizontal": 0.0, "rising": 45.0, "vertical": 90.0, "falling": 135.0}
PER_CLASS = 120


def strokes(angle: float, rng: np.random.Generator) -> Image.Image:
    """28x28 black, one to three thin white strokes near `angle` degrees."""
    image = Image.new("L", (28, 28))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(1, 4)):
        theta = math.radians(angle + rng.normal(0, 8))
        cx, cy = rng.uniform(8, 20, size=2)
        half = rng.uniform(6, 11)
        dx, dy = half * math.cos(theta), -half * math.sin(theta)
        draw.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=255, width=int(rng.integers(1, 3)))
    return image


@pytest.fixture(scope="module")
def strokes_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("strokes")
    rng = np.random.default_rng(0)
    for name, angle in ANGLES.items():
        (root / "images" / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            strokes(angle, rng).save(root / "images" / name / f"{i:03d}.png")
    # the CycleGAN's domain B: the strokes made bold, so that B is not nearly A itself
    prepare(DataParams(name="folder", folder=str(root / "images"), channels=1,
                       test_fraction=0.25, prepared_dir=str(root / "prepared"),
                       domains=DomainParams(transform="bold")))  # fmt: skip
    prepared = load_prepared(root / "prepared")
    assert prepared.train_images.float().mean() < 0.15 * 255  # mostly black, as MNIST is
    return prepared, root / "prepared"


def defaults(instance: str):
    params = load_params(REPO / "params.yaml")
    return params.model(instance)


def train(recipe, prepared, steps: int, batch_size: int, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    images, labels = prepared.train_images, prepared.train_labels
    for step in range(steps):
        idx = torch.randint(0, len(images), (batch_size,), generator=generator)
        recipe.training_step(Batch(images[idx].float() / 255.0, labels[idx]), step)
    recipe.train(False)


def held_out(prepared) -> torch.Tensor:
    return prepared.test_images.float() / 255.0


def mmd(x: torch.Tensor, y: torch.Tensor) -> float:
    """Squared maximum mean discrepancy, Gaussian kernel at the median distance of y."""
    x, y = x.flatten(1).double(), y.flatten(1).double()
    scale = torch.cdist(y, y).median().clamp_min(1e-6) ** 2

    def k(a, b):
        return torch.exp(-(torch.cdist(a, b) ** 2) / scale).mean().item()

    return k(x, x) + k(y, y) - 2 * k(x, y)


def assert_not_constant(images: torch.Tensor) -> None:
    spread = images.flatten(1).std(dim=0).mean().item()  # across images, per pixel
    assert spread > 0.02, f"the outputs barely vary (mean per-pixel std {spread:.4f})"


@pytest.fixture(scope="module")
def evaluator(strokes_data):
    """The evaluator at its defaults, trained briefly: it must beat chance (0.25) by far."""
    prepared, _ = strokes_data
    torch.manual_seed(0)
    recipe = build_recipe(defaults("evaluator"), data_info(prepared), torch.device("cpu"))
    train(recipe, prepared, steps=60, batch_size=64)
    return recipe


@pytest.fixture(scope="module")
def space(strokes_data, evaluator) -> EvaluatorSpace:
    """The evaluator space of the strokes: what the SRGAN's content loss reads features from."""
    prepared, _ = strokes_data
    settings = SuiteSettings(n_samples=100, kid_subsets=5, kid_subset_size=50, prdc_k=5,
                             min_class_share=0.05, memorisation_samples=50, batch_size=256,
                             seed=0)  # fmt: skip
    return evaluator_space(evaluator, prepared, settings)


def test_the_evaluator_beats_chance(strokes_data, evaluator):
    prepared, _ = strokes_data
    with torch.no_grad():
        predicted = evaluator.probabilities(held_out(prepared)).argmax(1)
    accuracy = (predicted == prepared.test_labels).float().mean().item()
    assert accuracy > 0.6


@pytest.mark.parametrize("instance", ["ae_k32", "vae"])
def test_autoencoders_reconstruct_better_than_the_mean_image(strokes_data, instance):
    prepared, _ = strokes_data
    torch.manual_seed(0)
    recipe = build_recipe(defaults(instance), data_info(prepared), torch.device("cpu"))
    train(recipe, prepared, steps=150, batch_size=64)
    x = held_out(prepared)
    with torch.no_grad():
        if instance == "vae":
            recon = recipe.decode_mean(recipe.encoder(x)[0])
        else:
            recon = recipe.reconstruct(x)
    mean_image = prepared.train_images.float().mean(0) / 255.0
    assert_not_constant(recon)
    assert F.mse_loss(recon, x).item() < 0.8 * F.mse_loss(mean_image.expand_as(x), x).item()


def fid_to_real(evaluator, images: torch.Tensor, real: torch.Tensor) -> float:
    """FID, in the briefly trained evaluator's features."""
    with torch.no_grad():
        return fid(evaluator.features(images), evaluator.features(real))


@pytest.mark.parametrize("instance", ["gan", "cgan"])
def test_generators_vary_and_come_closer_than_the_untrained_one(strokes_data, evaluator, instance):
    prepared, _ = strokes_data
    torch.manual_seed(0)
    recipe = build_recipe(defaults(instance), data_info(prepared), torch.device("cpu"))
    z, labels = recipe.latent(400), torch.arange(400) % 4

    def samples():  # the raw generator: its EMA (decay 0.999) barely moves in 300 steps
        recipe.train(False)
        with torch.no_grad():
            return recipe.generate(recipe.generator, z, labels)

    untrained = samples()  # the trivial baseline: the same network before any step
    recipe.train(True)
    train(recipe, prepared, steps=300, batch_size=64)
    trained = samples()
    assert_not_constant(trained)
    real = prepared.train_images[:400].float() / 255.0
    assert fid_to_real(evaluator, trained, real) < 0.8 * fid_to_real(evaluator, untrained, real)


@pytest.mark.parametrize("instance", ["srresnet", "srgan"])
def test_super_resolution_beats_bicubic_and_is_not_black(strokes_data, space, instance):
    prepared, _ = strokes_data
    params = defaults(instance)
    overrides = {"steps": 120} | ({"pretrain_steps": 80} if params.variant == "srgan" else {})
    params = params.model_copy(update=overrides)
    torch.manual_seed(0)
    recipe = build_recipe(params, data_info(prepared), torch.device("cpu"))
    recipe.attach_space(space, monitor_samples=50)  # the content loss's features
    train(recipe, prepared, steps=120, batch_size=params.batch_size)
    high = held_out(prepared)
    low = downsample(high, params.scale)
    upscaled = recipe.upscale(low)
    assert_not_constant(upscaled)
    gain = (
        psnr(upscaled, high).mean().item()
        - psnr(bicubic_upscale(low, params.scale), high).mean().item()
    )
    # the SRGAN's adversarial phase trades PSNR for its content loss: above bicubic is enough
    assert gain > (0.3 if instance == "srresnet" else 0.0), f"{gain:.2f} dB over bicubic"


def test_cyclegan_translates_closer_than_the_identity(strokes_data):
    prepared, prepared_dir = strokes_data
    params = defaults("cyclegan").model_copy(update={"steps": 250})
    torch.manual_seed(0)
    recipe = build_recipe(params, data_info(prepared), torch.device("cpu"))
    recipe.attach_data(prepared_dir)
    for step in range(250):
        recipe.training_step(Batch(torch.zeros(1), torch.zeros(1)), step)
    recipe.train(False)
    a = recipe.domains.test_a.float() / 255.0
    b = recipe.domains.test_b.float() / 255.0
    with torch.no_grad():
        fake_b = recipe.g_ab(a)
    assert_not_constant(fake_b)
    assert (fake_b - b).abs().mean() < (a - b).abs().mean()  # beats the identity
