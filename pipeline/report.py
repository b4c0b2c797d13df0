"""report: reports/evaluation.md (every table and figure) and reports/summary.md (the headline
numbers) from every instance's metrics/eval/<instance>.json."""

from pathlib import Path

from genmodels.config import load_params
from genmodels.io import write_text
from genmodels.report import load_evaluations, load_reference, render, summary, tables
from genmodels.stage import run_stage
from genmodels.tracking import stage_run

REPORT = Path("reports/evaluation.md")
SUMMARY = Path("reports/summary.md")
METRICS = Path("metrics/eval")
FIGURES = Path("reports/figures")


def main(args) -> None:
    params = load_params(args.params)
    evals = load_evaluations(params.models, METRICS)
    evaluator, reference = load_reference(METRICS)
    if not args.print_only:
        write_text(REPORT, render(evals, FIGURES, REPORT.parent, evaluator, reference))
        write_text(SUMMARY, summary(evals, FIGURES, SUMMARY.parent, evaluator))
        with stage_run("report", params.data.name, {"instances": list(evals)}) as run:
            run.log_artifact(REPORT)
            run.log_artifact(SUMMARY)
    print(tables(evals, evaluator, reference))


if __name__ == "__main__":
    run_stage(
        main,
        "Write reports/evaluation.md and reports/summary.md, and print the tables",
        lambda p: p.add_argument("--print-only", action="store_true", help="print, write nothing"),
    )
