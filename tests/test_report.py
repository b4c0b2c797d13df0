"""The report stage's tables: each family's section from the family table, the sample-quality
table, reports/summary.md's headline numbers, and its figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genmodels.errors import UserError
from genmodels.families import FAMILIES
from genmodels.report import load_evaluations, render, sample_quality_section, summary, tables


def test_report_shows_truncated_and_untruncated_rows():
    evals = {"gan": {"family": "gan", "loss": "nonsaturating", "truncation_psi": 0.8,
                     "fid": 9.5, "precision": 0.7, "recall": 0.4, "class_coverage": 10,
                     "train_seconds": 1.0, "untruncated": {"fid": 12.5, "precision": 0.6}}}  # fmt: skip
    table = sample_quality_section(evals, None)
    assert "| gan (truncation psi 0.8) | 9.5 | " in table
    assert "| gan (untruncated, psi 1) | 12.5 | " in table
    del evals["gan"]["untruncated"], evals["gan"]["truncation_psi"]
    assert "| gan | 9.5 | " in sample_quality_section(evals, None)


def ae(psnr: float) -> dict:
    quality = {"mse": 0.01, "psnr": psnr, "ssim": 0.7}
    return {"family": "autoencoder", "latent_dim": 8, **quality, "pca": dict(quality),
            "recon_accuracy": 0.8, "sparsity": 0.01, "sparsity_threshold": 0.05,
            "mean_abs_code": 0.5, "train_seconds": 2.0}  # fmt: skip


def test_each_family_gets_its_tables_own_section_and_others_a_generic_one():
    evals = {"ae_a": ae(18.5), "odd": {"family": "not_in_the_table", "score": 3.25}}
    report = tables(evals)
    assert "## Autoencoder against PCA of the same latent size" in report
    assert "| ae_a | 8 | 0.01 | 0.01 | 18.5 |" in report
    assert "## Other instances\n\n| instance | score |" in report
    assert "| odd | 3.25 |" in report


def test_families_judged_elsewhere_stay_out_of_the_sample_quality_table():
    judged = {"family": "gan", "fid": 9.5, "precision": 0.7}
    elsewhere = next(name for name, row in FAMILIES.items() if not row.sample_quality)
    evals = {"g": judged, "sr": {"family": elsewhere, "fid": 3.0}}
    table = sample_quality_section(evals, {"fid": 0.25})
    assert "| **reference: real test images** | 0.25 |" in table
    assert "| g | 9.5 |" in table and "| sr |" not in table


def write_figure(root: Path, instance: str, caption: str, name: str) -> None:
    (root / instance).mkdir(parents=True)
    (root / instance / name).write_bytes(b"\x89PNG")
    (root / instance / "figures.json").write_text(json.dumps({caption: name}))


def test_summary_lists_each_instances_headline_numbers_and_first_figure(tmp_path):
    figures = tmp_path / "reports" / "figures"
    write_figure(figures, "ae_a", "Reconstructions", "reconstructions.png")
    evals = {"ae_a": ae(18.5), "ae_b": ae(21.0)}
    text = summary(evals, figures, tmp_path / "reports", {"accuracy": 0.91, "test_nll": 0.3})
    headline = FAMILIES["autoencoder"].headline
    assert f"| instance | {' | '.join(headline)} |" in text
    assert "| ae_b | 0.01 | 21 | 0.7 |" in text
    assert "| evaluator | 0.91 | 0.3 |" in text
    assert (
        "### ae_a: Reconstructions\n\n![ae_a Reconstructions](figures/ae_a/reconstructions.png)"
        in text
    )
    assert "per_class" not in text and "mean_abs_code" not in text  # details stay out


def test_render_links_every_figure_relative_to_the_report(tmp_path):
    figures = tmp_path / "reports" / "figures"
    write_figure(figures, "ae_a", "Latent codes", "latent.png")
    text = render({"ae_a": ae(18.5)}, figures, tmp_path / "reports")
    assert "![ae_a Latent codes](figures/ae_a/latent.png)" in text


def test_a_missing_evaluation_names_the_stage_to_run(tmp_path):
    with pytest.raises(UserError, match=r"evaluate@ae_a"):
        load_evaluations(["ae_a"], tmp_path)


def test_sr_table_adds_the_literature_columns_only_when_the_metrics_have_them():
    quality = {"psnr": 21.5, "ssim": 0.72, "mse": 0.01, "fid": 11.0, "accuracy": 0.82}
    older = {"family": "srgan", "variant": "srresnet", "scale": 4, "bicubic": dict(quality),
             "model": dict(quality), "hr_accuracy": 0.93, "train_seconds": 5.0}  # fmt: skip
    report = tables({"sr": older})
    assert ("| instance | variant | scale | method | PSNR | SSIM | FID vs HR test | accuracy | "
            "HR accuracy | train s |") in report  # fmt: skip
    assert "PSNR_y" not in report and "target" not in report
    literature = {"psnr_y": 20.4, "ssim_y": 0.65, "perceptual_distance": 0.69}
    newer = older | {"bicubic": quality | literature, "model": quality | literature,
                     "target": {"srresnet": "model", "psnr_y_gain_over_bicubic": 4.7,
                                "psnr_y_gain_min": 1.0, "met": True}}  # fmt: skip
    report = tables({"sr": newer})
    assert "| HR accuracy | PSNR_y | SSIM_y | perceptual dist. | train s |" in report
    assert (
        "| sr | srresnet | 4 | srresnet | 21.5 | 0.72 | 11 | 0.82 | 0.93 | 20.4 | 0.65 |" in report
    )
    assert "| sr | model | 4.7 | 1 | - | yes |" in report
