"""The GAN game on 2-D Gaussian mixtures (genmodels.data.mixtures), where mode collapse is
counted exactly (genmodels.metrics.mixtures): the benchmark behind `make modes`.

The game is the image GANs' own, AdversarialRecipe.training_step: the same losses, gradient
penalty, packing, minibatch standard deviation, spectral normalisation and weight averaging.
Only the networks differ: MLPs of the papers' sizes on points [N, 2, 1, 1]. Ten seeds train side
by side in one process, each layer holding one matrix per seed (genmodels.nn.points); each seed's
own losses are read from the discriminator's outputs of each step, so each run has its own
oscillation index.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from genmodels.config import AdversarialParams
from genmodels.data.mixtures import Mixture
from genmodels.errors import UserError
from genmodels.metrics.game import oscillation_index
from genmodels.metrics.mixtures import count_modes, mean_and_std
from genmodels.nn.adversarial import discriminator_loss, generator_loss
from genmodels.nn.points import SeedPointDiscriminator, SeedPointGenerator, seed_spectral_norm
from genmodels.training.adversarial import AdversarialRecipe
from genmodels.training.recipe import Batch, DataInfo, EvalContext, EvalResult, Exportable

EVAL_SAMPLES = 2500  # samples judged per trained generator, as VEEGAN and PacGAN
POINT_SHAPE = (2, 1, 1)  # a point as a one-pixel image of two channels (genmodels.nn.points)
# what each seed's random streams are for: a run draws nothing from the runs beside it
STREAMS = ("data", "generator", "discriminator", "latents", "batches", "evaluation", "snapshots")


def stream(seed: int, purpose: str) -> torch.Generator:
    return torch.Generator().manual_seed(len(STREAMS) * seed + STREAMS.index(purpose))


class MixtureGameParams(AdversarialParams):
    """AdversarialParams for points: the hidden widths of both MLPs, the rest of the game as
    the image GANs have it. Not a row of the family table: a benchmark."""

    family: Literal["mixture"] = "mixture"
    arch: Literal["mlp"] = "mlp"
    ema_decay: Annotated[float, Field(ge=0, lt=1)] = 0.0  # the EMA variant turns it on


# The benchmark's game: the sizes of the Unrolled GAN authors' notebook (github.com/poolio/
# unrolled_gan: 2 hidden layers of 128 units in G and in D; ReLU here), PacGAN's 2-D latent, and a
# step size at which the short budget of `make modes` converges (the papers: 1e-4 over 25k to 400k
# updates). The batch counts the discriminator's inputs: PacGAN's packs hold `packing` points.
BASE_GAME: dict[str, Any] = {
    "g_hidden": [128, 128], "d_hidden": [128, 128], "latent_dim": 2, "batch_size": 64,
    "lr": 5e-4, "betas": [0.5, 0.999], "loss": "nonsaturating",
}  # fmt: skip
# name -> its changes to BASE_GAME: the losses, then each technique alone on the non-saturating
# game (as PacGAN adds packing to its GAN)
VARIANTS: dict[str, dict[str, Any]] = {
    "minimax": {"loss": "minimax"},  # the lecture's
    "nonsaturating": {},
    "lsgan": {"loss": "lsgan"},
    "hinge": {"loss": "hinge"},
    "wgan_gp": {"loss": "wgan_gp", "n_critic": 5, "betas": [0.5, 0.9]},  # Gulrajani et al.'s
    "pacgan2": {"packing": 2, "batch_size": 128},
    "pacgan3": {"packing": 3, "batch_size": 192},
    "pacgan4": {"packing": 4, "batch_size": 256},
    "minibatch_std": {"minibatch_std": True},
    "spectral_norm": {"spectral_norm": True},
    "ema": {"ema_decay": 0.999},
}


def variant_params(name: str, updates: int) -> MixtureGameParams:
    if name not in VARIANTS:
        raise UserError(f"variant {name!r} is unknown; choose from {', '.join(VARIANTS)}")
    return MixtureGameParams(**(BASE_GAME | VARIANTS[name]), steps=updates)


class MixtureGANRecipe(AdversarialRecipe):
    def __init__(self, params: MixtureGameParams, seeds: list[int], scale: float):
        self.seeds = list(seeds)
        self.scale = scale  # the networks see points / scale: both mixtures within [-1, 1]
        self.outputs: list[Tensor] = []
        self.per_seed_losses = False
        self.latents = [stream(s, "latents") for s in self.seeds]
        data = DataInfo(dataset="mixture", image_shape=POINT_SHAPE, num_classes=0)
        super().__init__(params, data, torch.device("cpu"))

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        p = self.params
        generator = SeedPointGenerator(
            [stream(s, "generator") for s in self.seeds], p.latent_dim, p.g_hidden
        )
        discriminator = SeedPointDiscriminator(
            [stream(s, "discriminator") for s in self.seeds], p.d_hidden, p.packing,
            p.minibatch_std,
        )  # fmt: skip
        if p.spectral_norm:
            # per seed: the shared with_spectral_norm finds no torch layer here to wrap
            seed_spectral_norm(discriminator)
        return generator, discriminator

    def latent(self, n: int) -> Tensor:
        k, per_seed = self.params.latent_dim, n // len(self.seeds)
        return torch.cat([torch.randn(per_seed, k, generator=g) for g in self.latents])

    def discriminate(self, images: Tensor, labels: Tensor) -> Tensor:
        out = self.discriminator(images)
        self.outputs.append(out.detach())
        return out

    def training_step(self, batch: Batch, step: int) -> dict[str, Tensor]:
        """The shared step; with `per_seed_losses` set, also each seed's own D and G losses
        (the shared step logs their mean), from the discriminator's outputs of the step in their
        order: real, fake, the gradient penalty's interpolates (WGAN-GP), the generator's fakes
        (on G's steps)."""
        self.outputs = []
        logged = super().training_step(batch, step)
        if not self.per_seed_losses:
            return logged
        p, seeds = self.params, len(self.seeds)
        real, fake = (o.reshape(seeds, -1) for o in self.outputs[:2])
        logged["d_loss_per_seed"] = torch.stack(
            [discriminator_loss(p.loss, r, f) for r, f in zip(real, fake, strict=True)]
        )
        if "g_loss" in logged:
            judged = self.outputs[-1].reshape(seeds, -1)
            logged["g_loss_per_seed"] = torch.stack([generator_loss(p.loss, g) for g in judged])
        return logged

    def evaluate(self, ctx: EvalContext) -> EvalResult:
        raise UserError("the mixtures benchmark counts modes in train_ensemble (make modes); "
                        "it has no evaluate stage")  # fmt: skip

    def exportables(self, real_images: Tensor | None = None) -> list[Exportable]:
        return []  # a benchmark: nothing is served

    @torch.no_grad()
    def points(self, n: int, draws: list[torch.Generator]) -> Tensor:
        """n points [seeds, n, 2] from each seed's evaluated generator (the EMA where on), its
        latents from its own generator in `draws`."""
        k = self.params.latent_dim
        z = torch.cat([torch.randn(n, k, generator=g) for g in draws])
        # one batch: the network splits it by seed (sample()'s chunks would cut across seeds)
        return self.sample(z, batch_size=len(z)).reshape(len(self.seeds), n, 2) * self.scale


@dataclass
class EnsembleRun:
    """What one variant's seeds produced on one mixture."""

    per_seed: list[dict[str, Any]]  # modes_captured, high_quality, kl_uniform, oscillation_index
    snapshots: dict[int, Tensor]  # generator updates -> the first seed's points [n, 2]
    seconds: float
    curves: list[dict[str, list[float]]] = field(default_factory=list)  # per seed: d/g losses


def train_ensemble(mixture: Mixture, params: MixtureGameParams, seeds: list[int],
                   updates: int, *, eval_samples: int = EVAL_SAMPLES, log_every: int = 10,
                   snapshot_at: tuple[int, ...] = (), snapshot_samples: int = 500,
                   train_points: int = 100_000) -> EnsembleRun:  # fmt: skip
    """Trains one GAN per seed on its own draw of `train_points` points of the mixture (as
    PacGAN), for `updates` generator updates (n_critic discriminator steps each), logging each
    seed's losses every `log_every` updates, then counts the modes of `eval_samples` points of
    each. Only WGAN-GP's interpolation points come from a stream
    the seeds share (the gradient penalty draws them for the whole batch)."""
    started = time.perf_counter()
    scale = float(mixture.means.abs().max())
    data = [mixture.sample(train_points, stream(s, "data")) / scale for s in seeds]
    recipe = MixtureGANRecipe(params, seeds, scale)
    torch.manual_seed(seeds[0])  # WGAN-GP's interpolation points, drawn for all seeds at once
    batch, n_critic = params.batch_size, params.n_critic
    picks = [stream(s, "batches") for s in seeds]
    curves: list[dict[str, list[float]]] = [{"d_loss": [], "g_loss": []} for _ in seeds]
    snapshots: dict[int, Tensor] = {}
    # the figure shows the first seed: one stream feeds every seed's snapshot latents
    draws = [stream(seeds[0], "snapshots")] * len(seeds)
    if 0 in snapshot_at:
        snapshots[0] = recipe.points(snapshot_samples, draws)[0]
    no_labels = torch.zeros(len(seeds) * batch, dtype=torch.long)
    for step in range(updates * n_critic):
        rows = [torch.randint(train_points, (batch,), generator=g) for g in picks]
        real = torch.cat([points[r] for points, r in zip(data, rows, strict=True)])
        done, g_step = divmod(step + 1, n_critic)
        recipe.per_seed_losses = g_step == 0 and done % log_every == 0
        logged = recipe.training_step(Batch(real.reshape(-1, *POINT_SHAPE), no_labels), step)
        if recipe.per_seed_losses:
            for curve, d, g in zip(curves, logged["d_loss_per_seed"].tolist(),
                                   logged["g_loss_per_seed"].tolist(), strict=True):  # fmt: skip
                curve["d_loss"].append(d)
                curve["g_loss"].append(g)
        if g_step == 0 and done in snapshot_at:
            snapshots[done] = recipe.points(snapshot_samples, draws)[0]
    judged = recipe.points(eval_samples, [stream(s, "evaluation") for s in seeds])
    per_seed = []
    for seed, points, curve in zip(seeds, judged, curves, strict=True):
        found: dict[str, Any] = {"seed": seed}
        found |= count_modes(points, mixture.means, mixture.std).metrics()
        found["oscillation_index"] = (
            oscillation_index(curve["d_loss"], curve["g_loss"])
            if len(curve["d_loss"]) >= 6 else None
        )  # fmt: skip
        per_seed.append(found)
    return EnsembleRun(per_seed, snapshots, time.perf_counter() - started, curves)


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, dict[str, float | int | None]]:
    """Mean and standard deviation over the seeds of each metric."""
    keys = ("modes_captured", "high_quality", "kl_uniform", "oscillation_index")
    return {key: mean_and_std([run[key] for run in per_seed]) for key in keys}
