"""`make ablation`: the GAN's losses and techniques compared at an equal budget, as DVC
experiments on the `gan` instance, then tabulated into reports/ablation/gan.{json,md}.

Each variant is one experiment on DVC's queue, `dvc exp run --queue -n gan-<variant>
-S models.gan.<key>=<value> ... evaluate@gan` (tools/sweep.py), run by `dvc queue start`: only
train@gan and evaluate@gan run (the evaluator and the data are reused as they are), with the
same steps, batch size and seed, and the experiments stay listed in `dvc exp show`. Queued
experiments run in DVC's temporary copies of the repository, so the workspace and git's HEAD
stay as they are even when the ablation is interrupted; it refuses to start while params.yaml
or dvc.lock hold uncommitted changes, which the experiments would take in. `--jobs 1` (the
default) keeps the train seconds comparable. `--table-only` rebuilds the table from the
experiments. The figures section of docs/benchmarks.md is rendered from the table's JSON at the
end (tools/bench_docs.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench_docs import ABLATION_COLUMNS, update_docs
from genmodels.errors import UserError
from genmodels.io import write_json, write_text
from genmodels.report import markdown_table
from sweep import dvc, run_queued

OUT = Path("reports/ablation")
# name -> the overrides of models.gan; every other setting is the default instance's
VARIANTS: dict[str, dict[str, str]] = {
    "minimax": {"loss": "minimax"},
    "nonsaturating": {"loss": "nonsaturating"},
    "lsgan": {"loss": "lsgan"},
    "hinge-sn": {"loss": "hinge", "spectral_norm": "true", "d_norm": "none"},
    "wgan-gp": {"loss": "wgan_gp", "n_critic": "5", "d_norm": "layer", "betas": "[0.0,0.9]"},
}
METRIC_FILE = "metrics/eval/gan.json"
COLUMNS = [(label, key) for label, key, _ in ABLATION_COLUMNS]  # those of docs/benchmarks.md


# what the queued experiments would take from the workspace instead of the commit
TOUCHED = ["params.yaml", "dvc.lock"]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, text=True, capture_output=True).stdout


def run_variants(names: list[str], steps: int | None, jobs: int) -> None:
    dirty = git("status", "--porcelain", "--", *TOUCHED).strip()
    if dirty:
        raise UserError(
            "these files have uncommitted changes that the queued experiments would take in; "
            f"commit or stash them first:\n{dirty}"
        )
    budget = {} if steps is None else {"steps": str(steps)}  # the same for every variant
    experiments = []
    for name in names:
        # a rerun replaces the experiment of the same name
        subprocess.run([sys.executable, "-m", "dvc", "exp", "remove", f"gan-{name}"],
                       capture_output=True)  # fmt: skip
        overrides = VARIANTS[name] | budget
        experiments.append(
            (f"gan-{name}", [f"models.gan.{key}={value}" for key, value in overrides.items()])
        )
    # the target stops each at the gan's evaluation
    failed = run_queued(experiments, ["evaluate@gan"], jobs)
    if failed:
        raise UserError(f"{failed} variants failed: `dvc queue logs gan-<variant>` shows why")


def experiment_metrics() -> dict[str, dict]:
    """metrics/eval/gan.json of the newest gan-* experiment of each name (`dvc exp show --json`
    over every commit, so later commits keep the table rebuildable), read from the experiment's
    commit: `dvc exp show` lists the declared headline metrics only."""
    shown = json.loads(dvc("exp", "show", "--json", "--all-commits"))
    newest: dict[str, tuple[str, str]] = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for revision in exp.get("revs", []):
                name = revision.get("name") or ""
                stamp = (revision.get("data") or {}).get("timestamp") or ""
                if name.startswith("gan-") and stamp >= newest.get(name, ("",))[0]:
                    newest[name] = (stamp, revision["rev"])
    found = {}
    for name, (_, rev) in newest.items():
        try:
            found[name.removeprefix("gan-")] = json.loads(git("show", f"{rev}:{METRIC_FILE}"))
        except subprocess.CalledProcessError:  # an experiment that failed before evaluating
            continue
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table-only", action="store_true", help="tabulate, run nothing")
    parser.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="these variants")
    parser.add_argument("--steps", type=int, help="every variant's budget (default: params)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="queue workers (1: the train seconds are not shared cores')")  # fmt: skip
    args = parser.parse_args()
    if not args.table_only:
        try:
            run_variants(args.only or list(VARIANTS), args.steps, args.jobs)
        except UserError as exc:
            print(f"ablation: {exc}", file=sys.stderr)
            return 2
    results = experiment_metrics()
    missing = [name for name in args.only or VARIANTS if name not in results]
    if missing:
        print(f"ablation: no finished experiment for {', '.join(missing)}", file=sys.stderr)
    if not results:  # keep the table there is rather than write an empty one
        return 1
    rows = [[name, *(results[name].get(key, "") for _, key in COLUMNS)]
            for name in VARIANTS if name in results]  # fmt: skip
    table = markdown_table(["variant", *(label for label, _ in COLUMNS)], rows)
    write_json(OUT / "gan.json", {name: results[name] for name in VARIANTS if name in results})
    write_text(OUT / "gan.md", table + "\n")
    print(table)
    update_docs()
    return 0 if not missing else 1


if __name__ == "__main__":
    sys.exit(main())
