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


FAMILY_SECTIONS = {"autoencoder": autoencoder_sections, "vae": vae_sections}


def load_evaluations(instances: Iterable[str], metrics_dir: Path) -> dict[str, dict]:
    evals = {}
    for name in instances:
        path = metrics_dir / f"{name}.json"
        if not path.exists():
            raise UserError(f"{path}: missing; run `dvc repro evaluate@{name}` first")
        evals[name] = json.loads(path.read_text())
    return evals


def tables(evals: dict[str, dict]) -> str:
    by_family: dict[str, dict[str, dict]] = {}
    for name, metrics in evals.items():
        by_family.setdefault(metrics.get("family", "other"), {})[name] = metrics
    parts = []
    for family, members in by_family.items():
        for title, table in FAMILY_SECTIONS.get(family, generic_sections)(members):
            parts.append(f"## {title}\n\n{table}\n")
    return "\n".join(parts)


def render(evals: dict[str, dict], figures_root: Path, report_dir: Path) -> str:
    parts = ["# Evaluation report\n", "Test-set metrics of every instance in params.yaml "
             "(written by `dvc repro`; `make evaluate` prints these tables).\n", tables(evals)]  # fmt: skip
    parts.append("## Figures\n")
    for name in evals:
        index_path = figures_root / name / "figures.json"
        index = json.loads(index_path.read_text()) if index_path.exists() else {}
        for caption, filename in index.items():
            rel = (figures_root / name / filename).resolve().relative_to(report_dir.resolve())
            parts.append(f"### {name}: {caption}\n\n![{name} {caption}]({rel.as_posix()})\n")
    return "\n".join(parts)
