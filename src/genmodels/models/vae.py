"""The variational autoencoder (lecture 2.2-2.3): encoder to mean and log-variance,
z = mean + exp(0.5 logvar) * eps, decoder back to pixels, loss = reconstruction + KL.

`likelihood: gaussian` with `recon_weight: 1000` is the lecture's Keras practice exactly
(1000 x per-image mean squared error + the closed-form KL): a Gaussian likelihood of variance
D / (2 * 1000), which is also how its bound is reported in nats. `likelihood: bernoulli` on
dynamically binarised pixels, with beta and KL warm-up, is the VAE done properly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genmodels.config import VAEParams
from genmodels.figures import BY_CLASS, latent_scatter, save_rows
from genmodels.metrics.image import reconstruction_quality
from genmodels.metrics.likelihood import (
    active_units,
    bernoulli_log_likelihood,
    gaussian_log_likelihood,
    iwae_bound,
    kl_standard_normal,
    log_normal,
    log_standard_normal,
)
from genmodels.nn.batching import map_batches
from genmodels.nn.blocks import (
    GaussianEncoder,
    conv_decoder,
    conv_encoder,
    mlp_decoder,
    mlp_encoder,
)
from genmodels.training.recipe import Batch, DataInfo, EvalContext, EvalResult, Exportable, Recipe
from genmodels.training.runtime import adam

MONITOR_SEED = 1234  # the fixed prior draws watched while training


def reparameterise(mean: Tensor, logvar: Tensor, samples: int | None = None) -> Tensor:
    """z = mean + exp(0.5 logvar) * eps; with `samples`, a leading axis of that many draws."""
    shape = mean.shape if samples is None else (samples, *mean.shape)
    eps = torch.randn(shape, device=mean.device, dtype=mean.dtype)
    return mean + (0.5 * logvar).exp() * eps


class VAERecipe(Recipe):
    def __init__(self, params: VAEParams, data: DataInfo, device: torch.device):
        super().__init__(params, data, device)
        k, shape = params.latent_dim, data.image_shape
        if params.arch == "mlp":
            body = mlp_encoder(shape, params.hidden_dims, 2 * k)
            self.decoder = mlp_decoder(k, params.hidden_dims, shape, sigmoid=False)
        else:
            body = conv_encoder(shape, params.channels, 2 * k)
            self.decoder = conv_decoder(k, params.channels, shape, sigmoid=False)
        self.encoder = GaussianEncoder(body)
        self.encoder.to(device)
        self.decoder.to(device)  # outputs logits; the exported decoder adds the sigmoid
        self.optimizer = adam(
            [*self.encoder.parameters(), *self.decoder.parameters()],
            lr=params.lr,
            weight_decay=params.weight_decay,
        )
        pixels = shape[0] * shape[1] * shape[2]
        self.variance = pixels / (2 * params.recon_weight)  # gaussian only

    def modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.optimizer}

    def log_likelihood(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.params.likelihood == "bernoulli":
            return bernoulli_log_likelihood(logits, target)
        return gaussian_log_likelihood(torch.sigmoid(logits), target, self.variance)

    def targets(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Dynamic binarisation for the Bernoulli likelihood: a fresh draw every time."""
        if self.params.likelihood != "bernoulli":
            return images
        return torch.bernoulli(images, generator=generator)

    def kl_weight(self, step: int) -> float:
        warmup = self.params.kl_warmup_steps
        return self.params.beta * (min(1.0, (step + 1) / warmup) if warmup else 1.0)

    def training_step(self, batch: Batch, step: int) -> dict[str, Tensor]:
        x = self.targets(batch.images)
        mean, logvar = self.encoder(x)
        logits = self.decoder(reparameterise(mean, logvar))
        kl = kl_standard_normal(mean, logvar).mean()
        if self.params.likelihood == "gaussian":
            # the lecture's objective: recon_weight x per-image MSE (the Gaussian NLL up to a
            # constant, so the gradients are the same)
            mse = (torch.sigmoid(logits) - x).pow(2).flatten(1).mean(dim=1)
            recon = self.params.recon_weight * mse.mean()
        else:
            recon = -self.log_likelihood(logits, x).mean()
        loss = recon + self.kl_weight(step) * kl
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}

    # -- evaluation -------------------------------------------------------------------------
    def decode_mean(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder(z))

    @torch.no_grad()
    def iwae_nll(self, x: Tensor, k: int, chunk: int, decode_batch: int = 1000) -> Tensor:
        """-log p(x) bounded with K importance samples, per image; K * images <= chunk at once.

        The chunk's samples are decoded decode_batch at a time: 20,000 at once hold half a GB
        of activations and run 2.5x slower on a CPU than 1,000 at a time (same draws, same sum).
        """
        per_chunk = max(1, chunk // k)
        bounds = []
        for part in x.split(per_chunk):
            mean, logvar = self.encoder(part)
            z = reparameterise(mean, logvar, samples=k)  # [K, B, d]
            target = part.expand(k, *part.shape).flatten(0, 1)
            log_px_z = torch.cat([
                self.log_likelihood(self.decoder(zs), ts)
                for zs, ts in zip(z.flatten(0, 1).split(decode_batch),
                                  target.split(decode_batch), strict=True)
            ]).view(k, len(part))  # fmt: skip
            log_w = log_px_z + log_standard_normal(z) - log_normal(z, mean, logvar)
            bounds.append(-iwae_bound(log_w))
        return torch.cat(bounds)

    @torch.no_grad()
    def evaluate(self, ctx: EvalContext) -> EvalResult:
        self.train(False)
        p, device = self.params, ctx.device
        torch.manual_seed(ctx.seed)
        generator = torch.Generator().manual_seed(ctx.seed)
        images = ctx.test_images.float() / 255.0
        x = self.targets(images, generator)  # fixed binarisation of the test set
        recon_nll, kl, means, recon = [], [], [], []
        for part in x.split(ctx.batch_size):
            part = part.to(device)
            mean, logvar = self.encoder(part)
            logits = self.decoder(reparameterise(mean, logvar))
            recon_nll.append(-self.log_likelihood(logits, part).cpu())
            kl.append(kl_standard_normal(mean, logvar).cpu())
            means.append(mean.cpu())
            recon.append(self.decode_mean(mean).cpu())
        recon_nll, kl, means, recon = (torch.cat(t) for t in (recon_nll, kl, means, recon))
        subset = x[: p.iwae_images].to(device)
        nll_iwae = self.iwae_nll(subset, p.iwae_k, p.iwae_chunk, ctx.batch_size).cpu()
        metrics = {
            "likelihood": p.likelihood,
            "latent_dim": p.latent_dim,
            "elbo": -(recon_nll + kl).mean().item(),
            "recon": recon_nll.mean().item(),
            "kl": kl.mean().item(),
            "nll_iwae": nll_iwae.mean().item(),
            "elbo_on_iwae_images": -(recon_nll + kl)[: len(subset)].mean().item(),
            "iwae_k": p.iwae_k,
            "iwae_images": len(subset),
            "active_units": active_units(means, p.active_unit_threshold),
            **reconstruction_quality(images, recon, ctx.ssim_window, ctx.ssim_sigma),
            **ctx.space.class_accuracy("recon_accuracy", recon, ctx.test_labels),
        }
        # generation, the reason a VAE exists: decoded draws from the prior, judged like GANs'
        z = torch.randn(
            ctx.n_samples, p.latent_dim, generator=torch.Generator().manual_seed(ctx.seed)
        )
        samples = map_batches(self.decode_mean, z, ctx.batch_size, device)
        metrics["samples"] = ctx.space.sample_metrics(samples)
        return EvalResult(metrics=metrics, figures=self._figures(ctx, images, recon, means))

    def monitor(self) -> dict[str, float]:
        """Samples from the prior in the evaluator space, and reconstructions' class accuracy."""
        if self.space is None:
            return {}
        n = self.monitor_samples
        z = torch.randn(
            n, self.params.latent_dim, generator=torch.Generator().manual_seed(MONITOR_SEED)
        )
        images = self.space.test_images[:n].float() / 255.0
        with self.evaluating():
            samples = self.decode_mean(z.to(self.device)).cpu()
            recon = self.decode_mean(self.encoder(images.to(self.device))[0]).cpu()
        watched = self.space.quick_metrics(samples)
        labels = self.space.reference.test_labels[:n]
        return watched | self.space.class_accuracy("recon_accuracy", recon, labels)

    def _figures(self, ctx: EvalContext, images: Tensor, recon: Tensor, means: Tensor):
        n, k, out, device = ctx.n_grid, self.params.latent_dim, ctx.figures_dir, ctx.device
        figures = {
            "Test images (top) and their reconstructions (bottom)": save_rows(
                [images[:n], recon[:n]], out / "reconstructions.png"
            )
        }
        z = torch.randn(n * 4, k, generator=torch.Generator().manual_seed(ctx.seed))
        samples = self.decode_mean(z.to(device)).cpu()
        figures["Samples decoded from z ~ N(0, I)"] = save_rows(
            list(samples.split(n)), out / "samples.png"
        )
        labels = ctx.test_labels
        other = (labels != labels[0]).nonzero()  # a test image of another class, if any
        second = int(other[0]) if len(other) else min(1, len(labels) - 1)
        steps = torch.linspace(0, 1, n).unsqueeze(1)
        path = (1 - steps) * means[0] + steps * means[second]
        figures["Interpolation between two test images (posterior means)"] = save_rows(
            [self.decode_mean(path.to(device)).cpu()], out / "interpolation.png"
        )
        if k == 2:
            figures.update(self._lecture_figures(ctx, means))
        return figures

    def _lecture_figures(self, ctx: EvalContext, means: Tensor):
        out, device = ctx.figures_dir, ctx.device
        origin = self.decode_mean(torch.zeros(1, 2, device=device)).cpu()
        names = self.data.class_names()
        grid = torch.linspace(-3, 3, 20)
        ys, xs = torch.meshgrid(grid.flip(0), grid, indexing="ij")  # z[1] grows upwards
        manifold = self.decode_mean(torch.stack([xs, ys], dim=-1).reshape(-1, 2).to(device)).cpu()
        return {
            "The image decoded from z = [0, 0]": save_rows([origin], out / "decoded_origin.png"),
            "Test-set latent means" + BY_CLASS * self.data.labelled: latent_scatter(
                means, ctx.test_labels, names, out / "latent.png", "VAE latent space (test set)"
            ),
            "20x20 manifold decoded over [-3, 3]^2": save_rows(
                list(manifold.split(20)), out / "manifold.png"
            ),
        }

    def exportables(self, real_images: Tensor | None = None) -> list[Exportable]:
        self.train(False)
        c, h, w = self.data.image_shape
        k = self.params.latent_dim
        meta = {"latent_dim": str(k), "pixel_range": "0,1"}
        real_means = None
        if real_images is not None:
            with torch.no_grad():
                real_means = self.encoder(real_images.to(self.device))[0].cpu()
        return [
            Exportable(
                name="decoder",
                module=nn.Sequential(self.decoder, nn.Sigmoid()),
                example_inputs=(torch.randn(2, k),),
                input_names=["z"],
                output_names=["image"],
                dynamic_axes={"z": {0: "batch"}},
                doc=f"z [batch,{k}] float32 -> image [batch,{c},{h},{w}]: pixel means in [0,1]",
                metadata=meta | {"task": "decode"},
                real_inputs=None if real_means is None else (real_means,),
            ),
            Exportable(
                name="encoder",
                module=self.encoder,
                example_inputs=(torch.rand(2, c, h, w),),
                input_names=["image"],
                output_names=["mean", "logvar"],
                dynamic_axes={"image": {0: "batch"}},
                doc=f"image [batch,{c},{h},{w}] in [0,1] -> mean, logvar [batch,{k}] of q(z|x)",
                metadata=meta | {"task": "encode"},
                real_inputs=None if real_images is None else (real_images.cpu(),),
            ),
        ]
