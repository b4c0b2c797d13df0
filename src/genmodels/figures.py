"""Figures for the evaluation report: image grids (torchvision) and latent scatters."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: stages run under DVC and CI
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402
from torchvision.utils import save_image  # noqa: E402

from genmodels.io import atomic_path  # noqa: E402

CLASS_NAMES = {
    "fashion_mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
}  # fmt: skip


def class_names(dataset: str, num_classes: int = 10) -> list[str]:
    return CLASS_NAMES.get(dataset, [str(i) for i in range(num_classes)])


def save_rows(rows: Sequence[Tensor], path: Path, padding: int = 2) -> Path:
    """One image row per tensor (same count each), e.g. originals over reconstructions."""
    per_row = rows[0].shape[0]
    images = torch.cat([r.detach().float().cpu().clamp(0, 1) for r in rows])
    with atomic_path(path.with_suffix(".png")) as tmp:
        save_image(images, tmp, nrow=per_row, padding=padding, pad_value=1.0, format="png")
    return path


def latent_scatter(z: Tensor, labels: Tensor, names: Sequence[str], path: Path, title: str) -> Path:
    z, labels = z.detach().cpu().numpy(), labels.cpu().numpy()
    fig, ax = plt.subplots(figsize=(7, 6), dpi=100)
    points = ax.scatter(
        z[:, 0], z[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7, vmin=-0.5, vmax=9.5
    )
    bar = fig.colorbar(points, ax=ax, ticks=range(len(names)))
    bar.ax.set_yticklabels(names)
    ax.set(xlabel="z[0]", ylabel="z[1]", title=title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
