"""The schema of params.yaml: every stage validates its params here before doing any work."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from genmodels.errors import UserError
from genmodels.families import FAMILIES
from genmodels.shapes import divisibility_problem, stack_problem

EVALUATOR = "evaluator"  # the instance name of the evaluator section, and its family

InstanceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class Strict(BaseModel):
    # strict: `batch_size: true` or `lr: "0.1"` is refused, not coerced to 1 or 0.1
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DomainParams(Strict):
    """The CycleGAN's domains (genmodels.data.domains): A is the dataset, B = T(A)."""

    transform: Literal["edges", "bold", "invert"] = "edges"
    split_seed: int = 0  # the permutation that cuts the training set into the A and B halves
    edge_threshold: Annotated[float, Field(ge=0, lt=1)] = 0.0  # edges: fainter ones set to 0
    bold_size: Annotated[int, Field(ge=3, le=9)] = 3  # bold: side of the dilation square

    @model_validator(mode="after")
    def _odd_square(self):
        if self.bold_size % 2 == 0:
            raise ValueError("bold_size must be odd (the square is centred on the pixel)")
        return self


IDX_NAMES = ("fashion_mnist", "mnist", "kmnist")
TORCHVISION_NAMES = ("cifar10", "cifar100", "svhn", "stl10", "celeba", "flowers102")
DataName = Literal[
    "fashion_mnist", "mnist", "kmnist", "digits", "folder", "unpaired", "photos",
    "cifar10", "cifar100", "svhn", "stl10", "celeba", "flowers102",
]  # fmt: skip


class DataParams(Strict):
    """Where the images come from and the shape they are prepared at (genmodels.data)."""

    name: DataName = "fashion_mnist"
    raw_dir: str = "data/raw"
    prepared_dir: str = "data/prepared"
    download: bool = True
    limit_train: Annotated[int, Field(gt=0)] | None = None
    limit_test: Annotated[int, Field(gt=0)] | None = None
    subset_seed: int = 0
    # name folder: class subfolders, a flat folder, or train/ test/; name unpaired: the
    # CycleGAN's trainA/ trainB/ testA/ testB/ (two domains, no known pairs)
    folder: str | None = None
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = (
        0.2  # digits; a folder with no train/ test/
    )
    channels: Literal[1, 3] | None = None  # 1: grayscale, 3: RGB; null: the source's own
    image_size: Annotated[int, Field(ge=8, le=1024)] | None = None  # null: the source's own
    # fit: shorter side to image_size, then the centre crop; crops: patches of crop_size (photos)
    resize: Literal["auto", "fit", "crops"] = "auto"  # auto: crops for photos, else fit
    crop_size: Annotated[int, Field(ge=8, le=1024)] = 96
    crops_per_image: Annotated[int, Field(gt=0, le=100000)] = 64  # random crops per train image
    test_photos: Annotated[int, Field(gt=0)] = 3  # photos: whole photos held out for testing
    attribute: str | None = None  # celeba: the attribute that labels it (e.g. Smiling)
    skip_unreadable: bool = False  # true: leave out unreadable files, listed in the manifest
    max_memory_gb: Annotated[float, Field(gt=0)] = 8.0  # cap on the prepared uint8 tensors
    domains: DomainParams = DomainParams()  # the CycleGAN's unpaired domains

    @property
    def resize_policy(self) -> str:
        if self.resize == "auto":
            return "crops" if self.name == "photos" else "fit"
        return self.resize

    @property
    def known_side(self) -> tuple[int, str] | None:
        """The prepared images' side where params fix it, and the phrase that says so; None
        where it is the source's own (known once the data are prepared)."""
        if self.resize_policy == "crops":
            return self.crop_size, f"data.crop_size is {self.crop_size}"
        if self.image_size is not None:
            return self.image_size, f"data.image_size is {self.image_size}"
        return None

    @property
    def has_labels(self) -> bool | None:
        """Whether the source gives class labels; None for a folder, whose layout decides."""
        if self.name == "folder":
            return None
        return not (self.name == "photos" or (self.name == "celeba" and self.attribute is None))

    @model_validator(mode="after")
    def _coherent_source(self):
        if self.name == "folder" and self.folder is None:
            raise ValueError("data.name folder needs data.folder: set it to the folder of images")
        if self.name == "unpaired" and self.folder is None:
            raise ValueError(
                "data.name unpaired needs data.folder: set it to the folder holding trainA/, "
                "trainB/, testA/ and testB/"
            )
        if self.attribute is not None and self.name != "celeba":
            raise ValueError(
                "data.attribute labels celeba only; remove it or set data.name: celeba"
            )
        if self.resize_policy == "crops":
            if self.name not in ("folder", "photos"):
                raise ValueError(
                    "data.resize crops takes patches of large photos: set data.name to folder or "
                    "photos, or data.resize to fit"
                )
            if self.image_size is not None:
                raise ValueError(
                    "data.resize crops makes data.crop_size patches: leave data.image_size null"
                )
        return self


class TrainParams(Strict):
    device: Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")] = "auto"
    seed: int = 0
    num_threads: Annotated[int, Field(ge=0)] = 0  # 0 keeps torch's default
    log_every: Annotated[int, Field(gt=0)] = 50
    checkpoint_every: Annotated[int, Field(gt=0)] = 500
    checkpoint_dir: str = "checkpoints"
    progress: Literal["auto", "bar", "log"] = "auto"
    # steps between evaluator-space checks of the model in training (0: never); a multiple of
    # log_every, since the numbers join the logged rows
    monitor_every: Annotated[int, Field(ge=0)] = 0
    monitor_samples: Annotated[int, Field(ge=10, le=20000)] = 1000
    # the GPU path; "auto" turns each on where it pays (CUDA) and leaves the CPU as it is
    mixed_precision: Literal["auto", "off", "bf16"] = "auto"  # bf16 autocast of training steps
    channels_last: Literal["auto", "off", "on"] = "auto"  # NHWC memory layout for convs
    compile: bool = False  # torch.compile the trained networks (slow to start, fast after)

    @model_validator(mode="after")
    def _monitor_on_log_rows(self):
        if self.monitor_every % self.log_every:
            raise ValueError(
                f"monitor_every ({self.monitor_every}) must be a multiple of log_every "
                f"({self.log_every})"
            )
        return self


class ModelBase(Strict):
    """Fields every model instance has: its family (a key of genmodels.families.FAMILIES, whose
    row names the params class that validates the rest) and its training budget."""

    family: str
    epochs: Annotated[int, Field(gt=0)] | None = None
    steps: Annotated[int, Field(gt=0)] | None = None
    batch_size: Annotated[int, Field(gt=0, le=65536)] = 128
    lr: Annotated[float, Field(gt=0, le=1)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _one_budget(self):
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("set exactly one of 'epochs' or 'steps' as the training budget")
        return self

    def shape_problems(self, hw: tuple[int, int] | None, size: str) -> dict[str, str]:
        """key -> why the networks cannot take images of size hw (H, W), each message ending in
        `size` (the phrase that says where the size comes from). hw None: the size is not known
        yet (the checks that need none still run). Each family checks its own keys."""
        return {}

    def labels_needed(self) -> tuple[str, str, str] | None:
        """(key, why, fix) where these params need class labels, None where they do not."""
        return None


# widths of the stride-2 stages; a larger image adds stages (genmodels.shapes)
Channels = Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1, max_length=6)]


def conv_stack_problems(hw: tuple[int, int] | None, size: str, **stacks: list[int]
                        ) -> dict[str, str]:  # fmt: skip
    """key -> problem for each conv stack (key=widths) that images of size hw do not fit."""
    found = {}
    for key, widths in stacks.items():
        problem = None if hw is None else stack_problem(widths, hw)
        if problem is not None:
            found[key] = f"{problem}; {size}"
    return found


Hidden = Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1)]


class SparsityParams(Strict):
    """A penalty on the code activations (lecture 2.1, sparse autoencoder)."""

    kind: Literal["none", "l1", "kl"] = "none"
    weight: Annotated[float, Field(ge=0)] = 1e-3
    rho: Annotated[float, Field(gt=0, lt=1)] = 0.05  # kl: the target mean activation


class NoiseParams(Strict):
    """Corruption of the input, drawn afresh for every batch (denoising autoencoder)."""

    kind: Literal["none", "gaussian", "mask"] = "none"
    level: Annotated[float, Field(ge=0, lt=1)] = 0.3  # gaussian: sigma; mask: fraction dropped


class AutoencoderParams(ModelBase):
    arch: Literal["mlp", "conv"] = "conv"
    latent_dim: Annotated[int, Field(gt=0, le=784)] = 32
    hidden_dims: Hidden = [512, 256]
    channels: Channels = [32, 64]
    loss: Literal["mse", "bce"] = "mse"
    code_activation: Literal["linear", "relu", "sigmoid"] = "linear"
    sparsity: SparsityParams = SparsityParams()
    noise: NoiseParams = NoiseParams()
    # evaluation: a code unit with |activation| below this counts as silent
    sparsity_threshold: Annotated[float, Field(gt=0)] = 0.05
    # evaluation of a denoising instance: noise levels of its own kind
    eval_noise_levels: Annotated[list[Annotated[float, Field(ge=0, lt=1)]], Field(min_length=1)] = [
        0.1,
        0.3,
        0.5,
    ]

    @model_validator(mode="after")
    def _kl_needs_unit_interval(self):
        if self.sparsity.kind == "kl" and self.code_activation != "sigmoid":
            raise ValueError("sparsity.kind 'kl' needs code_activation 'sigmoid' (rates in (0, 1))")
        return self

    def shape_problems(self, hw: tuple[int, int] | None, size: str) -> dict[str, str]:
        return conv_stack_problems(hw, size, channels=self.channels) if self.arch == "conv" else {}


class VAEParams(ModelBase):
    arch: Literal["mlp", "conv"] = "conv"
    latent_dim: Annotated[int, Field(gt=0, le=784)] = 16
    hidden_dims: Hidden = [512]
    channels: Channels = [32, 64]
    # bernoulli: dynamically binarised pixels; gaussian: recon_weight x per-image mean squared
    # error, a Gaussian of variance D / (2 recon_weight) (the lecture's 1000 x MSE)
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    recon_weight: Annotated[float, Field(gt=0)] = 1000.0
    beta: Annotated[float, Field(ge=0)] = 1.0
    kl_warmup_steps: Annotated[int, Field(ge=0)] = 0
    iwae_k: Annotated[int, Field(gt=0, le=100000)] = 500
    iwae_images: Annotated[int, Field(gt=0)] = 1000  # test images the IWAE bound is computed on
    iwae_chunk: Annotated[int, Field(gt=0)] = 20000  # decoded samples per batch: bounds memory
    active_unit_threshold: Annotated[float, Field(gt=0)] = 0.01

    def shape_problems(self, hw: tuple[int, int] | None, size: str) -> dict[str, str]:
        return conv_stack_problems(hw, size, channels=self.channels) if self.arch == "conv" else {}


class EvaluatorParams(ModelBase):
    """The CNN whose features are the space sample metrics are computed in: a classifier of the
    data's classes, or, on data without labels, a network trained to tell which rotation an
    image was given (self-supervised, Gidaris et al. 2018)."""

    family: str = EVALUATOR
    # auto: classes when the data has labels, rotation otherwise
    task: Literal["auto", "classes", "rotation"] = "auto"
    channels: Channels = [32, 64]
    features: Annotated[int, Field(gt=0)] = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.3
    lr_decay: Annotated[float, Field(gt=0, le=1)] = 0.7  # learning-rate factor per epoch
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0

    def shape_problems(self, hw: tuple[int, int] | None, size: str) -> dict[str, str]:
        return conv_stack_problems(hw, size, channels=self.channels)

    def labels_needed(self) -> tuple[str, str, str] | None:
        if self.task == "classes":
            return "task", "task classes classifies them", "set it to auto (or rotation)"
        return None

    def resolved_task(self, labelled: bool) -> str:
        """classes or rotation: what the evaluator learns on data with or without labels."""
        if self.task == "auto":
            return "classes" if labelled else "rotation"
        return self.task


GANLoss = Literal["minimax", "nonsaturating", "lsgan", "hinge", "wgan_gp"]


class AdversarialParams(ModelBase):
    """The game's settings, shared by the GAN and the cGAN: loss and stabilisation techniques.

    `lr` is the generator's learning rate; `lr_d` the discriminator's (two time-scale update
    rule when they differ; null: the same as lr).
    """

    arch: Literal["conv", "mlp"] = "conv"
    # conv: widths from low to high resolution (at 7x7 and 14x14 for two at 28x28)
    g_channels: Channels = [128, 64]
    d_channels: Channels = [64, 128]  # conv: widths from the image down (14x14, 7x7 at 28x28)
    g_hidden: Hidden = [256, 512]  # mlp
    d_hidden: Hidden = [512, 256]  # mlp
    latent_dim: Annotated[int, Field(gt=0, le=1024)] = 64
    loss: GANLoss = "nonsaturating"
    n_critic: Annotated[int, Field(ge=1, le=20)] = 1  # D updates per G update
    gp_weight: Annotated[float, Field(ge=0)] = 10.0  # wgan_gp only
    r1_gamma: Annotated[float, Field(ge=0)] = 0.0  # 0: no R1 penalty
    label_smoothing: Annotated[float, Field(ge=0, lt=0.5)] = 0.0  # one-sided: real target 1-s
    # mode seeking (Mao et al. 2019): G is pushed to keep two latents' images apart
    mode_seeking: Annotated[float, Field(ge=0)] = 0.0
    spectral_norm: bool = False
    d_norm: Literal["none", "batch", "layer"] = "none"
    minibatch_std: bool = False
    packing: Annotated[int, Field(ge=1, le=8)] = 1  # PacGAN: samples judged jointly
    lr_d: Annotated[float, Field(gt=0, le=1)] | None = None
    betas: Annotated[list[Annotated[float, Field(ge=0, lt=1)]], Field(min_length=2, max_length=2)] = [0.5, 0.999]  # fmt: skip
    ema_decay: Annotated[float, Field(ge=0, lt=1)] = 0.999  # 0: evaluate the raw generator
    sample_seed: int = 1234  # the fixed latent vectors of the progression grid and monitor
    # the truncation trick: evaluated and served samples draw z from N(0, psi^2 I); psi < 1
    # trades recall for precision (Brock et al. 2019; Kynkaanniemi et al. 2019). 1: off
    truncation_psi: Annotated[float, Field(gt=0, le=1)] = 1.0

    @model_validator(mode="after")
    def _coherent_game(self):
        if self.loss == "wgan_gp" and self.d_norm == "batch":
            raise ValueError("wgan_gp's gradient penalty is per sample: use d_norm none or layer")
        if self.batch_size % self.packing:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of packing")
        return self

    def shape_problems(self, hw: tuple[int, int] | None, size: str) -> dict[str, str]:
        if self.arch != "conv":
            return {}
        return conv_stack_problems(hw, size, g_channels=self.g_channels,
                                   d_channels=self.d_channels)  # fmt: skip


class GANParams(AdversarialParams):
    """The GAN (lecture 3.1): the game's settings as they are."""


class CGANParams(AdversarialParams):
    """The conditional GAN: G(z, label) through a label embedding; D conditioned by projection
    (Miyato and Koyama 2018) or by label maps concatenated to the image."""

    embed_dim: Annotated[int, Field(gt=0, le=512)] = 16  # the generator's label embedding
    conditioning: Literal["projection", "concat"] = "projection"

    def labels_needed(self) -> tuple[str, str, str] | None:
        return (
            "family",
            "the cGAN draws the class it is asked for",
            "use labelled data (class subfolders, celeba with data.attribute) or leave this "
            "instance out",
        )

    @model_validator(mode="after")
    def _one_label_per_judgement(self):
        if self.packing != 1:
            raise ValueError("packing judges several samples at once; a cGAN needs one label each")
        return self


class CycleGANParams(ModelBase):
    """CycleGAN (Zhu et al. 2017) at any size: two ResNet generators, two PatchGAN discriminators,
    the least-squares game, cycle and identity L1 losses, an image history for the
    discriminators, a constant then linearly decaying learning rate. Domains: data.domains."""

    lr: Annotated[float, Field(gt=0, le=1)] = 2e-4  # both generators (one Adam)
    lr_d: Annotated[float, Field(gt=0, le=1)] | None = None  # both discriminators; null: lr
    betas: Annotated[list[Annotated[float, Field(ge=0, lt=1)]], Field(min_length=2, max_length=2)] = [0.5, 0.999]  # fmt: skip
    g_channels: Annotated[int, Field(gt=0, le=256)] = 32  # width of the first generator conv
    # residual blocks at the lowest scale; null: the paper's by size (6 below 128 px, 9 from it)
    g_blocks: Annotated[int, Field(ge=0, le=16)] | None = None
    g_downsampling: Annotated[int, Field(ge=1, le=2)] = 2  # stride-2 stages (28 -> 14 -> 7)
    d_channels: Annotated[int, Field(gt=0, le=256)] = 64  # width of the first PatchGAN conv
    # stride-2 PatchGAN stages (patch size; 3: the paper's 70x70 patches)
    d_layers: Annotated[int, Field(ge=1, le=3)] = 2
    norm: Literal["instance", "batch"] = "instance"
    loss: Literal["lsgan", "nonsaturating", "hinge"] = "lsgan"
    # on each generator's adversarial term; the shared LSGAN generator loss is Mao et al.'s
    # 1/2 E[(D(G(x)) - 1)^2], so 2.0 is the reference implementation's E[(D(G(x)) - 1)^2]
    adversarial_weight: Annotated[float, Field(gt=0, le=100)] = 1.0
    cycle_weight: Annotated[float, Field(ge=0, le=1000)] = 10.0  # lambda
    identity_weight: Annotated[float, Field(ge=0, le=10)] = 0.5  # x lambda (0: no identity loss)
    pool_size: Annotated[int, Field(ge=0, le=10000)] = 50  # history buffer (0: none)
    # fraction of the budget at the constant rate; then linear decay toward 0
    decay_start: Annotated[float, Field(ge=0, le=1)] = 0.5
    # evaluation's target_met on the test set's true pairs: the identity baseline's L1 at least
    # this many times the translation's in both directions, and B -> A label preservation (on
    # labelled data). Unpaired folders (data.name unpaired) have no pairs: there target_met is
    # the translated FID below the untranslated test images' in both directions.
    target_l1_ratio: Annotated[float, Field(gt=0)] = 2.0
    target_label_preservation: Annotated[float, Field(ge=0, le=1)] = 0.8

    def shape_problems(self, hw: tuple[int, int] | None, size: str) -> dict[str, str]:
        if hw is None:
            return {}
        found = {}
        g = self.g_downsampling
        problem = divisibility_problem(hw, 2**g, f"g_downsampling {g} needs")
        if problem is not None:
            found["g_downsampling"] = f"{problem}; {size}"
        least = 3 * 2**self.d_layers  # L halvings (floored), then two 4x4 convs take 1 each
        if min(hw) < least:
            found["d_layers"] = (
                f"d_layers {self.d_layers} leaves the PatchGAN no score map below a side of "
                f"{least}; {size}"
            )
        return found


class SRGANParams(ModelBase):
    """Super-resolution (Ledig et al. 2017): an SRResNet generator from low to high resolution.

    variant srresnet: the generator alone, pixel MSE for the whole budget (the paper's
    baseline). variant srgan: the same MSE pre-training for `pretrain_steps` steps (with the same
    params and seed it repeats the srresnet instance exactly), then content loss (feature maps
    of `content_features` at `content_layer`) + adversarial_weight x adversarial loss
    (+ pixel_weight x pixel MSE). `lr` is the pre-training rate; `lr_gan` the generator's and
    `lr_d` the discriminator's in the adversarial phase.
    """

    variant: Literal["srresnet", "srgan"] = "srgan"
    scale: Literal[2, 4] = 4  # 28x28 from 7x7 (4) or 14x14 (2)
    # training on one seeded random hr_crop x hr_crop patch per image (null: the whole image);
    # the generator is fully convolutional, so it upscales whole images all the same
    hr_crop: Annotated[int, Field(ge=8, le=1024)] | None = None
    # each step's HR batch turned and flipped by one of the 8 symmetries of the square (EDSR's
    # augmentation: 8x the patches of a few photos)
    augment: bool = False
    # the pixel loss of the MSE phase (and of pixel_weight): mse (the paper's) or l1 (EDSR's,
    # which found it trains SR networks to a higher PSNR)
    pixel_loss: Literal["mse", "l1"] = "mse"
    # the MSE phase's rate: constant, or cosine-annealed from `lr` to 0 over that phase
    lr_schedule: Literal["constant", "cosine"] = "constant"
    channels: Annotated[int, Field(gt=0, le=256)] = 32  # generator width
    blocks: Annotated[int, Field(ge=0, le=32)] = 4  # residual blocks at low resolution
    # PReLU slopes: one per channel, or one per layer (channel-shared, He et al. 2015), which
    # onnxruntime fuses into the convolution before it: the faster graph to deploy
    prelu: Literal["channel", "shared"] = "channel"
    pretrain_steps: Annotated[int, Field(ge=0)] | None = None  # srgan: MSE steps first
    content_features: Literal["evaluator", "vgg16"] = "evaluator"  # vgg16: online only
    # blockK: the last activation of conv block K, before its pooling (the paper's phi_K,j);
    # features: the evaluator's penultimate layer (the FID space)
    content_layer: Literal["block1", "block2", "block3", "block4", "block5", "features"] = "block2"
    content_weight: Annotated[float, Field(ge=0)] = 1.0
    pixel_weight: Annotated[float, Field(ge=0)] = 0.0  # optional pixel MSE in the srgan phase
    adversarial_weight: Annotated[float, Field(ge=0)] = 1e-3
    loss: Literal["nonsaturating", "lsgan", "hinge"] = "nonsaturating"
    d_channels: Channels = [32, 64]  # discriminator widths from the image (or crop) down
    spectral_norm: bool = False  # on every layer of D
    lr_gan: Annotated[float, Field(gt=0, le=1)] = 1e-4  # generator, adversarial phase
    lr_d: Annotated[float, Field(gt=0, le=1)] | None = None  # discriminator; null: lr_gan
    betas: Annotated[list[Annotated[float, Field(ge=0, lt=1)]], Field(min_length=2, max_length=2)] = [0.9, 0.999]  # fmt: skip

    @model_validator(mode="after")
    def _phases(self):
        if self.lr_schedule == "cosine" and self.variant == "srresnet" and self.steps is None:
            raise ValueError("lr_schedule cosine anneals over a phase in steps: set 'steps'")
        if self.variant == "srresnet" and self.pretrain_steps is not None:
            raise ValueError("pretrain_steps belongs to variant srgan (srresnet is all MSE)")
        if self.variant == "srgan":
            if self.pretrain_steps is None:
                raise ValueError("variant srgan needs pretrain_steps (the SRResNet phase)")
            if self.steps is not None and self.pretrain_steps >= self.steps:
                raise ValueError(
                    f"pretrain_steps ({self.pretrain_steps}) leaves no adversarial phase in "
                    f"steps ({self.steps})"
                )
        return self

    def shape_problems(self, hw: tuple[int, int] | None, size: str) -> dict[str, str]:
        found = {}
        s, crop = self.scale, self.hr_crop
        if hw is not None:
            problem = divisibility_problem(hw, s, f"scale {s} needs")
            if problem is not None:
                found["scale"] = f"{problem}; {size}"
        if crop is not None:
            if crop % s:
                found["hr_crop"] = f"hr_crop {crop} is not divisible by scale {s}"
            elif hw is not None and crop > min(hw):
                found["hr_crop"] = f"hr_crop {crop} is larger than the images; {size}"
            elif self.variant == "srgan" and self.content_layer == "features":
                found["hr_crop"] = (
                    "content_layer features needs whole images (the evaluator's dense layer); "
                    "use a blockK layer or leave hr_crop null"
                )
        if self.variant == "srgan" and "hr_crop" not in found and "scale" not in found:
            judged = hw if crop is None else (crop, crop)  # the discriminator sees the crops
            where = size if crop is None else f"hr_crop is {crop}"
            found |= conv_stack_problems(judged, where, d_channels=self.d_channels)
        return found


class EvaluateParams(Strict):
    batch_size: Annotated[int, Field(gt=0)] = 250  # per pass; 1000 is up to 1.8x slower on a CPU
    n_grid: Annotated[int, Field(gt=0, le=256)] = 16
    ssim_window: Annotated[int, Field(ge=3, le=27)] = 11
    ssim_sigma: Annotated[float, Field(gt=0)] = 1.5
    seed: int = 0
    # the feature space of FID, KID and PRDC: our evaluator; the FID Inception (the literature's
    # FID) from the local weights file inception_weights; or ImageNet features downloaded
    # through torchvision where that is possible
    features: Literal["evaluator", "fid_inception", "inception_v3", "vgg16"] = "evaluator"
    inception_weights: str | None = None  # pt_inception-2015-12-05-6726825d.pth (pytorch-fid)
    n_samples: Annotated[int, Field(ge=10, le=100000)] = 5000  # generated images judged
    kid_subsets: Annotated[int, Field(gt=0)] = 50
    kid_subset_size: Annotated[int, Field(ge=2)] = 1000
    prdc_k: Annotated[int, Field(gt=0)] = 5
    min_class_share: Annotated[float, Field(gt=0, lt=1)] = 0.05  # a class is covered above it
    memorisation_samples: Annotated[int, Field(gt=0)] = 1000  # nearest-neighbour search cost

    @model_validator(mode="after")
    def _odd_window(self):
        if self.ssim_window % 2 == 0:
            raise ValueError("ssim_window must be odd")
        return self

    @model_validator(mode="after")
    def _inception_weights_with_their_space(self):
        if self.features == "fid_inception" and self.inception_weights is None:
            raise ValueError(
                "features fid_inception needs inception_weights: the path of pytorch-fid's "
                "pt_inception-2015-12-05-6726825d.pth"
            )
        if self.features != "fid_inception" and self.inception_weights is not None:
            raise ValueError(
                f"inception_weights is set but features is {self.features!r}: set features: "
                "fid_inception to measure in the FID Inception's space, or inception_weights: null"
            )
        return self


class ExportParams(Strict):
    dir: str = "exported"
    opset: Annotated[int, Field(ge=17, le=23)] = 18
    atol: Annotated[float, Field(gt=0)] = 1e-4
    n_parity: Annotated[int, Field(gt=0, le=4096)] = 64


class Bound(Strict):
    """A quality gate on one metric: the value must be >= min and/or <= max."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _some_bound(self):
        if self.min is None and self.max is None:
            raise ValueError("give 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


# a metric of metrics/eval/<instance>.json; dots reach into nested sections ("pca.psnr")
MetricPath = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")]


class RegisterParams(Strict):
    """The MLflow registry: which versions earn the alias, per model family."""

    alias: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_\-]*$")] = "champion"
    # family -> metric -> bound: replaces the family's default gate (genmodels.families)
    gates: dict[InstanceName, dict[MetricPath, Bound]] = {}
    record: str = "reports/registry.json"

    @field_validator("gates")
    @classmethod
    def _known_families(cls, gates: dict) -> dict:
        unknown = sorted(set(gates) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown families {unknown}; known: {', '.join(FAMILIES)}")
        return gates

    def gate_for(self, family: str) -> dict[str, Bound]:
        """The family's gate: params' own, else the family's default; {} for neither."""
        if family in self.gates:
            return self.gates[family]
        row = FAMILIES.get(family)
        return {k: Bound(**v) for k, v in row.gate.items()} if row is not None else {}


class ServeParams(Strict):
    """The onnxruntime HTTP service (`make serve`) and its limits on requests."""

    host: str = "127.0.0.1"  # loopback only unless told otherwise
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    exported_dir: str = "exported"
    from_registry: bool = False  # True: the champion versions of the MLflow registry
    workers: Annotated[int, Field(ge=1, le=64)] = 1  # server processes, each with its sessions
    intra_op_threads: Annotated[int, Field(ge=0, le=256)] = 1  # 0: onnxruntime's choice
    inter_op_threads: Annotated[int, Field(ge=0, le=256)] = 1
    max_n: Annotated[int, Field(gt=0, le=4096)] = 256  # images per request
    max_body_bytes: Annotated[int, Field(ge=1024)] = 4_000_000
    max_image_side: Annotated[int, Field(gt=0, le=8192)] = 512  # uploads: width and height
    max_upscale_side: Annotated[int, Field(gt=0, le=1024)] = 128  # /upscale input, after decode
    # inferences running at once in a worker; the next max_waiting wait for a turn up to
    # queue_timeout_seconds, the rest get 503 with Retry-After (memory grows with each one)
    max_concurrent_inference: Annotated[int, Field(ge=1, le=256)] = 2
    max_waiting: Annotated[int, Field(ge=0, le=100_000)] = 64
    queue_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    # onnxruntime's CPU arena: "shrink" gives back what a run took beyond the arena's first
    # block, "off" allocates with malloc, "keep" holds its peak (onnxruntime's default)
    arena: Literal["shrink", "off", "keep"] = "shrink"
    # a worker's resident memory under 32 concurrent /upscale clients, at most (checked by
    # `make bench-limits`; the concurrency cap is what holds it)
    max_rss_mb: Annotated[int, Field(ge=64)] = 1024
    # a connection sends its request's headers within header_timeout_seconds and its body
    # within body_timeout_seconds of them, or gets 408 and is closed
    header_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    body_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0


class InferParams(Strict):
    """The file command line (`genmodels upscale|translate|generate|reconstruct`)."""

    # fully convolutional graphs run on tile_side x tile_side input tiles that share
    # tile_overlap pixels with each neighbour, so a large photo needs one tile's memory
    tile_side: Annotated[int, Field(ge=16, le=4096)] = 192
    tile_overlap: Annotated[int, Field(ge=0)] = 48
    # refused up front when the 8-bit output alone would not fit; checked by bench-serve
    max_memory_mb: Annotated[int, Field(ge=64)] = 2048
    threads: Annotated[int, Field(ge=0, le=256)] = 0  # onnxruntime intra-op threads (0: its choice)

    @model_validator(mode="after")
    def _overlap_inside_a_tile(self):
        if self.tile_overlap * 2 > self.tile_side:
            raise ValueError(
                f"infer.tile_overlap ({self.tile_overlap}) must be at most half of "
                f"infer.tile_side ({self.tile_side})"
            )
        return self


class BenchParams(Strict):
    """The targets the benchmark tools (tools/, `make bench-serve`) check their figures against;
    not read by any stage."""

    # onnxruntime's speed-up over PyTorch eager at batch 1 (each at its best thread setting)
    min_speedup_batch_1: Annotated[float, Field(gt=0)] = 2.0
    # HTTP p99 of one sample from /generate under the bench's concurrent clients
    max_http_p99_ms: Annotated[float, Field(gt=0)] = 20.0
    # bench-prepare: seconds to prepare 50,000 RGB PNG files of 32x32 (CIFAR-10's size)
    max_prepare_seconds: Annotated[float, Field(gt=0)] = 120.0
    # bench-serve's photo upscaler: onnxruntime's speed-up over eager at batch 1, 128 -> 512
    min_upscaler_speedup_batch_1: Annotated[float, Field(gt=0)] = 1.5


def _family_params(entry: Any, handler: Any) -> ModelBase:
    """A models.<instance> entry, validated by the params class of its family's row (the
    evaluator is the top-level section, not a family of models:)."""
    if isinstance(entry, ModelBase) or not isinstance(entry, dict):
        return handler(entry)
    known = [name for name in FAMILIES if name != EVALUATOR]
    allowed = {"allowed": ", ".join(known)}
    if "family" not in entry:
        raise PydanticCustomError("family_missing", "missing; allowed: {allowed}", allowed)
    name = entry["family"]
    if name not in known:
        raise PydanticCustomError(
            "family_unknown", "unknown family {family}; allowed: {allowed}",
            {"family": repr(name), **allowed},
        )  # fmt: skip
    return FAMILIES[name].params_class().model_validate(entry)


class Params(Strict):
    data: DataParams = DataParams()
    train: TrainParams = TrainParams()
    models: dict[InstanceName, Annotated[ModelBase, WrapValidator(_family_params)]] = Field(
        min_length=1
    )
    evaluator: EvaluatorParams = EvaluatorParams(epochs=6)
    evaluate: EvaluateParams = EvaluateParams()
    export: ExportParams = ExportParams()
    # `register` would shadow BaseModel.register (ABCMeta): the YAML key is its alias
    registry: RegisterParams = Field(RegisterParams(), alias="register")
    serve: ServeParams = ServeParams()
    infer: InferParams = InferParams()
    bench: BenchParams = BenchParams()

    @model_validator(mode="after")
    def _evaluator_name_is_taken(self):
        if EVALUATOR in self.models:
            raise ValueError(f"models.{EVALUATOR}: the name belongs to the evaluator section")
        return self

    @model_validator(mode="after")
    def _networks_fit_the_size(self):
        """Every instance's networks against the image size params fix (data.image_size or
        data.crop_size); where it is the source's own, build_recipe checks the same later."""
        known = self.data.known_side
        hw, size = (None, "") if known is None else ((known[0], known[0]), known[1])
        instances = [
            (EVALUATOR, self.evaluator),
            *((f"models.{n}", m) for n, m in self.models.items()),
        ]
        lines = [f"{where}.{key}: {problem}" for where, model in instances
                 for key, problem in model.shape_problems(hw, size).items()]  # fmt: skip
        if lines:  # one line per key (parse_params splits them)
            raise PydanticCustomError(SHAPE_MISFIT, "{lines}", {"lines": "\n".join(lines)})
        return self

    @model_validator(mode="after")
    def _labels_where_needed(self):
        """Instances that need class labels against a source known to have none (a folder's
        layout is checked when the data are prepared: check_labels)."""
        if self.data.has_labels is False:
            lines = [unlabelled_problem(model, instance, self.data.name)
                     for instance, model in [(EVALUATOR, self.evaluator), *self.models.items()]
                     if model.labels_needed()]  # fmt: skip
            if lines:
                raise PydanticCustomError(SHAPE_MISFIT, "{lines}", {"lines": "\n".join(lines)})
        return self

    def model(self, instance: str) -> ModelBase:
        """The params of an instance; `evaluator` is the top-level evaluator section."""
        if instance == EVALUATOR:
            return self.evaluator
        if instance not in self.models:
            raise UserError(
                f"params.yaml: models.{instance} does not exist; "
                f"known instances: {', '.join(sorted(self.models))}"
            )
        return self.models[instance]


SHAPE_MISFIT = "shape_misfit"  # the error type of the checks whose lines name their keys


def unlabelled_problem(model: ModelBase, instance: str | None, dataset: str) -> str:
    """The message for an instance that needs labels on a dataset without any."""
    key, why, fix = model.labels_needed()
    return f"{instance_path(model, instance)}.{key}: data {dataset} has no class labels and {why}; {fix}"


def check_labels(model: ModelBase, num_classes: int, dataset: str,
                 instance: str | None = None) -> None:  # fmt: skip
    """The labels check of params validation, once the prepared data tell (a folder's layout)."""
    if num_classes == 0 and model.labels_needed():
        raise UserError(unlabelled_problem(model, instance, dataset))


def instance_path(model: ModelBase, instance: str | None = None) -> str:
    """Where an instance's keys are in params.yaml: evaluator or models.<instance>."""
    if instance == EVALUATOR or (instance is None and isinstance(model, EvaluatorParams)):
        return EVALUATOR
    return f"models.{instance or '*'}"


def check_shape(model: ModelBase, image_shape: tuple[int, int, int],
                instance: str | None = None) -> None:  # fmt: skip
    """The params check of the networks against the prepared images' size (C, H, W), for a size
    params leave to the source (data.image_size null): a UserError naming each key."""
    _, h, w = image_shape
    problems = model.shape_problems((h, w), f"the prepared images are {h}x{w}")
    if problems:
        where = instance_path(model, instance)
        raise UserError(
            "params.yaml does not fit the prepared images; fix these keys and run again:\n  "
            + "\n  ".join(f"{where}.{key}: {problem}" for key, problem in problems.items())
        )


def _schema_at(loc: tuple, raw: Any) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `loc` (to list its allowed keys)."""
    model: type[BaseModel] | None = Params
    node = raw
    for depth, part in enumerate(loc):
        node = node.get(part) if isinstance(node, dict) else None
        if depth == 1 and loc[0] == "models":  # an instance: its family picks the schema
            row = FAMILIES.get(node.get("family")) if isinstance(node, dict) else None
            model = row.params_class() if row is not None else None
            continue
        fields = model.model_fields if model is not None else {}
        field = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        annotation = getattr(field, "annotation", None)
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        model = annotation if is_model else None
    return model


def _describe(error: dict, raw: Any) -> str:
    loc = tuple(error["loc"])
    path = ".".join(str(p) for p in loc)
    if error["type"] == "extra_forbidden":
        schema = _schema_at(loc[:-1], raw)
        keys = [f.alias or n for n, f in schema.model_fields.items()] if schema else []
        allowed = ", ".join(sorted(keys)) if schema else "see params.yaml"
        return f"{path}: unknown key; allowed keys here: {allowed}"
    if error["type"] in ("family_missing", "family_unknown"):
        return f"{path}.family: {error['msg']}"
    if error["type"] == SHAPE_MISFIT:  # lines that name their keys themselves
        return error["msg"]
    given = error.get("input")
    shown = "" if isinstance(given, dict) or given is None else f" (got {given!r})"
    return f"{path or '<top>'}: {error['msg']}{shown}"


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping of sections (data, train, models, ...)")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = [line for e in exc.errors() for line in _describe(e, raw).split("\n")]
        raise UserError(
            f"{source} is invalid ({len(lines)} problem{'s' if len(lines) > 1 else ''}); "
            "fix these keys and run again:\n  " + "\n  ".join(lines)
        ) from None


class DuplicateKeyError(yaml.YAMLError):
    pass


class _ParamsLoader(yaml.SafeLoader):
    """YAML as DVC reads it: a repeated key is an error (PyYAML lets the last one win), and
    1e-3 is a float (YAML 1.2; PyYAML's 1.1 reads it as a string)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise DuplicateKeyError(
                    f"key {key!r} appears twice in one mapping, at lines {first_line[key]} and "
                    f"{line}; keep one of them"
                )
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


_ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(path: Path) -> Any:
    """A YAML file's data; a syntax error or a repeated key is a UserError naming the file."""
    try:
        return yaml.load(path.read_text(), Loader=_ParamsLoader)  # noqa: S506 (a SafeLoader)
    except DuplicateKeyError as exc:
        raise UserError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc}); fix the syntax and run again") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: params file not found; run from the repository root")
    return parse_params(read_yaml(path), str(path))


def section_dict(params: Params, *path: str) -> dict:
    """A params section as plain data, for logging to MLflow."""
    node: Any = params
    for part in path:
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node.model_dump(mode="json") if isinstance(node, BaseModel) else node
