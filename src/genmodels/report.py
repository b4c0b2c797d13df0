"""reports/evaluation.md: every evaluated instance's metrics in tables, and its figures."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from genmodels.errors import UserError
from genmodels.tracking import flatten


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(header: list[str], rows: Iterable[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def autoencoder_sections(evals: dict[str, dict]) -> list[tuple[str, str]]:
    pca_header = [
        "instance",
        "latent",
        "AE MSE",
        "PCA MSE",
        "AE PSNR",
        "PCA PSNR",
        "AE SSIM",
        "PCA SSIM",
    ]
    pca_rows = [
        [name, m["latent_dim"], m["mse"], m["pca"]["mse"], m["psnr"], m["pca"]["psnr"],
         m["ssim"], m["pca"]["ssim"]]
        for name, m in evals.items()
    ]  # fmt: skip
    sparse_header = [
        "instance",
        "latent",
        "MSE",
        "silent code fraction",
        "threshold",
        "mean |code|",
    ]
    sparse_rows = [
        [
            name,
            m["latent_dim"],
            m["mse"],
            m["sparsity"],
            m["sparsity_threshold"],
            m["mean_abs_code"],
        ]
        for name, m in evals.items()
    ]
    sections = [
        ("Autoencoder against PCA of the same latent size", markdown_table(pca_header, pca_rows)),
        ("Sparsity of the code (sparse against plain autoencoders)", markdown_table(sparse_header, sparse_rows)),
    ]  # fmt: skip
    noise_header = [
        "instance",
        "noise",
        "PSNR noisy input",
        "PSNR denoised",
        "PSNR plain AE (same input)",
    ]
    noise_rows = [
        [name, level, r["noisy_psnr"], r["denoised_psnr"], r["plain_psnr"]]
        for name, m in evals.items()
        for level, r in m.get("denoising", {}).items()
    ]
    if noise_rows:
        sections.append(
            (
                "Denoising (PSNR in dB against the clean test image)",
                markdown_table(noise_header, noise_rows),
            )
        )
    return sections


def vae_sections(evals: dict[str, dict]) -> list[tuple[str, str]]:
    header = ["instance", "likelihood", "latent", "ELBO", "recon", "KL", "-log p(x) IWAE",
              "K", "active units", "MSE", "SSIM"]  # fmt: skip
    rows = [
        [name, m["likelihood"], m["latent_dim"], m["elbo"], m["recon"], m["kl"], m["nll_iwae"],
         m["iwae_k"], m["active_units"], m["mse"], m["ssim"]]
        for name, m in evals.items()
    ]  # fmt: skip
    return [("VAE: test-set bound in nats per image", markdown_table(header, rows))]


def generic_sections(evals: dict[str, dict]) -> list[tuple[str, str]]:
    flat = {name: flatten(m) for name, m in evals.items()}
    keys = [
        k
        for k in dict.fromkeys(k for m in flat.values() for k in m)
        if k not in ("instance", "family")
    ]
    rows = [[n, *(m.get(k, "") for k in keys)] for n, m in flat.items()]
    return [("Other instances", markdown_table(["instance", *keys], rows))]


def gan_sections(evals: dict[str, dict]) -> list[tuple[str, str]]:
    header = ["instance", "loss", "psi", "oscillation index", "classes lost", "recall drop",
              "FID", "precision", "recall", "classes", "train s"]  # fmt: skip
    rows = [
        [name, m["loss"], m.get("truncation_psi", 1.0), m.get("oscillation_index", "n/a"),
         m.get("collapse", {}).get("classes_lost", "n/a"),
         m.get("collapse", {}).get("recall_drop", "n/a"), m["fid"], m["precision"], m["recall"],
         m["class_coverage"], m["train_seconds"]]
        for name, m in evals.items()
    ]  # fmt: skip
    return [("GAN: the game and its failures", markdown_table(header, rows))]


def cyclegan_sections(evals: dict[str, dict]) -> list[tuple[str, str]]:
    header = ["instance", "direction", "L1", "L1 identity", "identity / L1", "PSNR",
              "PSNR identity", "SSIM", "SSIM identity", "cycle L1", "FID", "FID true pairs",
              "label preservation", "train s"]  # fmt: skip

    def direction(m: dict, d: str) -> str:
        source, target = (m["domain_a"], m["domain_b"])[:: 1 if d == "ab" else -1]
        return f"{source} -> {target}"

    rows = [
        [name, direction(m, d), m[d]["l1"], m[d]["identity"]["l1"],
         m[d]["l1_ratio_vs_identity"], m[d]["psnr"], m[d]["identity"]["psnr"], m[d]["ssim"],
         m[d]["identity"]["ssim"], m[d]["cycle_l1"], m[d]["fid"], m[d]["fid_true_pairs"],
         m[d].get("label_preservation", ""), m["train_seconds"]]
        for name, m in evals.items()
        for d in ("ab", "ba")
    ]  # fmt: skip
    return [("CycleGAN: translation against the true pairs (test set)",
             markdown_table(header, rows))]  # fmt: skip


def srgan_sections(evals: dict[str, dict]) -> list[tuple[str, str]]:
    header = ["instance", "variant", "scale", "method", "PSNR", "SSIM", "FID vs HR test",
              "accuracy", "HR accuracy", "train s"]  # fmt: skip
    rows = []
    for name, m in evals.items():
        methods = [("bicubic", m["bicubic"])]
        if "phase1" in m:
            methods.append(("SRResNet (its phase 1)", m["phase1"]))
        methods.append((m["variant"], m["model"]))
        rows += [
            [name, m["variant"], m["scale"], method, r["psnr"], r["ssim"], r["fid"],
             r["accuracy"], m["hr_accuracy"], m["train_seconds"]]
            for method, r in methods
        ]  # fmt: skip
    return [("SRGAN: super-resolution against bicubic (test set)", markdown_table(header, rows))]


def cgan_sections(evals: dict[str, dict]) -> list[tuple[str, str]]:
    header = ["instance", "conditioning", "conditional accuracy", "evaluator accuracy (real)",
              "ratio", "FID", "FID per class (mean)", "diversity ratio (worst class)",
              "diversity ratio (mean)", "oscillation index", "train s"]  # fmt: skip
    rows = [
        [name, m["conditioning"], m["conditional_accuracy"], m["evaluator_accuracy"],
         m["conditional_accuracy_ratio"], m["fid"], m["fid_per_class_mean"],
         m["diversity_ratio_min"], m["diversity_ratio_mean"], m.get("oscillation_index", "n/a"),
         m["train_seconds"]]
        for name, m in evals.items()
    ]  # fmt: skip
    per_class_header = ["instance", "class", "accuracy", "FID", "diversity", "real diversity"]
    per_class = [
        [name, c, r["accuracy"], r["fid"], r["diversity"], r["real_diversity"]]
        for name, m in evals.items()
        for c, r in enumerate(m["per_class"])
    ]
    return [
        ("cGAN: the class that is asked for", markdown_table(header, rows)),
        ("cGAN per class", markdown_table(per_class_header, per_class)),
    ]


FAMILY_SECTIONS = {"autoencoder": autoencoder_sections, "vae": vae_sections, "gan": gan_sections,
                   "cgan": cgan_sections, "cyclegan": cyclegan_sections,
                   "srgan": srgan_sections}  # fmt: skip

# (column, key in the sample metrics): every generator is judged on these, beside real images
SAMPLE_COLUMNS = [
    ("FID", "fid"), ("KID", "kid"), ("KID std", "kid_std"), ("precision", "precision"),
    ("recall", "recall"), ("density", "density"), ("coverage", "coverage"),
    ("classes covered", "class_coverage"), ("class KL", "class_kl"),
    ("classifier score", "classifier_score"), ("memorisation ratio", "memorisation.ratio"),
]  # fmt: skip


def sample_metrics_of(metrics: dict) -> dict | None:
    """The sample metrics of an instance: top level for GANs, under 'samples' for VAEs."""
    if metrics.get("family") == "srgan":  # its FID compares with the HR test images: own table
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
    for name in ("evaluator", "reference"):
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
        parts.append(
            "## Sample quality in the evaluator's feature space\n\n"
            f"Evaluator test accuracy: {evaluator['accuracy']:.4f}. FID, KID and precision / "
            "recall / density / coverage compare generated samples with the training set in "
            "the evaluator's penultimate-layer features; classes come from its labels. The "
            "reference row judges real held-out test images the same way: the floor no "
            "generator can beat.\n\n" + sample_quality_section(evals, reference) + "\n"
        )
    for family, members in by_family.items():
        for title, table in FAMILY_SECTIONS.get(family, generic_sections)(members):
            parts.append(f"## {title}\n\n{table}\n")
    return "\n".join(parts)


def render(evals: dict[str, dict], figures_root: Path, report_dir: Path,
           evaluator: dict | None = None, reference: dict | None = None) -> str:  # fmt: skip
    parts = ["# Evaluation report\n", "Test-set metrics of every instance in params.yaml "
             "(written by `dvc repro`; `make evaluate` prints these tables).\n",
             tables(evals, evaluator, reference)]  # fmt: skip
    parts.append("## Figures\n")
    for name in evals:
        index_path = figures_root / name / "figures.json"
        index = json.loads(index_path.read_text()) if index_path.exists() else {}
        for caption, filename in index.items():
            rel = (figures_root / name / filename).resolve().relative_to(report_dir.resolve())
            parts.append(f"### {name}: {caption}\n\n![{name} {caption}]({rel.as_posix()})\n")
    return "\n".join(parts)
