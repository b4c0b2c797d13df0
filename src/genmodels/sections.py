"""Markdown tables of each family's evaluation metrics: the report sections the family table
(genmodels.families) names for each family. Plain data in, markdown out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from genmodels.tracking import flatten


def headline(metrics: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """The values at `paths` (dotted: "pca.psnr") that `metrics` has, in the order asked."""
    flat = flatten(metrics)
    return {path: flat[path] for path in paths if path in flat}


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
         m.get("class_coverage", "n/a"), m["train_seconds"]]
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

    # unpaired domains (data.name unpaired) have no pairs to measure against: their own table
    paired = {n: m for n, m in evals.items() if m.get("paired", True)}
    unpaired = {n: m for n, m in evals.items() if n not in paired}
    rows = [
        [name, direction(m, d), m[d]["l1"], m[d]["identity"]["l1"],
         m[d]["l1_ratio_vs_identity"], m[d]["psnr"], m[d]["identity"]["psnr"], m[d]["ssim"],
         m[d]["identity"]["ssim"], m[d]["cycle_l1"], m[d]["fid"], m[d]["fid_true_pairs"],
         m[d].get("label_preservation", ""), m["train_seconds"]]
        for name, m in paired.items()
        for d in ("ab", "ba")
    ]  # fmt: skip
    sections = []
    if paired:
        sections.append(("CycleGAN: translation against the true pairs (test set)",
                         markdown_table(header, rows)))  # fmt: skip
    if unpaired:
        unpaired_header = ["instance", "direction", "FID", "FID untranslated",
                           "FID real test", "KID", "KID untranslated", "cycle L1",
                           "identity-mapping L1", "train s"]  # fmt: skip
        unpaired_rows = [
            [name, direction(m, d), m[d]["fid"], m[d]["fid_untranslated"],
             m[d]["fid_real_test"], m[d]["kid"], m[d]["kid_untranslated"], m[d]["cycle_l1"],
             m[d]["identity_l1"], m["train_seconds"]]
            for name, m in unpaired.items()
            for d in ("ab", "ba")
        ]  # fmt: skip
        sections.append(("CycleGAN: unpaired translation, judged in the target domain (test set)",
                         markdown_table(unpaired_header, unpaired_rows)))  # fmt: skip
    return sections


def srgan_sections(evals: dict[str, dict]) -> list[tuple[str, str]]:
    """Each method (bicubic, the srgan instance's phase 1, the model) of each instance: the
    whole-image numbers, the accuracies on labelled data, the SR literature's PSNR_y / SSIM_y
    (border `scale` cropped) and the perceptual distance where the metrics have them; then the
    target of each instance that has one."""
    methods = {}
    for name, m in evals.items():
        found = [("bicubic", m["bicubic"])]
        if "phase1" in m:
            found.append(("SRResNet (its phase 1)", m["phase1"]))
        methods[name] = [*found, (m["variant"], m["model"])]
    judged = [r for found in methods.values() for _, r in found]
    # columns shown when any row has them: the accuracies (labelled data only), then the SR
    # literature's numbers
    accuracy = any("accuracy" in r for r in judged)
    hr = any("hr_accuracy" in m for m in evals.values())
    literature = {"psnr_y": "PSNR_y", "ssim_y": "SSIM_y", "perceptual_distance": "perceptual dist."}
    shown = [k for k in literature if any(k in r for r in judged)]
    header = ["instance", "variant", "scale", "method", "PSNR", "SSIM", "FID vs HR test"]
    header += ["accuracy"] * accuracy + ["HR accuracy"] * hr
    header += [literature[k] for k in shown] + ["train s"]
    rows = [
        [name, m["variant"], m["scale"], method, r["psnr"], r["ssim"], r["fid"],
         *[r.get("accuracy", "-")] * accuracy, *[m.get("hr_accuracy", "-")] * hr,
         *[r.get(k, "-") for k in shown], m["train_seconds"]]
        for name, m in evals.items()
        for method, r in methods[name]
    ]  # fmt: skip
    sections = [("SRGAN: super-resolution against bicubic (test set)",
                 markdown_table(header, rows))]  # fmt: skip
    targets = {name: m["target"] for name, m in evals.items() if "target" in m}
    if targets:
        header = ["instance", "SRResNet row", "PSNR_y gain over bicubic", "required",
                  "SRGAN perceptual gain over SRResNet", "met"]  # fmt: skip
        rows = [
            [name, t["srresnet"], t["psnr_y_gain_over_bicubic"], t["psnr_y_gain_min"],
             t.get("perceptual_gain_over_srresnet", "-"), "yes" if t["met"] else "no"]
            for name, t in targets.items()
        ]  # fmt: skip
        sections.append(("SRGAN: target (SRResNet PSNR_y gain; SRGAN perceptually closer than "
                         "its SRResNet)", markdown_table(header, rows)))  # fmt: skip
    return sections


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
        [name, r.get("class", c), r["accuracy"], r["fid"], r["diversity"], r["real_diversity"]]
        for name, m in evals.items()
        for c, r in enumerate(m["per_class"])
    ]
    return [
        ("cGAN: the class that is asked for", markdown_table(header, rows)),
        ("cGAN per class", markdown_table(per_class_header, per_class)),
    ]
