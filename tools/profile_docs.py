"""Renders the figures section of docs/<profile>.md (between its markers) from the profile's
generated files: profiles/<profile>/metrics/eval/*.json, reports/bench/repro.json, and the
published numbers it is set beside (profiles/<profile>/literature.json). `make repro-photos`
runs it after the profile's pipeline.

    python tools/profile_docs.py photos
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import bench_docs
from genmodels.sections import markdown_table

REPO = Path(__file__).resolve().parent.parent


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def ceiling_line(ceiling: dict | None) -> str:
    """The SRResNet trained on the held-out photos themselves (tools/sr_ceiling.py)."""
    if ceiling is None:
        return "- The target's ceiling: not measured yet (`make sr-ceiling`)."
    return (
        f"- The target's ceiling: the same network, params and {ceiling['steps']:,} steps "
        f"trained on the held-out photos' own {ceiling['train_images']} tiles gain "
        f"{ceiling['psnr_y_gain_over_bicubic']:+.2f} dB PSNR_y over bicubic on them "
        "(`make sr-ceiling`): no training on other photos is expected to beat a network that "
        "has seen the test photos."
    )


def sr_methods(srresnet: dict, srgan: dict) -> list[tuple[str, dict]]:
    """(row name, its metrics) of each method the super-resolution tables compare."""
    return [("bicubic", srresnet["bicubic"]), ("SRResNet (srresnet)", srresnet["model"]),
            ("SRGAN (srgan)", srgan["model"])]  # fmt: skip


def sr_section(srresnet: dict | None, srgan: dict | None, ceiling: dict | None = None) -> str:
    if srresnet is None or srgan is None:
        return "No super-resolution metrics yet: run `make repro-photos`."
    rows = [[name, entry["psnr_y"], entry["ssim_y"], entry["perceptual_distance"], entry["fid"]]
            for name, entry in sr_methods(srresnet, srgan)]  # fmt: skip
    low, high = srresnet["low_res"], [srresnet["scale"] * v for v in srresnet["low_res"]]
    gain = srresnet["target"]["psnr_y_gain_over_bicubic"]
    better = srgan["target"].get("perceptual_gain_over_srresnet")
    if "test_images" in srresnet:  # tiles made whole again: the literature's measurement
        measured = (
            f"{srresnet['test_images']} held-out photos, each down-sampled by "
            f"{srresnet['scale']} and upscaled whole; PSNR and SSIM on the Y channel with a "
            f"border of {srresnet['border']} pixels cropped, per photo, averaged; the perceptual "
            f"distance and FID over the photos' {srresnet['n_test']} tiles of {high[0]}x{high[1]}"
        )
    else:
        measured = (
            f"{srresnet['n_test']} held-out tiles of {high[0]}x{high[1]} from the test photos, "
            f"down-sampled to {low[0]}x{low[1]} (scale {srresnet['scale']}); PSNR and SSIM on "
            f"the Y channel with a border of {srresnet['border']} pixels cropped; the perceptual "
            f"distance and FID"
        )
    return "\n".join([
        f"{measured}, in the space {srresnet['feature_space']}.",
        "",
        markdown_table(["method", "PSNR_y (dB)", "SSIM_y",
                        "perceptual distance (lower: closer)", "FID vs HR tiles"], rows),
        "",
        f"- SRResNet over bicubic: {gain:+.2f} dB PSNR_y (target: at least "
        f"{srresnet['target']['psnr_y_gain_min']:.1f} dB): "
        f"{'met' if gain >= srresnet['target']['psnr_y_gain_min'] else 'not met'}.",
        f"- SRGAN against its SRResNet (phase 1) on the perceptual distance: {better:+.4f} "
        f"(positive: the SRGAN is closer): {'met' if better > 0 else 'not met'}.",
        ceiling_line(ceiling),
        *block_table(srresnet, srgan),
    ])  # fmt: skip


def block_table(srresnet: dict, srgan: dict) -> list[str]:
    """Each evaluator block's share of the perceptual distance, per method (the SRGAN's
    content loss reads one of them): which features each method is close in."""
    entries = sr_methods(srresnet, srgan)
    if not all("perceptual_by_block" in entry for _, entry in entries):
        return []
    blocks = list(srresnet["model"]["perceptual_by_block"])
    rows = [[name, *(entry["perceptual_by_block"][b] for b in blocks)] for name, entry in entries]
    return ["", "The perceptual distance block by block (it is their sum; lower: closer):", "",
            markdown_table(["method", *blocks], rows)]  # fmt: skip


def cyclegan_section(cyclegan: dict | None) -> str:
    if cyclegan is None:
        return "No CycleGAN metrics yet: run `make repro-photos`."
    rows = []
    for d, label in (("ab", f"{cyclegan['domain_a']} -> {cyclegan['domain_b']}"),
                     ("ba", f"{cyclegan['domain_b']} -> {cyclegan['domain_a']}")):  # fmt: skip
        m = cyclegan[d]
        rows.append([label, m["l1"], m["identity"]["l1"], m["l1_ratio_vs_identity"], m["psnr"],
                     m["ssim"], m["cycle_l1"], m["fid"], m["fid_true_pairs"]])  # fmt: skip
    return "\n".join([
        "Against the true pairs of the held-out tiles (the identity row: the input left as it "
        "is, the baseline a translation must beat).",
        "",
        markdown_table(["direction", "L1", "L1 identity", "identity / L1", "PSNR", "SSIM",
                        "cycle L1", "FID", "FID true pairs"], rows),
    ])  # fmt: skip


def literature_section(literature: dict | None) -> str:
    if literature is None:
        return ""
    # as published, to the paper's own precision
    rows = [[r["set"], r["method"], *(str(r[k]) for k in ("psnr", "ssim"))]
            for r in literature["rows"]]  # fmt: skip
    return "\n".join(
        [
            f"For scale, {literature['source']}:",
            "",
            markdown_table(["set", "method", "PSNR_y (dB)", "SSIM_y"], rows),
        ]
    )


def wall_time_section(repro: dict | None) -> str:
    if repro is None:
        return "No timed run yet: `make repro-photos` records one."
    slowest = sorted(repro["stage_seconds"].items(), key=lambda kv: -kv[1])[:4]
    return (
        f"`make repro-photos` ran {repro['stages_run']} stages in {repro['seconds'] / 60:.1f} "
        f"min ({repro['cpus']} CPUs, {repro['cpu_model']}); the longest: "
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in slowest)
        + "."
    )


def figures(name: str) -> str:
    folder = REPO / "profiles" / name
    evals = {p.stem: _load(p) for p in (folder / "metrics/eval").glob("*.json")}
    evaluator = evals.get("evaluator")
    head = (
        f"Evaluator ({evaluator['task']}): test accuracy {evaluator['accuracy']:.3f} "
        f"(chance {1 / len(evaluator['classes']):.2f})."
        if evaluator else ""
    )  # fmt: skip
    return "\n\n".join(part for part in [
        "<!-- generated by tools/profile_docs.py from profiles/" + name + "/: edit those -->",
        "### Wall time\n\n" + wall_time_section(_load(folder / "reports/bench/repro.json")),
        "### Super-resolution (4x)\n\n" + sr_section(evals.get("srresnet"), evals.get("srgan"),
                                                      _load(folder / "reports/sr_ceiling.json")),
        "### CycleGAN on photo tiles\n\n" + cyclegan_section(evals.get("cyclegan")),
        "### The feature space\n\n" + head,
        "### The SRGAN paper\n\n" + literature_section(_load(folder / "literature.json")),
    ] if part)  # fmt: skip


def splice(text: str, block: str, name: str) -> str:
    """bench_docs.splice between the profile's own markers."""
    return bench_docs.splice(text, block, f"<!-- {name}:start -->", f"<!-- {name}:end -->")


def render(name: str) -> str:
    doc = REPO / "docs" / f"{name}.md"
    old = doc.read_text()
    text = splice(old, figures(name), name)
    if text != old:
        doc.write_text(text)
    return text


def main(names: list[str]) -> int:
    if not names:
        print("usage: python tools/profile_docs.py <profile> (a folder of profiles/)")
        return 2
    for name in names:
        try:
            render(name)
        except (OSError, ValueError, KeyError) as exc:
            print(f"docs/{name}.md not rendered: {exc}", file=sys.stderr)
            return 1
        print(f"rendered docs/{name}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
