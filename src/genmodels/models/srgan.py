"""SRGAN (Ledig et al. 2017; lecture 3.3): super-resolution as a GAN conditioned on the image
itself, from a low-resolution image to its high-resolution original.

Low-resolution inputs are the prepared images downsampled by bicubic interpolation (antialiased)
by `scale` (4: 7x7 -> 28x28, the paper's 4x; or 2); with `hr_crop`, training takes one seeded
random hr_crop x hr_crop patch of each image first, as the paper's 96x96 crops. The generator is
an SRResNet: residual blocks at low resolution with a long skip connection, then PixelShuffle
up-sampling. One family, two variants:

- `srresnet`: the generator alone, trained with pixel MSE (the paper's SRResNet baseline);
- `srgan`: the same MSE pre-training for `pretrain_steps` steps (with the same params and seed,
  exactly the srresnet instance: DVC cannot make one instance depend on another's weights), then
  fine-tuning with a content loss on feature maps plus `adversarial_weight` times the generator's
  adversarial loss against a conv discriminator. The paper's content loss uses VGG19 features;
  no ImageNet weights can be downloaded here, so the pipeline's own evaluator stands in, through
  the same pluggable choice as the metrics (genmodels.nn.features.differentiable_extractor).

Both are judged beside bicubic up-sampling: PSNR, SSIM, FID against the high-resolution test
images in the evaluator's feature space, the evaluator's accuracy on the upscaled images (data
with labels only), and the SR literature's PSNR_y and SSIM_y (BT.601 luma, `scale` pixels of
border cropped) with a perceptual distance through the evaluator's conv blocks.
The exported generator is DeployedSRResNet: the same function rearranged so that no conv runs
at full resolution (checked against the trained network at export).
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genmodels.config import EVALUATOR, SRGANParams
from genmodels.data.tiles import grid_crops, mosaic
from genmodels.errors import UserError
from genmodels.figures import save_rows
from genmodels.metrics.fid import fid
from genmodels.metrics.image import psnr, psnr_y, reconstruction_quality, ssim_y
from genmodels.metrics.perceptual import layer_distances, summed
from genmodels.nn.adversarial import (
    discriminator_loss,
    discriminator_probability,
    frozen,
    generator_loss,
    with_spectral_norm,
)
from genmodels.nn.batching import map_batches
from genmodels.nn.features import block_activations, differentiable_extractor
from genmodels.nn.srresnet import DeployedSRResNet, SRDiscriminator, SRResNet
from genmodels.training.recipe import (
    Batch,
    DataInfo,
    EvalContext,
    EvalResult,
    Exportable,
    Recipe,
    unwrap,
)
from genmodels.training.runtime import adam

# The photo profile's target (issue 21): the SRResNet's PSNR_y at least this many dB over bicubic
TARGET_PSNR_Y_GAIN = 1.0
# the metric key of one evaluator block's share of the perceptual distance, before the block number
BLOCK_KEY = "perceptual_block"
# Evaluation holds one chunk of the test set at a time, about this many float values per copy of
# its high-resolution images (256 MB; five copies live: HR, LR, bicubic, model, phase 1); a test
# set that fits (Fashion-MNIST's 10,000 at 28x28) is one chunk and keeps its exact numbers
EVAL_CHUNK_VALUES = 2**26
# and runs a network on at most this many input values at once (evaluate.batch_size caps it
# too): 151 96x96 RGB crops or one 1024x1024 photo, whose full-resolution activations in the
# SRResNet's tail and the evaluator's first block stay well under a GB
FORWARD_VALUES = 2**22


def images_per(values: int, shape: tuple[int, ...]) -> int:
    """How many images of `shape` make about `values` values (at least one)."""
    return max(1, values // math.prod(shape))


def pooled(parts: list[tuple[dict[str, float], int]]) -> dict[str, float]:
    """Means over chunks, weighted by their sizes. One chunk's numbers are returned as they are:
    a weighted mean of one would round them anew."""
    if len(parts) == 1:
        return dict(parts[0][0])
    total = sum(n for _, n in parts)
    return {k: sum(found[k] * n for found, n in parts) / total for k in parts[0][0]}


def downsample(images: Tensor, scale: int) -> Tensor:
    """Low-resolution images: bicubic, antialiased interpolation by 1/scale, clamped to [0, 1]."""
    h, w = images.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"a {h}x{w} image does not divide by the scale {scale}")
    low = F.interpolate(
        images, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False
    )
    return low.clamp(0.0, 1.0)


def random_crops(images: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """One size x size patch of each image at a random place drawn from `generator` (CPU)."""
    n, _, h, w = images.shape
    tops = torch.randint(h - size + 1, (n,), generator=generator)
    lefts = torch.randint(w - size + 1, (n,), generator=generator)
    offsets = torch.arange(size)
    rows = (tops[:, None] + offsets).to(images.device)  # [n, size]
    cols = (lefts[:, None] + offsets).to(images.device)
    picked = torch.arange(n, device=images.device)[:, None, None]
    # the indexed dims come first, then the channels: [n, size, size, C]
    return images[picked, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def bicubic_upscale(images: Tensor, scale: int) -> Tensor:
    """The baseline: bicubic interpolation back up by `scale`, clamped to [0, 1]."""
    h, w = images.shape[-2:]
    up = F.interpolate(images, size=(h * scale, w * scale), mode="bicubic", align_corners=False)
    return up.clamp(0.0, 1.0)


def content_loss(features: nn.Module, images: Tensor, targets: Tensor) -> Tensor:
    """The paper's content loss: mean squared distance of the feature maps of two image sets;
    the targets' features carry no gradient."""
    with torch.no_grad():
        wanted = features(targets)
    return F.mse_loss(features(images), wanted)


class SRGANRecipe(Recipe):
    def __init__(self, params: SRGANParams, data: DataInfo, device: torch.device):
        super().__init__(params, data, device)
        c, h, w = data.image_shape  # a scale or hr_crop it cannot take: config.check_shape
        self.scale = params.scale
        # the training batches' high-resolution images: whole, or one hr_crop patch of each
        crop = params.hr_crop
        self.hr_shape = (c, h, w) if crop is None else (c, crop, crop)
        # the crops' places: a function of the run's seed (train.seed; seed_everything runs before
        # the recipe is built) and the step, so that a resumed run draws the same; under torchrun
        # each process draws its own
        dist = torch.distributed
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        self.crop_seed = torch.initial_seed() % 2**62 + 1009 * rank
        self.generator = SRResNet(
            params.scale, params.channels, params.blocks, c, shared_slopes=params.prelu == "shared"
        ).to(device)
        betas = tuple(params.betas)
        decay = params.weight_decay
        self.opt_pre = adam(
            self.generator.parameters(), lr=params.lr, betas=betas, weight_decay=decay
        )
        self.adversarial = params.variant != "srresnet"  # the SRGAN variant: a second phase
        self.content: nn.Module | None = None  # the frozen feature network of the content loss
        self.needs_space = self.adversarial and params.content_features == EVALUATOR
        if self.adversarial:
            # made after the generator: its initial weights are the srresnet instance's
            # the phase-1 weights, kept at the switch (the SRResNet this SRGAN started from)
            self.srresnet = copy.deepcopy(self.generator).requires_grad_(False)
            self.discriminator = SRDiscriminator(self.hr_shape, params.d_channels)
            if params.spectral_norm:
                with_spectral_norm(self.discriminator)
            self.discriminator.to(device)
            self.opt_g = adam(
                self.generator.parameters(), lr=params.lr_gan, betas=betas, weight_decay=decay
            )
            self.opt_d = adam(
                self.discriminator.parameters(), lr=params.lr_d or params.lr_gan, betas=betas
            )
            if params.content_features != EVALUATOR:
                self.content = differentiable_extractor(
                    params.content_features, params.content_layer, device
                )

    # -- the Recipe contract ------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        found = {"generator": self.generator}
        if self.adversarial:
            found |= {"srresnet": self.srresnet, "discriminator": self.discriminator}
        return found

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        found = {"pretrain": self.opt_pre}
        if self.adversarial:
            found |= {"generator": self.opt_g, "discriminator": self.opt_d}
        return found

    def attach_space(self, space, monitor_samples: int) -> None:
        super().attach_space(space, monitor_samples)
        if self.needs_space:  # the content loss in the evaluator's features
            self.content = differentiable_extractor(
                EVALUATOR, self.params.content_layer, self.device, getattr(space, "network", None)
            )

    def in_pretraining(self, step: int) -> bool:
        """Phase 1 (pixel MSE): the whole budget of srresnet, the first pretrain_steps of srgan."""
        return not self.adversarial or step < self.params.pretrain_steps

    def training_images(self, images: Tensor, step: int) -> Tensor:
        """The high-resolution images of training step `step`: the batch's, or one hr_crop patch
        of each, turned and flipped with `augment`; the draws come from a generator seeded by the
        run's seed and the step."""
        crop = self.params.hr_crop
        generator = torch.Generator().manual_seed((self.crop_seed * 1_000_003 + step) % 2**63)
        if crop is not None:
            images = random_crops(images, crop, generator)
        if self.params.augment:  # one of the square's 8 symmetries for the whole batch
            symmetry = int(torch.randint(8, (), generator=generator))
            images = torch.rot90(images, symmetry % 4, dims=(2, 3))
            images = images.flip(3) if symmetry >= 4 else images
        return images

    def pixel_loss(self, images: Tensor, targets: Tensor) -> Tensor:
        if self.params.pixel_loss == "l1":
            return F.l1_loss(images, targets)
        return F.mse_loss(images, targets)

    def pretrain_lr(self, step: int) -> float:
        """The MSE phase's rate at `step`: a function of the step alone, so a resumed run
        continues the same schedule."""
        p = self.params
        if p.lr_schedule == "constant":
            return p.lr
        phase = p.steps if p.pretrain_steps is None else p.pretrain_steps
        return 0.5 * p.lr * (1.0 + math.cos(math.pi * step / max(phase, 1)))

    def training_step(self, batch: Batch, step: int) -> dict[str, Tensor]:
        high = self.training_images(batch.images, step)
        low = downsample(high, self.scale)
        if self.in_pretraining(step):
            if self.params.lr_schedule != "constant":
                for group in self.opt_pre.param_groups:
                    group["lr"] = self.pretrain_lr(step)
            upscaled = self.generator(low)
            loss = self.pixel_loss(upscaled, high)
            self.opt_pre.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_pre.step()
            if self.params.pixel_loss == "mse":
                return {"mse": loss.detach()}
            # the MSE logged all the same: the plots and the PSNR read it
            return {"l1": loss.detach(), "mse": F.mse_loss(upscaled.detach(), high)}
        if step == self.params.pretrain_steps:  # the switch: keep the SRResNet weights
            self.srresnet.load_state_dict(unwrap(self.generator).state_dict())
        return self._adversarial_step(low, high)

    def _adversarial_step(self, low: Tensor, high: Tensor) -> dict[str, Tensor]:
        p = self.params
        if self.content is None:
            raise UserError(
                "SRGAN's content loss needs the evaluator's features: attach the evaluator "
                "space first (the train stage does; run `dvc repro evaluate_evaluator`)"
            )
        fake = self.generator(low)
        d_real = self.discriminator(high)
        d_fake = self.discriminator(fake.detach())
        d_loss = discriminator_loss(p.loss, d_real, d_fake)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        with frozen(self.discriminator):
            content = content_loss(self.content, fake, high)
            adversarial = generator_loss(p.loss, self.discriminator(fake))
            pixel = self.pixel_loss(fake, high)
            g_loss = (
                p.content_weight * content
                + p.adversarial_weight * adversarial
                + p.pixel_weight * pixel
            )
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
        self.opt_g.step()
        return {
            "d_loss": d_loss.detach(),
            "d_real": discriminator_probability(p.loss, d_real.detach()),
            "d_fake": discriminator_probability(p.loss, d_fake.detach()),
            "g_loss": g_loss.detach(),
            "g_content": content.detach(),
            "g_adversarial": adversarial.detach(),
            f"g_{p.pixel_loss}": pixel.detach(),
        }

    @torch.no_grad()
    def upscale(self, low: Tensor, batch_size: int = 1000, generator: nn.Module | None = None,
                ) -> Tensor:  # fmt: skip
        """[0, 1] low-resolution images through a generator (default: the trained one), on the
        CPU; eval mode for the call, the module's mode restored."""
        generator = unwrap(self.generator if generator is None else generator)
        was_training = generator.training
        generator.eval()
        out = map_batches(generator.upscale, low, batch_size, self.device)
        generator.train(was_training)
        return out

    def monitor(self) -> dict[str, float]:
        """PSNR and (on labelled data) the evaluator's accuracy on fixed held-out images upscaled
        by the generator."""
        if self.space is None:
            return {}
        high = self.space.test_images[: self.monitor_samples].float() / 255.0
        labels = self.space.reference.test_labels[: len(high)]
        upscaled = self.upscale(downsample(high, self.scale))
        return {
            "psnr": psnr(upscaled, high).mean().item(),
            **self.space.class_accuracy("accuracy", upscaled, labels),
        }

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, ctx: EvalContext) -> EvalResult:
        """Bicubic and the generator side by side on the test set; FID against the
        high-resolution test images (not the training set) in the evaluator's feature space.

        Besides whole-image PSNR/SSIM on [0, 1] pixels, the SR literature's numbers: PSNR_y and
        SSIM_y (genmodels.metrics.image.psnr_y: BT.601 luma of 8-bit images, `scale` pixels of
        border cropped) and an LPIPS-style perceptual_distance through the evaluator's conv
        blocks (genmodels.metrics.perceptual). The test set goes through in chunks, so that
        large images fit in memory; one that fits whole is one chunk.
        """
        self.train(False)
        space, s = ctx.space, self.scale
        test, test_labels = ctx.test_images, ctx.test_labels
        shape = tuple(test.shape[1:])
        batch = min(ctx.batch_size, images_per(FORWARD_VALUES, shape))
        chunk = images_per(EVAL_CHUNK_VALUES, shape)
        blocks = None if space.network is None else block_activations(space.network, ctx.device)
        generators: dict[str, nn.Module | None] = {"model": None}
        if self.adversarial:  # the SRResNet it was fine-tuned from: its own phase-1 weights
            generators["phase1"] = self.srresnet
        parts: dict[str, list] = {name: [] for name in ("bicubic", *generators)}
        features: dict[str, list[Tensor]] = {name: [] for name in ("high", *parts)}
        # tiles of whole images: each image upscaled whole, its PSNR_y and SSIM_y per image
        whole: dict[str, list[dict[str, float]]] | None = None
        if ctx.test_grids is None:
            pieces = [(i, min(i + chunk, len(test)), None) for i in range(0, len(test), chunk)]
        else:
            whole = {name: [] for name in parts}
            ends = torch.tensor([r * c for r, c in ctx.test_grids]).cumsum(0).tolist()
            pieces = list(zip([0, *ends[:-1]], ends, ctx.test_grids, strict=True))
        hr_accuracy, grid = [], {}
        for start, stop, tiles in pieces:
            high = test[start:stop].float() / 255.0
            labels = test_labels[start:stop]
            if tiles is None:
                low = downsample(high, s)
                outputs = {"bicubic": bicubic_upscale(low, s)}
                outputs |= {name: self.upscale(low, batch, g) for name, g in generators.items()}
            else:
                low, outputs = self._upscale_whole(ctx, high, tiles, generators, whole)
            features["high"].append(space.features(high))
            hr_accuracy.append((space.class_accuracy("hr_accuracy", high, labels), len(high)))
            for name, images in outputs.items():
                features[name].append(space.features(images))
            judged_chunk = self._judge(ctx, high, outputs, labels, batch, blocks)
            for name, found in judged_chunk.items():
                parts[name].append((found, len(high)))
            if not grid:
                grid = {name: images[: ctx.n_grid] for name, images in outputs.items()}
                grid |= {"low": low[: ctx.n_grid], "high": high[: ctx.n_grid]}
        high_features = torch.cat(features["high"])

        def judged(name: str) -> dict[str, float]:
            found = pooled(parts[name])
            if whole is not None:  # the literature's: each whole image counts once
                found |= {
                    k: sum(w[k] for w in whole[name]) / len(whole[name]) for k in whole[name][0]
                }
            found["fid"] = fid(torch.cat(features[name]), high_features)
            # each block's share of the perceptual distance: which features a model is close in
            by_block = {k.removeprefix("perceptual_"): found.pop(k)
                        for k in list(found) if k.startswith(BLOCK_KEY)}  # fmt: skip
            if by_block:
                found["perceptual_by_block"] = by_block
            # the earlier metrics first, in their order, then the SR literature's
            order = ("psnr", "ssim", "mse", "fid", "accuracy")
            return {k: found[k] for k in order if k in found} | {
                k: v for k, v in found.items() if k not in order
            }

        model = judged("model")
        c, h, w = shape
        metrics = {
            "variant": self.params.variant,
            "scale": s,
            "low_res": [h // s, w // s],
            "n_test": len(test),
            **self._measured_on(ctx),
            **model,  # the model's own numbers at the top level: the registry's gate
            "bicubic": judged("bicubic"),
            "model": model,
            **pooled(hr_accuracy),
        }
        metrics["psnr_gain"] = model["psnr"] - metrics["bicubic"]["psnr"]
        if self.adversarial:
            metrics["phase1"] = judged("phase1")
        metrics["psnr_y_gain"] = model["psnr_y"] - metrics["bicubic"]["psnr_y"]
        metrics["border"] = s  # pixels cropped on every side for psnr_y and ssim_y
        metrics["feature_space"] = space.feature_space
        if blocks is not None:
            metrics["perceptual_layers"] = [f"block{k + 1}" for k in range(blocks.network.n_blocks)]
        metrics["target"] = self._target(metrics)

        rows = [F.interpolate(grid["low"], scale_factor=s, mode="nearest"), grid["bicubic"]]
        names = ["LR (nearest)", "bicubic"]
        if self.adversarial:
            rows.append(grid["phase1"])
            names.append("SRResNet (phase 1)")
        rows += [grid["model"], grid["high"]]
        names += ["SRGAN" if self.adversarial else "SRResNet", "HR"]
        lh, lw = h // s, w // s
        caption = f"{lh}x{lw} -> {h}x{w}, rows: " + " / ".join(names)
        figures = {caption: save_rows(rows, ctx.figures_dir / "upscaling.png")}
        return EvalResult(metrics=metrics, figures=figures)

    def _upscale_whole(self, ctx: EvalContext, high: Tensor, tiles: tuple[int, int],
                       generators: dict[str, nn.Module | None],
                       whole: dict[str, list[dict[str, float]]]) -> tuple[Tensor, dict[str, Tensor]]:  # fmt: skip
        """One test image from its tiles, downsampled and upscaled whole by each method, then cut
        into the same tiles again; its PSNR_y and SSIM_y appended to `whole`."""
        s, size = self.scale, high.shape[-1]
        image = mosaic(high, *tiles)[None]
        low = downsample(image, s)
        upscaled = {"bicubic": bicubic_upscale(low, s)}
        upscaled |= {name: self.upscale(low, 1, g) for name, g in generators.items()}
        for name, images in upscaled.items():
            whole[name].append({
                "psnr_y": psnr_y(images, image, s).double().item(),
                "ssim_y": ssim_y(images, image, s, ctx.ssim_window, ctx.ssim_sigma).double().item(),
            })  # fmt: skip
        tiled = {name: grid_crops(images[0], size) for name, images in upscaled.items()}
        return grid_crops(low[0], size // s), tiled

    @staticmethod
    def _measured_on(ctx: EvalContext) -> dict:
        if ctx.test_grids is None:
            return {}
        return {
            "test_images": len(ctx.test_grids),
            "measured_on": "whole test images, each downsampled and upscaled whole: psnr_y and "
            "ssim_y per image, averaged over images; the rest over the images' tiles",
        }

    def _judge(self, ctx: EvalContext, high: Tensor, outputs: dict[str, Tensor], labels: Tensor,
               batch: int, blocks: nn.Module | None) -> dict[str, dict[str, float]]:  # fmt: skip
        """The means over one chunk of each method's upscaled images against the originals."""
        space, s = ctx.space, self.scale
        # the earlier whole-image metrics as before: 2000 images a batch where that is small
        recon_batch = min(2000, images_per(4 * FORWARD_VALUES, tuple(high.shape[1:])))
        found, per_image = {}, {}
        for name, images in outputs.items():
            quality = reconstruction_quality(high, images, ctx.ssim_window, ctx.ssim_sigma,
                                             batch_size=recon_batch)  # fmt: skip
            found[name] = {k: quality[k] for k in ("psnr", "ssim", "mse")}
            found[name] |= space.class_accuracy("accuracy", images, labels)
            per_image[name] = defaultdict(list)
        for i in range(0, len(high), batch):
            hb = high[i : i + batch]
            # the originals' activations once for every method
            wanted = None if blocks is None else blocks(hb.to(ctx.device))
            for name, images in outputs.items():
                ib, into = images[i : i + batch], per_image[name]
                into["psnr_y"].append(psnr_y(ib, hb, s))
                into["ssim_y"].append(ssim_y(ib, hb, s, ctx.ssim_window, ctx.ssim_sigma))
                if wanted is not None:
                    per_block = layer_distances(blocks(ib.to(ctx.device)), wanted)
                    into["perceptual_distance"].append(summed(per_block).cpu())
                    for k, far in enumerate(per_block):
                        into[f"{BLOCK_KEY}{k + 1}"].append(far.cpu())
        for name, lists in per_image.items():
            found[name] |= {k: torch.cat(v).double().mean().item() for k, v in lists.items() if v}
        return found

    def _target(self, metrics: dict) -> dict:
        """The photo profile's target: the SRResNet (this instance, or the srgan instance's
        phase 1, which is the srresnet instance at equal params and seed) at least
        TARGET_PSNR_Y_GAIN dB of PSNR_y over bicubic; the SRGAN closer than that SRResNet to
        the originals in perceptual_distance."""
        srresnet = metrics["phase1"] if self.adversarial else metrics["model"]
        gain = srresnet["psnr_y"] - metrics["bicubic"]["psnr_y"]
        target = {
            "srresnet": "phase1" if self.adversarial else "model",
            "psnr_y_gain_over_bicubic": gain,
            "psnr_y_gain_min": TARGET_PSNR_Y_GAIN,
        }
        met = gain >= TARGET_PSNR_Y_GAIN
        if self.adversarial and "perceptual_distance" in srresnet:
            # > 0: the SRGAN is perceptually closer to the originals than its SRResNet
            better = srresnet["perceptual_distance"] - metrics["model"]["perceptual_distance"]
            target["perceptual_gain_over_srresnet"] = better
            met = met and better > 0
        target["met"] = bool(met)
        return target

    def exportables(self, real_images: Tensor | None = None) -> list[Exportable]:
        self.train(False)
        c, h, w = self.data.image_shape
        s = self.scale
        lh, lw = h // s, w // s
        th, tw = self.hr_shape[1] // s, self.hr_shape[2] // s  # the low-resolution side trained
        noise = torch.Generator().manual_seed(0)
        # besides the training size: twice it (14x14 -> 56x56 at 4x) and a non-square size
        others = [(2, c, 2 * lh, 2 * lw), (1, c, lh + 3, 2 * lw)]
        trained = unwrap(self.generator)
        deployed = DeployedSRResNet(trained).eval()
        check = torch.rand(2, c, lh + 1, lw, generator=torch.Generator().manual_seed(1))
        check = check.to(next(trained.parameters()).device)
        with torch.no_grad():
            drift = (deployed(check) - trained.upscale(check)).abs().max().item()
        if not drift <= 1e-5:  # a bug, not a user error: the two forms must agree
            raise RuntimeError(f"the sub-pixel form differs from the trained SRResNet by {drift}")
        return [
            Exportable(
                name="generator",
                module=deployed,
                example_inputs=(torch.rand(2, c, lh, lw),),
                input_names=["image"],
                output_names=["high_res"],  # ONNX forbids an output named like an input
                dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}},
                doc=f"image [batch,{c},height,width] float32 in [0,1] (trained at {th}x{tw}) -> "
                f"high_res [batch,{c},{s}*height,{s}*width] in [0,1]",
                metadata={
                    "task": "upscale",
                    "scale": str(s),
                    "variant": self.params.variant,
                    "pixel_range": "0,1",
                },
                real_inputs=None if real_images is None else (downsample(real_images.cpu(), s),),
                parity_inputs=[(torch.rand(shape, generator=noise),) for shape in others],
            )
        ]
