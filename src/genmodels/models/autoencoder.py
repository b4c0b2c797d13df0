"""The autoencoder (lecture 2.1): F(x) = z, G(z) = x', loss ||G(F(x)) - x||^2, with PCA of the
same latent size as its linear baseline, and its two variants: the sparse autoencoder (an L1 or
KL penalty on the code) and the denoising autoencoder (corrupted input, clean target)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genmodels.config import AutoencoderParams
from genmodels.data.corruptions import corrupt
from genmodels.figures import BY_CLASS, latent_scatter, save_rows
from genmodels.metrics.image import psnr, reconstruction_quality
from genmodels.nn.batching import map_batches
from genmodels.nn.blocks import conv_decoder, conv_encoder, mlp_decoder, mlp_encoder
from genmodels.training.recipe import Batch, DataInfo, EvalContext, EvalResult, Exportable, Recipe
from genmodels.training.runtime import adam


def build_encoder_decoder(
    params: AutoencoderParams, data: DataInfo, code_features: int
) -> tuple[nn.Module, nn.Module]:
    """Encoder to `code_features` outputs and decoder from `latent_dim` inputs, MLP or conv."""
    if params.arch == "mlp":
        return (
            mlp_encoder(data.image_shape, params.hidden_dims, code_features),
            mlp_decoder(params.latent_dim, params.hidden_dims, data.image_shape),
        )
    return (
        conv_encoder(data.image_shape, params.channels, code_features),
        conv_decoder(params.latent_dim, params.channels, data.image_shape),
    )


CODE_ACTIVATIONS = {"linear": nn.Identity, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


def build_autoencoder(params: AutoencoderParams, data: DataInfo) -> tuple[nn.Module, nn.Module]:
    encoder, decoder = build_encoder_decoder(params, data, params.latent_dim)
    return nn.Sequential(encoder, CODE_ACTIVATIONS[params.code_activation]()), decoder


def l1_penalty(codes: Tensor) -> Tensor:
    """Sum of |activation| over the code units, averaged over the batch."""
    return codes.abs().sum(dim=1).mean()


def kl_sparsity_penalty(codes: Tensor, rho: float) -> Tensor:
    """sum_j KL(rho || rho_hat_j), rho_hat_j the batch-mean activation of unit j (in (0, 1))."""
    rho_hat = codes.mean(dim=0).clamp(1e-6, 1 - 1e-6)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


def sparsity_penalty(codes: Tensor, kind: str, rho: float) -> Tensor:
    if kind == "l1":
        return l1_penalty(codes)
    if kind == "kl":
        return kl_sparsity_penalty(codes, rho)
    return codes.new_zeros(())


def silent_fraction(codes: Tensor, threshold: float) -> float:
    """The mean fraction of code units with |activation| below the threshold."""
    return (codes.abs() < threshold).float().mean().item()


def reconstruction_loss(recon: Tensor, target: Tensor, kind: str) -> Tensor:
    if kind == "bce":
        return F.binary_cross_entropy(recon, target)
    return F.mse_loss(recon, target)


def pca_reconstruct(train: Tensor, test: Tensor, components: int, seed: int) -> Tensor:
    """PCA fitted on the training images, applied to the test images (uint8 in, [0, 1] out).

    Reconstructions are clipped to the pixel range every image in this project lives in.
    """
    flat_train = train.reshape(len(train), -1).numpy().astype(np.float32) / 255.0
    flat_test = test.reshape(len(test), -1).numpy().astype(np.float32) / 255.0
    from sklearn.decomposition import PCA  # evaluation only: not on every stage's start-up

    pca = PCA(n_components=components, svd_solver="covariance_eigh", random_state=seed)
    pca.fit(flat_train)
    recon = pca.inverse_transform(pca.transform(flat_test)).clip(0.0, 1.0)
    return torch.from_numpy(recon.astype(np.float32)).reshape(test.shape)


class AutoencoderRecipe(Recipe):
    def __init__(self, params: AutoencoderParams, data: DataInfo, device: torch.device):
        super().__init__(params, data, device)
        self.encoder, self.decoder = build_autoencoder(params, data)
        self.optimizer = self._adam(self.encoder, self.decoder)
        self.denoising = params.noise.kind != "none"
        self.plain_encoder: nn.Module | None = None
        self.plain_decoder: nn.Module | None = None
        if self.denoising:
            # a plain twin of the same size, trained on the same clean batches: the baseline
            # the denoiser is measured against
            self.plain_encoder, self.plain_decoder = build_autoencoder(params, data)
            self.plain_optimizer = self._adam(self.plain_encoder, self.plain_decoder)
        for module in self.modules().values():
            module.to(device)

    def _adam(self, encoder: nn.Module, decoder: nn.Module) -> torch.optim.Optimizer:
        weights = [*encoder.parameters(), *decoder.parameters()]
        return adam(weights, lr=self.params.lr, weight_decay=self.params.weight_decay)

    def modules(self) -> dict[str, nn.Module]:
        found = {"encoder": self.encoder, "decoder": self.decoder}
        if self.denoising:
            found |= {"plain_encoder": self.plain_encoder, "plain_decoder": self.plain_decoder}
        return found

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        found = {"adam": self.optimizer}
        if self.denoising:
            found["plain_adam"] = self.plain_optimizer
        return found

    def training_step(self, batch: Batch, step: int) -> dict[str, Tensor]:
        p = self.params
        clean = batch.images
        inputs = corrupt(clean, p.noise.kind, p.noise.level) if self.denoising else clean
        codes = self.encoder(inputs)
        recon_loss = reconstruction_loss(self.decoder(codes), clean, p.loss)
        penalty = sparsity_penalty(codes, p.sparsity.kind, p.sparsity.rho)
        loss = recon_loss + p.sparsity.weight * penalty
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        logged = {"loss": loss.detach(), "recon_loss": recon_loss.detach()}
        if p.sparsity.kind != "none":
            logged["penalty"] = penalty.detach()
        if self.denoising:
            plain = self.plain_decoder(self.plain_encoder(clean))
            plain_loss = reconstruction_loss(plain, clean, p.loss)
            self.plain_optimizer.zero_grad(set_to_none=True)
            plain_loss.backward()
            self.plain_optimizer.step()
            logged["plain_loss"] = plain_loss.detach()
        return logged

    def reconstruct(self, images: Tensor) -> Tensor:
        return self.decoder(self.encoder(images))

    def monitor(self) -> dict[str, float]:
        """Held-out reconstruction error, and how much of the class survives the bottleneck."""
        if self.space is None:
            return {}
        images = self.space.test_images[: self.monitor_samples].float() / 255.0
        with self.evaluating():
            recon = self.reconstruct(images.to(self.device)).cpu()
        labels = self.space.reference.test_labels[: len(images)]
        return {
            "test_mse": F.mse_loss(recon, images).item(),
            **self.space.class_accuracy("recon_accuracy", recon, labels),
        }

    def evaluate(self, ctx: EvalContext) -> EvalResult:
        self.train(False)
        k = self.params.latent_dim
        originals = ctx.test_images.float() / 255.0
        recon = map_batches(self.reconstruct, ctx.test_images, ctx.batch_size, ctx.device)
        codes = map_batches(self.encoder, ctx.test_images, ctx.batch_size, ctx.device)
        pca_recon = pca_reconstruct(ctx.train_images, ctx.test_images, k, ctx.seed)
        quality = {"window": ctx.ssim_window, "sigma": ctx.ssim_sigma}
        metrics = {
            "latent_dim": k,
            "n_test": len(originals),
            **reconstruction_quality(originals, recon, **quality),
            "pca": reconstruction_quality(originals, pca_recon, **quality)
            | ctx.space.class_accuracy("recon_accuracy", pca_recon, ctx.test_labels),
            **ctx.space.class_accuracy("recon_accuracy", recon, ctx.test_labels),
            "sparsity": silent_fraction(codes, self.params.sparsity_threshold),
            "sparsity_threshold": self.params.sparsity_threshold,
            "mean_abs_code": codes.abs().mean().item(),
        }
        n = ctx.n_grid
        figures = {
            f"Test images (top), AE k={k} (middle), PCA k={k} (bottom)": save_rows(
                [originals[:n], recon[:n], pca_recon[:n]], ctx.figures_dir / "reconstructions.png"
            )
        }
        if k == 2:
            names = self.data.class_names()
            figures["Test-set latent codes" + BY_CLASS * self.data.labelled] = latent_scatter(
                codes,
                ctx.test_labels,
                names,
                ctx.figures_dir / "latent.png",
                "AE latent space (test set)",
            )
        if self.denoising:
            metrics["denoising"], caption, figure = self._evaluate_denoising(originals, ctx)
            figures[caption] = figure
        return EvalResult(metrics=metrics, figures=figures)

    @torch.no_grad()
    def _evaluate_denoising(self, originals: Tensor, ctx: EvalContext):
        """PSNR of the noisy input, of the denoiser's output, and of the plain twin's output."""
        kind, name = (
            self.params.noise.kind,
            {"gaussian": "sigma", "mask": "p"}[self.params.noise.kind],
        )
        plain_encoder, plain_decoder = self.plain_encoder, self.plain_decoder

        def run(fn, images: Tensor) -> Tensor:
            return map_batches(fn, images, ctx.batch_size, ctx.device)

        levels = self.params.eval_noise_levels
        shown = min(levels, key=lambda level: abs(level - self.params.noise.level))
        table = {}
        for index, level in enumerate(levels):
            generator = torch.Generator().manual_seed(ctx.seed + index)
            noisy = corrupt(originals, kind, level, generator)
            denoised = run(self.reconstruct, noisy)
            plain = run(lambda x: plain_decoder(plain_encoder(x)), noisy)
            table[f"{name}_{level:g}"] = {
                "noisy_psnr": psnr(noisy, originals).mean().item(),
                "denoised_psnr": psnr(denoised, originals).mean().item(),
                "plain_psnr": psnr(plain, originals).mean().item(),
            }
            if level == shown:
                n = ctx.n_grid
                rows = [noisy[:n], denoised[:n], plain[:n], originals[:n]]
                figure = save_rows(rows, ctx.figures_dir / "denoising.png")
        caption = f"{kind} noise {name}={shown:g}: noisy / denoised / plain AE / clean"
        return table, caption, figure

    def exportables(self, real_images: Tensor | None = None) -> list[Exportable]:
        self.train(False)
        c, h, w = self.data.image_shape
        k = self.params.latent_dim
        meta = {"latent_dim": str(k), "pixel_range": "0,1"}
        real_codes = None
        if real_images is not None:
            with torch.no_grad():
                real_codes = self.encoder(real_images.to(self.device)).cpu()
        return [
            Exportable(
                name="encoder",
                module=self.encoder,
                example_inputs=(torch.rand(2, c, h, w),),
                input_names=["image"],
                output_names=["z"],
                dynamic_axes={"image": {0: "batch"}},
                doc=f"image [batch,{c},{h},{w}] float32 in [0,1] -> z [batch,{k}]",
                metadata=meta | {"task": "encode"},
                real_inputs=None if real_images is None else (real_images.cpu(),),
            ),
            Exportable(
                name="decoder",
                module=self.decoder,
                example_inputs=(torch.randn(2, k),),
                input_names=["z"],
                output_names=["image"],
                dynamic_axes={"z": {0: "batch"}},
                doc=f"z [batch,{k}] float32 -> image [batch,{c},{h},{w}] in [0,1]",
                metadata=meta | {"task": "decode"},
                real_inputs=None if real_codes is None else (real_codes,),
            ),
        ]
