"""The real `dvc repro` on the user's own images: a tiny RGB class folder (32x32, three classes)
through every family, and the CycleGAN on a tiny unpaired folder (trainA/, trainB/, testA/,
testB/), each in a temporary copy of the repository, written as PNG files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image, ImageDraw

from pipeline_runs import copy_repo, dvc, tiny_params

pytestmark = pytest.mark.e2e

SIDE = 32
SHAPES = ("disc", "square", "triangle")
# one instance per family (the other instances of params.yaml take the same code paths)
KEPT = ("ae_k32", "vae", "gan", "cgan", "srresnet", "srgan", "cyclegan")


def shape_image(kind: str, rng: np.random.Generator) -> Image.Image:
    """A coloured shape on a coloured background, at a random place and size."""
    background = tuple(int(v) for v in rng.integers(0, 120, 3))
    image = Image.new("RGB", (SIDE, SIDE), background)
    draw = ImageDraw.Draw(image)
    colour = tuple(int(v) for v in rng.integers(130, 256, 3))
    r = int(rng.integers(6, 12))
    x, y = (int(v) for v in rng.integers(r, SIDE - r, 2))
    if kind == "disc":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    elif kind == "square":
        draw.rectangle([x - r, y - r, x + r, y + r], fill=colour)
    else:
        draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colour)
    return image


def own_params(data: dict, kept: tuple[str, ...]) -> dict:
    params = tiny_params()
    params["data"] |= {"limit_train": None, "limit_test": None, **data}
    params["models"] = {k: v for k, v in params["models"].items() if k in kept}
    return params


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("own_rgb")
    rng = np.random.default_rng(0)
    for kind in SHAPES:
        (root / "images" / kind).mkdir(parents=True)
        for i in range(96):
            shape_image(kind, rng).save(root / "images" / kind / f"{i:03d}.png")
    params = own_params({"name": "folder", "folder": "images", "test_fraction": 0.25}, KEPT)
    dvc(copy_repo(root, params), "repro")
    return root


@pytest.fixture(scope="module")
def unpaired_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("own_unpaired")
    rng = np.random.default_rng(1)
    for split, count in (("train", 96), ("test", 32)):
        for domain, kinds in (("A", ("disc",)), ("B", ("square",))):
            folder = root / "photos" / f"{split}{domain}"
            folder.mkdir(parents=True)
            for i in range(count):
                shape_image(kinds[0], rng).save(folder / f"{i:03d}.png")
    params = own_params({"name": "unpaired", "folder": "photos"}, ("cyclegan",))
    dvc(copy_repo(root, params), "repro")
    return root


def test_the_class_folder_is_prepared_with_its_names_and_shape(class_folder):
    manifest = read_json(class_folder / "data/prepared/manifest.json")
    assert manifest["classes"] == sorted(SHAPES) and manifest["image_shape"] == [3, SIDE, SIDE]
    assert manifest["counts"] == {"train": 216, "test": 72}
    histogram = read_json(class_folder / "metrics/data.json")["train_class_histogram"]
    assert histogram == {kind: 72 for kind in sorted(SHAPES)}


def test_every_family_trains_and_is_judged_on_rgb_images(class_folder):
    evaluator = read_json(class_folder / "metrics/eval/evaluator.json")
    assert evaluator["task"] == "classes" and evaluator["classes"] == sorted(SHAPES)
    assert evaluator["accuracy"] > 1 / 3  # three shapes: above chance
    for instance in KEPT:
        metrics = read_json(class_folder / f"metrics/eval/{instance}.json")
        assert metrics["feature_space"] == "evaluator (classes)"
        assert (class_folder / f"reports/figures/{instance}/figures.json").is_file()
    cgan = read_json(class_folder / "metrics/eval/cgan.json")
    assert [row["class"] for row in cgan["per_class"]] == sorted(SHAPES)
    assert read_json(class_folder / "metrics/eval/gan.json")["class_histogram"].__len__() == 3
    report = (class_folder / "reports/evaluation.md").read_text()
    assert all(f"| {instance} |" in report for instance in KEPT)


@pytest.mark.parametrize(("instance", "graph", "feed", "shape"), [
    ("gan", "generator", {"z": np.zeros((2, 64), np.float32)}, (2, 3, SIDE, SIDE)),
    ("cgan", "generator", {"z": np.zeros((3, 64), np.float32),
                           "label": np.array([0, 1, 2], np.int64)}, (3, 3, SIDE, SIDE)),
    ("vae", "decoder", {"z": np.zeros((2, 16), np.float32)}, (2, 3, SIDE, SIDE)),
    ("srresnet", "generator", {"image": np.full((1, 3, 8, 12), 0.5, np.float32)},
     (1, 3, 32, 48)),
    ("cyclegan", "generator_ab", {"image": np.full((2, 3, SIDE, SIDE), 0.5, np.float32)},
     (2, 3, SIDE, SIDE)),
])  # fmt: skip
def test_the_exported_rgb_graphs_run_in_onnxruntime(class_folder, instance, graph, feed, shape):
    parity = read_json(class_folder / f"metrics/export/{instance}.json")
    assert all(g["max_abs_diff"] <= 1e-4 for g in parity.values())
    session = ort.InferenceSession(str(class_folder / f"exported/{instance}/{graph}.onnx"))
    (out,) = session.run(None, feed)
    assert out.shape == shape and out.min() >= 0 and out.max() <= 1


def test_the_cyclegan_runs_on_an_unpaired_folder(unpaired_folder):
    manifest = read_json(unpaired_folder / "data/prepared/manifest.json")
    assert manifest["classes"] == [] and manifest["counts"] == {"train": 192, "test": 64}
    evaluator = read_json(unpaired_folder / "metrics/eval/evaluator.json")
    assert evaluator["task"] == "rotation"
    reference = read_json(unpaired_folder / "metrics/eval/reference.json")
    assert reference["feature_space"] == "evaluator (rotation)" and "class_metrics" in reference
    assert "class_coverage" not in reference
    metrics = read_json(unpaired_folder / "metrics/eval/cyclegan.json")
    assert metrics["paired"] is False and metrics["feature_space"] == "evaluator (rotation)"
    for direction in ("ab", "ba"):
        assert np.isfinite(metrics[direction]["fid"]) and "l1" not in metrics[direction]
    parity = read_json(unpaired_folder / "metrics/export/cyclegan.json")
    assert set(parity) == {"generator_ab", "generator_ba"}
    assert all(g["max_abs_diff"] <= 1e-4 for g in parity.values())
    assert "CycleGAN" in (unpaired_folder / "reports/evaluation.md").read_text()
