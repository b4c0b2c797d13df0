"""The one contract between a model family and the pipeline: the Recipe.

A family file in genmodels/models/ subclasses Recipe; the Trainer, the evaluate stage and the
export stage drive it without knowing which model it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from genmodels.metrics.space import EvaluatorSpace


@dataclass(frozen=True)
class DataInfo:
    """What a recipe needs to know about the prepared data to build its modules."""

    dataset: str
    image_shape: tuple[int, int, int]  # C, H, W
    num_classes: int
    classes: tuple[str, ...] = ()  # the manifest's class names

    @property
    def labelled(self) -> bool:
        return self.num_classes > 0

    def class_names(self, count: int | None = None) -> list[str]:
        """The names of the first `count` classes (all by default); numbers where unnamed."""
        count = self.num_classes if count is None else count
        return [self.classes[c] if c < len(self.classes) else str(c) for c in range(count)]


@dataclass
class Batch:
    images: Tensor  # float32 in [0, 1], NCHW, on the training device
    labels: Tensor  # int64 class labels


@dataclass
class Exportable:
    """A part of a model that becomes one ONNX graph (a decoder, a generator, ...)."""

    name: str
    module: nn.Module
    example_inputs: tuple[Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    # input name -> {axis index: symbolic dim name}; the batch axis at least
    dynamic_axes: dict[str, dict[int, str]]
    doc: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    # inputs built from real test data, checked for parity besides random ones
    real_inputs: tuple[Tensor, ...] | None = None
    # further inputs (tuples like example_inputs) checked for parity: other spatial sizes of a
    # graph whose height and width are dynamic (an upscaler at 7x7 and 14x14)
    parity_inputs: list[tuple[Tensor, ...]] = field(default_factory=list)


@dataclass
class EvalContext:
    """What the evaluate stage hands to a recipe: data, settings and where figures go."""

    train_images: Tensor  # uint8 NCHW on CPU
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    figures_dir: Path
    batch_size: int
    n_grid: int
    ssim_window: int
    ssim_sigma: float
    seed: int
    device: torch.device
    space: EvaluatorSpace | None = None  # features, classes, sample metrics
    n_samples: int = 0  # generated images to judge
    train_history: list[dict[str, float]] = field(default_factory=list)  # the logged rows
    train_metrics: dict[str, Any] = field(default_factory=dict)  # metrics/train/<instance>
    # the test images as tiles of whole images (resize crops): each one's rows and columns
    test_grids: list[tuple[int, int]] | None = None


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    figures: dict[str, Path]  # caption -> PNG path
    table: dict[str, float] = field(default_factory=dict)  # headline numbers for the report


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside DistributedDataParallel and torch.compile wrappers (or itself)."""
    while True:
        if isinstance(module, DistributedDataParallel):
            module = module.module
        elif isinstance(module, torch._dynamo.eval_frame.OptimizedModule):
            module = module._orig_mod
        else:
            return module


class Recipe(ABC):
    """A model family: its modules, optimizers, one training step, evaluation and exports."""

    def __init__(self, params: Any, data: DataInfo, device: torch.device):
        self.params = params
        self.data = data
        self.device = device
        self.space: EvaluatorSpace | None = None  # the evaluator space, when monitoring
        self.monitor_samples = 0
        # True when training itself uses the evaluator (a loss in its features, as SRGAN's
        # content loss): the train stage then attaches the space even with monitoring off
        self.needs_space = False

    def attach_data(self, prepared_dir: str | Path) -> dict[str, Any]:
        """Reads what the family needs from the prepare stage's output besides the train/test
        images the Trainer and EvalContext carry (the CycleGAN: its domain pairs, domains.pt).

        The train, evaluate and export stages call it right after building (or loading) the
        recipe. Returns what identifies that data (JSON-able): it joins the training checkpoint's
        fingerprint, so a checkpoint made on other data is not resumed. Most families need none.
        """
        return {}

    def attach_space(self, space: EvaluatorSpace, monitor_samples: int) -> None:
        """Gives the recipe the evaluator space its monitor() judges samples in."""
        self.space, self.monitor_samples = space, monitor_samples

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Every trainable network by name; the Trainer checkpoints them all."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One or several; a recipe with several alternates them in training_step."""

    def schedulers(self) -> dict[str, Any]:
        return {}

    @abstractmethod
    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        """Forward, backward and optimizer steps for one batch; returns numbers to log."""

    def end_of_epoch(self, epoch: int) -> None:  # noqa: B027 - optional hook
        """Called after each full epoch (schedulers, sample grids)."""

    def monitor(self) -> dict[str, float]:
        """Numbers watched during training every `train.monitor_every` steps (in the evaluator
        space: FID, recall, class histogram ...). Must not draw from the global RNG, so that a
        resumed run sees the same numbers."""
        return {}

    def summarise(self, history: list[dict[str, float]]) -> dict[str, Any]:
        """Figures computed from the logged rows for metrics/train (an oscillation index ...)."""
        return {}

    @abstractmethod
    def evaluate(self, ctx: EvalContext) -> EvalResult:
        """Metrics and figures on the test set."""

    @abstractmethod
    def exportables(self, real_images: Tensor | None = None) -> list[Exportable]:
        """The parts that become ONNX graphs; `real_images` (float, [0, 1]) give real inputs."""

    def extra_state(self) -> dict[str, Any]:
        """Non-module state to checkpoint (buffers such as an image history)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        pass

    def wrap_trained(self, wrap) -> None:
        """Wraps every network an optimizer trains (DistributedDataParallel under torchrun,
        torch.compile).

        A network is found by its modules() name, which must be the recipe's attribute holding
        it; the recipe's own calls then go through the wrapper. Weight averages and frozen
        networks stay as they are.
        """
        trained = {id(p) for opt in self.optimizers().values() for group in opt.param_groups
                   for p in group["params"]}  # fmt: skip
        for name, module in self.modules().items():
            if not any(id(p) in trained for p in module.parameters()):
                continue
            if getattr(self, name, None) is not module:
                raise TypeError(
                    f"{type(self).__name__}: modules()['{name}'] is not self.{name}, so it "
                    "cannot be wrapped for distributed training"
                )
            setattr(self, name, wrap(module))

    def train(self, mode: bool = True) -> None:
        for module in self.modules().values():
            module.train(mode)

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode and no gradients for a look at the model mid-training; modes restored."""
        modes = {name: module.training for name, module in self.modules().items()}
        self.train(False)
        try:
            with torch.no_grad():
                yield
        finally:
            for name, module in self.modules().items():
                module.train(modes[name])

    def state_dict(self) -> dict[str, Any]:
        return {name: unwrap(m).state_dict() for name, m in self.modules().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, module in self.modules().items():
            unwrap(module).load_state_dict(state[name])
