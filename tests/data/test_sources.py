import logging
import re
from pathlib import Path

import numpy as np
import pytest

from genmodels.data.sources import (
    TORCHVISION_DOWNLOAD,
    load_idx_dataset,
    locate_idx_files,
)
from genmodels.errors import UserError


@pytest.fixture
def raw_dir(tmp_path) -> Path:
    return tmp_path / "raw"


@pytest.fixture
def debian_root(tmp_path) -> Path:
    return tmp_path / "debian"


def origin_of(name, raw_dir, debian_root, download=False) -> str:
    return locate_idx_files(name, raw_dir, download=download, debian_root=debian_root).origin


def test_raw_dir_beats_debian_root(idx, raw_dir, debian_root):
    local = idx.dataset(raw_dir / "fashion_mnist", n_train=12, seed=1)
    idx.dataset(debian_root / "fashion-mnist", n_train=15, gz=True, seed=2)

    data = load_idx_dataset("fashion_mnist", raw_dir, download=False, debian_root=debian_root)

    assert data.source["origin"] == str(raw_dir / "fashion_mnist")
    assert np.array_equal(data.train_images.numpy()[:, 0], local["train_images"])


@pytest.mark.parametrize("make_raw_dir", [True, False])
def test_debian_root_used_when_raw_dir_empty(idx, raw_dir, debian_root, make_raw_dir):
    if make_raw_dir:
        raw_dir.mkdir()
    debian = idx.dataset(debian_root / "fashion-mnist", gz=True, seed=2)

    data = load_idx_dataset("fashion_mnist", raw_dir, download=False, debian_root=debian_root)

    assert data.source["origin"] == str(debian_root / "fashion-mnist")
    assert np.array_equal(data.test_labels.numpy(), debian["test_labels"])
    assert data.source["files"]["train-images-idx3-ubyte"]["path"].endswith(".gz")


def test_torchvision_layout_found(idx, raw_dir, debian_root):
    idx.dataset(raw_dir / "FashionMNIST" / "raw", gz=True, seed=3)

    assert origin_of("fashion_mnist", raw_dir, debian_root) == str(raw_dir / "FashionMNIST" / "raw")


def test_raw_dir_itself_found_after_the_named_folders(idx, raw_dir, debian_root):
    idx.dataset(raw_dir)
    assert origin_of("fashion_mnist", raw_dir, debian_root) == str(raw_dir)

    idx.dataset(raw_dir / "FashionMNIST" / "raw")
    assert origin_of("fashion_mnist", raw_dir, debian_root) == str(raw_dir / "FashionMNIST" / "raw")

    idx.dataset(raw_dir / "fashion_mnist")
    assert origin_of("fashion_mnist", raw_dir, debian_root) == str(raw_dir / "fashion_mnist")


def test_plain_file_preferred_over_gz(idx, raw_dir, debian_root):
    # torchvision leaves both the .gz and its extraction; either is the same data there
    plain = idx.dataset(raw_dir / "fashion_mnist", seed=4)
    idx.dataset(raw_dir / "fashion_mnist", gz=True, seed=5)

    data = load_idx_dataset("fashion_mnist", raw_dir, download=False, debian_root=debian_root)

    assert np.array_equal(data.train_images.numpy()[:, 0], plain["train_images"])
    assert not data.source["files"]["train-images-idx3-ubyte"]["path"].endswith(".gz")


def test_all_missing_lists_every_place(raw_dir, debian_root):
    with pytest.raises(UserError) as caught:
        locate_idx_files("fashion_mnist", raw_dir, download=False, debian_root=debian_root)

    message = str(caught.value)
    for place in [
        raw_dir / "fashion_mnist",
        raw_dir / "FashionMNIST" / "raw",
        debian_root / "fashion-mnist",
    ]:
        assert f"{place}: not found" in message
    assert re.search(re.escape(f"- {raw_dir}: not found"), message)
    assert f"{TORCHVISION_DOWNLOAD}: skipped, data.download is false" in message
    assert f"put the four IDX files in {raw_dir / 'fashion_mnist'}/" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "data.download: true" in message


@pytest.mark.faults
@pytest.mark.parametrize("place", ["fashion_mnist", "FashionMNIST/raw", "."])
def test_a_broken_copy_under_raw_dir_is_refused_not_replaced(idx, raw_dir, debian_root, place):
    """Not a fallback to Debian's 70,000 images in place of the user's few hundred."""
    folder = raw_dir / place
    idx.dataset(folder)
    idx.dataset(debian_root / "fashion-mnist")
    (folder / "t10k-labels-idx1-ubyte").unlink()

    with pytest.raises(UserError) as caught:
        load_idx_dataset("fashion_mnist", raw_dir, download=True, debian_root=debian_root)
    message = str(caught.value)
    assert f"{folder} holds a broken copy (incomplete: missing" in message
    assert "incomplete: missing t10k-labels-idx1-ubyte[.gz]" in message
    assert "complete it with the four IDX files" in message and "or remove it" in message


@pytest.mark.faults
def test_a_folder_where_an_idx_file_should_be_is_named(idx, raw_dir, debian_root):
    idx.dataset(raw_dir / "fashion_mnist")
    idx.dataset(debian_root / "fashion-mnist")
    labels = raw_dir / "fashion_mnist" / "train-labels-idx1-ubyte"
    labels.unlink()
    labels.mkdir()

    with pytest.raises(
        UserError, match=r"holds a broken copy \(not a regular file: train-labels-idx1-ubyte\)"
    ):
        locate_idx_files("fashion_mnist", raw_dir, download=False, debian_root=debian_root)


@pytest.mark.faults
def test_the_fallback_is_logged_with_the_path_used(idx, raw_dir, debian_root, caplog):
    raw_dir.mkdir()
    idx.dataset(debian_root / "fashion-mnist")
    with caplog.at_level(logging.INFO):
        origin = origin_of("fashion_mnist", raw_dir, debian_root)
    assert origin == str(debian_root / "fashion-mnist")
    assert f"{raw_dir} holds no copy; using {debian_root / 'fashion-mnist'}" in caplog.text


@pytest.mark.faults
def test_a_broken_system_copy_is_passed_over_by_name(idx, raw_dir, debian_root, caplog):
    idx.dataset(debian_root / "fashion-mnist")
    (debian_root / "fashion-mnist" / "t10k-labels-idx1-ubyte").unlink()
    with caplog.at_level(logging.WARNING), pytest.raises(UserError, match="cannot find"):
        locate_idx_files("fashion_mnist", raw_dir, download=False, debian_root=debian_root)
    assert "passing over" in caplog.text and "t10k-labels-idx1-ubyte" in caplog.text


@pytest.mark.faults
def test_corrupt_local_file_is_an_error_not_a_fallback(idx, raw_dir, debian_root):
    idx.dataset(raw_dir / "fashion_mnist")
    idx.dataset(debian_root / "fashion-mnist")
    broken = raw_dir / "fashion_mnist" / "train-images-idx3-ubyte"
    broken.write_bytes(broken.read_bytes()[:-1])

    with pytest.raises(UserError, match=re.escape(str(broken)) + ".*truncated"):
        load_idx_dataset("fashion_mnist", raw_dir, download=False, debian_root=debian_root)


def test_mnist_uses_the_same_code(idx, raw_dir, debian_root):
    debian = idx.dataset(debian_root / "mnist", gz=True, seed=6)

    data = load_idx_dataset("mnist", raw_dir, download=False, debian_root=debian_root)
    assert np.array_equal(data.train_labels.numpy(), debian["train_labels"])

    local = idx.dataset(raw_dir / "MNIST" / "raw", seed=7)
    data = load_idx_dataset("mnist", raw_dir, download=False, debian_root=debian_root)
    assert np.array_equal(data.train_labels.numpy(), local["train_labels"])


def test_mnist_missing_has_no_debian_package_hint(raw_dir, debian_root):
    with pytest.raises(UserError) as caught:
        locate_idx_files("mnist", raw_dir, download=False, debian_root=debian_root)

    assert f"{debian_root / 'mnist'}: not found" in str(caught.value)
    assert "apt-get" not in str(caught.value)


def test_download_through_torchvision(idx, raw_dir, debian_root, torchvision_datasets):
    calls = []

    class FakeKMNIST:
        def __init__(self, root, train, download):
            calls.append((Path(root), train, download))
            idx.dataset(Path(root) / "KMNIST" / "raw", gz=True, seed=8)

    torchvision_datasets(KMNIST=FakeKMNIST)

    data = load_idx_dataset("kmnist", raw_dir, download=True, debian_root=debian_root)

    assert calls == [(raw_dir, False, True)]
    assert data.source["origin"] == TORCHVISION_DOWNLOAD
    assert len(data.train_images) == 20 and len(data.test_images) == 10


def test_download_failure_is_reported(raw_dir, debian_root, torchvision_datasets):
    class OfflineFashionMNIST:
        def __init__(self, root, train, download):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nno network")

    torchvision_datasets(FashionMNIST=OfflineFashionMNIST)

    with pytest.raises(UserError) as caught:
        locate_idx_files("fashion_mnist", raw_dir, download=True, debian_root=debian_root)

    message = str(caught.value)
    assert (
        f"{TORCHVISION_DOWNLOAD}: failed: Error downloading train-images-idx3-ubyte.gz: no network"
        in message
    )
    assert f"{debian_root / 'fashion-mnist'}: not found" in message
