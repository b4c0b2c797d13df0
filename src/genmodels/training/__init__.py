"""Training: the Recipe contract, the Trainer, device and seed handling."""

from genmodels.training import distributed
from genmodels.training.recipe import Batch, DataInfo, EvalContext, EvalResult, Exportable, Recipe
from genmodels.training.trainer import Budget, Trainer, TrainOutputs

__all__ = [
    "Batch",
    "Budget",
    "DataInfo",
    "EvalContext",
    "EvalResult",
    "Exportable",
    "Recipe",
    "TrainOutputs",
    "Trainer",
    "distributed",
]
