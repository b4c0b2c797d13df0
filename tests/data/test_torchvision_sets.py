"""torchvision's sets read by the real code from small files each test writes in that set's own
on-disk format. torchvision checks each file against the real set's MD5; the tests give it the
MD5s of their own files instead."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets as tvd
from PIL import Image

from dataset_files import as_chw, md5, pixels, write_cifar
from genmodels.data.torchvision_sets import load_torchvision_split
from genmodels.errors import UserError

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """The real torchvision here (the folder's conftest stands in a fake); no URL is opened."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("the tests do not go online")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_reads_images_labels_and_class_names(tmp_path, monkeypatch, hundred):
    written = write_cifar(tmp_path, monkeypatch, hundred)
    name = "cifar100" if hundred else "cifar10"
    for split, (images, labels, names) in written.items():
        got = load_torchvision_split(name, split, tmp_path, download=False)
        assert torch.equal(got.images, as_chw(images))
        assert got.labels.tolist() == labels and got.classes == names
    gray = load_torchvision_split(name, "test", tmp_path, download=False, channels=1, size=16)
    assert gray.images.shape == (3, 1, 16, 16)
    expected = Image.fromarray(written["test"][0][0]).convert("L").resize((16, 16), Image.BICUBIC)
    assert torch.equal(gray.images[0, 0], torch.from_numpy(np.array(expected)))


def test_svhn_maps_label_ten_to_digit_zero(tmp_path, monkeypatch):
    split_list = {}
    for split in ("train", "test"):
        images = pixels(4, 32)
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat",
                         {"X": images.transpose(1, 2, 3, 0), "y": np.array([[10], [1], [5], [10]])})  # fmt: skip
        split_list[split] = ["", f"{split}_32x32.mat", md5(tmp_path / f"{split}_32x32.mat")]
    monkeypatch.setattr(tvd.SVHN, "split_list", split_list)
    got = load_torchvision_split("svhn", "test", tmp_path, download=False)
    assert torch.equal(got.images, as_chw(images))
    assert got.labels.tolist() == [0, 1, 5, 0] and got.classes[:2] == ["0", "1"]


def test_stl10_reads_its_column_major_binary(tmp_path, monkeypatch):
    folder = tmp_path / tvd.STL10.base_folder
    folder.mkdir()
    images = {name: pixels(2, 96) for name in ("train_X", "unlabeled_X", "test_X")}
    for name, values in images.items():
        values.transpose(0, 3, 2, 1).tofile(folder / f"{name}.bin")  # [N, C, W, H], as STL-10
    for name in ("train_y", "test_y"):
        np.array([3, 10], np.uint8).tofile(folder / f"{name}.bin")  # 1-based
    (folder / "class_names.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    monkeypatch.setattr(tvd.STL10, "train_list", [
        [f, md5(folder / f)] for f in ("train_X.bin", "train_y.bin", "unlabeled_X.bin")])  # fmt: skip
    monkeypatch.setattr(tvd.STL10, "test_list", [
        [f, md5(folder / f)] for f in ("test_X.bin", "test_y.bin")])  # fmt: skip
    got = load_torchvision_split("stl10", "train", tmp_path, download=False, size=32)
    assert got.images.shape == (2, 3, 32, 32) and got.labels.tolist() == [2, 9]
    full = load_torchvision_split("stl10", "test", tmp_path, download=False)
    assert torch.equal(full.images, as_chw(images["test_X"])) and full.classes[9] == "c9"


def write_celeba(root: Path, monkeypatch) -> list[str]:
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, 6)]
    for index, name in enumerate(names):
        Image.new("RGB", (178, 218), (40 * index, 100, 200)).save(
            folder / "img_align_celeba" / name
        )
    attributes = ["Bald", "Smiling"]
    smiling = [1, -1, 1, 1, -1]
    files = {
        "list_eval_partition.txt": [f"{n} {0 if i < 3 else 2}" for i, n in enumerate(names)],
        "identity_CelebA.txt": [f"{n} {i}" for i, n in enumerate(names)],
        "list_bbox_celeba.txt": ["5", "image_id x_1 y_1 width height"]
        + [f"{n} 1 2 3 4" for n in names],
        "list_landmarks_align_celeba.txt": ["5", " ".join(f"p{i}" for i in range(10))]
        + [f"{n} " + " ".join(["7"] * 10) for n in names],
        "list_attr_celeba.txt": ["5", " ".join(attributes)]
        + [f"{n} -1 {s}" for n, s in zip(names, smiling, strict=True)],
    }
    for name, lines in files.items():
        (folder / name).write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(tvd.CelebA, "file_list", [
        ("", md5(folder / name), name) for name in files])  # fmt: skip
    return names


def test_celeba_is_labelled_by_the_attribute_asked_for(tmp_path, monkeypatch):
    write_celeba(tmp_path, monkeypatch)
    train = load_torchvision_split("celeba", "train", tmp_path, download=False, size=64,
                                   attribute="Smiling")  # fmt: skip
    assert train.images.shape == (3, 3, 64, 64)
    assert train.labels.tolist() == [1, 0, 1] and train.classes == ["not Smiling", "Smiling"]
    assert abs(int(train.images[2, 0, 32, 32]) - 80) <= 3  # the third face's red, JPEG-rounded
    test = load_torchvision_split("celeba", "test", tmp_path, download=False, size=64)
    assert len(test.images) == 2 and test.labels is None
    with pytest.raises(UserError, match=r"data.attribute: celeba has no attribute 'Happy'; "
                                        r"choose one of Bald, Smiling"):  # fmt: skip
        load_torchvision_split("celeba", "train", tmp_path, download=False, attribute="Happy")


def test_flowers102_uses_its_setid_split_and_class_names(tmp_path, monkeypatch):
    folder = tmp_path / "flowers-102"
    (folder / "jpg").mkdir(parents=True)
    sizes = [(500, 600), (640, 480), (500, 500), (700, 500)]
    for image_id, size in enumerate(sizes, 1):
        Image.new("RGB", size, (10 * image_id, 0, 0)).save(
            folder / "jpg" / f"image_{image_id:05d}.jpg"
        )
    scipy.io.savemat(folder / "imagelabels.mat", {"labels": np.array([[1, 102, 5, 1]])})
    scipy.io.savemat(folder / "setid.mat", {"trnid": np.array([[1, 3]]), "valid": np.array([[2]]),
                                            "tstid": np.array([[2, 4]])})  # fmt: skip
    monkeypatch.setattr(tvd.Flowers102, "_file_dict", {
        **tvd.Flowers102._file_dict,
        "label": ("imagelabels.mat", md5(folder / "imagelabels.mat")),
        "setid": ("setid.mat", md5(folder / "setid.mat")),
    })  # fmt: skip
    with pytest.raises(UserError, match=r"flowers102 item 1: 700x500 pixels, but flowers102 "
                                        r"item 0 is 640x480; set data.image_size"):  # fmt: skip
        load_torchvision_split("flowers102", "test", tmp_path, download=False)
    test = load_torchvision_split("flowers102", "test", tmp_path, download=False, size=48)
    assert test.images.shape == (2, 3, 48, 48) and test.labels.tolist() == [101, 0]
    assert test.classes[0] == "pink primrose" and len(test.classes) == 102


@pytest.mark.faults
def test_missing_or_damaged_files_and_a_failed_download_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(UserError, match=r"cifar10: not found or damaged under .* expects "
                                        r"cifar-10-batches-py/.*data.download: true"):  # fmt: skip
        load_torchvision_split("cifar10", "train", tmp_path, download=False)
    write_cifar(tmp_path, monkeypatch)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_2", "ab") as f:
        f.write(b"damage")  # its MD5 no longer matches
    with pytest.raises(UserError, match=r"not found or damaged"):
        load_torchvision_split("cifar10", "train", tmp_path, download=False)

    def offline(self):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tvd.SVHN, "download", offline)
    with pytest.raises(UserError, match=r"svhn: the download into .* failed .*name resolution"):
        load_torchvision_split("svhn", "train", tmp_path / "svhn", download=True)
    with pytest.raises(UserError, match=r"imagenet: not a torchvision set here; one of cifar10"):
        load_torchvision_split("imagenet", "train", tmp_path, download=False)


def test_the_memory_cap_holds_before_any_copy(tmp_path, monkeypatch):
    write_cifar(tmp_path, monkeypatch)
    with pytest.raises(UserError, match=r"15 images of 3x32x32 .* over data.max_memory_gb"):
        load_torchvision_split("cifar10", "train", tmp_path, download=False, max_memory_gb=1e-6)
