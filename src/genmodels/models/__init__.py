"""Model families: one file each, holding its Recipe (what it trains, evaluates and exports).

The family table (genmodels.families) says which file holds which family's Recipe."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from genmodels.config import check_labels, check_shape
from genmodels.errors import UserError
from genmodels.families import family
from genmodels.training.recipe import DataInfo, Recipe


def build_recipe(params, data: DataInfo, device: torch.device, instance: str | None = None
                 ) -> Recipe:  # fmt: skip
    """The Recipe of the params' family (genmodels.families), built on `device`, once its
    networks are known to fit the images (a UserError naming the key of `instance` if not: the
    check params validation makes where params fix the size)."""
    check_shape(params, data.image_shape, instance)
    check_labels(params, data.num_classes, data.dataset, instance)
    return family(params.family).recipe_class()(params, data, device)


def data_info(prepared) -> DataInfo:
    """What a recipe needs to know about a PreparedData."""
    return DataInfo(
        dataset=prepared.manifest["dataset"],
        image_shape=tuple(prepared.image_shape),
        num_classes=prepared.num_classes,
        classes=tuple(prepared.classes),
    )


def weights_path(instance: str) -> Path:
    return Path("models") / instance / "model.pt"


def load_trained(params, instance: str, data: DataInfo, device: torch.device) -> Recipe:
    """The recipe of a trained instance with its final weights loaded."""
    recipe = build_recipe(params, data, device, instance)
    path = weights_path(instance)
    if not path.exists():
        raise UserError(f"{path}: no trained weights; run `dvc repro train@{instance}` first")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        recipe.load_state_dict(state)
    except (RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        raise UserError(
            f"{path}: unreadable or from other params ({exc}); re-run `dvc repro train@{instance}`"
        ) from None
    recipe.train(False)
    return recipe
