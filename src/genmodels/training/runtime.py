"""Device choice, seeding and thread settings shared by the training and evaluate stages."""

from __future__ import annotations

import logging
import random

import numpy as np
import torch

from genmodels.errors import UserError

log = logging.getLogger(__name__)


def select_device(name: str = "auto") -> torch.device:
    """`auto` takes CUDA when present, else the CPU; an explicit device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"train.device is {name!r} but no CUDA device is visible; use 'auto' or 'cpu'"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("train.device is 'mps' but MPS is not available; use 'auto' or 'cpu'")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(num_threads: int) -> None:
    if num_threads > 0:
        torch.set_num_threads(num_threads)
