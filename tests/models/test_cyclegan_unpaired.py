"""The CycleGAN on the user's unpaired folders (data.name unpaired) and on data without labels:
PNG folders written here, prepared by the real code, judged in an unlabelled evaluator space (a
fixed conv net, no classes). Domain A holds red shapes, domain B other random shapes in blue (the
channels reversed): an easy translation, so a short training must bring each direction's FID
well below that of the untranslated images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

from genmodels.config import CycleGANParams, DataParams, DomainParams
from genmodels.data.prepare import prepare
from genmodels.data.prepared import load_prepared
from genmodels.export import check_parity, export_onnx
from genmodels.metrics.space import (
    UNLABELLED_REASON,
    EvaluatorSpace,
    SuiteSettings,
    compute_reference,
)
from genmodels.models import build_recipe, data_info
from genmodels.models.cyclegan import UNPAIRED_LEFT_OUT
from genmodels.report import tables
from genmodels.training import Batch, EvalContext
from genmodels.training.runtime import seed_everything

SIDE = 16
COUNTS = {"trainA": 64, "trainB": 48, "testA": 24, "testB": 20}
TINY = {"family": "cyclegan", "g_channels": 4, "g_blocks": 1, "g_downsampling": 1,
        "d_channels": 4, "d_layers": 1, "batch_size": 8, "lr": 2e-3}  # fmt: skip
NO_BATCH = Batch(torch.zeros(1), torch.zeros(1))  # the recipe draws its own A and B batches
UNPAIRED_KEYS = {"fid", "fid_untranslated", "fid_real_test", "kid", "kid_std",
                 "kid_untranslated", "cycle_l1", "identity_l1"}  # fmt: skip


def red_shapes(rng: np.random.Generator) -> Image.Image:
    """SIDE x SIDE black, one or two red ellipses or rectangles at random places."""
    image = Image.new("RGB", (SIDE, SIDE))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(1, 3)):
        x, y = rng.integers(0, SIDE - 6, size=2)
        w, h = rng.integers(4, 8, size=2)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([int(x), int(y), int(x + w), int(y + h)], fill=(230, 60, 20))
    return image


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory):
    root = tmp_path_factory.mktemp("unpaired")
    rng = np.random.default_rng(0)
    for name, count in COUNTS.items():
        (root / "shapes" / name).mkdir(parents=True)
        for i in range(count):
            image = red_shapes(rng)  # B: shapes of their own, not the A images transformed
            if name.endswith("B"):
                image = Image.fromarray(np.array(image)[..., ::-1].copy())
            image.save(root / "shapes" / name / f"{i:03d}.png")
    prepare(DataParams(name="unpaired", folder=str(root / "shapes"),
                       prepared_dir=str(root / "prepared")))  # fmt: skip
    return load_prepared(root / "prepared"), root / "prepared"


def unlabelled_space(prepared) -> EvaluatorSpace:
    """An evaluator space with no classes: features of a fixed, seeded conv net (the mean and
    the maximum of each filter's response), as a self-supervised evaluator would give."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()).eval()

    @torch.no_grad()
    def extract(images):
        response = net(images.float() / 255 if images.dtype == torch.uint8 else images)
        return torch.cat([response.mean((2, 3)), response.amax((2, 3))], 1)

    def no_classes(images):
        return torch.zeros(len(images), 0)

    reference = compute_reference(
        "fixed conv", extract, no_classes, prepared.train_images, prepared.train_labels,
        prepared.test_images, prepared.test_labels, batch_size=256,
    )  # fmt: skip
    settings = SuiteSettings(n_samples=100, kid_subsets=5, kid_subset_size=16, prdc_k=3,
                             min_class_share=0.05, memorisation_samples=10, batch_size=256,
                             seed=0)  # fmt: skip
    return EvaluatorSpace(extract, no_classes, reference, prepared.train_images,
                          prepared.test_images, settings, num_classes=0)  # fmt: skip


def context(prepared, space, figures_dir) -> EvalContext:
    figures_dir.mkdir(parents=True, exist_ok=True)
    return EvalContext(
        train_images=prepared.train_images, train_labels=prepared.train_labels,
        test_images=prepared.test_images, test_labels=prepared.test_labels,
        figures_dir=figures_dir, batch_size=64, n_grid=8, ssim_window=11, ssim_sigma=1.5,
        seed=0, device=torch.device("cpu"), space=space,
    )  # fmt: skip


def cyclegan(prepared, prepared_dir, steps: int):
    seed_everything(0)
    recipe = build_recipe(CycleGANParams(**TINY, steps=max(steps, 1)), data_info(prepared),
                          torch.device("cpu"))  # fmt: skip
    recipe.attach_data(prepared_dir)
    for step in range(steps):
        recipe.training_step(NO_BATCH, step)
    return recipe


def test_unpaired_evaluation_judges_each_direction_in_its_target_domain(unpaired, tmp_path):
    prepared, prepared_dir = unpaired
    space = unlabelled_space(prepared)
    untrained = cyclegan(prepared, prepared_dir, 0).evaluate(
        context(prepared, space, tmp_path / "untrained")
    )
    trained_recipe = cyclegan(prepared, prepared_dir, 60)
    result = trained_recipe.evaluate(context(prepared, space, tmp_path / "trained"))
    m, before = result.metrics, untrained.metrics

    assert m["paired"] is False and m["left_out"] == UNPAIRED_LEFT_OUT
    assert (m["domain_a"], m["domain_b"]) == ("shapes:A", "shapes:B")
    assert (m["n_test_a"], m["n_test_b"]) == (COUNTS["testA"], COUNTS["testB"])
    assert m["feature_space"] == "fixed conv"
    for d in ("ab", "ba"):
        assert set(m[d]) == UNPAIRED_KEYS  # nothing measured against pairs or labels
        assert all(math.isfinite(v) for v in m[d].values()), m[d]
        # the untranslated baseline and the real floor do not depend on the generators
        for key in ("fid_untranslated", "kid_untranslated", "fid_real_test"):
            assert m[d][key] == before[d][key]
        assert m[d]["fid_real_test"] < m[d]["fid_untranslated"]  # red and blue differ here
        # what training must do: closer to the target than the images as they are, and closer
        # than the untrained generator; round trips and identity maps near the input
        assert m[d]["fid"] < 0.5 * m[d]["fid_untranslated"], (d, m[d])
        assert m[d]["fid"] < before[d]["fid"], d
        assert m[d]["kid"] < m[d]["kid_untranslated"], d
        assert m[d]["cycle_l1"] < 0.25 * before[d]["cycle_l1"], d
        assert m[d]["identity_l1"] < 0.25 * before[d]["identity_l1"], d
    assert m["target_met"] is True
    assert set(result.table) == {"fid_ab", "fid_ba", "cycle_l1_ab", "cycle_l1_ba"}

    # source, translated and cycled rows; no true-pair row (16 px images, 2 px padding)
    assert {p.name for p in result.figures.values()} == {"translation_ab.png",
                                                         "translation_ba.png"}  # fmt: skip
    for path in result.figures.values():
        with Image.open(path) as grid:
            assert grid.size == (8 * (SIDE + 2) + 2, 3 * (SIDE + 2) + 2)

    # the report's CycleGAN section has a table of its own for unpaired domains
    text = tables({"c": {"instance": "c", "family": "cyclegan", "train_seconds": 1.0, **m}})
    assert "unpaired translation" in text and "true pairs" not in text
    assert "| c | shapes:A -> shapes:B |" in text and "| c | shapes:B -> shapes:A |" in text

    # the monitor: FID in the target domain and the cycle error, from held-out images
    trained_recipe.attach_space(space, monitor_samples=20)
    watched = trained_recipe.monitor()
    assert set(watched) == {"fid_ab", "fid_ba", "cycle_l1_a", "cycle_l1_b"}
    assert all(math.isfinite(v) for v in watched.values())
    assert watched["cycle_l1_a"] < 0.25 * before["ab"]["cycle_l1"]


def test_unpaired_generators_export_with_parity_on_their_own_domains(unpaired, tmp_path):
    prepared, prepared_dir = unpaired
    recipe = cyclegan(prepared, prepared_dir, 1)
    real = prepared.test_images[:30].float() / 255  # runs past testA's 24 into testB
    exportables = recipe.exportables(real)
    domains = recipe.domains
    # each graph is checked on its own source domain's images
    assert torch.equal(exportables[0].real_inputs[0], domains.test_a.float() / 255)
    assert torch.equal(exportables[1].real_inputs[0], domains.test_b.float() / 255)
    assert exportables[0].metadata["domain_b"] == "shapes:B"
    for exportable in exportables:
        path = export_onnx(exportable, tmp_path / f"{exportable.name}.onnx")
        assert check_parity(exportable, path, [exportable.real_inputs]) < 1e-4


def test_built_domains_of_a_flat_folder_leave_the_class_metrics_out(tmp_path):
    """A known transform of an unlabelled folder: true pairs but no classes."""
    rng = np.random.default_rng(1)
    (tmp_path / "flat").mkdir()
    for i in range(40):
        red_shapes(rng).save(tmp_path / "flat" / f"{i:03d}.png")
    prepare(DataParams(name="folder", folder=str(tmp_path / "flat"), test_fraction=0.25,
                       prepared_dir=str(tmp_path / "prepared"),
                       domains=DomainParams(transform="invert")))  # fmt: skip
    prepared = load_prepared(tmp_path / "prepared")
    space = unlabelled_space(prepared)
    recipe = cyclegan(prepared, tmp_path / "prepared", 2)
    assert recipe.domains.paired

    m = recipe.evaluate(context(prepared, space, tmp_path / "figures")).metrics

    for d in ("ab", "ba"):
        assert {"l1", "psnr", "ssim", "identity", "cycle_l1", "fid", "fid_true_pairs"} <= set(m[d])
        assert not any("label" in key for key in m[d])
    assert "label_preservation" not in m and m["left_out"] == UNLABELLED_REASON
    assert m["target_met"] == (m["l1_ratio_min"] >= CycleGANParams(**TINY, steps=1).target_l1_ratio)
    recipe.attach_space(space, monitor_samples=10)
    assert set(recipe.monitor()) == {"l1_ab", "l1_ba"}
