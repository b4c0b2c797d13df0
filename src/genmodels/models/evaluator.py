"""The evaluator: a CNN classifier trained on the prepared data. Its penultimate layer is the
feature space of FID, KID, precision/recall and class coverage, since no pretrained Inception
or VGG weights can be downloaded offline (see genmodels.nn.features for the pluggable choice).
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


class EvaluatorRecipe(Recipe):
    def __init__(self, params: EvaluatorParams, data: DataInfo, device: torch.device):
        super().__init__(params, data, device)
        self.classifier = Classifier(
            data.image_shape, params.channels, params.features, data.num_classes, params.dropout
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

    def training_step(self, batch: Batch, step: int) -> dict[str, Tensor]:
        logits = self.classifier(batch.images)
        loss = F.cross_entropy(logits, batch.labels, label_smoothing=self.params.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        accuracy = (logits.argmax(1) == batch.labels).float().mean()
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
        probs = map_batches(self.probabilities, ctx.test_images, ctx.batch_size)
        predicted = probs.argmax(1)
        correct = predicted == ctx.test_labels
        per_class = [
            correct[ctx.test_labels == c].float().mean().item()
            for c in range(self.data.num_classes)
        ]
        nll = F.nll_loss(probs.clamp_min(1e-12).log(), ctx.test_labels).item()
        metrics = {"accuracy": correct.float().mean().item(), "test_nll": nll,
                   "per_class_accuracy": per_class, "classes": self.data.class_names()}  # fmt: skip
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
                doc=f"image [batch,{c},{h},{w}] in [0,1] -> class probabilities "
                f"[batch,{self.data.num_classes}], features [batch,{self.params.features}]",
                metadata={
                    "task": "classify",
                    "num_classes": str(self.data.num_classes),
                    "pixel_range": "0,1",
                },  # fmt: skip
                real_inputs=None if real_images is None else (real_images.cpu(),),
            )
        ]


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
        feature_extractor(wanted, evaluator, device),
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
    )
