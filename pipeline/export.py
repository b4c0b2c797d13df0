"""export@<instance>: ONNX graphs of an instance's decoders/generators, checked in onnxruntime."""

import json
import sys
from pathlib import Path

import torch

from genmodels.config import load_params
from genmodels.data.prepared import load_prepared
from genmodels.export import ParityError, export_and_check
from genmodels.families import FAMILIES
from genmodels.io import write_json
from genmodels.models import data_info, load_trained
from genmodels.stage import dvc_stage_name, run_stage
from genmodels.tracking import stage_run
from genmodels.training.runtime import seed_everything


def latent_range(exportables, images: torch.Tensor) -> list[list[float]] | None:
    """Per code axis, the 1st and 99th percentile of the encoder's codes of real images: the
    region an autoencoder's decoder has learned (its codes follow no prior to sample from)."""
    encoder = next((g for g in exportables if g.name == "encoder"), None)
    if encoder is None:
        return None
    with torch.no_grad():
        codes = encoder.module(images)
    codes = codes[0] if isinstance(codes, tuple) else codes
    if codes.dim() != 2:
        return None
    bounds = torch.quantile(codes.float(), torch.tensor([0.01, 0.99]), dim=0)
    return [[round(low, 4), round(high, 4)] for low, high in bounds.T.tolist()]


def main(args) -> None:
    params = load_params(args.params)
    model = params.model(args.instance)
    settings = params.export
    seed_everything(params.train.seed)
    data = load_prepared(params.data.prepared_dir)
    info = data_info(data)
    # ONNX graphs are traced on the CPU, whatever device trained them
    recipe = load_trained(model, args.instance, info, torch.device("cpu"))
    recipe.attach_data(params.data.prepared_dir)
    real = data.test_images[: settings.n_parity].float() / 255.0
    out_dir = Path(settings.dir) / args.instance

    logged = {"export": settings.model_dump(mode="json"), "model": model.model_dump(mode="json")}
    tags = {"instance": args.instance, "family": model.family}
    with stage_run(dvc_stage_name("export", args.instance), info.dataset, logged, tags=tags) as run:
        failure = None
        try:
            exportables = recipe.exportables(real)
            # what a server needs to route requests, and the data the graph learned from: its
            # images' shape (the size to bring an input to) and class names
            c, h, w = info.image_shape
            data_meta = {"image_channels": c, "image_height": h, "image_width": w}
            if info.num_classes:
                data_meta["class_names"] = json.dumps(info.class_names())
            codes = (
                None
                if FAMILIES[model.family].generative
                else latent_range(exportables, data.test_images[:1000].float() / 255.0)
            )
            for graph in exportables:
                if codes is not None and graph.name == "decoder":
                    graph.metadata = {**graph.metadata, "latent_range": json.dumps(codes)}
                graph.metadata = {"family": model.family, "instance": args.instance,
                                  "graph": graph.name, **data_meta, **graph.metadata}  # fmt: skip
            report = export_and_check(
                exportables, out_dir, settings.opset, settings.atol, real_batch=64
            )
        except ParityError as exc:
            failure, report = exc, exc.report
        write_json(Path("metrics/export") / f"{args.instance}.json", report)
        run.log_metrics({name: {"max_abs_diff": r["max_abs_diff"]} for name, r in report.items()})
        if failure is None:
            run.log_artifacts(out_dir, artifact_path="onnx")
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run_stage(
        main,
        "Export one trained instance to ONNX and check parity",
        lambda p: p.add_argument("--instance", required=True, help="a key of models: in params"),
    )
