"""CycleGAN (lecture 3.3; Zhu et al. 2017): unpaired image-to-image translation at the data's size.

Two generators translate between domains A and B (G_ab: A -> B, G_ba: B -> A) and two PatchGAN
discriminators judge each domain (D_a real A against G_ba's output, D_b real B against G_ab's).
The generators are trained on

    L_G = L_lsgan(D_b(G_ab(a))) + L_lsgan(D_a(G_ba(b)))                     adversarial
        + lambda (|G_ba(G_ab(a)) - a|_1 + |G_ab(G_ba(b)) - b|_1)            cycle consistency
        + lambda_idt lambda (|G_ba(a) - a|_1 + |G_ab(b) - b|_1)             identity

and each discriminator on the least-squares loss against a history of 50 generated images
(Shrivastava et al. 2017), with Adam at a constant learning rate for the first part of the budget
and a linear decay to zero after it, as the reference implementation (junyanz/
pytorch-CycleGAN-and-pix2pix) does.

The domains come from genmodels.data.domains (data/prepared/domains.pt): A is the dataset, B a
transform of it (edges, bold, invert), the two training halves cut from disjoint images, so the
model never sees a pair; the test set keeps the true pairs, which translation is measured
against (L1, PSNR, SSIM, beside the identity baseline output = input). Or they are the user's
own unpaired folders (data.name unpaired: trainA/ trainB/ testA/ testB/), which have no pairs and
no labels: translation is then judged by its distribution in the target domain (FID and KID
against the target's training images, beside the untranslated test images), by the cycle and by
the identity mapping.
"""

from __future__ import annotations

import json
from itertools import chain
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from genmodels.config import CycleGANParams
from genmodels.data.domains import Domains, load_domains
from genmodels.errors import UserError
from genmodels.figures import save_rows
from genmodels.metrics.fid import fid, kid
from genmodels.metrics.image import reconstruction_quality
from genmodels.metrics.space import UNLABELLED_REASON
from genmodels.nn.adversarial import discriminator_loss, frozen, generator_loss
from genmodels.nn.batching import map_batches
from genmodels.nn.resnet import PatchDiscriminator, ResnetGenerator, init_weights, paper_blocks
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


# -- the losses -----------------------------------------------------------------------------------
def cycle_loss(reconstructed: Tensor, original: Tensor) -> Tensor:
    """|F(G(x)) - x|_1, the mean absolute pixel error of the round trip."""
    return (reconstructed - original).abs().mean()


def identity_loss(mapped: Tensor, original: Tensor) -> Tensor:
    """|G(y) - y|_1 for y already in G's target domain: G should leave it alone."""
    return (mapped - original).abs().mean()


class ImagePool:
    """The discriminators' history of generated images (Shrivastava et al. 2017).

    Until `size` images are stored, each new image is stored and returned. After that, each image
    is, with probability 1/2, swapped for a random stored one (the stored one is returned, the new
    one takes its place), or else returned as it is. The random choices come from the pool's own
    torch.Generator, whose state is part of state_dict(), so a resumed run draws the same.
    """

    def __init__(self, size: int, seed: int):
        self.size = size
        self.generator = torch.Generator().manual_seed(seed)
        self.images: Tensor | None = None  # [size, C, H, W] once the first batch arrives
        self.count = 0

    def query(self, images: Tensor) -> Tensor:
        if self.size == 0:
            return images.detach()
        if self.images is None:
            self.images = images.new_empty(self.size, *images.shape[1:])
        out = []
        for image in images.detach():
            if self.count < self.size:
                self.images[self.count] = image
                self.count += 1
                out.append(image)
            elif torch.rand((), generator=self.generator).item() < 0.5:
                slot = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[slot].clone())
                self.images[slot] = image
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        stored = self.images[: self.count].cpu() if self.images is not None else torch.empty(0)
        return {"images": stored, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        stored = state["images"]
        self.count = len(stored)
        self.images = None
        if self.count:
            self.images = stored.new_empty(self.size, *stored.shape[1:]).to(device)
            self.images[: self.count] = stored.to(device)
        self.generator.set_state(state["generator"].cpu())


def mean_l1(x: Tensor, y: Tensor) -> float:
    return (x - y).abs().double().mean().item()


UNPAIRED_LEFT_OUT = (
    "unpaired domains: no true pairs (L1, PSNR, SSIM against the pair, the output = input "
    "baseline) and no class labels (label preservation)"
)


# -- the recipe -----------------------------------------------------------------------------------
class CycleGANRecipe(Recipe):
    """Trains on the domains of data/prepared/domains.pt, which the stages hand over with
    attach_data(). The Trainer's batch only counts the steps: each step draws its own batch of
    `batch_size` A images and one of B images, in an order that is a function of the run's seed
    and the step (a fresh permutation of each half per pass over it), so a resumed run sees the
    same batches. One Trainer epoch (the prepared training set of N images over batch_size) is
    therefore two passes over each half of N/2 images."""

    def __init__(self, params: CycleGANParams, data: DataInfo, device: torch.device):
        super().__init__(params, data, device)
        p, (c, h, w) = params, data.image_shape
        # sizes the networks cannot take were refused with their keys (config.check_shape)
        blocks = paper_blocks((h, w)) if p.g_blocks is None else p.g_blocks
        self.g_ab = ResnetGenerator(c, p.g_channels, blocks, p.g_downsampling, p.norm)
        self.g_ba = ResnetGenerator(c, p.g_channels, blocks, p.g_downsampling, p.norm)
        self.d_a = PatchDiscriminator(c, p.d_channels, p.d_layers, p.norm)  # judges domain A
        self.d_b = PatchDiscriminator(c, p.d_channels, p.d_layers, p.norm)  # judges domain B
        for module in self.modules().values():
            init_weights(module)
            module.to(device)
        betas = tuple(p.betas)
        self.opt_g = adam(
            chain(self.g_ab.parameters(), self.g_ba.parameters()), lr=p.lr, betas=betas
        )
        self.opt_d = adam(
            chain(self.d_a.parameters(), self.d_b.parameters()), lr=p.lr_d or p.lr, betas=betas
        )
        # the run's seed (train.seed: seed_everything runs before the recipe is built) fixes the
        # batch order and the history buffers' choices
        self.seed = torch.initial_seed() % 2**62
        # under torchrun each process draws its own choices (rank 0 keeps seed + 1, seed + 2)
        dist = torch.distributed
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        self.pool_a = ImagePool(p.pool_size, self.seed + 1 + 1009 * rank)  # fakes A, for D_a
        self.pool_b = ImagePool(p.pool_size, self.seed + 2 + 1009 * rank)
        self.domains: Domains | None = None
        self.trained_on: str | None = None  # the domains' identity (JSON) the weights learned
        self._train_a: Tensor | None = None  # the domain tensors on the device
        self._train_b: Tensor | None = None
        self._orders: dict[str, tuple[int, Tensor]] = {}
        self._target_features: dict[str, Tensor] = {}  # unpaired monitor: real A and B features
        self._schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR] = {}
        if p.steps is not None:  # an epochs budget needs the data to count its steps
            self._build_schedulers()

    # -- data -----------------------------------------------------------------------------------
    def attach_data(self, prepared_dir: str | Path) -> dict[str, Any]:
        domains = load_domains(prepared_dir)
        identity = json.dumps(domains.identity(), sort_keys=True)
        if self.trained_on is not None and self.trained_on != identity:
            raise UserError(
                f"{prepared_dir}: the domains changed since this model was trained "
                f"(now {domains.domain_b}); re-run its train stage"
            )
        self.domains, self.trained_on = domains, identity
        self._train_a = domains.train_a.to(self.device)
        self._train_b = domains.train_b.to(self.device)
        self._target_features = {}
        if not self._schedulers:
            self._build_schedulers()
        return domains.identity()

    def _need_domains(self) -> Domains:
        if self.domains is None:
            raise UserError(
                "the CycleGAN needs its domains: call attach_data(prepared_dir) "
                "(data/prepared/domains.pt, written by the prepare stage)"
            )
        return self.domains

    def _domain_batch(self, name: str, images: Tensor, step: int, salt: int) -> Tensor:
        """Batch `step` of a fresh seeded permutation per pass over `images`."""
        size = min(self.params.batch_size, len(images))
        epoch, index = divmod(step, len(images) // size)
        cached = self._orders.get(name)
        if cached is None or cached[0] != epoch:
            seed = (self.seed * 1_000_003 + 2 * epoch + salt) % 2**63
            gen = torch.Generator().manual_seed(seed)
            cached = (epoch, torch.randperm(len(images), generator=gen).to(images.device))
            self._orders[name] = cached
        idx = cached[1][index * size : (index + 1) * size]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # under torchrun: this process's shard of the batch, as the Trainer shards its own
            idx = idx[torch.distributed.get_rank() :: torch.distributed.get_world_size()]
        return images[idx].float().div_(255.0)

    # -- the schedule -----------------------------------------------------------------------------
    def total_steps(self) -> int:
        """The Trainer's budget in steps: `steps`, or `epochs` over the prepared training set."""
        p = self.params
        if p.steps is not None:
            return p.steps
        n = self._need_domains().train_count
        return p.epochs * max(1, n // min(p.batch_size, n))

    def lr_factor(self, step: int) -> float:
        """1 for the first `decay_start` of the budget, then linearly down toward 0 (the
        reference's 1 - max(0, t - start) / (T - start + 1))."""
        total = self.total_steps()
        start = int(self.params.decay_start * total)
        return 1.0 - max(0, step - start) / float(total - start + 1)

    def _build_schedulers(self) -> None:
        # before any optimizer state is loaded: a scheduler sets the rate when it is created
        self._schedulers = {
            name: torch.optim.lr_scheduler.LambdaLR(opt, self.lr_factor)
            for name, opt in self.optimizers().items()
        }

    def schedulers(self) -> dict[str, Any]:
        """Stepped after every training step (the budget is often less than a Trainer epoch)."""
        return self._schedulers

    # -- the Recipe contract --------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"g_ab": self.g_ab, "g_ba": self.g_ba, "d_a": self.d_a, "d_b": self.d_b}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generators": self.opt_g, "discriminators": self.opt_d}

    def training_step(self, batch: Batch, step: int) -> dict[str, Tensor]:
        p = self.params
        self._need_domains()
        real_a = self._domain_batch("a", self._train_a, step, salt=0)
        real_b = self._domain_batch("b", self._train_b, step, salt=1)

        # generators: adversarial + cycle + identity, the discriminators held fixed
        with frozen(self.d_a, self.d_b):
            fake_b, fake_a = self.g_ab(real_a), self.g_ba(real_b)
            adv_ab = p.adversarial_weight * generator_loss(p.loss, self.d_b(fake_b))
            adv_ba = p.adversarial_weight * generator_loss(p.loss, self.d_a(fake_a))
            cycle_a = cycle_loss(self.g_ba(fake_b), real_a)  # a -> b -> a
            cycle_b = cycle_loss(self.g_ab(fake_a), real_b)  # b -> a -> b
            loss = adv_ab + adv_ba + p.cycle_weight * (cycle_a + cycle_b)
            identity = {}
            if p.identity_weight > 0:
                idt_a = identity_loss(self.g_ba(real_a), real_a)
                idt_b = identity_loss(self.g_ab(real_b), real_b)
                loss = loss + p.identity_weight * p.cycle_weight * (idt_a + idt_b)
                identity = {"identity_a": idt_a.detach(), "identity_b": idt_b.detach()}
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()

        # discriminators: real against a history of generated images
        pooled_a, pooled_b = self.pool_a.query(fake_a), self.pool_b.query(fake_b)
        real_out_a, fake_out_a = self.d_a(real_a), self.d_a(pooled_a)
        real_out_b, fake_out_b = self.d_b(real_b), self.d_b(pooled_b)
        d_a = discriminator_loss(p.loss, real_out_a, fake_out_a)
        d_b = discriminator_loss(p.loss, real_out_b, fake_out_b)
        self.opt_d.zero_grad(set_to_none=True)
        (d_a + d_b).backward()
        self.opt_d.step()

        lr = self.opt_g.param_groups[0]["lr"]
        for scheduler in self._schedulers.values():
            scheduler.step()
        return {
            "loss": loss.detach(),
            "g_adv_ab": adv_ab.detach(),
            "g_adv_ba": adv_ba.detach(),
            "cycle_a": cycle_a.detach(),
            "cycle_b": cycle_b.detach(),
            **identity,
            "d_a": d_a.detach(),
            "d_b": d_b.detach(),
            "d_real_b": real_out_b.detach().mean(),
            "d_fake_b": fake_out_b.detach().mean(),
            "lr": torch.tensor(lr),
        }

    def extra_state(self) -> dict[str, Any]:
        return {"pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.pool_a.load_state_dict(state["pool_a"], self.device)
        self.pool_b.load_state_dict(state["pool_b"], self.device)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.trained_on is not None:
            state["domains"] = self.trained_on
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.trained_on = state.get("domains", self.trained_on)

    def domain_names(self) -> tuple[str, str]:
        if self.trained_on is None:
            return self.data.dataset, f"{self.data.dataset}:unknown"
        info = json.loads(self.trained_on)
        return info["domain_a"], info["domain_b"]

    # -- watching it train ------------------------------------------------------------------------
    def monitor(self) -> dict[str, float]:
        """Translation error against the true pairs of held-out images, and label preservation
        (on labelled data); on unpaired domains FID in the target domain and the cycle error."""
        if self.space is None or self.domains is None:
            return {}
        n, dom = self.monitor_samples, self.domains
        a, b = dom.test_a[:n].float() / 255.0, dom.test_b[:n].float() / 255.0
        with self.evaluating():
            fake_b = map_batches(self.g_ab, a, 500, self.device)
            fake_a = map_batches(self.g_ba, b, 500, self.device)
            if not dom.paired:
                cycle_a = map_batches(self.g_ba, fake_b, 500, self.device)
                cycle_b = map_batches(self.g_ab, fake_a, 500, self.device)
        if not dom.paired:
            if not self._target_features:  # the real sides stay fixed: computed once
                self._target_features = {"a": self.space.features(dom.train_a),
                                         "b": self.space.features(dom.train_b)}  # fmt: skip
            return {
                "fid_ab": fid(self.space.features(fake_b), self._target_features["b"]),
                "fid_ba": fid(self.space.features(fake_a), self._target_features["a"]),
                "cycle_l1_a": mean_l1(cycle_a, a),
                "cycle_l1_b": mean_l1(cycle_b, b),
            }
        return {
            "l1_ab": mean_l1(fake_b, b),
            "l1_ba": mean_l1(fake_a, a),
            **self.space.class_accuracy("label_preservation", fake_a, dom.test_labels[:n]),
        }

    # -- evaluation -------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, ctx: EvalContext) -> EvalResult:
        self.train(False)
        if not self._need_domains().paired:
            return self._evaluate_unpaired(ctx)
        dom, space = self._need_domains(), ctx.space
        a, b = dom.test_a.float() / 255.0, dom.test_b.float() / 255.0
        labels = dom.test_labels

        def run(generator: nn.Module, images: Tensor) -> Tensor:
            return map_batches(generator, images, ctx.batch_size, ctx.device)

        fake_b, fake_a = run(self.g_ab, a), run(self.g_ba, b)
        cycle_a, cycle_b = run(self.g_ba, fake_b), run(self.g_ab, fake_a)

        def quality(output: Tensor, target: Tensor) -> dict[str, float]:
            found = reconstruction_quality(target, output, ctx.ssim_window, ctx.ssim_sigma)
            return {"l1": mean_l1(output, target), **found}

        def direction(source, target, translated, cycled) -> dict[str, Any]:
            out = quality(translated, target)
            out["identity"] = quality(source, target)  # the baseline: output = input
            out["l1_ratio_vs_identity"] = out["identity"]["l1"] / max(out["l1"], 1e-12)
            out["cycle_l1"] = mean_l1(cycled, source)
            return out

        ab = direction(a, b, fake_b, cycle_a)
        ba = direction(b, a, fake_a, cycle_b)
        # FID in the target domain, in the evaluator's feature space. B -> A: against the real
        # training images (the space's own reference); A -> B: against domain B's training half
        real_b = space.features(dom.train_b)
        ab["fid"] = fid(space.features(fake_b), real_b)
        ab["fid_true_pairs"] = fid(space.features(b), real_b)  # the floor: real test B images
        ba["fid"] = space.fid(space.features(fake_a))
        ba["fid_true_pairs"] = space.fid(space.reference.test_features)
        # label preservation: the evaluator (trained on domain A) on B -> A translations; left
        # out when the data has no class labels (built domains of a flat folder)
        ba |= space.class_accuracy("label_preservation", fake_a, labels)
        ba |= space.class_accuracy("label_accuracy_true_pairs", a, labels)  # the upper reference
        ba |= space.class_accuracy("label_accuracy_untranslated", b, labels)  # B as they are
        ab |= space.class_accuracy("label_accuracy_cycle", cycle_a, labels)  # a -> b -> a

        domain_a, domain_b = dom.domain_a, dom.domain_b
        ratio = min(ab["l1_ratio_vs_identity"], ba["l1_ratio_vs_identity"])
        preserved = ba.get("label_preservation")
        metrics = {
            "domain_a": domain_a,
            "domain_b": domain_b,
            "transform": dom.info["transform"],
            "n_test": len(a),
            "ab": ab,
            "ba": ba,
            "l1_ratio_min": ratio,
            **({} if preserved is None else {"label_preservation": preserved}),
            "target_met": bool(
                ratio >= self.params.target_l1_ratio
                and (preserved is None or preserved >= self.params.target_label_preservation)
            ),
        }
        if preserved is None:
            metrics["left_out"] = UNLABELLED_REASON
        n, out = ctx.n_grid, ctx.figures_dir
        figures = {
            f"A -> B ({domain_a} -> {domain_b}): input / translation / true pair / "
            "cycle reconstruction": save_rows(
                [a[:n], fake_b[:n], b[:n], cycle_a[:n]], out / "translation_ab.png"
            ),
            f"B -> A ({domain_b} -> {domain_a}): input / translation / true pair / "
            "cycle reconstruction": save_rows(
                [b[:n], fake_a[:n], a[:n], cycle_b[:n]], out / "translation_ba.png"
            ),
        }
        table = {"l1_ab": ab["l1"], "l1_ba": ba["l1"]}
        if preserved is not None:
            table["label_preservation"] = preserved
        return EvalResult(metrics=metrics, figures=figures, table=table)

    def _evaluate_unpaired(self, ctx: EvalContext) -> EvalResult:
        """Each direction judged in the target domain, where no pair says what is right: FID
        and KID of the translated test images against the target's training images, beside the
        untranslated test images (what a translation must beat) and the target's own real test
        images (the floor); the cycle x -> G -> F -> x and the identity mapping G(y) ~ y."""
        dom, space = self._need_domains(), ctx.space
        s = space.settings
        a, b = dom.test_a.float() / 255.0, dom.test_b.float() / 255.0

        def run(generator: nn.Module, images: Tensor) -> Tensor:
            return map_batches(generator, images, ctx.batch_size, ctx.device)

        fake_b, fake_a = run(self.g_ab, a), run(self.g_ba, b)
        cycle_a, cycle_b = run(self.g_ba, fake_b), run(self.g_ab, fake_a)

        def kid_of(features: Tensor, real: Tensor) -> tuple[float, float]:
            return kid(features, real, subsets=s.kid_subsets, subset_size=s.kid_subset_size,
                       seed=s.seed)  # fmt: skip

        def direction(generator, source, target_test, target_train, translated, cycled):
            real = space.features(target_train)
            found, untranslated = space.features(translated), space.features(source)
            kid_mean, kid_std = kid_of(found, real)
            return {
                "fid": fid(found, real),
                "fid_untranslated": fid(untranslated, real),  # the baseline: output = input
                "fid_real_test": fid(space.features(target_test), real),  # the floor
                "kid": kid_mean,
                "kid_std": kid_std,
                "kid_untranslated": kid_of(untranslated, real)[0],
                "cycle_l1": mean_l1(cycled, source),
                # G fed its own target domain should leave the image alone
                "identity_l1": mean_l1(run(generator, target_test), target_test),
            }

        ab = direction(self.g_ab, a, b, dom.train_b, fake_b, cycle_a)
        ba = direction(self.g_ba, b, a, dom.train_a, fake_a, cycle_b)
        domain_a, domain_b = dom.domain_a, dom.domain_b
        metrics = {
            "domain_a": domain_a,
            "domain_b": domain_b,
            "paired": False,
            "feature_space": space.feature_space,
            "n_test_a": len(a),
            "n_test_b": len(b),
            "ab": ab,
            "ba": ba,
            "left_out": UNPAIRED_LEFT_OUT,
            # with no pairs the bar is the untranslated images: closer to the target than them
            "target_met": bool(all(d["fid"] < d["fid_untranslated"] for d in (ab, ba))),
        }
        n, out = ctx.n_grid, ctx.figures_dir
        figures = {
            f"A -> B ({domain_a} -> {domain_b}): input / translation / cycle reconstruction":
                save_rows([a[:n], fake_b[:n], cycle_a[:n]], out / "translation_ab.png"),
            f"B -> A ({domain_b} -> {domain_a}): input / translation / cycle reconstruction":
                save_rows([b[:n], fake_a[:n], cycle_b[:n]], out / "translation_ba.png"),
        }  # fmt: skip
        table = {"fid_ab": ab["fid"], "fid_ba": ba["fid"], "cycle_l1_ab": ab["cycle_l1"],
                 "cycle_l1_ba": ba["cycle_l1"]}  # fmt: skip
        return EvalResult(metrics=metrics, figures=figures, table=table)

    # -- export -----------------------------------------------------------------------------------
    def exportables(self, real_images: Tensor | None = None) -> list[Exportable]:
        self.train(False)
        c, h, w = self.data.image_shape
        domain_a, domain_b = self.domain_names()
        multiple = 2**self.params.g_downsampling
        noise = torch.Generator().manual_seed(0)
        real_b = None
        if real_images is not None and self.domains is not None:
            real_b = self.domains.test_b[: len(real_images)].float() / 255.0
            if not self.domains.paired:  # the prepared test set runs on into domain B
                real_images = self.domains.test_a[: len(real_images)].float() / 255.0
        found = []
        for name, module, source, target, real in (
            ("ab", unwrap(self.g_ab), domain_a, domain_b, real_images),
            ("ba", unwrap(self.g_ba), domain_b, domain_a, real_b),
        ):
            found.append(
                Exportable(
                    name=f"generator_{name}",
                    module=module,
                    example_inputs=(torch.rand(2, c, h, w),),
                    input_names=["image"],
                    output_names=["translated"],
                    # fully convolutional: any height and width that are multiples of this
                    dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}},
                    doc=f"image [batch,{c},height,width] float32 in [0,1] from {source} (trained "
                    f"at {h}x{w}; sides multiples of {multiple}) -> translated, same shape, in "
                    f"[0,1], in {target}",
                    metadata={
                        "task": "translate",
                        "direction": name,
                        "domain_a": domain_a,
                        "domain_b": domain_b,
                        "size_multiple": str(multiple),
                        "pixel_range": "0,1",
                    },  # fmt: skip
                    real_inputs=None if real is None else (real.cpu(),),
                    parity_inputs=[(torch.rand(1, c, 2 * h, h + multiple, generator=noise),)],
                )
            )
        return found
