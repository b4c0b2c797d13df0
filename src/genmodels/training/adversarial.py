"""The two-player game of lecture 3.1, shared by the GAN and the cGAN.

AdversarialRecipe alternates discriminator and generator updates with any loss of
genmodels.nn.adversarial, adds the penalties the params ask for, keeps an exponential moving
average of the generator (the network that is evaluated and exported), and records what makes
the game visible: both losses, mean D(x) and D(G(z)), both gradient norms, a fixed-noise sample
grid per epoch and, through the monitor, evaluator-space FID, recall and class histogram.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from genmodels.metrics.game import collapse_signal, oscillation_index, recall_signal
from genmodels.nn.adversarial import (
    discriminator_loss,
    discriminator_probability,
    ema_copy,
    frozen,
    generator_loss,
    grad_norm,
    gradient_penalty,
    mode_seeking_ratio,
    r1_penalty,
    with_spectral_norm,
)
from genmodels.training.recipe import Batch, DataInfo, EvalContext, Recipe, unwrap
from genmodels.training.runtime import adam

PROGRESS_SAMPLES = 16  # fixed latent vectors drawn into the per-epoch progression grid


class AdversarialRecipe(Recipe):
    """Subclasses build `self.generator` and `self.discriminator` in `build_networks()` and say
    how each is called (`generate`, `discriminate`); this class plays the game."""

    conditional = False

    def __init__(self, params: Any, data: DataInfo, device: torch.device):
        super().__init__(params, data, device)
        self.generator, self.discriminator = self.build_networks()
        if params.spectral_norm:
            with_spectral_norm(self.discriminator)
        self.generator.to(device)
        self.discriminator.to(device)
        self.ema = ema_copy(self.generator, params.ema_decay) if params.ema_decay > 0 else None
        betas = tuple(params.betas)
        self.opt_g = adam(self.generator.parameters(), lr=params.lr, betas=betas)
        self.opt_d = adam(self.discriminator.parameters(), lr=params.lr_d or params.lr, betas=betas)
        noise = torch.Generator().manual_seed(params.sample_seed)
        self.fixed_z = torch.randn(PROGRESS_SAMPLES, params.latent_dim, generator=noise)
        # the cGAN's rows of classes; unused (all 0) by the GAN, which may have no classes
        self.fixed_labels = torch.arange(PROGRESS_SAMPLES) % max(1, data.num_classes)
        self.progress: list[Tensor] = []  # one [PROGRESS_SAMPLES, C, H, W] per epoch
        self.monitor_z: Tensor | None = None
        self.monitor_labels: Tensor | None = None

    # -- what subclasses define ---------------------------------------------------------------
    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    def generate(self, generator: nn.Module, z: Tensor, labels: Tensor) -> Tensor:
        return generator(z)

    def discriminate(self, images: Tensor, labels: Tensor) -> Tensor:
        return self.discriminator(images)

    # -- the Recipe contract ------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        found = {"generator": self.generator, "discriminator": self.discriminator}
        if self.ema is not None:
            found["ema"] = self.ema
        return found

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def sampler(self) -> nn.Module:
        """The generator that is evaluated and exported: the weight average when there is one."""
        return self.ema.module if self.ema is not None else self.generator

    def latent(self, n: int) -> Tensor:
        return torch.randn(n, self.params.latent_dim, device=self.device)

    def sampling_latents(self, n: int, generator: torch.Generator, psi: float | None = None):
        """The latents that evaluated (and served) samples come from: N(0, psi^2 I)."""
        psi = self.params.truncation_psi if psi is None else psi
        return torch.randn(n, self.params.latent_dim, generator=generator) * psi

    def untruncated_metrics(self, ctx: EvalContext, labels: Tensor | None = None) -> dict[str, Any]:
        """With the truncation trick on, the plain N(0, I) samples' metrics beside it."""
        if self.params.truncation_psi == 1.0:
            return {}
        z = self.sampling_latents(ctx.n_samples, torch.Generator().manual_seed(ctx.seed), 1.0)
        return {"untruncated": ctx.space.sample_metrics(self.sample(z, labels))}

    def sampling_metadata(self) -> dict[str, str]:
        """What a server needs to draw z as the evaluation did."""
        return {"latent_dim": str(self.params.latent_dim),
                "truncation_psi": repr(self.params.truncation_psi)}  # fmt: skip

    def training_step(self, batch: Batch, step: int) -> dict[str, Tensor]:
        p = self.params
        real, labels = batch.images, batch.labels
        # the critic gets n_critic updates per generator update
        generator_step = (step + 1) % p.n_critic == 0
        # One batch of fakes serves both players (as in PyTorch's DCGAN example): D learns on
        # it detached, then G learns through it against the updated D. A second no-grad pass
        # for D cost 13-16 % of a step.
        z = self.latent(len(real))
        # Mode seeking compares two latents under one label: the fake batch holds such pairs
        # (its second half repeats the first half's labels) instead of needing a second
        # generator pass, which cost a quarter of a cGAN step.
        pairs = len(real) // 2 if p.mode_seeking > 0 else 0
        fake_labels = labels
        if pairs:
            fake_labels = torch.cat([labels[:pairs], labels[:pairs], labels[2 * pairs :]])
        with torch.set_grad_enabled(generator_step):
            fake = self.generate(self.generator, z, fake_labels)
        if p.r1_gamma > 0:
            real = real.detach().requires_grad_(True)
        d_real = self.discriminate(real, labels)
        d_fake = self.discriminate(fake.detach(), fake_labels)
        d_loss = discriminator_loss(p.loss, d_real, d_fake, 1.0 - p.label_smoothing)
        d_total = d_loss
        logged: dict[str, Tensor] = {"d_loss": d_loss.detach()}
        if p.loss == "wgan_gp":
            # interpolates are judged under the real labels (fake_labels differ when paired)
            gp = gradient_penalty(lambda x: self.discriminate(x, labels), real, fake.detach())
            d_total = d_total + p.gp_weight * gp
            logged["gradient_penalty"] = gp.detach()
        if p.r1_gamma > 0:
            r1 = r1_penalty(d_real, real)
            d_total = d_total + 0.5 * p.r1_gamma * r1
            logged["r1"] = r1.detach()
        self.opt_d.zero_grad(set_to_none=True)
        d_total.backward()
        logged["d_grad_norm"] = grad_norm(self.discriminator.parameters())
        self.opt_d.step()
        logged["d_real"] = discriminator_probability(p.loss, d_real.detach())
        logged["d_fake"] = discriminator_probability(p.loss, d_fake.detach())

        if generator_step:
            with frozen(self.discriminator):
                g_loss = generator_loss(p.loss, self.discriminate(fake, fake_labels))
                g_total = g_loss
                if pairs:  # images should differ as their latents do
                    ratio = mode_seeking_ratio(
                        fake[:pairs], fake[pairs : 2 * pairs], z[:pairs], z[pairs : 2 * pairs]
                    )
                    g_total = g_total + p.mode_seeking / (ratio + 1e-5)
                    logged["mode_seeking_ratio"] = ratio.detach()
                self.opt_g.zero_grad(set_to_none=True)
                g_total.backward()
            logged["g_grad_norm"] = grad_norm(self.generator.parameters())
            self.opt_g.step()
            if self.ema is not None:
                self.ema.update_parameters(unwrap(self.generator))
            logged["g_loss"] = g_loss.detach()
        return logged

    @torch.no_grad()
    def sample(self, z: Tensor, labels: Tensor | None = None, batch_size: int = 1000) -> Tensor:
        """Images in [0, 1] from the evaluated generator, on the CPU."""
        sampler = self.sampler()
        was_training = sampler.training
        sampler.eval()
        if labels is None:
            labels = torch.zeros(len(z), dtype=torch.long)
        out = [
            self.generate(sampler, zs.to(self.device), ls.to(self.device)).cpu()
            for zs, ls in zip(z.split(batch_size), labels.split(batch_size), strict=True)
        ]
        sampler.train(was_training)
        return torch.cat(out)

    def end_of_epoch(self, epoch: int) -> None:
        self.progress.append(self.sample(self.fixed_z, self.fixed_labels))

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["progress"] = torch.stack(self.progress) if self.progress else torch.empty(0)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        progress = state.get("progress", torch.empty(0))
        self.progress = list(progress.cpu()) if len(progress) else []

    # -- watching the game ----------------------------------------------------------------------
    def monitor(self) -> dict[str, float]:
        if self.space is None:
            return {}
        if self.monitor_z is None:  # drawn from its own seed: the global RNG stays untouched
            noise = torch.Generator().manual_seed(self.params.sample_seed + 1)
            self.monitor_z = torch.randn(self.monitor_samples, self.params.latent_dim,
                                         generator=noise)  # fmt: skip
            self.monitor_labels = torch.arange(self.monitor_samples) % max(1, self.data.num_classes)
        return self.space.quick_metrics(self.sample(self.monitor_z, self.monitor_labels))

    def summarise(self, history: list[dict[str, float]]) -> dict[str, Any]:
        def column(key: str) -> list[float]:
            return [row[key] for row in history if key in row]

        out: dict[str, Any] = {}
        d_loss, g_loss = column("d_loss"), column("g_loss")
        if min(len(d_loss), len(g_loss)) >= 6:  # a swing needs a trend to swing around
            out["oscillation_index"] = oscillation_index(d_loss, g_loss)
        coverage, recall = column("monitor_class_coverage"), column("monitor_recall")
        if coverage:
            out["collapse"] = collapse_signal(coverage, recall, self.data.num_classes)
        elif recall:  # data without labels: no classes to lose
            out["collapse"] = recall_signal(recall)
        return out

    @staticmethod
    def game_summary(train_metrics: dict[str, Any]) -> dict[str, Any]:
        """The oscillation index and collapse signal of the training run, for the eval record."""
        return {
            k: train_metrics[k] for k in ("oscillation_index", "collapse") if k in train_metrics
        }
