"""prepare() on every value of data.name beyond the IDX sets, through the real loading code:
folders the tests write, the photos inside scikit-image and scikit-learn, and torchvision's
CIFAR-10 in its own on-disk format."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from dataset_files import class_folder, write_cifar, write_image
from genmodels.config import DataParams, parse_params
from genmodels.data.images import scan_folder
from genmodels.data.prepare import prepare
from genmodels.data.prepared import load_prepared, subset_indices
from genmodels.errors import UserError


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """The real torchvision (the folder's conftest stands in a fake for IDX tests); no URL."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("the tests do not go online")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def data_params(tmp_path, **overrides) -> DataParams:
    base = {"raw_dir": str(tmp_path / "raw"), "prepared_dir": str(tmp_path / "prepared"),
            "download": False}  # fmt: skip
    return DataParams(**(base | overrides))


def test_class_folders_give_names_a_stratified_split_and_rgb(tmp_path):
    folder = class_folder(tmp_path / "pets", {"cat": 5, "dog": 10}, size=(20, 12))

    manifest = prepare(data_params(tmp_path, name="folder", folder=str(folder), image_size=8,
                                   test_fraction=0.2))  # fmt: skip

    prepared = load_prepared(tmp_path / "prepared")
    assert prepared.classes == ["cat", "dog"] and prepared.num_classes == 2
    assert prepared.image_shape == (3, 8, 8)
    assert manifest["counts"] == {"train": 12, "test": 3}
    assert manifest["class_histogram"] == {"train": [4, 8], "test": [1, 2]}
    assert manifest["source"]["origin"] == str(folder)
    assert len(manifest["source"]["sha256"]["train"]) == 64
    assert manifest["source"]["skipped"] == []


def test_train_and_test_subfolders_and_grayscale(tmp_path):
    root = tmp_path / "set"
    class_folder(root / "train", {"a": 3, "b": 2}, size=(8, 8))
    class_folder(root / "test", {"b": 2}, size=(8, 8))

    prepare(data_params(tmp_path, name="folder", folder=str(root), channels=1))

    prepared = load_prepared(tmp_path / "prepared")
    assert prepared.image_shape == (1, 8, 8)
    assert prepared.classes == ["a", "b"]
    assert prepared.test_labels.tolist() == [1, 1]  # test's "b" is the training set's label 1


def test_a_flat_folder_is_unlabelled_with_no_classes(tmp_path):
    for i in range(6):
        write_image(tmp_path / "flat" / f"{i}.png", size=(8, 8))

    manifest = prepare(data_params(tmp_path, name="folder", folder=str(tmp_path / "flat")))

    assert manifest["classes"] == [] and manifest["num_classes"] == 0
    assert manifest["class_histogram"] == {"train": [], "test": []}
    prepared = load_prepared(tmp_path / "prepared")
    assert prepared.num_classes == 0 and set(prepared.train_labels.tolist()) == {0}


def test_folder_limits_equal_the_subset_of_the_whole_and_skip_decoding_the_rest(tmp_path):
    folder = class_folder(tmp_path / "pets", {"cat": 10, "dog": 10}, size=(8, 8))
    common = {"name": "folder", "folder": str(folder), "subset_seed": 3}
    prepare(data_params(tmp_path, prepared_dir=str(tmp_path / "all"), **common))
    whole = load_prepared(tmp_path / "all")
    index = subset_indices(len(whole.train_images), 4, 3)
    # a training file outside the subset is never decoded: break one
    train_files = scan_folder(folder, 0.2, 3)["train"].paths
    left_out = next(p for i, p in enumerate(train_files) if i not in index.tolist())
    left_out.write_bytes(b"broken")

    prepare(data_params(tmp_path, limit_train=4, **common))

    limited = load_prepared(tmp_path / "prepared")
    assert torch.equal(limited.train_images, whole.train_images[index])
    assert torch.equal(limited.train_labels, whole.train_labels[index])
    assert torch.equal(limited.test_images, whole.test_images)


@pytest.mark.faults
def test_an_unreadable_file_stops_prepare_or_is_skipped_and_listed(tmp_path):
    folder = class_folder(tmp_path / "pets", {"cat": 4, "dog": 4}, size=(8, 8))
    broken = folder / "cat" / "000.png"
    broken.write_bytes(broken.read_bytes()[:40])  # truncated

    with pytest.raises(UserError, match=r"000\.png: not a readable image.*skip_unreadable"):
        prepare(data_params(tmp_path, name="folder", folder=str(folder)))
    assert not (tmp_path / "prepared").exists()  # nothing half-written

    manifest = prepare(data_params(tmp_path, name="folder", folder=str(folder),
                                   skip_unreadable=True))  # fmt: skip
    assert [entry["path"] for entry in manifest["source"]["skipped"]] == ["cat/000.png"]
    assert sum(manifest["counts"].values()) == 7


def test_mixed_sizes_need_image_size_and_the_memory_cap_names_its_knob(tmp_path):
    write_image(tmp_path / "mixed" / "a.png", size=(8, 8))
    write_image(tmp_path / "mixed" / "b.png", size=(9, 8))
    write_image(tmp_path / "mixed" / "c.png", size=(8, 8))
    with pytest.raises(UserError, match=r"data\.image_size"):
        prepare(data_params(tmp_path, name="folder", folder=str(tmp_path / "mixed")))
    with pytest.raises(UserError, match=r"over data\.max_memory_gb=1e-07"):
        prepare(data_params(tmp_path, name="folder", folder=str(tmp_path / "mixed"),
                            image_size=64, max_memory_gb=1e-7))  # fmt: skip


def test_folder_crops_sample_training_images_and_tile_held_out_ones(tmp_path):
    folder = class_folder(tmp_path / "big", {"x": 4, "y": 4}, size=(40, 32))

    prepare(data_params(tmp_path, name="folder", folder=str(folder), resize="crops",
                        crop_size=16, crops_per_image=5))  # fmt: skip

    prepared = load_prepared(tmp_path / "prepared")
    assert prepared.image_shape == (3, 16, 16)
    assert len(prepared.train_images) == 6 * 5  # 3 training images of each class
    assert len(prepared.test_images) == 2 * 4  # 2 held-out images, a 2x2 grid of tiles each
    assert prepared.test_labels.tolist() == [0] * 4 + [1] * 4  # each tile keeps its label
    assert prepared.tile_grids() == [(2, 2), (2, 2)]  # super-resolution makes them whole again
    # a subset of the tiles makes no grids; fitted images are whole
    prepare(data_params(tmp_path, name="folder", folder=str(folder), resize="crops",
                        crop_size=16, crops_per_image=5, limit_test=5))  # fmt: skip
    assert load_prepared(tmp_path / "prepared").tile_grids() is None
    prepare(data_params(tmp_path, name="folder", folder=str(folder), image_size=16))
    assert load_prepared(tmp_path / "prepared").tile_grids() is None


def test_a_crop_larger_than_a_folder_image_names_the_file_and_the_key(tmp_path):
    folder = class_folder(tmp_path / "big", {"x": 4, "y": 4}, size=(40, 32))
    with pytest.raises(UserError, match=r"data.crop_size: 36 is larger than .*big/x/.*\.png "
                                        r"\(40x32\); set it to at most 32"):  # fmt: skip
        prepare(data_params(tmp_path, name="folder", folder=str(folder), resize="crops",
                            crop_size=36, crops_per_image=5))  # fmt: skip


@pytest.mark.parametrize("grids", [[[2, 2]], [[2, 2], [2]], "2x2", [[2, 2], [2, -2]]])
def test_test_tiles_that_do_not_cover_the_test_set_name_the_manifest(tmp_path, grids):
    folder = class_folder(tmp_path / "big", {"x": 4, "y": 4}, size=(40, 32))
    prepare(data_params(tmp_path, name="folder", folder=str(folder), resize="crops",
                        crop_size=16, crops_per_image=5))  # fmt: skip
    manifest_path = tmp_path / "prepared" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps(manifest | {"test_tiles": grids}))
    with pytest.raises(UserError, match=r"manifest.json: test_tiles is not .* covering the 8"):
        load_prepared(tmp_path / "prepared").tile_grids()


def test_packaged_photos_are_split_whole_before_cropping(tmp_path):
    manifest = prepare(data_params(tmp_path, name="photos", crop_size=64, crops_per_image=4,
                                   test_photos=2))  # fmt: skip

    prepared = load_prepared(tmp_path / "prepared")
    assert prepared.image_shape == (3, 64, 64)
    photos = manifest["source"]["photos"]
    held_out = [name for name, entry in photos.items() if entry["split"] == "test"]
    assert len(held_out) == 2 and len(prepared.train_images) == 4 * (len(photos) - 2)
    assert manifest["counts"]["test"] == sum(photos[name]["patches"] for name in held_out)
    assert [r * c for r, c in prepared.tile_grids()] == [photos[n]["patches"] for n in held_out]
    assert manifest["classes"] == []


def test_cifar10_through_data_name(tmp_path, monkeypatch):
    written = write_cifar(tmp_path / "raw", monkeypatch)

    manifest = prepare(data_params(tmp_path, name="cifar10"))

    prepared = load_prepared(tmp_path / "prepared")
    train_images, train_labels, names = written["train"]
    assert prepared.image_shape == (3, 32, 32)
    assert torch.equal(prepared.train_images, torch.from_numpy(train_images).permute(0, 3, 1, 2))
    assert prepared.train_labels.tolist() == train_labels
    assert manifest["classes"] == names
    assert manifest["source"]["origin"].startswith("torchvision.datasets (cifar10)")


def test_an_idx_set_at_another_size_and_in_rgb(idx, tmp_path):
    arrays = idx.dataset(tmp_path / "raw" / "fashion_mnist", n_train=10, n_test=10)

    prepare(data_params(tmp_path, channels=3, image_size=32))

    prepared = load_prepared(tmp_path / "prepared")
    assert prepared.image_shape == (3, 32, 32)
    first = prepared.train_images[0].float()
    assert torch.equal(first[0], first[1]) and torch.equal(first[1], first[2])  # gray in RGB
    assert abs(first.mean().item() - float(np.mean(arrays["train_images"][0]))) < 8


def test_a_cifar_set_missing_from_raw_dir_offline_names_the_layout(tmp_path):
    with pytest.raises(UserError, match=r"cifar10: not found.*cifar-10-batches-py/"):
        prepare(data_params(tmp_path, name="cifar10"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "folder"}, r"data\.name folder needs data\.folder"),
        ({"name": "mnist", "attribute": "Smiling"}, r"data\.attribute labels celeba only"),
        ({"name": "cifar10", "resize": "crops"}, r"data\.resize crops .* folder or photos"),
        ({"name": "photos", "image_size": 64}, r"leave data\.image_size null"),
        ({"channels": 2}, r"data\.channels: Input should be 1 or 3"),
        ({"name": "imagenet"}, r"data\.name: Input should be 'fashion_mnist', .*'flowers102'"),
    ],
)
def test_params_errors_name_the_key(data, message):
    raw = {"data": data, "models": {"ae": {"family": "autoencoder", "epochs": 1}}}
    with pytest.raises(UserError, match=message):
        parse_params(raw)


def test_manifest_round_trips_as_json(tmp_path):
    folder = class_folder(tmp_path / "pets", {"cat": 3, "dog": 3}, size=(8, 8))
    manifest = prepare(data_params(tmp_path, name="folder", folder=str(folder)))
    assert json.loads((tmp_path / "prepared" / "manifest.json").read_text()) == manifest
