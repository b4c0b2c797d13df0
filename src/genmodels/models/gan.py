"""The GAN (lecture 3.1): a generator G makes images from noise z, a discriminator D tells them
from real ones, and the two improve against each other.

The game itself (alternating updates, the losses, penalties, weight averaging, and the numbers
that show oscillation and mode collapse) is genmodels.training.adversarial, shared with the
cGAN; this file builds the two networks and judges the trained generator.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genmodels.config import GANParams
from genmodels.figures import game_figures
from genmodels.nn.dcgan import build_discriminator, build_generator
from genmodels.training.adversarial import AdversarialRecipe
from genmodels.training.recipe import EvalContext, EvalResult, Exportable


class GANRecipe(AdversarialRecipe):
    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        p: GANParams = self.params
        shape = self.data.image_shape
        generator = build_generator(p.arch, p.latent_dim, p.g_channels, p.g_hidden, shape)
        discriminator = build_discriminator(
            p.arch, shape, p.d_channels, p.d_hidden, packing=p.packing, norm=p.d_norm,
            minibatch_std=p.minibatch_std,
        )  # fmt: skip
        return generator, discriminator

    def evaluate(self, ctx: EvalContext) -> EvalResult:
        self.train(False)
        z = self.sampling_latents(ctx.n_samples, torch.Generator().manual_seed(ctx.seed))
        samples = self.sample(z)
        metrics = {"latent_dim": self.params.latent_dim, "loss": self.params.loss,
                   "truncation_psi": self.params.truncation_psi}  # fmt: skip
        metrics |= ctx.space.sample_metrics(samples)
        metrics |= self.untruncated_metrics(ctx)
        metrics |= self.game_summary(ctx.train_metrics)
        figures = game_figures(ctx, samples, self.progress, self.ema is not None, self.params.loss)
        return EvalResult(metrics=metrics, figures=figures)

    def exportables(self, real_images: Tensor | None = None) -> list[Exportable]:
        self.train(False)
        c, h, w = self.data.image_shape
        k = self.params.latent_dim
        return [
            Exportable(
                name="generator",
                module=self.sampler(),
                example_inputs=(torch.randn(2, k),),
                input_names=["z"],
                output_names=["image"],
                dynamic_axes={"z": {0: "batch"}},
                doc=f"z [batch,{k}] float32 ~ N(0, psi^2 I) (metadata truncation_psi) "
                f"-> image [batch,{c},{h},{w}] in [0,1]",
                metadata={"task": "generate", "pixel_range": "0,1", **self.sampling_metadata()},
            )
        ]
