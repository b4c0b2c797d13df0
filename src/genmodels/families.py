"""The one table of model families: everything the pipeline knows about a family, in one row.

A row names the family's params class (the schema of its `models.<instance>` entries) and its
Recipe, each a class or "module:Class" imported when first needed (so reading params never
imports torch, and genmodels.config can read this table); the ONNX graphs it exports, each with
its task; its report section; the HTTP endpoints its graphs serve; its default quality gate and
its headline metrics. Every other module reads this table; none names a family by a string.

Adding a family is one model file (a params class and a Recipe) and one row here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from genmodels.errors import UserError

# what a graph does, and so which HTTP endpoints may run it
TASKS = ("encode", "decode", "generate", "translate", "upscale", "classify")
# the tasks of the graphs each endpoint runs, in order of preference
ENDPOINT_TASKS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "generate": ("generate", "decode"),
        "decode": ("decode", "generate"),
        "reconstruct": ("encode", "decode"),
        "translate": ("translate",),
        "upscale": ("upscale",),
    }
)

Section = Callable[[dict[str, dict]], list[tuple[str, str]]]


@dataclass(frozen=True)
class GraphSpec:
    """One exported ONNX graph: its file name (exported/<instance>/<name>.onnx) and task."""

    name: str
    task: str


@dataclass(frozen=True)
class Family:
    name: str
    params: type | str  # a genmodels.config.ModelBase subclass, or "module:Class"
    recipe: type | str  # a genmodels.training.Recipe subclass, or "module:Class"
    graphs: tuple[GraphSpec, ...]
    endpoints: tuple[str, ...] = ()  # what the service offers when its graphs load
    # metric path of metrics/eval/<instance>.json -> {"min": ..., "max": ...}; params
    # register.gates.<family> replaces it
    gate: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # the metric paths `dvc metrics show` lists for an instance (metrics/summary/<instance>.json)
    headline: tuple[str, ...] = ()
    # its report section: metrics of its instances -> [(title, markdown table)]
    report: Section | str = "genmodels.sections:generic_sections"
    # its samples are judged against the training set in the report's sample-quality table
    sample_quality: bool = True
    # it draws images from a prior (the web page samples and explores it)
    generative: bool = False

    def params_class(self) -> type:
        return _resolve(self.params)

    def recipe_class(self) -> type:
        return _resolve(self.recipe)

    def report_section(self) -> Section:
        return _resolve(self.report)

    def graph_names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.graphs)

    def task_of(self, graph: str) -> str | None:
        return next((g.task for g in self.graphs if g.name == graph), None)


def _resolve(target: Any) -> Any:
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            name="autoencoder",
            params="genmodels.config:AutoencoderParams",
            recipe="genmodels.models.autoencoder:AutoencoderRecipe",
            graphs=(GraphSpec("encoder", "encode"), GraphSpec("decoder", "decode")),
            endpoints=("generate", "decode", "reconstruct"),
            gate={"psnr": {"min": 15.0}},  # dB on the test set
            headline=(
                "mse",
                "psnr",
                "ssim",
                "recon_accuracy",
                "pca.mse",
                "pca.psnr",
                "sparsity",
                "train_seconds",
            ),  # fmt: skip
            report="genmodels.sections:autoencoder_sections",
        ),
        Family(
            name="vae",
            params="genmodels.config:VAEParams",
            recipe="genmodels.models.vae:VAERecipe",
            graphs=(GraphSpec("encoder", "encode"), GraphSpec("decoder", "decode")),
            endpoints=("generate", "decode", "reconstruct"),
            # nats per image (the lecture VAE's Gaussian nats sit below 400)
            gate={"nll_iwae": {"max": 400.0}, "psnr": {"min": 15.0}},
            headline=(
                "nll_iwae",
                "elbo",
                "kl",
                "active_units",
                "psnr",
                "ssim",
                "samples.fid",
                "samples.precision",
                "samples.recall",
                "train_seconds",
            ),  # fmt: skip
            report="genmodels.sections:vae_sections",
            generative=True,
        ),
        Family(
            name="gan",
            params="genmodels.config:GANParams",
            recipe="genmodels.models.gan:GANRecipe",
            graphs=(GraphSpec("generator", "generate"),),
            endpoints=("generate", "decode"),
            # evaluator space, evaluate.n_samples samples; classes of 10 holding at least
            # evaluate.min_class_share
            gate={
                "fid": {"max": 25.0},
                "precision": {"min": 0.5},
                "recall": {"min": 0.3},
                "class_coverage": {"min": 9},
            },  # fmt: skip
            headline=(
                "fid",
                "kid",
                "precision",
                "recall",
                "density",
                "coverage",
                "class_coverage",
                "class_kl",
                "oscillation_index",
                "train_seconds",
            ),  # fmt: skip
            report="genmodels.sections:gan_sections",
            generative=True,
        ),
        Family(
            name="cgan",
            params="genmodels.config:CGANParams",
            recipe="genmodels.models.cgan:CGANRecipe",
            graphs=(GraphSpec("generator", "generate"),),
            endpoints=("generate",),
            # the evaluator's label is the one asked for; within-class spread against real
            # images in the worst class
            gate={
                "fid": {"max": 25.0},
                "conditional_accuracy": {"min": 0.75},
                "diversity_ratio_min": {"min": 0.6},
                "class_coverage": {"min": 9},
            },  # fmt: skip
            headline=(
                "fid",
                "conditional_accuracy",
                "conditional_accuracy_ratio",
                "diversity_ratio_min",
                "diversity_ratio_mean",
                "fid_per_class_mean",
                "precision",
                "recall",
                "class_coverage",
                "train_seconds",
            ),  # fmt: skip
            report="genmodels.sections:cgan_sections",
            generative=True,
        ),
        Family(
            name="cyclegan",
            params="genmodels.config:CycleGANParams",
            recipe="genmodels.models.cyclegan:CycleGANRecipe",
            graphs=(GraphSpec("generator_ab", "translate"), GraphSpec("generator_ba", "translate")),
            endpoints=("translate",),
            # on the test set's true pairs: L1 of output = input over L1 of the translation,
            # and the evaluator's accuracy on B -> A translations
            gate={
                "ab.l1_ratio_vs_identity": {"min": 2.0},
                "ba.l1_ratio_vs_identity": {"min": 2.0},
                "ba.label_preservation": {"min": 0.8},
            },  # fmt: skip
            headline=(
                "ab.l1",
                "ba.l1",
                "ab.l1_ratio_vs_identity",
                "ba.l1_ratio_vs_identity",
                "ba.label_preservation",
                "ab.fid",
                "ba.fid",
                "ab.cycle_l1",
                "ba.cycle_l1",
                "train_seconds",
            ),  # fmt: skip
            report="genmodels.sections:cyclegan_sections",
        ),
        Family(
            name="srgan",
            params="genmodels.config:SRGANParams",
            recipe="genmodels.models.srgan:SRGANRecipe",
            graphs=(GraphSpec("generator", "upscale"),),
            endpoints=("upscale",),
            # dB over bicubic from the same inputs; FID against the HR test images; the
            # evaluator's accuracy on upscaled test images. Data without labels has no accuracy:
            # the gate then refuses the alias, naming it; give such a profile its own gate in
            # params register.gates.srgan (e.g. target.perceptual_gain_over_srresnet: {min: 0})
            gate={"psnr_gain": {"min": 2.0}, "fid": {"max": 20.0}, "accuracy": {"min": 0.7}},
            headline=(
                "psnr",
                "psnr_gain",
                "psnr_y",
                "ssim",
                "fid",
                "accuracy",
                "bicubic.psnr",
                "bicubic.fid",
                "hr_accuracy",
                "train_seconds",
            ),  # fmt: skip
            report="genmodels.sections:srgan_sections",
            sample_quality=False,  # its FID compares with the HR test images: its own table
        ),
        Family(
            name="evaluator",
            params="genmodels.config:EvaluatorParams",
            recipe="genmodels.models.evaluator:EvaluatorRecipe",
            graphs=(GraphSpec("classifier", "classify"),),
            gate={"accuracy": {"min": 0.85}},
            headline=("accuracy", "test_nll"),
        ),
    )
}


def family(name: Any) -> Family:
    """The row of a family; an unknown name is a user error listing the known ones."""
    found = FAMILIES.get(name) if isinstance(name, str) else None
    if found is None:
        raise UserError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
    return found


def task_of(family_name: str | None, graph: str) -> str | None:
    """The task of a family's graph (None for a graph the table does not know)."""
    row = FAMILIES.get(family_name) if family_name else None
    return row.task_of(graph) if row is not None else None
