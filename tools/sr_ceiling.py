"""The photo profile's PSNR ceiling (`make sr-ceiling`): the srresnet instance, with its own
params, seed and step budget, trained on the held-out photos' own tiles and measured exactly as
evaluate@srresnet measures it (each held-out photo upscaled whole, PSNR_y over bicubic).

A network that has seen the test photos bounds what the same network and budget can gain on
them after training on other photos, so this says whether the profile's PSNR target is
reachable at its budget. Writes reports/sr_ceiling.json in the profile's folder, which
tools/profile_docs.py sets beside the target. Run from the repository's root:

    python tools/sr_ceiling.py [--profile profiles/photos] [--instance srresnet]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import chdir
from pathlib import Path

import torch

from genmodels.config import load_params
from genmodels.data.prepared import load_prepared
from genmodels.errors import UserError
from genmodels.models import build_recipe, data_info
from genmodels.models.evaluator import load_space
from genmodels.training import Batch, EvalContext
from genmodels.training.runtime import seed_everything, set_threads
from timed_repro import cpu_model

OUT = Path("reports/sr_ceiling.json")  # in the profile's folder


def train_on(recipe, images: torch.Tensor, steps: int, batch_size: int, seed: int) -> None:
    """`steps` training steps on uint8 `images`, in shuffled epochs as the Trainer draws them."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.empty(0, dtype=torch.long)
    for step in range(steps):
        if len(order) < batch_size:
            order = torch.randperm(len(images), generator=generator)
        picked, order = order[:batch_size], order[batch_size:]
        batch = Batch(images[picked].float() / 255.0, torch.zeros(len(picked), dtype=torch.long))
        recipe.training_step(batch, step)


def ceiling(params, instance: str, data, space, device: torch.device) -> dict:
    """The instance trained on `data`'s test images and judged on them; the metrics the
    ceiling report keeps."""
    model = params.model(instance)
    if model.family != "srgan" or model.variant != "srresnet" or model.steps is None:
        raise UserError(
            f"--instance {instance}: the ceiling trains an SRResNet for a number of steps; name "
            "an instance of family srgan with variant srresnet and steps set"
        )
    seed_everything(params.train.seed)
    recipe = build_recipe(model, data_info(data), device, instance)
    started = time.perf_counter()
    train_on(recipe, data.test_images, model.steps, model.batch_size, params.train.seed)
    seconds = time.perf_counter() - started
    settings = params.evaluate
    with tempfile.TemporaryDirectory() as figures:
        metrics = recipe.evaluate(EvalContext(
            train_images=data.train_images, train_labels=data.train_labels,
            test_images=data.test_images, test_labels=data.test_labels,
            figures_dir=Path(figures), batch_size=settings.batch_size, n_grid=settings.n_grid,
            ssim_window=settings.ssim_window, ssim_sigma=settings.ssim_sigma, seed=settings.seed,
            device=device, space=space, test_grids=data.tile_grids(),
        )).metrics  # fmt: skip
    return {
        "instance": instance,
        "trained_on": "the test images themselves (the held-out photos' tiles)",
        "train_images": len(data.test_images),
        "steps": model.steps,
        "batch_size": model.batch_size,
        "test_images": metrics.get("test_images", len(data.test_images)),
        "psnr_y": metrics["model"]["psnr_y"],
        "bicubic_psnr_y": metrics["bicubic"]["psnr_y"],
        "psnr_y_gain_over_bicubic": metrics["target"]["psnr_y_gain_over_bicubic"],
        "psnr_y_gain_min": metrics["target"]["psnr_y_gain_min"],
        "train_seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--profile",
        type=Path,
        default=Path("profiles/photos"),
        help="the profile's folder (its params.yaml, prepared data, evaluator)",
    )
    parser.add_argument("--instance", default="srresnet", help="an srresnet instance of it")
    args = parser.parse_args(argv)
    if not (args.profile / "params.yaml").is_file():
        parser.error(f"--profile {args.profile}: no params.yaml there; name a profile's folder")
    try:
        with chdir(args.profile):  # the profile's paths are relative to its folder
            params = load_params("params.yaml")
            set_threads(params.train.num_threads)
            device = torch.device("cpu")
            data = load_prepared(params.data.prepared_dir)
            space = load_space(params, data, device)
            record = ceiling(params, args.instance, data, space, device)
            record["cpu_model"] = cpu_model()
            OUT.parent.mkdir(parents=True, exist_ok=True)
            OUT.write_text(json.dumps(record, indent=2) + "\n")
    except UserError as exc:
        print(f"sr_ceiling: {exc}", file=sys.stderr)
        return 1
    gain = record["psnr_y_gain_over_bicubic"]
    print(f"ceiling of {args.instance}: {gain:+.3f} dB PSNR_y over bicubic -> "
          f"{args.profile / OUT}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
