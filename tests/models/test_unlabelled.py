"""Data without labels: a flat folder of RGB images, prepared by the real folder code. The
evaluator learns rotations instead of classes, the sample metrics leave the class metrics out
and say why, the families that need no labels train and evaluate, and those that do are refused
with the key and the fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from genmodels.config import DataParams, EvaluateParams, EvaluatorParams, load_params
from genmodels.data.prepare import prepare
from genmodels.data.prepared import load_prepared
from genmodels.errors import UserError
from genmodels.metrics.space import (
    UNLABELLED_REASON,
    EvaluatorSpace,
    SuiteSettings,
    space_named,
)
from genmodels.models import build_recipe, data_info
from genmodels.models.evaluator import rotated, rotation_count
from genmodels.nn.features import feature_extractor
from genmodels.training import Batch, EvalContext
from helpers import REPO, evaluator_space

SIDE = 32
CLASS_METRICS = ("classifier_score", "class_coverage", "class_kl", "class_histogram")


def scene(rng: np.random.Generator) -> Image.Image:
    """A sky-over-ground scene with a house: which way is up is plain to see."""
    sky = tuple(int(v) for v in rng.integers(120, 256, 3))
    ground = tuple(int(v) for v in rng.integers(0, 110, 3))
    image = Image.new("RGB", (SIDE, SIDE), sky)
    draw = ImageDraw.Draw(image)
    horizon = int(rng.integers(18, 24))
    draw.rectangle([0, horizon, SIDE, SIDE], fill=ground)
    left = int(rng.integers(2, 16))
    width = int(rng.integers(8, 14))
    top = horizon - int(rng.integers(5, 9))
    wall = tuple(int(v) for v in rng.integers(0, 256, 3))
    draw.rectangle([left, top, left + width, horizon], fill=wall)
    draw.polygon([(left - 2, top), (left + width + 2, top), (left + width // 2, top - 6)],
                 fill=(150, 30, 30))  # fmt: skip
    return image


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    for i in range(240):
        scene(rng).save(root / "images" / f"{i:03d}.png")
    prepare(DataParams(name="folder", folder=str(root / "images"), test_fraction=0.25,
                       prepared_dir=str(root / "prepared")))  # fmt: skip
    prepared = load_prepared(root / "prepared")
    assert prepared.num_classes == 0 and prepared.image_shape == (3, SIDE, SIDE)
    return prepared


def defaults(instance: str):
    return load_params(REPO / "params.yaml").model(instance)


def train(recipe, prepared, steps: int, batch_size: int = 32) -> None:
    generator = torch.Generator().manual_seed(0)
    images, labels = prepared.train_images, prepared.train_labels
    for step in range(steps):
        idx = torch.randint(0, len(images), (batch_size,), generator=generator)
        recipe.training_step(Batch(images[idx].float() / 255.0, labels[idx]), step)
    recipe.train(False)


def context(prepared, tmp_path, space=None) -> EvalContext:
    return EvalContext(
        train_images=prepared.train_images, train_labels=prepared.train_labels,
        test_images=prepared.test_images, test_labels=prepared.test_labels,
        figures_dir=tmp_path, batch_size=64, n_grid=8, ssim_window=7, ssim_sigma=1.5, seed=0,
        device=torch.device("cpu"), space=space, n_samples=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def evaluator(unlabelled):
    torch.manual_seed(0)
    recipe = build_recipe(defaults("evaluator"), data_info(unlabelled), torch.device("cpu"))
    assert recipe.task == "rotation" and recipe.outputs == 4
    train(recipe, unlabelled, steps=80)
    return recipe


@pytest.fixture(scope="module")
def space(unlabelled, evaluator) -> EvaluatorSpace:
    settings = SuiteSettings(n_samples=60, kid_subsets=4, kid_subset_size=30, prdc_k=3,
                             min_class_share=0.05, memorisation_samples=20, batch_size=128,
                             seed=0)  # fmt: skip
    return evaluator_space(evaluator, unlabelled, settings, feature_space="evaluator (rotation)")


def test_rotations_turn_each_image_by_its_label():
    images = torch.arange(2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    out = rotated(images, torch.tensor([0, 3]), 4)
    assert torch.equal(out[0], images[0])
    assert torch.equal(out[1], torch.rot90(images[1], 3, dims=(1, 2)))
    wide = torch.rand(2, 1, 4, 6)
    assert rotation_count(wide.shape) == 2  # a quarter turn would change the shape
    assert torch.equal(rotated(wide, torch.tensor([1, 0]), 2)[0], wide[0].flip(1, 2))


def test_the_rotation_evaluator_learns_which_way_is_up(unlabelled, evaluator, tmp_path):
    metrics = evaluator.evaluate(context(unlabelled, tmp_path)).metrics
    assert metrics["task"] == "rotation"
    assert metrics["classes"] == ["0 degrees", "90 degrees", "180 degrees", "270 degrees"]
    assert metrics["accuracy"] > 0.6, metrics  # chance is 0.25
    assert len(metrics["per_class_accuracy"]) == 4


def test_sample_metrics_leave_the_class_metrics_out_and_say_why(unlabelled, space):
    real = unlabelled.test_images[:60].float() / 255.0
    noise = torch.rand_like(real)
    metrics = space.sample_metrics(real)
    assert not space.labelled and not set(CLASS_METRICS) & set(metrics)
    assert metrics["fid"] < space.sample_metrics(noise)["fid"]
    quick = space.quick_metrics(real)
    assert set(quick) == {"fid", "precision", "recall"}
    assert space_named(space) == {"feature_space": "evaluator (rotation)",
                                  "class_metrics": UNLABELLED_REASON}  # fmt: skip
    assert space.class_accuracy("accuracy", real, unlabelled.test_labels[:60]) == {}


@pytest.mark.parametrize("instance", ["ae_k2", "vae_lecture", "vae"])
def test_autoencoders_evaluate_without_labels(unlabelled, space, instance, tmp_path):
    torch.manual_seed(0)
    recipe = build_recipe(defaults(instance), data_info(unlabelled), torch.device("cpu"))
    train(recipe, unlabelled, steps=20)
    result = recipe.evaluate(context(unlabelled, tmp_path, space))
    assert "recon_accuracy" not in result.metrics
    assert result.metrics["mse"] > 0
    samples = result.metrics.get("samples", {})
    assert not set(CLASS_METRICS) & set(samples)
    assert all(path.is_file() for path in result.figures.values())
    assert any(caption.startswith("Test-set latent") and "class" not in caption
               for caption in result.figures) == (recipe.params.latent_dim == 2)  # fmt: skip


def test_the_gan_trains_and_is_judged_without_labels(unlabelled, space, tmp_path):
    torch.manual_seed(0)
    recipe = build_recipe(defaults("gan"), data_info(unlabelled), torch.device("cpu"))
    recipe.attach_space(space, 60)
    train(recipe, unlabelled, steps=10)
    watched = recipe.monitor()
    assert set(watched) == {"fid", "precision", "recall"}
    history = [{"step": s, "monitor_recall": r, "d_loss": 1.0, "g_loss": 1.0}
               for s, r in enumerate([0.2, 0.5, 0.4])]  # fmt: skip
    assert recipe.summarise(history)["collapse"] == {
        "recall_final": 0.4, "recall_peak": 0.5, "recall_drop": pytest.approx(0.1)
    }  # fmt: skip
    ctx = context(unlabelled, tmp_path, space)
    ctx.train_metrics = {"train_seconds": 1.0}
    metrics = recipe.evaluate(ctx).metrics
    assert metrics["fid"] > 0 and not set(CLASS_METRICS) & set(metrics)


def test_what_needs_labels_is_refused_with_the_key_and_the_fix(unlabelled):
    info = data_info(unlabelled)
    with pytest.raises(UserError, match=r"models\.cgan\.family: data folder has no class labels"):
        build_recipe(defaults("cgan"), info, torch.device("cpu"), "cgan")
    classes = EvaluatorParams(**{**defaults("evaluator").model_dump(), "task": "classes"})
    with pytest.raises(UserError, match=r"evaluator\.task: .*set it to auto"):
        build_recipe(classes, info, torch.device("cpu"), "evaluator")


def test_the_fid_inception_space_reads_the_local_weights_file(tmp_path):
    from torchvision.models.inception import Inception3

    path = tmp_path / "pt_inception.pth"
    torch.save(Inception3(num_classes=1008, aux_logits=False, init_weights=False).state_dict(),
               path)  # fmt: skip
    settings = EvaluateParams(features="fid_inception", inception_weights=str(path))
    extract = feature_extractor(settings, evaluator=None, device=torch.device("cpu"))
    assert extract(torch.rand(2, 3, SIDE, SIDE)).shape == (2, 2048)
    with pytest.raises(UserError, match="evaluate.inception_weights"):
        feature_extractor(settings.model_copy(update={"inception_weights": str(tmp_path / "no")}),
                          evaluator=None, device=torch.device("cpu"))  # fmt: skip
