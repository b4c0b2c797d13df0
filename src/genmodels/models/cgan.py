"""The conditional GAN (lecture 3.2): generate only images of the class that is asked for.

The generator takes (z, label) through a learned label embedding; the discriminator is
conditioned by projection (Miyato and Koyama 2018: D(x, y) = psi(phi(x)) + <embed(y), phi(x)>)
or by one-hot label maps concatenated to the image. The game, its losses, techniques,
diagnostics and weight average are the GAN's (genmodels.training.adversarial).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genmodels.config import CGANParams
from genmodels.figures import game_figures, save_rows
from genmodels.metrics.fid import fid
from genmodels.nn.dcgan import (
    ConcatDiscriminator,
    ConditionalGenerator,
    ProjectionDiscriminator,
    build_discriminator,
    build_generator,
)
from genmodels.training.adversarial import AdversarialRecipe
from genmodels.training.recipe import EvalContext, EvalResult, Exportable


def pairwise_diversity(features: Tensor) -> float:
    """Mean Euclidean distance between distinct pairs of feature vectors."""
    if len(features) < 2:
        return 0.0
    distances = torch.cdist(features.double(), features.double())
    n = len(features)
    return (distances.sum() / (n * (n - 1))).item()


class CGANRecipe(AdversarialRecipe):
    conditional = True

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        p: CGANParams = self.params
        shape, classes = self.data.image_shape, self.data.num_classes
        body = build_generator(p.arch, p.latent_dim + p.embed_dim, p.g_channels, p.g_hidden, shape)
        generator = ConditionalGenerator(body, classes, p.embed_dim)
        extra = classes if p.conditioning == "concat" else 0
        base = build_discriminator(
            p.arch, shape, p.d_channels, p.d_hidden, extra_channels=extra, norm=p.d_norm,
            minibatch_std=p.minibatch_std,
        )  # fmt: skip
        if p.conditioning == "concat":
            return generator, ConcatDiscriminator(base, classes)
        return generator, ProjectionDiscriminator(base, classes)

    def generate(self, generator: nn.Module, z: Tensor, labels: Tensor) -> Tensor:
        return generator(z, labels)

    def discriminate(self, images: Tensor, labels: Tensor) -> Tensor:
        return self.discriminator(images, labels)

    @torch.no_grad()
    def evaluate(self, ctx: EvalContext) -> EvalResult:
        self.train(False)
        space, classes = ctx.space, self.data.num_classes
        gen = torch.Generator().manual_seed(ctx.seed)
        z = self.sampling_latents(ctx.n_samples, gen)
        requested = torch.arange(ctx.n_samples) % classes  # the same count of every class
        samples = self.sample(z, requested)
        features, probs = space.features_and_probabilities(samples)
        predicted = probs.argmax(1)
        hit = predicted == requested
        real_features, real_labels = space.reference.train_features, space.reference.train_labels
        test_features, test_labels = space.reference.test_features, space.reference.test_labels
        per_class = []
        for c, name in enumerate(self.data.class_names(classes)):
            mine, theirs = features[requested == c], test_features[test_labels == c]
            per_class.append({
                "class": name,
                "accuracy": hit[requested == c].double().mean().item(),
                "fid": fid(mine, real_features[real_labels == c]),
                "diversity": pairwise_diversity(mine),
                "real_diversity": pairwise_diversity(theirs[: len(mine)]),
            })  # fmt: skip
        real_accuracy = (
            space.reference.test_probabilities.argmax(1) == test_labels
        ).double().mean().item()  # fmt: skip
        ratios = [c["diversity"] / c["real_diversity"] for c in per_class]
        metrics = {
            "latent_dim": self.params.latent_dim,
            "loss": self.params.loss,
            "conditioning": self.params.conditioning,
            "truncation_psi": self.params.truncation_psi,
            "conditional_accuracy": hit.double().mean().item(),
            "evaluator_accuracy": real_accuracy,
            "conditional_accuracy_ratio": hit.double().mean().item() / real_accuracy,
            "fid_per_class_mean": sum(c["fid"] for c in per_class) / classes,
            "diversity_ratio_min": min(ratios),
            "diversity_ratio_mean": sum(ratios) / classes,
            "per_class": per_class,
            **space.sample_metrics(samples, features=features, probs=probs),
            **self.game_summary(ctx.train_metrics),
            **self.untruncated_metrics(ctx, requested),
        }
        figures = game_figures(ctx, samples, self.progress, self.ema is not None, self.params.loss)
        names = ", ".join(self.data.class_names(classes))
        grid_z = self.sampling_latents(ctx.n_grid, gen)
        rows = [self.sample(grid_z, torch.full((ctx.n_grid,), c)) for c in range(classes)]
        figures[f"One row per requested class ({names})"] = save_rows(
            rows, ctx.figures_dir / "classes.png"
        )
        return EvalResult(metrics=metrics, figures=figures)

    def exportables(self, real_images: Tensor | None = None) -> list[Exportable]:
        self.train(False)
        c, h, w = self.data.image_shape
        k, classes = self.params.latent_dim, self.data.num_classes
        return [
            Exportable(
                name="generator",
                module=self.sampler(),
                example_inputs=(torch.randn(2, k), torch.tensor([0, classes - 1])),
                input_names=["z", "label"],
                output_names=["image"],
                dynamic_axes={"z": {0: "batch"}, "label": {0: "batch"}},
                doc=f"z [batch,{k}] float32 ~ N(0, psi^2 I) (metadata truncation_psi), label [batch] int64 in 0..{classes - 1} "
                f"-> image [batch,{c},{h},{w}] in [0,1]",
                metadata={
                    "task": "generate",
                    **self.sampling_metadata(),
                    "num_classes": str(classes),
                    "label_range": f"0,{classes - 1}",
                    "pixel_range": "0,1",
                },  # fmt: skip
            )
        ]
