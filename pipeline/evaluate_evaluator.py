"""evaluate_evaluator: the evaluator's test accuracy, the reference features every sample metric
compares with, and the reference row: real held-out test images judged like generated ones."""

from pathlib import Path

import torch

from genmodels.config import EVALUATOR, load_params
from genmodels.data.prepared import load_prepared
from genmodels.families import family
from genmodels.io import write_json
from genmodels.metrics.space import EvaluatorSpace, SuiteSettings, compute_reference, space_named
from genmodels.models import data_info, load_trained
from genmodels.models.evaluator import feature_space_name
from genmodels.nn.features import feature_extractor
from genmodels.sections import headline
from genmodels.stage import run_stage
from genmodels.tracking import stage_run
from genmodels.training import EvalContext
from genmodels.training.runtime import seed_everything, select_device, set_threads

METRICS = Path("metrics/eval")
SUMMARY = Path("metrics/summary")
REFERENCE_HEADLINE = ("fid", "kid", "precision", "recall", "density", "coverage", "class_coverage")


def main(args) -> None:
    params = load_params(args.params)
    settings = params.evaluate
    set_threads(params.train.num_threads)
    seed_everything(settings.seed)
    device = select_device(params.train.device)
    data = load_prepared(params.data.prepared_dir)
    info = data_info(data)
    evaluator = load_trained(params.evaluator, EVALUATOR, info, device)
    logged = {"evaluate": settings.model_dump(mode="json"),
              "model": params.evaluator.model_dump(mode="json")}  # fmt: skip
    tags = {"instance": EVALUATOR, "family": EVALUATOR}
    with stage_run("evaluate_evaluator", info.dataset, logged, tags=tags) as run:
        ctx = EvalContext(
            train_images=data.train_images, train_labels=data.train_labels,
            test_images=data.test_images, test_labels=data.test_labels,
            figures_dir=Path("reports/figures") / EVALUATOR, batch_size=settings.batch_size,
            n_grid=settings.n_grid, ssim_window=settings.ssim_window,
            ssim_sigma=settings.ssim_sigma, seed=settings.seed, device=device,
        )  # fmt: skip
        accuracy = evaluator.evaluate(ctx).metrics
        write_json(
            METRICS / f"{EVALUATOR}.json", {"instance": EVALUATOR, "family": EVALUATOR, **accuracy}
        )
        run.log_metrics(accuracy)

        extract = feature_extractor(settings, evaluator, device)
        reference = compute_reference(
            settings.features, extract, evaluator.probabilities, data.train_images,
            data.train_labels, data.test_images, data.test_labels, settings.batch_size,
        )  # fmt: skip
        reference.save()
        space = EvaluatorSpace(
            extract, evaluator.probabilities, reference, data.train_images, data.test_images,
            SuiteSettings.from_params(settings), data.num_classes,
            feature_space=feature_space_name(params, evaluator),
        )  # fmt: skip
        # the floor no generator can beat: unseen real images, as many as generated ones
        chosen = torch.randperm(
            len(data.test_images), generator=torch.Generator().manual_seed(settings.seed)
        )[: settings.n_samples]
        row = space.sample_metrics(
            data.test_images[chosen].float() / 255.0, features=reference.test_features[chosen]
        )
        row = {"instance": "reference", "family": "real", **space_named(space), **row}
        write_json(METRICS / "reference.json", row)
        # the evaluator's headline numbers, and the reference row's: the floor of the generators'
        summary = headline(accuracy, family(EVALUATOR).headline)
        summary |= {f"reference.{k}": v for k, v in headline(row, REFERENCE_HEADLINE).items()}
        write_json(SUMMARY / f"{EVALUATOR}.json", summary)
        run.log_metrics({f"reference.{k}": v for k, v in row.items()})


if __name__ == "__main__":
    run_stage(main, "Evaluate the evaluator and compute the real reference")
