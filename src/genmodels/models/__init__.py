"""Model families: one file each, each defining its modules and its Recipe."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from genmodels.errors import UserError
from genmodels.training.recipe import DataInfo, Recipe


def recipe_class(family: str) -> type[Recipe]:
    # imported on demand so a stage loads only the family it runs
    if family == "autoencoder":
        from genmodels.models.autoencoder import AutoencoderRecipe

        return AutoencoderRecipe
    if family == "vae":
        from genmodels.models.vae import VAERecipe

        return VAERecipe
    if family == "gan":
        from genmodels.models.gan import GANRecipe

        return GANRecipe
    if family == "cgan":
        from genmodels.models.cgan import CGANRecipe

        return CGANRecipe
    if family == "cyclegan":
        from genmodels.models.cyclegan import CycleGANRecipe

        return CycleGANRecipe
    if family == "srgan":
        from genmodels.models.srgan import SRGANRecipe

        return SRGANRecipe
    if family == "evaluator":
        from genmodels.models.evaluator import EvaluatorRecipe

        return EvaluatorRecipe
    raise KeyError(f"no recipe for family {family!r}")


def build_recipe(params, data: DataInfo, device: torch.device) -> Recipe:
    return recipe_class(params.family)(params, data, device)


def data_info(prepared) -> DataInfo:
    """What a recipe needs to know about a PreparedData."""
    return DataInfo(
        dataset=prepared.manifest["dataset"],
        image_shape=tuple(prepared.image_shape),
        num_classes=prepared.num_classes,
    )


def weights_path(instance: str) -> Path:
    return Path("models") / instance / "model.pt"


def load_trained(params, instance: str, data: DataInfo, device: torch.device) -> Recipe:
    """The recipe of a trained instance with its final weights loaded."""
    recipe = build_recipe(params, data, device)
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
