"""evaluate@<instance>: metrics and figures of one trained instance on the test set."""

import csv
import json
import shutil
import time
from pathlib import Path

import torch

from genmodels.config import load_params
from genmodels.data.prepared import load_prepared
from genmodels.families import family
from genmodels.io import write_json
from genmodels.metrics.space import space_named
from genmodels.models import data_info, load_trained
from genmodels.models.evaluator import load_space
from genmodels.sections import headline
from genmodels.stage import run_stage
from genmodels.tracking import stage_run
from genmodels.training import EvalContext
from genmodels.training.runtime import seed_everything, select_device, set_threads

SUMMARY = Path("metrics/summary")


def read_history(path: Path) -> list[dict[str, float]]:
    """The rows the Trainer logged (plots/train/<instance>.csv); empty cells are left out."""
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def main(args) -> None:
    params = load_params(args.params)
    model = params.model(args.instance)
    settings = params.evaluate
    set_threads(params.train.num_threads)
    seed_everything(settings.seed)
    device = select_device(params.train.device)
    data = load_prepared(params.data.prepared_dir)
    info = data_info(data)
    recipe = load_trained(model, args.instance, info, device)
    recipe.attach_data(params.data.prepared_dir)
    with torch.random.fork_rng(devices=[]):  # the evaluator's init must not move the seed
        space = load_space(params, data, device)

    figures_dir = Path("reports/figures") / args.instance
    shutil.rmtree(figures_dir, ignore_errors=True)  # no stale figures from another config
    figures_dir.mkdir(parents=True)
    train_metrics_path = Path("metrics/train") / f"{args.instance}.json"
    ctx = EvalContext(
        train_images=data.train_images,
        train_labels=data.train_labels,
        test_images=data.test_images,
        test_labels=data.test_labels,
        figures_dir=figures_dir,
        batch_size=settings.batch_size,
        n_grid=settings.n_grid,
        ssim_window=settings.ssim_window,
        ssim_sigma=settings.ssim_sigma,
        seed=settings.seed,
        device=device,
        space=space,
        n_samples=settings.n_samples,
        train_history=read_history(Path("plots/train") / f"{args.instance}.csv"),
        train_metrics=json.loads(train_metrics_path.read_text()),
        test_grids=data.tile_grids(),
    )
    logged = {"evaluate": settings.model_dump(mode="json"), "model": model.model_dump(mode="json")}
    tags = {"instance": args.instance, "family": model.family}
    with stage_run(f"evaluate@{args.instance}", info.dataset, logged, tags=tags) as run:
        started = time.perf_counter()
        result = recipe.evaluate(ctx)
        metrics = {
            "instance": args.instance,
            "family": model.family,
            "train_seconds": ctx.train_metrics["train_seconds"],
            "evaluate_seconds": round(time.perf_counter() - started, 2),
            **space_named(space),
            **result.metrics,
        }
        write_json(Path("metrics/eval") / f"{args.instance}.json", metrics)
        # the few numbers `dvc metrics show` and `dvc metrics diff` list for the instance
        headline_paths = family(model.family).headline
        write_json(SUMMARY / f"{args.instance}.json", headline(metrics, headline_paths))
        index = {caption: path.name for caption, path in result.figures.items()}
        write_json(figures_dir / "figures.json", index)
        run.log_metrics(result.metrics)
        run.log_artifacts(figures_dir, artifact_path="figures")


if __name__ == "__main__":
    run_stage(
        main,
        "Evaluate one trained model instance",
        lambda p: p.add_argument("--instance", required=True, help="a key of models: in params"),
    )
