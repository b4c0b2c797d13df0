"""SRGAN and its SRResNet baseline: low-resolution inputs, the PixelShuffle generator, the
content loss, the two phases, the srgan instance's phase 1 equal to the srresnet instance,
evaluation and the ONNX graph with dynamic height and width."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch
from pydantic import ValidationError

from genmodels.config import RegisterParams, SRGANParams, TrainParams
from genmodels.data.tiles import grid_crops, mosaic
from genmodels.errors import UserError
from genmodels.export import export_and_check, session_for
from genmodels.metrics.image import psnr, psnr_y, quantise_8bit, ssim_y
from genmodels.models import build_recipe, data_info
from genmodels.models import srgan as srgan_module
from genmodels.models.srgan import bicubic_upscale, content_loss, downsample, random_crops
from genmodels.nn.classifier import Classifier
from genmodels.nn.features import FrozenFeatures, differentiable_extractor
from genmodels.registry import check_gate
from genmodels.report import sample_quality_section, tables
from genmodels.tracking import flatten
from genmodels.training import Batch, Budget, DataInfo, EvalContext, Trainer, TrainOutputs
from genmodels.training.runtime import seed_everything
from helpers import Interrupted, interrupt_at
from sr_helpers import rgb_space, rotation_network, smooth_rgb

TINY = {"family": "srgan", "channels": 8, "blocks": 1, "d_channels": [8, 8], "batch_size": 16,
        "lr": 2e-3, "lr_gan": 1e-3}  # fmt: skip
CPU = torch.device("cpu")


def srresnet(prepared, **overrides):
    params = SRGANParams(**(TINY | {"variant": "srresnet", "steps": 4} | overrides))
    return build_recipe(params, data_info(prepared), CPU)


def srgan(prepared, space=None, **overrides):
    params = SRGANParams(**(TINY | {"pretrain_steps": 2, "steps": 4} | overrides))
    recipe = build_recipe(params, data_info(prepared), CPU)
    if space is not None:
        recipe.attach_space(space, 50)
    return recipe


def batch(prepared, n=16, start=0):
    images = prepared.train_images[start : start + n].float() / 255
    return Batch(images, prepared.train_labels[start : start + n])


def snapshot(module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_downsampling_shapes_and_range(digits_prepared, scale):
    images = digits_prepared.train_images[:32].float() / 255
    images[0] = 0.0
    images[1] = 1.0
    images[2] = (torch.arange(28 * 28).reshape(1, 28, 28) % 2).float()  # a checkerboard rings
    low = downsample(images, scale)
    assert low.shape == (32, 1, 28 // scale, 28 // scale) and low.dtype == torch.float32
    assert low.min() >= 0 and low.max() <= 1
    assert torch.allclose(low[0], torch.zeros_like(low[0]))
    assert torch.allclose(low[1], torch.ones_like(low[1]), atol=1e-6)
    # antialiased: the area average survives (a plain bicubic sample would alias)
    assert torch.allclose(low.mean(dim=(1, 2, 3)), images.mean(dim=(1, 2, 3)), atol=0.06)
    back = bicubic_upscale(low, scale)
    assert back.shape == images.shape and back.min() >= 0 and back.max() <= 1
    with pytest.raises(ValueError, match="does not divide"):
        downsample(torch.rand(1, 1, 27, 28), scale)


@pytest.mark.parametrize("layer", ["block1", "block2", "features"])
def test_content_loss_is_zero_on_identical_inputs_and_positive_otherwise(digits_space, layer):
    features = differentiable_extractor("evaluator", layer, CPU, digits_space.network)
    assert isinstance(features, FrozenFeatures)
    assert not any(p.requires_grad for p in features.parameters())
    features.train()  # a frozen network stays in eval mode (BatchNorm statistics, dropout)
    assert not features.training and not any(m.training for m in features.modules())
    evaluator_grads = [None if p.grad is None else p.grad.clone()
                       for p in digits_space.network.parameters()]  # fmt: skip
    images = digits_space.test_images[:8].float() / 255
    assert content_loss(features, images, images.clone()).item() == 0.0
    blurred = bicubic_upscale(downsample(images, 4), 4).requires_grad_(True)
    loss = content_loss(features, blurred, images)
    assert loss.item() > 0
    loss.backward()  # the gradient reaches the images (the generator), never the evaluator
    assert blurred.grad is not None and blurred.grad.abs().sum() > 0
    after = [p.grad for p in digits_space.network.parameters()]
    assert all(a is b or torch.equal(a, b) for a, b in zip(evaluator_grads, after, strict=True))


def test_content_layers_are_named_by_block(digits_space):
    with pytest.raises(UserError, match="has 2 conv blocks"):
        differentiable_extractor("evaluator", "block3", CPU, digits_space.network)
    with pytest.raises(UserError, match="no evaluator was loaded"):
        differentiable_extractor("evaluator", "block2", CPU, None)


def test_params_tie_the_phases_together():
    with pytest.raises(ValidationError, match="needs pretrain_steps"):
        SRGANParams(family="srgan", variant="srgan", steps=10)
    with pytest.raises(ValidationError, match="leaves no adversarial phase"):
        SRGANParams(family="srgan", variant="srgan", pretrain_steps=10, steps=10)
    with pytest.raises(ValidationError, match="belongs to variant srgan"):
        SRGANParams(family="srgan", variant="srresnet", pretrain_steps=10, steps=20)
    with pytest.raises(ValidationError):
        SRGANParams(family="srgan", variant="srresnet", scale=3, steps=20)


def test_l1_and_a_cosine_rate_in_the_mse_phase(digits_prepared):
    torch.manual_seed(0)
    recipe = srresnet(digits_prepared, pixel_loss="l1", lr_schedule="cosine", steps=4)
    rates, logs = [], []
    for step in range(4):
        logs.append(recipe.training_step(batch(digits_prepared, start=16 * step), step))
        rates.append(recipe.opt_pre.param_groups[0]["lr"])
    # lr/2 (1 + cos(pi t / T)) at t = 0..3 of T = 4
    assert rates == pytest.approx([2e-3, 2e-3 * 0.8535534, 1e-3, 2e-3 * 0.1464466], rel=1e-6)
    assert all(set(log) == {"l1", "mse"} for log in logs)
    # the logged L1 is the step's own loss: mean |G(low) - high| before the update, above the
    # MSE of pixels in [0, 1]
    assert all(log["l1"] > log["mse"] > 0 for log in logs)
    # the rate is a function of the step: a recipe resumed at step 2 uses the same one
    resumed = srresnet(digits_prepared, pixel_loss="l1", lr_schedule="cosine", steps=4)
    resumed.training_step(batch(digits_prepared, start=32), 2)
    assert resumed.opt_pre.param_groups[0]["lr"] == pytest.approx(1e-3)
    with pytest.raises(ValidationError, match="lr_schedule cosine anneals over a phase in steps"):
        SRGANParams(family="srgan", variant="srresnet", epochs=2, lr_schedule="cosine")


def test_the_phase_switches_at_pretrain_steps(digits_prepared, digits_space):
    torch.manual_seed(0)
    recipe = srgan(digits_prepared, digits_space)
    assert recipe.needs_space and set(recipe.optimizers()) == {"pretrain", "generator",
                                                                "discriminator"}  # fmt: skip
    d_before = snapshot(recipe.discriminator)
    logs = [recipe.training_step(batch(digits_prepared, start=16 * s), s) for s in range(2)]
    assert all(set(log) == {"mse"} for log in logs)
    assert same(d_before, snapshot(recipe.discriminator))  # D waits for phase 2
    phase1 = snapshot(recipe.generator)
    log = recipe.training_step(batch(digits_prepared, start=32), 2)
    assert set(log) == {"d_loss", "d_real", "d_fake", "g_loss", "g_content", "g_adversarial",
                        "g_mse"}  # fmt: skip
    assert all(torch.isfinite(v) for v in log.values())
    expected = recipe.params.content_weight * log["g_content"] + 1e-3 * log["g_adversarial"]
    assert log["g_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    # the SRResNet weights are kept at the switch; generator and D learn on
    assert same(phase1, snapshot(recipe.srresnet))
    assert not same(phase1, snapshot(recipe.generator))
    assert not same(d_before, snapshot(recipe.discriminator))
    assert recipe.opt_pre.state_dict()["state"][0]["step"] == 2  # the MSE optimiser is done


def test_srresnet_is_mse_for_the_whole_budget_and_learns(digits_prepared):
    torch.manual_seed(0)
    recipe = srresnet(digits_prepared)
    assert not recipe.needs_space and set(recipe.modules()) == {"generator"}
    before = snapshot(recipe.generator)
    logs = [recipe.training_step(batch(digits_prepared), s) for s in (0, 1, 500)]
    assert all(set(log) == {"mse"} for log in logs)
    assert not same(before, snapshot(recipe.generator))


def test_adversarial_phase_needs_the_content_features(digits_prepared):
    recipe = srgan(digits_prepared, pretrain_steps=0)
    with pytest.raises(UserError, match="content loss needs the evaluator"):
        recipe.training_step(batch(digits_prepared), 0)


# -- hr_crop: training on random patches -----------------------------------------------------------
def test_random_crops_are_patches_of_each_image_at_drawn_places():
    # each pixel holds its own coordinates: 100 * row + column
    images = (100 * torch.arange(20)[:, None] + torch.arange(24)).float().expand(6, 2, 20, 24)
    crops = random_crops(images, 8, torch.Generator().manual_seed(0))
    assert crops.shape == (6, 2, 8, 8) and crops.is_contiguous()
    tops, lefts = crops[:, 0, 0, 0] // 100, crops[:, 0, 0, 0] % 100
    for i in range(6):
        top, left = int(tops[i]), int(lefts[i])
        assert 0 <= top <= 12 and 0 <= left <= 16
        assert torch.equal(crops[i], images[i, :, top : top + 8, left : left + 8])
    assert len(set(zip(tops.tolist(), lefts.tolist(), strict=True))) > 1  # a place per image
    again = random_crops(images, 8, torch.Generator().manual_seed(0))
    assert torch.equal(again, crops)
    square = images[:, :, :, :20]  # a crop of the whole side has one place
    assert torch.equal(random_crops(square, 20, torch.Generator()), square)


def test_hr_crop_trains_on_seeded_patches_repeatably(digits_prepared):
    images = batch(digits_prepared).images
    seed_everything(0)
    recipe = srgan(digits_prepared, hr_crop=16)
    crops = recipe.training_images(images, 0)
    assert crops.shape == (16, 1, 16, 16)
    # the discriminator judges the crops: 16 -> 8 -> 4 at d_channels [8, 8]
    assert recipe.discriminator.net[-1].in_features == 8 * 4 * 4
    seed_everything(0)
    again = srgan(digits_prepared, hr_crop=16)
    assert torch.equal(again.training_images(images, 0), crops)  # the same seed and step
    assert not torch.equal(recipe.training_images(images, 1), crops)  # a new step, new places
    seed_everything(1)
    other = srgan(digits_prepared, hr_crop=16)
    assert not torch.equal(other.training_images(images, 0), crops)  # another run's seed
    assert srgan(digits_prepared).training_images(images, 0) is images  # null: whole images
    # the MSE steps run on the crops' low-resolution 4x4 versions: the same weights twice
    for run in (recipe, again):
        for step in range(2):
            run.training_step(batch(digits_prepared, start=16 * step), step)
    assert same(snapshot(recipe.generator), snapshot(again.generator))


def test_augment_turns_and_flips_each_batch_by_a_symmetry_of_the_square(digits_prepared):
    images = batch(digits_prepared).images
    seed_everything(0)
    recipe = srresnet(digits_prepared, augment=True)
    symmetries = [torch.rot90(images, k, dims=(2, 3)) for k in range(4)]
    symmetries += [s.flip(3) for s in symmetries]
    seen = set()
    for step in range(24):
        out = recipe.training_images(images, step)
        matches = [i for i, s in enumerate(symmetries) if torch.equal(out, s)]
        assert len(matches) == 1  # one whole symmetry of the batch, never a blend
        seen.add(matches[0])
        assert torch.equal(recipe.training_images(images, step), out)  # the step decides
    assert len(seen) >= 6  # all eight come up
    assert srresnet(digits_prepared).training_images(images, 0) is images  # off by default


def test_srgan_with_hr_crop_trains_both_phases_and_upscales_whole_images(digits_prepared,
                                                                        digits_space):  # fmt: skip
    seed_everything(0)
    recipe = srgan(digits_prepared, digits_space, hr_crop=12, scale=4)
    logs = [recipe.training_step(batch(digits_prepared, start=16 * s), s) for s in range(3)]
    assert set(logs[0]) == {"mse"} and "d_loss" in logs[2]
    assert all(torch.isfinite(v) for log in logs for v in log.values())
    whole = batch(digits_prepared).images
    assert recipe.upscale(downsample(whole, 4)).shape == whole.shape
    (exportable,) = recipe.exportables()
    assert "trained at 3x3" in exportable.doc


def train(prepared, root, space=None, fail_at=None, **params):
    """The Trainer on 160 digits, as the train stage runs it (same seed for every call)."""
    seed_everything(0)
    build = srresnet if params.pop("variant", "srgan") == "srresnet" else srgan
    recipe = build(prepared, **params)
    if space is not None:
        recipe.attach_space(space, 50)
    interrupt_at(recipe, fail_at)  # an interruption after a checkpoint was written
    trainer = Trainer(
        recipe, prepared.train_images[:160], prepared.train_labels[:160],
        budget=Budget(steps=params["steps"]), batch_size=16,
        settings=TrainParams(log_every=2, checkpoint_every=4, progress="log"),
        outputs=TrainOutputs.for_instance("sr", "checkpoints", root=root), fingerprint="sr",
    )  # fmt: skip
    return trainer.fit(), recipe


def test_srgan_phase1_is_the_srresnet_instance(digits_prepared, digits_space, tmp_path):
    # two instances, as params.yaml has them: srresnet for 6 steps; srgan with the same params
    # and seed, 6 pretraining steps, then 3 adversarial ones
    _, baseline = train(digits_prepared, tmp_path / "a", variant="srresnet", steps=6)
    final, sr = train(digits_prepared, tmp_path / "b", digits_space, pretrain_steps=6, steps=9)
    assert same(snapshot(baseline.generator), snapshot(sr.srresnet))
    assert not same(snapshot(baseline.generator), snapshot(sr.generator))
    assert {"mse", "g_content", "d_loss"} <= set(final)


def test_interrupted_srgan_resumes_to_the_same_weights(digits_prepared, digits_space, tmp_path):
    _, straight = train(digits_prepared, tmp_path / "a", digits_space, pretrain_steps=3, steps=10)
    with pytest.raises(Interrupted):
        train(digits_prepared, tmp_path / "b", digits_space, fail_at=9, pretrain_steps=3, steps=10)
    assert (tmp_path / "b/checkpoints/sr/last.pt").exists()  # at step 8, after the switch
    _, resumed = train(digits_prepared, tmp_path / "b", digits_space, pretrain_steps=3, steps=10)
    for name, module in straight.modules().items():
        assert same(snapshot(module), snapshot(resumed.modules()[name])), name


def test_monitor_watches_psnr_and_accuracy(digits_prepared, digits_space):
    recipe = srgan(digits_prepared, digits_space)
    watched = recipe.monitor()
    assert set(watched) == {"psnr", "accuracy"}
    assert 0 < watched["psnr"] < 100 and 0 <= watched["accuracy"] <= 1
    assert recipe.generator.training  # the monitor restores the training mode


def test_evaluate_puts_bicubic_and_the_model_side_by_side(digits_prepared, digits_space, tmp_path):
    torch.manual_seed(0)
    recipe = srgan(digits_prepared, digits_space)
    for step in range(4):
        recipe.training_step(batch(digits_prepared, start=16 * step), step)
    d = digits_prepared
    ctx = EvalContext(
        train_images=d.train_images, train_labels=d.train_labels, test_images=d.test_images,
        test_labels=d.test_labels, figures_dir=tmp_path, batch_size=128, n_grid=6,
        ssim_window=11, ssim_sigma=1.5, seed=0, device=CPU, space=digits_space,
    )  # fmt: skip
    result = recipe.evaluate(ctx)
    m = result.metrics
    judged = {"psnr", "ssim", "mse", "fid", "accuracy", "psnr_y", "ssim_y", "perceptual_distance",
              "perceptual_by_block"}  # fmt: skip
    assert judged <= set(m) and set(m["bicubic"]) == set(m["model"]) == set(m["phase1"]) == judged
    for row in ("bicubic", "phase1", "model"):  # each evaluator block's share of the distance
        by_block = m[row]["perceptual_by_block"]
        assert list(by_block) == m["perceptual_layers"]
        assert sum(by_block.values()) == pytest.approx(m[row]["perceptual_distance"], rel=1e-5)
    assert m["scale"] == 4 and m["low_res"] == [7, 7] and m["variant"] == "srgan"
    assert m["psnr"] == m["model"]["psnr"] and m["psnr_y"] == m["model"]["psnr_y"]
    assert m["psnr_gain"] == pytest.approx(m["psnr"] - m["bicubic"]["psnr"])
    assert 0 <= m["hr_accuracy"] <= 1 and m["hr_accuracy"] >= m["bicubic"]["accuracy"]
    # grayscale: the image is its own luma, so PSNR_y is the PSNR of the 8-bit images with the
    # 4-pixel border cropped
    bicubic = bicubic_upscale(downsample(d.test_images.float() / 255, 4), 4)
    cropped = psnr(quantise_8bit(bicubic)[..., 4:-4, 4:-4], d.test_images[..., 4:-4, 4:-4] / 255)
    assert m["bicubic"]["psnr_y"] == pytest.approx(cropped.double().mean().item(), abs=1e-4)
    assert m["border"] == 4 and m["perceptual_layers"] == ["block1", "block2"]
    assert m["feature_space"] == "evaluator"
    assert m["psnr_y_gain"] == pytest.approx(m["psnr_y"] - m["bicubic"]["psnr_y"])
    # the target: the SRResNet is this srgan's phase 1
    t = m["target"]
    assert t["srresnet"] == "phase1" and t["psnr_y_gain_min"] == 1.0
    assert t["psnr_y_gain_over_bicubic"] == pytest.approx(
        m["phase1"]["psnr_y"] - m["bicubic"]["psnr_y"]
    )
    assert t["perceptual_gain_over_srresnet"] == pytest.approx(
        m["phase1"]["perceptual_distance"] - m["perceptual_distance"]
    )
    assert t["met"] == (t["psnr_y_gain_over_bicubic"] >= 1.0
                        and t["perceptual_gain_over_srresnet"] > 0)  # fmt: skip
    (caption, path) = next(iter(result.figures.items()))
    assert "LR (nearest) / bicubic / SRResNet (phase 1) / SRGAN / HR" in caption
    assert path.read_bytes()[:4] == b"\x89PNG"
    # the report: its own table, kept out of the sample-quality table (FID against HR images)
    evals = {"sr": {"family": "srgan", "train_seconds": 1.0, **m}}
    report = tables(evals, reference={"fid": 0.2})
    assert "SRGAN: super-resolution against bicubic" in report
    assert report.count("| sr | srgan | 4 |") == 3  # bicubic, phase 1, the model
    assert "| accuracy | HR accuracy | PSNR_y | SSIM_y | perceptual dist. | train s |" in report
    assert "## SRGAN: target" in report and "| sr | phase1 |" in report
    assert sample_quality_section(evals, None).count("| sr |") == 0


def test_onnx_generator_has_dynamic_height_and_width(digits_prepared, tmp_path):
    torch.manual_seed(0)
    recipe = srresnet(digits_prepared)
    recipe.training_step(batch(digits_prepared), 0)
    real = digits_prepared.test_images[:5].float() / 255
    (exportable,) = recipe.exportables(real)
    assert exportable.metadata | {"family": "srgan"} == {
        "family": "srgan", "task": "upscale", "scale": "4", "variant": "srresnet",
        "pixel_range": "0,1",
    }  # fmt: skip
    report = export_and_check([exportable], tmp_path, opset=18, atol=1e-4, real_batch=4)
    entry = report["generator"]
    assert entry["max_abs_diff"] <= 1e-4
    assert entry["inputs"] == ["image"] and entry["outputs"] == ["high_res"]
    # parity was checked at the training size and at others (14x14 and non-square)
    assert {(7, 7), (14, 14), (10, 14)} <= {tuple(s[2:]) for s in entry["checked_shapes"]}
    graph = onnx.load(entry["path"]).graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "height", "width"]
    session = session_for(entry["path"])
    for shape in [(1, 1, 14, 14), (3, 1, 7, 7), (2, 1, 5, 9)]:
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        (out,) = session.run(None, {"image": x})
        assert out.shape == (shape[0], 1, 4 * shape[2], 4 * shape[3])
        with torch.no_grad():
            want = recipe.generator.upscale(torch.from_numpy(x)).numpy()
        assert np.abs(out - want).max() <= 1e-4


# -- RGB data, with and without labels ------------------------------------------------------------
@pytest.fixture(scope="module")
def rgb_data():
    train, test = smooth_rgb(96, 0), smooth_rgb(64, 1)
    labels = torch.arange(96) % 4, torch.arange(64) % 4
    return train, test, labels


@pytest.fixture(scope="module")
def rgb_network(rgb_data) -> Classifier:
    return rotation_network(rgb_data[0])


def rgb_context(rgb_data, space, tmp_path, batch_size=16, test_grids=None) -> EvalContext:
    train, test, (train_labels, test_labels) = rgb_data
    return EvalContext(
        train_images=train, train_labels=train_labels, test_images=test, test_labels=test_labels,
        figures_dir=tmp_path, batch_size=batch_size, n_grid=4, ssim_window=11, ssim_sigma=1.5,
        seed=0, device=CPU, space=space, test_grids=test_grids,
    )  # fmt: skip


def rgb_srgan(rgb_data, space, **overrides):
    seed_everything(0)
    info = DataInfo(dataset="smooth", image_shape=(3, 32, 32), num_classes=space.num_classes)
    params = SRGANParams(**(TINY | {"pretrain_steps": 2, "steps": 4} | overrides))
    recipe = build_recipe(params, info, CPU)
    recipe.attach_space(space, 8)
    train = rgb_data[0]
    for step in range(4):
        recipe.training_step(Batch(train[16 * step : 16 * step + 16].float() / 255,
                                   torch.zeros(16, dtype=torch.long)), step)  # fmt: skip
    return recipe


@pytest.mark.parametrize("labelled", [False, True])
def test_rgb_evaluation_with_and_without_labels(rgb_data, rgb_network, tmp_path, labelled):
    space = rgb_space(rgb_data, rgb_network, labelled)
    # trained on 16x16 patches, judged on whole 32x32 images: fully convolutional
    recipe = rgb_srgan(rgb_data, space, hr_crop=16)
    m = recipe.evaluate(rgb_context(rgb_data, space, tmp_path)).metrics
    literature = {"psnr_y", "ssim_y", "perceptual_distance"}
    for row in ("bicubic", "phase1", "model"):
        assert literature <= set(m[row]), row
        assert all(math.isfinite(m[row][k]) for k in literature | {"psnr", "ssim", "fid"})
        assert ("accuracy" in m[row]) == labelled
    assert ("hr_accuracy" in m) == ("accuracy" in m) == labelled
    assert m["low_res"] == [8, 8] and m["border"] == 4 and len(m["perceptual_layers"]) == 3
    assert m["bicubic"]["perceptual_distance"] > 0 and 0 < m["ssim_y"] <= 1
    assert list(m["model"]["perceptual_by_block"]) == ["block1", "block2", "block3"]
    assert set(m["target"]) == {"srresnet", "psnr_y_gain_over_bicubic", "psnr_y_gain_min",
                                "perceptual_gain_over_srresnet", "met"}  # fmt: skip
    assert set(recipe.monitor()) == ({"psnr", "accuracy"} if labelled else {"psnr"})
    # the report's table: the accuracy columns only where there are labels
    report = tables({"sr": {"family": "srgan", "train_seconds": 1.0, **m}})
    assert ("| accuracy | HR accuracy |" in report) == labelled
    assert "| PSNR_y | SSIM_y | perceptual dist. |" in report
    # the family's gate refuses (never crashes) on data without labels: accuracy is missing
    gate = check_gate(m, RegisterParams().gate_for("srgan"), "srgan")
    assert ("accuracy: not in the metrics file" in gate.reasons) == (not labelled)


def test_rgb_evaluation_in_chunks_equals_it_whole(rgb_data, rgb_network, tmp_path, monkeypatch):
    space = rgb_space(rgb_data, rgb_network, labelled=True)
    recipe = rgb_srgan(rgb_data, space)
    whole = recipe.evaluate(rgb_context(rgb_data, space, tmp_path)).metrics
    # 20 images a chunk and 2 a forward pass (what large images get)
    monkeypatch.setattr(srgan_module, "EVAL_CHUNK_VALUES", 20 * 3 * 32 * 32)
    monkeypatch.setattr(srgan_module, "FORWARD_VALUES", 2 * 3 * 32 * 32)
    chunked = recipe.evaluate(rgb_context(rgb_data, space, tmp_path, batch_size=64)).metrics
    flat_whole, flat_chunked = flatten(whole), flatten(chunked)
    assert flat_whole.keys() == flat_chunked.keys()
    for key, value in flat_whole.items():
        if isinstance(value, float):
            assert flat_chunked[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
        else:
            assert flat_chunked[key] == value, key


def test_tiles_of_whole_images_are_upscaled_whole_and_judged_per_image(
    rgb_data, rgb_network, tmp_path
):
    """resize crops: the test tiles are made whole again (the manifest's test_tiles), each
    image is downsampled and upscaled whole, and PSNR_y/SSIM_y are the means over images."""
    space = rgb_space(rgb_data, rgb_network, labelled=False)
    recipe = rgb_srgan(rgb_data, space, hr_crop=16)
    grids = [(2, 2)] * 16  # the 64 test images as the tiles of 16 images of 64x64
    m = recipe.evaluate(rgb_context(rgb_data, space, tmp_path, test_grids=grids)).metrics
    assert m["n_test"] == 64 and m["test_images"] == 16 and "measured_on" in m
    test = rgb_data[1].float() / 255
    wholes = [mosaic(test[4 * i : 4 * i + 4], 2, 2)[None] for i in range(16)]
    methods = {
        "bicubic": lambda low: bicubic_upscale(low, 4),
        "model": recipe.upscale,
        "phase1": lambda low: recipe.upscale(low, generator=recipe.srresnet),
    }
    for row, upscale in methods.items():
        ups = [upscale(downsample(whole, 4)) for whole in wholes]
        expected_psnr = torch.cat([psnr_y(u, w, 4) for u, w in zip(ups, wholes, strict=True)])
        expected_ssim = torch.cat([ssim_y(u, w, 4) for u, w in zip(ups, wholes, strict=True)])
        assert m[row]["psnr_y"] == pytest.approx(expected_psnr.double().mean().item(), rel=1e-6)
        assert m[row]["ssim_y"] == pytest.approx(expected_ssim.double().mean().item(), rel=1e-6)
        # the tile metrics read the tiles of the whole upscaled images
        tiles = torch.cat([grid_crops(u[0], 32) for u in ups])
        assert m[row]["psnr"] == pytest.approx(psnr(tiles, test).mean().item(), rel=1e-5)
    # cut apart, the same images lose their context: the tile-wise numbers differ
    apart = recipe.evaluate(rgb_context(rgb_data, space, tmp_path)).metrics
    assert "test_images" not in apart and apart["model"]["psnr"] != m["model"]["psnr"]
