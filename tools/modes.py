"""`make modes`: mode collapse counted on the 2-D Gaussian mixtures of the papers (a ring of 8 and
a grid of 25): every loss and technique of the GAN game, ten seeds each, at an equal number of
generator updates -> reports/modes.json, reports/modes.md and reports/modes/*.png.

Each (mixture, variant) pair is one job: its ten seeds train side by side in one process
(genmodels.models.mixture.train_ensemble); the jobs run on a pool of one single-threaded process
per core, the costliest (WGAN-GP's five critic steps) first. Not a DVC stage: nothing of the
pipeline depends on it, and its wall time is part of what it reports. docs/modes.md says how to
read the results.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from genmodels.errors import UserError
from genmodels.io import write_json, write_text
from genmodels.sections import markdown_table
from genmodels.stage import run_stage
from timed_repro import cpu_model

REPORT = Path("reports/modes.json")
TABLE = Path("reports/modes.md")
FIGURES = Path("reports/modes")  # the figures (reports/figures is the report stage's)
# the lecture's loss, drawn beside the best variant in each mixture's figure
LECTURE_VARIANT = "minimax"
# share of the budget at which the figure's columns are drawn
SNAPSHOT_SHARES = (0.0, 0.05, 0.2, 0.5, 1.0)
log = logging.getLogger("modes")


def run_job(mixture_name: str, variant: str, seeds: list[int], updates: int,
            snapshot_at: tuple[int, ...]) -> dict[str, Any]:  # fmt: skip
    """One variant's seeds on one mixture, in a worker process of one thread."""
    import torch

    from genmodels.data.mixtures import mixture
    from genmodels.models.mixture import summarise, train_ensemble, variant_params

    torch.set_num_threads(1)
    params = variant_params(variant, updates)
    run = train_ensemble(mixture(mixture_name), params, seeds, updates, snapshot_at=snapshot_at)
    return {
        "mixture": mixture_name,
        "variant": variant,
        "per_seed": run.per_seed,
        "summary": summarise(run.per_seed),
        "seconds": round(run.seconds, 2),
        "snapshots": {str(k): v.tolist() for k, v in sorted(run.snapshots.items())},
    }


def cost(variant: str) -> int:
    from genmodels.models.mixture import VARIANTS

    return VARIANTS[variant].get("n_critic", 1)


def best_variant(results: dict[str, dict[str, Any]]) -> str:
    """Most modes captured on average; then the larger high-quality share."""

    def key(name: str) -> tuple[float, float]:
        summary = results[name]["summary"]
        return summary["modes_captured"]["mean"], summary["high_quality"]["mean"] or 0.0

    return max(results, key=key)


def main(args) -> None:
    from genmodels.data.mixtures import MIXTURES, mixture
    from genmodels.metrics.mixtures import HIGH_QUALITY_STDS
    from genmodels.models.mixture import BASE_GAME, EVAL_SAMPLES, VARIANTS

    # an unknown name is a UserError naming the choices
    chosen = {name: mixture(name) for name in args.mixtures.split(",")}
    mixtures = list(chosen)
    variants = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise UserError(f"--variants: {', '.join(unknown)} unknown; choose from "
                        f"{', '.join(VARIANTS)} or all")  # fmt: skip
    if LECTURE_VARIANT not in variants:
        raise UserError(f"--variants must include {LECTURE_VARIANT} (the lecture's loss, drawn in "
                        "the figures)")  # fmt: skip
    if args.seeds < 1 or args.updates < 10:
        raise UserError("--seeds at least 1 and --updates at least 10")
    seeds = list(range(args.seeds))
    snapshot_at = tuple(sorted({round(share * args.updates) for share in SNAPSHOT_SHARES}))
    jobs = sorted(((m, v) for m in mixtures for v in variants), key=lambda mv: -cost(mv[1]))
    workers = args.workers or os.cpu_count() or 1
    log.info("%d jobs (%d seeds, %d generator updates each) on %d processes", len(jobs),
             len(seeds), args.updates, workers)  # fmt: skip
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {m: {} for m in mixtures}
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_job, m, v, seeds, args.updates, snapshot_at) for m, v in jobs]
        for future in futures:
            job = future.result()
            results[job["mixture"]][job["variant"]] = job
            log.info("%s %s: %.1f modes, %.3f high quality (%.0f s)", job["mixture"],
                     job["variant"], job["summary"]["modes_captured"]["mean"],
                     job["summary"]["high_quality"]["mean"], job["seconds"])  # fmt: skip
    wall = time.perf_counter() - started
    report = {
        "setup": {
            "mixtures": {
                name: {"modes": m.modes, "std": m.std, "means": m.means.tolist()}
                for name, m in chosen.items()
            },
            "base_game": BASE_GAME,
            "variants": {v: VARIANTS[v] for v in variants},
            "seeds": seeds,
            "generator_updates": args.updates,
            "eval_samples": EVAL_SAMPLES,
            "high_quality_stds": HIGH_QUALITY_STDS,
        },
        "results": {
            m: {v: {k: job[k] for k in ("per_seed", "summary", "seconds")}
                for v, job in results[m].items()}
            for m in mixtures
        },
        "best": {m: best_variant(results[m]) for m in mixtures},
        "wall_seconds": round(wall, 1),
        "target_max_seconds": 600,
        "processes": workers,
        "cpu_model": cpu_model(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
    write_json(args.out, report)
    figures = {m: draw(m, results[m], report["best"][m], Path(args.figures)) for m in mixtures}
    write_text(args.table, render(report, figures, Path(args.table).parent))
    log.info("all jobs in %.0f s (target at most 600 s) -> %s, %s", wall, args.out, args.table)
    if set(MIXTURES) - set(mixtures) or set(VARIANTS) - set(variants):
        log.info("a partial run: not every mixture and variant")


def draw(mixture_name: str, results: dict[str, dict[str, Any]], best: str, folder: Path) -> Path:
    """The first seed's samples over training: the lecture's minimax GAN and the best variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genmodels.data.mixtures import mixture

    means = mixture(mixture_name).means.numpy()
    rows = [LECTURE_VARIANT] + ([best] if best != LECTURE_VARIANT else [])
    steps = list(results[LECTURE_VARIANT]["snapshots"])
    fig, axes = plt.subplots(len(rows), len(steps), figsize=(2.2 * len(steps), 2.3 * len(rows)),
                             squeeze=False)  # fmt: skip
    extent = float(abs(means).max()) * 1.5
    for r, variant in enumerate(rows):
        for c, step in enumerate(steps):
            ax = axes[r][c]
            points = results[variant]["snapshots"][step]
            ax.scatter(means[:, 0], means[:, 1], s=30, c="tab:red", marker="x", linewidths=1)
            ax.scatter([p[0] for p in points], [p[1] for p in points], s=2, alpha=0.5)
            ax.set_xlim(-extent, extent)
            ax.set_ylim(-extent, extent)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"update {step}", fontsize=9)
            if c == 0:
                ax.set_ylabel(variant + (" (best)" if variant == best else ""), fontsize=9)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{mixture_name}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def cell(stat: dict[str, Any], decimals: int, percent: bool = False) -> str:
    if stat["mean"] is None:
        return "-"
    scale = 100.0 if percent else 1.0
    text = f"{stat['mean'] * scale:.{decimals}f} ± {stat['std'] * scale:.{decimals}f}"
    missing = stat.get("undefined")
    return text + (f" ({missing} runs with no high-quality sample)" if missing else "")


def relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path, folder)).as_posix()


def render(report: dict[str, Any], figures: dict[str, Path], table_folder: Path) -> str:
    setup = report["setup"]
    lines = [
        "# Mode collapse on 2-D Gaussian mixtures",
        "",
        f"Written by `make modes` (tools/modes.py) in {report['wall_seconds']} s on "
        f"{report['processes']} processes ({report['cpu_model'] or 'processor unknown'}). "
        f"Each row: {len(setup['seeds'])} seeds, mean ± std, after "
        f"{setup['generator_updates']} generator updates, judged on {setup['eval_samples']} "
        "samples per seed. How to read it, and why the papers' published rows are not beside "
        "these: docs/modes.md.",
    ]
    for name, rows in report["results"].items():
        modes = setup["mixtures"][name]["modes"]
        header = ["variant", f"modes (of {modes})", "high quality %", "KL to uniform",
                  "oscillation index", "seconds"]  # fmt: skip
        table = [
            [variant, cell(r["summary"]["modes_captured"], 1),
             cell(r["summary"]["high_quality"], 1, percent=True),
             cell(r["summary"]["kl_uniform"], 2), cell(r["summary"]["oscillation_index"], 3),
             r["seconds"]]
            for variant, r in rows.items()
        ]  # fmt: skip
        lines += ["", f"## {name} (std {setup['mixtures'][name]['std']})", "",
                  markdown_table(header, table), "",
                  f"Best: {report['best'][name]}. Samples over training (first seed): "
                  f"![{name}]({relative(figures[name], table_folder)})"]  # fmt: skip
    return "\n".join(lines) + "\n"


def add_args(parser) -> None:
    parser.add_argument("--updates", type=int, default=3000, help="generator updates per run")
    parser.add_argument("--seeds", type=int, default=10, help="runs per variant and mixture")
    parser.add_argument("--mixtures", default="ring,grid", help="comma-separated: ring, grid")
    parser.add_argument("--variants", default="all", help="comma-separated names, or all")
    parser.add_argument("--workers", type=int, default=0, help="processes (0: one per core)")
    parser.add_argument("--out", default=str(REPORT))
    parser.add_argument("--table", default=str(TABLE))
    parser.add_argument("--figures", default=str(FIGURES))


if __name__ == "__main__":
    run_stage(main, description=__doc__, add_args=add_args)
