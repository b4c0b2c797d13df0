"""prepare: read and validate the raw dataset, write data/prepared and metrics/data.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genmodels.config import load_params
from genmodels.data.prepare import prepare
from genmodels.stage import run_stage
from genmodels.tracking import stage_run

METRICS_PATH = Path("metrics/data.json")


def main(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    section = params.data.model_dump(mode="json")
    with stage_run("prepare", params.data.name, {"data": section}) as run:
        prepare(params.data, metrics_path=METRICS_PATH)
        run.log_metrics(json.loads(METRICS_PATH.read_text()))
        run.log_artifact(Path(params.data.prepared_dir) / "manifest.json")


if __name__ == "__main__":
    run_stage(main, description=__doc__)
