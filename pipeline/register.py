"""register: every exported ONNX graph into the MLflow model registry, behind quality gates.

Each graph becomes a version of <instance>-<graph>, logged with the onnx flavour into the
instance's training run; the version gets the alias (champion) only when metrics/eval/
<instance>.json passes params register.gates.<family>. The record of what happened to each
graph is written to params register.record (reports/registry.json).
"""

import json
import logging
from pathlib import Path

from genmodels.config import load_params
from genmodels.io import write_json
from genmodels.registry import exported_families, register_instance
from genmodels.stage import run_stage
from genmodels.tracking import open_registry

log = logging.getLogger("register")


def main(args) -> None:
    # a uv virtualenv has no pip: mlflow warns for every model it writes a conda.yaml for
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    params = load_params(args.params)
    settings = params.registry
    experiment = open_registry(params.data.name)  # the experiment of the training runs
    instances = {name: model.family for name, model in params.models.items()}
    # graphs exported outside models: (the evaluator) are registered too, by their metadata
    instances |= {
        k: v for k, v in exported_families(params.export.dir).items() if k not in instances
    }
    records = []
    for instance, family in instances.items():
        records += register_instance(
            instance,
            family,
            params.export.dir,
            Path("metrics/eval") / f"{instance}.json",
            settings.gate_for(family),
            settings.alias,
            experiment,
        )
    champions = sum(1 for r in records if r.get("alias"))
    write_json(settings.record, {"alias": settings.alias, "versions": records})
    new = sum(1 for r in records if r.get("status") == "registered")
    log.info("%d graphs, %d new versions, %d hold %r", len(records), new, champions, settings.alias)
    refused = [r for r in records if not r.get("alias")]
    for r in refused:
        log.warning("%s: no %s: %s", r.get("name", r["instance"]), settings.alias,
                    json.dumps(r.get("reasons") or r.get("reason")))  # fmt: skip


if __name__ == "__main__":
    run_stage(main, "Register the exported ONNX graphs in the MLflow model registry")
