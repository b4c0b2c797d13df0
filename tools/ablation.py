"""`make ablation`: the GAN's losses and techniques compared at an equal budget, as DVC
experiments on the `gan` instance, then tabulated into reports/ablation/gan.{json,md}.

Each variant is `dvc exp run -S models.gan.<key>=<value> ... evaluate@gan` in the workspace:
only train@gan and evaluate@gan run (the evaluator and the data are reused as they are), with
the same steps, batch size and seed, and the experiments stay listed in `dvc exp show`.
Between variants and at the end, the gan's committed params, lock entries and outputs are
put back (git for the small files, `dvc checkout` for the weights), so the workspace ends as
it began; it refuses to start when those files hold uncommitted changes, which it would
overwrite. `--table-only` rebuilds the table from the experiments. The figures section of
docs/benchmarks.md is rendered from the table's JSON at the end (tools/bench_docs.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench_docs import ABLATION_COLUMNS, update_docs
from genmodels.io import write_json, write_text
from genmodels.report import markdown_table

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


def dvc(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], check=True, text=True,
        capture_output=capture,
    )  # fmt: skip


# what a variant rewrites in the workspace, put back from git (and the DVC cache) afterwards
TOUCHED = ["params.yaml", "dvc.lock", "metrics/train/gan.json", "metrics/eval/gan.json",
           "plots/train/gan.csv", "reports/figures/gan"]  # fmt: skip


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, text=True, capture_output=True).stdout


def restore() -> None:
    git("checkout", "--", *TOUCHED)
    dvc("checkout", "--force", "train@gan", "evaluate@gan")


def run_variants(names: list[str], steps: int | None) -> None:
    dirty = git("status", "--porcelain", "--", *TOUCHED).strip()
    if dirty:
        raise SystemExit(
            "ablation: these files have uncommitted changes that the experiments would "
            f"overwrite; commit or stash them first:\n{dirty}"
        )
    budget = {} if steps is None else {"steps": str(steps)}  # the same for every variant
    for name in names:
        overrides = VARIANTS[name] | budget
        sets = [f"-S=models.gan.{key}={value}" for key, value in overrides.items()]
        print(f"ablation: dvc exp run -n gan-{name} {' '.join(sets)} evaluate@gan", flush=True)
        # a rerun replaces the experiment of the same name (exp run's --force would also
        # force every upstream stage); the target stops it at the gan's evaluation
        subprocess.run([sys.executable, "-m", "dvc", "exp", "remove", f"gan-{name}"],
                       capture_output=True)  # fmt: skip
        try:
            dvc("exp", "run", "-n", f"gan-{name}", *sets, "evaluate@gan")
        finally:  # the next variant starts from the committed params
            restore()


def experiment_metrics() -> dict[str, dict]:
    """metrics/eval/gan.json of the newest gan-* experiment of each name, from
    `dvc exp show --json` over every commit (later commits keep the table rebuildable)."""
    shown = json.loads(dvc("exp", "show", "--json", "--all-commits", capture=True).stdout)
    newest: dict[str, tuple[str, dict]] = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for revision in exp.get("revs", []):
                name = revision.get("name") or ""
                data = revision.get("data") or {}
                values = ((data.get("metrics") or {}).get(METRIC_FILE) or {}).get("data")
                stamp = data.get("timestamp") or ""
                if name.startswith("gan-") and values and stamp >= newest.get(name, ("",))[0]:
                    newest[name] = (stamp, values)
    return {name.removeprefix("gan-"): values for name, (_, values) in newest.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table-only", action="store_true", help="tabulate, run nothing")
    parser.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="these variants")
    parser.add_argument("--steps", type=int, help="every variant's budget (default: params)")
    args = parser.parse_args()
    if not args.table_only:
        run_variants(args.only or list(VARIANTS), args.steps)
    results = experiment_metrics()
    missing = [name for name in VARIANTS if name not in results]
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
