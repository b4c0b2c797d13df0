"""The evaluator: a CNN trained on the prepared data. Its penultimate layer is the feature space
of FID, KID, precision/recall and class coverage, since no pretrained Inception or VGG weights
can be downloaded offline (see genmodels.nn.features for the pluggable choice).

On labelled data it classifies the classes. Data without labels (photos, flat folders, unpaired
domains) train it to tell which rotation an image was given (RotNet, Gidaris et al. 2018): to
say which way is up it must recognise the objects and their parts, so its features carry the
content of the images, where an autoencoder's code spends itself on pixel detail.
load_space() hands the trained evaluator and its reference to the stages that judge samples."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genmodels.config import EVALUATOR, EvaluatorParams, Params
from genmodels.data.prepared import PreparedData
from genmodels.errors import UserError
from genmodels.metrics.space import (
    REFERENCE_FILE,
    REFERENCE_HINT,
    EvaluatorSpace,
    RealReference,
    SuiteSettings,
)
from genmodels.models import data_info, load_trained
from genmodels.nn.batching import map_batches
from genmodels.nn.classifier import Classifier, ProbabilitiesAndFeatures
from genmodels.nn.features import feature_extractor
from genmodels.training.recipe import Batch, DataInfo, EvalContext, EvalResult, Exportable, Recipe
from genmodels.training.runtime import adam


def rotation_count(image_shape: tuple[int, ...]) -> int:
    """Quarter turns for square images; half turns only where a quarter turn changes the shape."""
    return 4 if image_shape[-1] == image_shape[-2] else 2


def rotated(images: Tensor, turns: Tensor, count: int) -> Tensor:
    """Each image turned counter-clockwise by its label in `turns` (of `count` equal turns)."""
    out = images.clone()
    for k in range(1, count):
        chosen = turns == k
        out[chosen] = torch.rot90(images[chosen], k * 4 // count, dims=(2, 3))
    return out


def rotation_names(count: int) -> list[str]:
    return [f"{k * 360 // count} degrees" for k in range(count)]


class EvaluatorRecipe(Recipe):
    def __init__(self, params: EvaluatorParams, data: DataInfo, device: torch.device):
        super().__init__(params, data, device)
        self.task = params.resolved_task(data.num_classes > 0)
        self.outputs = (
            data.num_classes if self.task == "classes" else rotation_count(data.image_shape)
        )
        self.classifier = Classifier(
            data.image_shape, params.channels, params.features, self.outputs, params.dropout
        ).to(device)
        self.optimizer = adam(
            self.classifier.parameters(),
            lr=params.lr,
            weight_decay=params.weight_decay,
            decoupled_weight_decay=True,
        )
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, params.lr_decay)

    def modules(self) -> dict[str, nn.Module]:
        return {"classifier": self.classifier}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adamw": self.optimizer}

    def schedulers(self):
        return {"lr": self.scheduler}

    def end_of_epoch(self, epoch: int) -> None:
        self.scheduler.step()

    def targets(self, images: Tensor, step: int) -> tuple[Tensor, Tensor]:
        """Rotation task: the batch turned by labels cycling with the step (every turn equally
        often, reproducible on resume without a random state)."""
        turns = (torch.arange(len(images), device=images.device) + step) % self.outputs
        return rotated(images, turns, self.outputs), turns

    def training_step(self, batch: Batch, step: int) -> dict[str, Tensor]:
        images, labels = batch.images, batch.labels
        if self.task == "rotation":
            images, labels = self.targets(images, step)
        logits = self.classifier(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.params.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        accuracy = (logits.argmax(1) == labels).float().mean()
        return {"loss": loss.detach(), "accuracy": accuracy.detach()}

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """Penultimate-layer features of [0, 1] images: the space of FID and PRDC."""
        self.train(False)
        return self.classifier.features(images.to(self.device))

    @torch.no_grad()
    def probabilities(self, images: Tensor) -> Tensor:
        self.train(False)
        return torch.softmax(self.classifier(images.to(self.device)), dim=1)

    @torch.no_grad()
    def features_and_probabilities(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Both from one pass: the head reads the features (dropout is off in eval mode)."""
        self.train(False)
        features = self.classifier.features(images.to(self.device))
        return features, torch.softmax(self.classifier.head(features), dim=1)

    def evaluate(self, ctx: EvalContext) -> EvalResult:
        images, labels = ctx.test_images, ctx.test_labels
        names = self.data.class_names()
        if self.task == "rotation":  # every test image at every turn
            labels = torch.arange(self.outputs).repeat_interleave(len(images))
            images = torch.cat([rotated(images, torch.full_like(ctx.test_labels, k),
                                        self.outputs) for k in range(self.outputs)])  # fmt: skip
            names = rotation_names(self.outputs)
        probs = map_batches(self.probabilities, images, ctx.batch_size)
        correct = probs.argmax(1) == labels
        per_class = [correct[labels == c].float().mean().item() for c in range(self.outputs)]
        nll = F.nll_loss(probs.clamp_min(1e-12).log(), labels).item()
        metrics = {"task": self.task, "accuracy": correct.float().mean().item(), "test_nll": nll,
                   "per_class_accuracy": per_class, "classes": names}  # fmt: skip
        return EvalResult(metrics=metrics, figures={})

    def exportables(self, real_images: Tensor | None = None) -> list[Exportable]:
        self.train(False)
        c, h, w = self.data.image_shape
        return [
            Exportable(
                name="classifier",
                module=ProbabilitiesAndFeatures(self.classifier),
                example_inputs=(torch.rand(2, c, h, w),),
                input_names=["image"],
                output_names=["probabilities", "features"],
                dynamic_axes={"image": {0: "batch"}},
                doc=f"image [batch,{c},{h},{w}] in [0,1] -> {self.task} probabilities "
                f"[batch,{self.outputs}], features [batch,{self.params.features}]",
                metadata={
                    "task": "classify" if self.task == "classes" else "rotation",
                    "num_classes": str(self.outputs),
                    "pixel_range": "0,1",
                },  # fmt: skip
                real_inputs=None if real_images is None else (real_images.cpu(),),
            )
        ]


def feature_space_name(params: Params, evaluator: EvaluatorRecipe) -> str:
    """What the sample metrics' features are, as every metrics file and the report name it."""
    wanted = params.evaluate.features
    if wanted == EVALUATOR:
        return f"evaluator ({evaluator.task})"  # its own classes, or rotation on unlabelled data
    if wanted == "fid_inception":
        return "fid_inception (Inception-v3, FID weights pt_inception-2015-12-05)"
    return f"{wanted} (ImageNet weights)"


def load_space(params: Params, data: PreparedData, device: torch.device) -> EvaluatorSpace:
    """The evaluator space of the train and evaluate stages: the trained evaluator and the
    reference features written by evaluate_evaluator."""
    evaluator = load_trained(params.evaluator, EVALUATOR, data_info(data), device)
    reference = RealReference.load()
    wanted = params.evaluate.features
    if reference.extractor != wanted:
        raise UserError(
            f"{REFERENCE_FILE}: computed with '{reference.extractor}' features but "
            f"evaluate.features is '{wanted}'; {REFERENCE_HINT} again"
        )
    return EvaluatorSpace(
        feature_extractor(params.evaluate, evaluator, device),
        evaluator.probabilities,
        reference,
        data.train_images,
        data.test_images,
        SuiteSettings.from_params(params.evaluate),
        data.num_classes,
        network=evaluator.classifier,
        extract_and_classify=(
            evaluator.features_and_probabilities if wanted == EVALUATOR else None
        ),
        feature_space=feature_space_name(params, evaluator),
    )
