"""Figures for the evaluation report: image grids (torchvision) and latent scatters.

torchvision and pyplot are imported where a figure is drawn: every train and export stage
imports the model families, and those two cost seconds of start-up in each stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genmodels.atomic import atomic_path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # headless: stages run under DVC and CI
    import matplotlib.pyplot as plt

    return plt


def save_rows(rows: Sequence[Tensor], path: Path, padding: int = 2) -> Path:
    """One image row per tensor (same count each), e.g. originals over reconstructions."""
    per_row = rows[0].shape[0]
    from torchvision.utils import save_image

    images = torch.cat([r.detach().float().cpu().clamp(0, 1) for r in rows])
    with atomic_path(path.with_suffix(".png")) as tmp:
        save_image(images, tmp, nrow=per_row, padding=padding, pad_value=1.0, format="png")
    return path


BY_CLASS = " by class"  # in a caption, where the points are coloured by their labels


def latent_scatter(z: Tensor, labels: Tensor, names: Sequence[str], path: Path, title: str) -> Path:
    """2-d codes, coloured by class where there are `names` (one colour for unlabelled data)."""
    z, labels = z.detach().cpu().numpy(), labels.cpu().numpy()
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6), dpi=100)
    if names:
        points = ax.scatter(
            z[:, 0], z[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7, vmin=-0.5, vmax=9.5
        )
        bar = fig.colorbar(points, ax=ax, ticks=range(len(names)))
        bar.ax.set_yticklabels(names)
    else:
        ax.scatter(z[:, 0], z[:, 1], s=3, alpha=0.7)
    ax.set(xlabel="z[0]", ylabel="z[1]", title=title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def game_curves(history: Sequence[dict[str, float]], path: Path, title: str) -> Path:
    """The GAN game over training: losses, D's outputs, gradient norms, and the monitor."""

    def column(key: str) -> tuple[list[float], list[float]]:
        rows = [row for row in history if key in row]
        return [row["step"] for row in rows], [row[key] for row in rows]

    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), dpi=100)
    panels = [
        (axes[0, 0], ["d_loss", "g_loss"], "loss", False),
        (axes[0, 1], ["d_real", "d_fake"], "mean D(x), D(G(z))", False),
        (axes[1, 0], ["d_grad_norm", "g_grad_norm"], "gradient norm", True),
        (axes[1, 1], ["monitor_precision", "monitor_recall"], "evaluator space", False),
    ]
    for ax, keys, label, log_scale in panels:
        for key in keys:
            steps, values = column(key)
            if values:
                ax.plot(steps, values, label=key.removeprefix("monitor_"), lw=1)
        ax.set(xlabel="step", ylabel=label)
        if log_scale:
            ax.set_yscale("log")
        ax.legend(loc="best", fontsize=8)
    steps, coverage = column("monitor_class_coverage")
    if coverage:
        twin = axes[1, 1].twinx()
        twin.plot(steps, coverage, color="tab:green", lw=1, ls="--", label="classes covered")
        twin.set_ylabel("classes covered")
        twin.legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def game_figures(ctx: Any, samples: Tensor, progress: Sequence[Tensor], averaged: bool,
                 loss: str) -> dict[str, Path]:  # fmt: skip
    """A GAN's figures: samples, the fixed-noise progression one row per epoch, and the game's
    curves from the logged rows (ctx: the EvalContext)."""
    n, out = ctx.n_grid, ctx.figures_dir
    figures = {
        f"Samples of the {'EMA ' if averaged else ''}generator": save_rows(
            list(samples[: 8 * n].split(n)), out / "samples.png"
        )
    }
    if progress:
        figures["Fixed-noise samples, one row per epoch (top: first epoch)"] = save_rows(
            progress, out / "progression.png"
        )
    if ctx.train_history:
        figures["The game: losses, D outputs, gradient norms, evaluator-space monitor"] = (
            game_curves(ctx.train_history, out / "game.png", f"{loss} GAN")
        )
    return figures
