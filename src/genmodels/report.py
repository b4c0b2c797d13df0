"""reports/evaluation.md: every evaluated instance's metrics in tables, and its figures;
reports/summary.md: the headline numbers of each instance and its first figure."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from genmodels.config import EVALUATOR
from genmodels.errors import UserError
from genmodels.families import FAMILIES
from genmodels.sections import generic_sections, headline, markdown_table
from genmodels.tracking import flatten

# (column, key in the sample metrics): every generator is judged on these, beside real images
SAMPLE_COLUMNS = [
    ("FID", "fid"), ("KID", "kid"), ("KID std", "kid_std"), ("precision", "precision"),
    ("recall", "recall"), ("density", "density"), ("coverage", "coverage"),
    ("classes covered", "class_coverage"), ("class KL", "class_kl"),
    ("classifier score", "classifier_score"), ("memorisation ratio", "memorisation.ratio"),
]  # fmt: skip


def sample_metrics_of(metrics: dict) -> dict | None:
    """The sample metrics of an instance: top level for GANs, under 'samples' for VAEs."""
    row = FAMILIES.get(metrics.get("family"))
    if row is not None and not row.sample_quality:  # judged against other images: own table
        return None
    found = metrics.get("samples", metrics)
    return found if "fid" in found else None


def sample_quality_section(evals: dict[str, dict], reference: dict | None) -> str:
    header = ["instance", *(name for name, _ in SAMPLE_COLUMNS)]
    judged = {name: sample_metrics_of(m) for name, m in evals.items()}
    rows = []
    if reference is not None:
        rows.append(["**reference: real test images**", *_columns(reference)])
    for name, m in judged.items():
        if m is None:
            continue
        psi = m.get("truncation_psi", 1.0)
        rows.append([name if psi == 1.0 else f"{name} (truncation psi {psi})", *_columns(m)])
        if "untruncated" in m:  # what the same generator gives from plain N(0, I)
            rows.append([f"{name} (untruncated, psi 1)", *_columns(m["untruncated"])])
    return markdown_table(header, rows)


def _columns(metrics: dict) -> list[Any]:
    flat = flatten(metrics)
    return [flat.get(key, "") for _, key in SAMPLE_COLUMNS]


def load_evaluations(instances: Iterable[str], metrics_dir: Path) -> dict[str, dict]:
    evals = {}
    for name in instances:
        path = metrics_dir / f"{name}.json"
        if not path.exists():
            raise UserError(f"{path}: missing; run `dvc repro evaluate@{name}` first")
        evals[name] = json.loads(path.read_text())
    return evals


def load_reference(metrics_dir: Path) -> tuple[dict | None, dict | None]:
    """The evaluator's accuracy and the reference row, when evaluate_evaluator has run."""
    found = []
    for name in (EVALUATOR, "reference"):
        path = metrics_dir / f"{name}.json"
        found.append(json.loads(path.read_text()) if path.exists() else None)
    return found[0], found[1]


def tables(evals: dict[str, dict], evaluator: dict | None = None,
           reference: dict | None = None) -> str:  # fmt: skip
    by_family: dict[str, dict[str, dict]] = {}
    for name, metrics in evals.items():
        by_family.setdefault(metrics.get("family", "other"), {})[name] = metrics
    parts = []
    if evaluator is not None:
        space = (reference or {}).get("feature_space", "evaluator (classes)")
        task = "rotation prediction" if evaluator.get("task") == "rotation" else "class"
        classes = (reference or {}).get("class_metrics", "classes come from the data's labels")
        parts.append(
            f"## Sample quality in the feature space {space}\n\n"
            f"Evaluator {task} test accuracy: {evaluator['accuracy']:.4f}. FID, KID and "
            "precision / recall / density / coverage compare generated samples with the "
            f"training set in these features; {classes}. The reference row judges real "
            "held-out test images the same way: the floor no generator can beat.\n\n"
            + sample_quality_section(evals, reference)
            + "\n"
        )
    for family, members in by_family.items():
        row = FAMILIES.get(family)
        for title, table in (row.report_section() if row else generic_sections)(members):
            parts.append(f"## {title}\n\n{table}\n")
    return "\n".join(parts)


def render(evals: dict[str, dict], figures_root: Path, report_dir: Path,
           evaluator: dict | None = None, reference: dict | None = None) -> str:  # fmt: skip
    parts = ["# Evaluation report\n", "Test-set metrics of every instance in params.yaml "
             "(written by `dvc repro`; `make evaluate` prints these tables).\n",
             tables(evals, evaluator, reference)]  # fmt: skip
    parts.append("## Figures\n")
    for name in evals:
        for caption, filename in _figures_of(name, figures_root).items():
            rel = (figures_root / name / filename).resolve().relative_to(report_dir.resolve())
            parts.append(f"### {name}: {caption}\n\n![{name} {caption}]({rel.as_posix()})\n")
    return "\n".join(parts)


def _figures_of(name: str, figures_root: Path) -> dict[str, str]:
    index_path = figures_root / name / "figures.json"
    return json.loads(index_path.read_text()) if index_path.exists() else {}


def summary(evals: dict[str, dict], figures_root: Path, report_dir: Path,
            evaluator: dict | None = None) -> str:  # fmt: skip
    """One table of headline metrics per family (the numbers `dvc metrics show` lists) and
    each instance's first figure."""
    parts = ["# Headline metrics\n", "Each instance's headline numbers, as `dvc metrics show` lists "
             "them (metrics/summary/); every table and figure is in "
             "[evaluation.md](evaluation.md). Written by the report stage.\n"]  # fmt: skip
    members: dict[str, dict[str, dict]] = {}
    if evaluator is not None:
        members[EVALUATOR] = {EVALUATOR: evaluator}
    for name, metrics in evals.items():
        members.setdefault(metrics.get("family", "other"), {})[name] = metrics
    for family_name, instances in members.items():
        row = FAMILIES.get(family_name)
        paths = row.headline if row is not None else ()
        picked = {name: headline(m, paths) for name, m in instances.items()}
        columns = list(dict.fromkeys(k for values in picked.values() for k in values))
        rows = [[name, *(values.get(k, "") for k in columns)] for name, values in picked.items()]
        parts.append(f"## {family_name}\n\n{markdown_table(['instance', *columns], rows)}\n")
    parts.append("## Key figures\n")
    for name in evals:
        for caption, filename in list(_figures_of(name, figures_root).items())[:1]:
            rel = (figures_root / name / filename).resolve().relative_to(report_dir.resolve())
            parts.append(f"### {name}: {caption}\n\n![{name} {caption}]({rel.as_posix()})\n")
    return "\n".join(parts)
