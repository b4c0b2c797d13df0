import hashlib
import json
import logging
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genmodels.config import DataParams
from genmodels.data.prepare import prepare
from genmodels.data.prepared import load_prepared, subset_indices
from genmodels.errors import UserError
from genmodels.stage import run_stage

REPO = Path(__file__).resolve().parents[2]
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # fmt: skip


@pytest.fixture
def small_dataset(idx, tmp_path):
    """40 train and 20 test images in data/raw/fashion_mnist, gzipped."""
    return idx.dataset(tmp_path / "raw" / "fashion_mnist", n_train=40, n_test=20, gz=True)


def data_params(tmp_path, out="prepared", **overrides) -> DataParams:
    fields = {
        "raw_dir": str(tmp_path / "raw"),
        "prepared_dir": str(tmp_path / out),
        "download": False,
    }
    return DataParams(**(fields | overrides))


def test_prepare_end_to_end(small_dataset, tmp_path):
    metrics_path = tmp_path / "metrics" / "data.json"

    manifest = prepare(data_params(tmp_path), metrics_path=metrics_path)

    prepared = tmp_path / "prepared"
    for split, count in (("train", 40), ("test", 20)):
        content = torch.load(prepared / f"{split}.pt", weights_only=True)
        assert content["images"].dtype == torch.uint8 and content["images"].shape == (
            count,
            1,
            28,
            28,
        )
        assert content["labels"].dtype == torch.int64 and content["labels"].shape == (count,)
        assert np.array_equal(content["images"].numpy()[:, 0], small_dataset[f"{split}_images"])
        assert np.array_equal(content["labels"].numpy(), small_dataset[f"{split}_labels"])

    assert json.loads((prepared / "manifest.json").read_text()) == manifest
    assert manifest["dataset"] == "fashion_mnist"
    assert manifest["counts"] == {"train": 40, "test": 20}
    assert manifest["class_histogram"] == {"train": [4] * 10, "test": [2] * 10}
    assert manifest["image_shape"] == [1, 28, 28]
    assert manifest["classes"] == FASHION_MNIST_CLASSES
    assert manifest["limits"] == {"limit_train": None, "limit_test": None, "subset_seed": 0}
    assert manifest["source"]["origin"] == str(tmp_path / "raw" / "fashion_mnist")
    files = manifest["source"]["files"]
    assert len(files) == 4
    for entry in files.values():
        assert entry["sha256"] == hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest()

    assert json.loads(metrics_path.read_text()) == {
        "train_count": 40,
        "test_count": 20,
        "num_classes": 10,
        "train_class_histogram": {name: 4 for name in FASHION_MNIST_CLASSES},
    }


def test_limits_take_a_seeded_subset(small_dataset, tmp_path):
    def prepared_with(out, seed):
        params = data_params(tmp_path, out, limit_train=7, limit_test=3, subset_seed=seed)
        manifest = prepare(params)
        return load_prepared(tmp_path / out), manifest

    first, manifest = prepared_with("a", seed=1)
    again, _ = prepared_with("b", seed=1)
    other, _ = prepared_with("c", seed=2)

    assert len(first.train_images) == 7 and len(first.test_images) == 3
    assert manifest["counts"] == {"train": 7, "test": 3}
    assert sum(manifest["class_histogram"]["train"]) == 7
    assert torch.equal(first.train_images, again.train_images)
    assert torch.equal(first.test_labels, again.test_labels)
    assert not torch.equal(first.train_images, other.train_images)
    # the subset keeps images and labels paired, in the source order
    index = subset_indices(40, 7, seed=1)
    assert torch.equal(index, index.sort().values)
    assert np.array_equal(
        first.train_images.numpy()[:, 0], small_dataset["train_images"][index.numpy()]
    )
    assert np.array_equal(first.train_labels.numpy(), small_dataset["train_labels"][index.numpy()])


def test_limit_above_the_data_keeps_all_with_a_warning(small_dataset, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        manifest = prepare(data_params(tmp_path, limit_train=1000, limit_test=20))

    assert manifest["counts"] == {"train": 40, "test": 20}
    assert "limit_train=1000" in caplog.text
    assert "limit_test" not in caplog.text


def test_load_prepared_round_trip(small_dataset, tmp_path):
    manifest = prepare(data_params(tmp_path))

    prepared = load_prepared(tmp_path / "prepared")

    assert prepared.manifest == manifest
    assert prepared.num_classes == 10
    assert prepared.image_shape == (1, 28, 28)
    assert np.array_equal(prepared.test_images.numpy()[:, 0], small_dataset["test_images"])
    assert np.array_equal(prepared.train_labels.numpy(), small_dataset["train_labels"])


def test_load_prepared_missing(tmp_path):
    with pytest.raises(UserError, match=r"train\.pt, test\.pt, manifest\.json.*dvc repro prepare"):
        load_prepared(tmp_path / "nothing-here")


@pytest.mark.faults
def test_load_prepared_corrupt_file(small_dataset, tmp_path):
    prepare(data_params(tmp_path))
    broken = tmp_path / "prepared" / "test.pt"
    broken.write_bytes(broken.read_bytes()[:100])

    with pytest.raises(UserError, match=re.escape(str(broken)) + ".*corrupt"):
        load_prepared(tmp_path / "prepared")


def test_digits(tmp_path):
    manifest = prepare(data_params(tmp_path, name="digits"))

    prepared = load_prepared(tmp_path / "prepared")
    assert prepared.train_images.dtype == torch.uint8
    assert prepared.image_shape == (1, 28, 28)
    assert len(prepared.train_images) + len(prepared.test_images) == 1797
    assert len(prepared.test_images) == round(1797 * 0.2)
    labels = torch.cat([prepared.train_labels, prepared.test_labels])
    assert set(labels.tolist()) == set(range(10))
    assert prepared.train_images.max() == 255  # the 0..16 scale reaches full white
    assert manifest["source"]["origin"] == "sklearn.datasets.load_digits"
    assert len(manifest["source"]["sha256"]) == 64


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.exists(), reason="needs dataset-fashion-mnist")
def test_real_debian_fashion_mnist(tmp_path):
    (tmp_path / "raw").mkdir()

    manifest = prepare(data_params(tmp_path), debian_root=DEBIAN_FASHION_MNIST.parent)

    assert manifest["source"]["origin"] == str(DEBIAN_FASHION_MNIST)
    assert manifest["counts"] == {"train": 60000, "test": 10000}
    assert manifest["class_histogram"] == {"train": [6000] * 10, "test": [1000] * 10}


def test_run_stage_turns_a_user_error_into_exit_2(monkeypatch, capsys):
    seen = []

    def failing_main(args):
        seen.append((args.params, args.extra))
        raise UserError("the thing is broken; fix it")

    monkeypatch.setattr(sys, "argv", ["stage", "--params", "p.yaml", "--extra", "x"])
    with pytest.raises(SystemExit) as caught:
        run_stage(failing_main, "a stage", lambda parser: parser.add_argument("--extra"))

    assert caught.value.code == 2
    assert seen == [("p.yaml", "x")]
    assert capsys.readouterr().err == "error: the thing is broken; fix it\n"


PARAMS_YAML = """\
data:
  name: digits
  limit_train: 100
models:
  ae:
    family: autoencoder
    steps: 1
"""


def run_pipeline_script(monkeypatch, *args: str) -> None:
    script = str(REPO / "pipeline" / "prepare.py")
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(script, run_name="__main__")


def test_pipeline_script(tmp_path, monkeypatch, capsys):
    # in-process: a subprocess would pay seconds of torch and sklearn imports
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(PARAMS_YAML)

    run_pipeline_script(monkeypatch)

    assert json.loads((tmp_path / "metrics" / "data.json").read_text())["train_count"] == 100
    assert (tmp_path / "data" / "prepared" / "train.pt").is_file()

    with pytest.raises(SystemExit) as caught:
        run_pipeline_script(monkeypatch, "--params", "nope.yaml")
    assert caught.value.code == 2
    assert capsys.readouterr().err.startswith("error: nope.yaml: params file not found")
