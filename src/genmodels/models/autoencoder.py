"""The autoencoder (lecture 2.1): F(x) = z, G(z) = x', loss ||G(F(x)) - x||^2, with PCA of the
same latent size as its linear baseline."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from torch import Tensor, nn

from genmodels.config import AutoencoderParams
from genmodels.figures import class_names, latent_scatter, save_rows
from genmodels.metrics.image import reconstruction_quality
from genmodels.nn.blocks import conv_decoder, conv_encoder, mlp_decoder, mlp_encoder
from genmodels.training.recipe import Batch, DataInfo, EvalContext, EvalResult, Exportable, Recipe


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


def reconstruction_loss(recon: Tensor, target: Tensor, kind: str) -> Tensor:
    if kind == "bce":
        return F.binary_cross_entropy(recon, target)
    return F.mse_loss(recon, target)


@torch.no_grad()
def map_batches(fn, images_uint8: Tensor, batch_size: int, device: torch.device) -> Tensor:
    """Applies `fn` to [0, 1] float batches of uint8 images on `device`; results on the CPU."""
    out = [
        fn(images_uint8[i : i + batch_size].to(device).float().div_(255.0)).cpu()
        for i in range(0, len(images_uint8), batch_size)
    ]
    return torch.cat(out)


def pca_reconstruct(train: Tensor, test: Tensor, components: int, seed: int) -> Tensor:
    """PCA fitted on the training images, applied to the test images (uint8 in, [0, 1] out).

    Reconstructions are clipped to the pixel range every image in this project lives in.
    """
    flat_train = train.reshape(len(train), -1).numpy().astype(np.float32) / 255.0
    flat_test = test.reshape(len(test), -1).numpy().astype(np.float32) / 255.0
    pca = PCA(n_components=components, svd_solver="covariance_eigh", random_state=seed)
    pca.fit(flat_train)
    recon = pca.inverse_transform(pca.transform(flat_test)).clip(0.0, 1.0)
    return torch.from_numpy(recon.astype(np.float32)).reshape(test.shape)


class AutoencoderRecipe(Recipe):
    family = "autoencoder"

    def __init__(self, params: AutoencoderParams, data: DataInfo, device: torch.device):
        super().__init__(params, data, device)
        self.encoder, self.decoder = build_encoder_decoder(params, data, params.latent_dim)
        self.encoder.to(device)
        self.decoder.to(device)
        self.optimizer = torch.optim.Adam(
            [*self.encoder.parameters(), *self.decoder.parameters()],
            lr=params.lr,
            weight_decay=params.weight_decay,
        )

    def modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.optimizer}

    def training_step(self, batch: Batch, step: int) -> dict[str, Tensor]:
        recon = self.decoder(self.encoder(batch.images))
        loss = reconstruction_loss(recon, batch.images, self.params.loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach()}

    def reconstruct(self, images: Tensor) -> Tensor:
        return self.decoder(self.encoder(images))

    def evaluate(self, ctx: EvalContext) -> EvalResult:
        self.train(False)
        k = self.params.latent_dim
        originals = ctx.test_images.float() / 255.0
        recon = map_batches(self.reconstruct, ctx.test_images, ctx.batch_size, ctx.device)
        pca_recon = pca_reconstruct(ctx.train_images, ctx.test_images, k, ctx.seed)
        quality = {"window": ctx.ssim_window, "sigma": ctx.ssim_sigma}
        metrics = {
            "latent_dim": k,
            "n_test": len(originals),
            **reconstruction_quality(originals, recon, **quality),
            "pca": reconstruction_quality(originals, pca_recon, **quality),
        }
        n = ctx.n_grid
        figures = {
            f"Test images (top), AE k={k} (middle), PCA k={k} (bottom)": save_rows(
                [originals[:n], recon[:n], pca_recon[:n]], ctx.figures_dir / "reconstructions.png"
            )
        }
        if k == 2:
            z = map_batches(self.encoder, ctx.test_images, ctx.batch_size, ctx.device)
            names = class_names(self.data.dataset, self.data.num_classes)
            figures["Test-set latent codes by class"] = latent_scatter(
                z,
                ctx.test_labels,
                names,
                ctx.figures_dir / "latent.png",
                "AE latent space (test set)",
            )
        return EvalResult(metrics=metrics, figures=figures)

    def exportables(self, real_images: Tensor | None = None) -> list[Exportable]:
        self.train(False)
        c, h, w = self.data.image_shape
        k = self.params.latent_dim
        meta = {"family": self.family, "latent_dim": str(k), "pixel_range": "0,1"}
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
                metadata=meta,
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
                metadata=meta,
                real_inputs=None if real_codes is None else (real_codes,),
            ),
        ]
