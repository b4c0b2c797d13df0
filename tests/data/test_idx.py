import gzip
import re

import numpy as np
import pytest
import torch

from genmodels.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_images, read_labels, read_split
from genmodels.errors import UserError


def naming(path) -> str:
    return re.escape(str(path))


@pytest.fixture
def arrays():
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=20, dtype=np.uint8)
    return images, labels


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(idx, tmp_path, arrays, suffix):
    images, labels = arrays
    images_path = idx.images(tmp_path / f"images{suffix}", images)
    labels_path = idx.labels(tmp_path / f"labels{suffix}", labels)

    read_images_, read_labels_ = read_split(images_path, labels_path)

    assert read_images_.dtype == torch.uint8 and read_images_.shape == (20, 1, 28, 28)
    assert read_labels_.dtype == torch.int64 and read_labels_.shape == (20,)
    assert np.array_equal(read_images_.numpy()[:, 0], images)
    assert np.array_equal(read_labels_.numpy(), labels)


def test_gzip_recognised_by_content_without_suffix(idx, tmp_path, arrays):
    images, _ = arrays
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(gzip.compress(idx.image_bytes(images)))

    assert np.array_equal(read_images(path).numpy()[:, 0], images)


def test_wrong_magic(idx, tmp_path, arrays):
    images, labels = arrays
    images_path = idx.images(tmp_path / "images", images, magic=0x00000903)
    labels_path = idx.labels(tmp_path / "labels", labels)

    with pytest.raises(UserError, match=naming(images_path) + ".*magic 0x00000903"):
        read_images(images_path)
    # a labels file where images are expected: a swapped pair is caught by the magic too
    with pytest.raises(UserError, match=naming(labels_path) + f".*expected 0x{IMAGES_MAGIC:08x}"):
        read_images(labels_path)
    with pytest.raises(UserError, match=naming(images_path) + f".*expected 0x{LABELS_MAGIC:08x}"):
        read_labels(images_path)


def test_wrong_dimensions(idx, tmp_path):
    path = idx.images(tmp_path / "images", np.zeros((5, 27, 28), dtype=np.uint8))

    with pytest.raises(UserError, match=naming(path) + ".*27x28, expected 28x28"):
        read_images(path)


@pytest.mark.faults
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_images(idx, tmp_path, arrays, suffix):
    path = idx.raw(tmp_path / f"images{suffix}", idx.image_bytes(arrays[0])[:-5])

    with pytest.raises(UserError, match=naming(path) + ".*truncated.*delete it"):
        read_images(path)


def test_too_short_for_a_header(idx, tmp_path):
    path = idx.raw(tmp_path / "labels", b"\x00\x00\x08")

    with pytest.raises(UserError, match=naming(path) + ".*too short"):
        read_labels(path)


def test_trailing_bytes(idx, tmp_path, arrays):
    images, labels = arrays
    images_path = idx.raw(tmp_path / "images", idx.image_bytes(images) + b"\x00" * 3)
    labels_path = idx.raw(tmp_path / "labels.gz", idx.label_bytes(labels) + b"\x01")

    with pytest.raises(UserError, match=naming(images_path) + ".*3 trailing bytes"):
        read_images(images_path)
    with pytest.raises(UserError, match=naming(labels_path) + ".*1 trailing bytes"):
        read_labels(labels_path)


@pytest.mark.faults
def test_corrupt_gzip(idx, tmp_path, arrays):
    path = idx.images(tmp_path / "images.gz", arrays[0])
    compressed = path.read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(compressed[: len(compressed) // 2])
    flipped = tmp_path / "flipped.gz"
    middle = len(compressed) // 2
    flipped.write_bytes(
        compressed[:middle] + bytes([compressed[middle] ^ 0xFF]) + compressed[middle + 1 :]
    )
    not_gzip = tmp_path / "not-gzip.gz"
    not_gzip.write_bytes(b"this is not gzip at all")

    for bad in (cut, flipped, not_gzip):
        with pytest.raises(UserError, match=naming(bad) + ".*corrupt gzip"):
            read_images(bad)


@pytest.mark.parametrize("bad_label", [10, 255])
def test_label_out_of_range(idx, tmp_path, bad_label):
    labels = np.array([0, 1, 2, bad_label, 9], dtype=np.uint8)
    path = idx.labels(tmp_path / "labels", labels)

    with pytest.raises(UserError, match=naming(path) + f".*outside 0..9.*{bad_label} at index 3"):
        read_labels(path)


def test_count_mismatch(idx, tmp_path, arrays):
    images, labels = arrays
    images_path = idx.images(tmp_path / "images", images)
    labels_path = idx.labels(tmp_path / "labels", labels[:19])

    with pytest.raises(
        UserError, match=naming(images_path) + ".*20 images.*" + naming(labels_path)
    ):
        read_split(images_path, labels_path)
