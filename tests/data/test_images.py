"""Image folders read by the real code, on PNG, JPEG, WebP, BMP and TIFF files the tests write."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dataset_files import class_folder, write_image
from genmodels.data.images import (
    read_images,
    scan_classes,
    scan_folder,
    scan_unpaired,
    seeded_split,
)
from genmodels.data.pictures import find_images
from genmodels.errors import UserError

RNG = np.random.default_rng(0)


def test_every_supported_format_reads_to_its_pixels(tmp_path):
    pixels = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    lossless = [tmp_path / f"a.{suffix}" for suffix in ("png", "bmp", "tiff", "webp")]
    for path in lossless:
        Image.fromarray(pixels).save(path, **({"lossless": True} if path.suffix == ".webp" else {}))
    jpeg = write_image(tmp_path / "b.JPG", colour=(200, 40, 90), quality=95)
    assert find_images(tmp_path) == sorted([*lossless, jpeg])
    decoded = read_images(lossless, channels=3)
    assert decoded.images.shape == (4, 3, 6, 8) and decoded.images.dtype == torch.uint8
    for image in decoded.images:
        assert torch.equal(image, torch.from_numpy(pixels).permute(2, 0, 1))
    colour = read_images([jpeg], channels=3).images[0, :, 3, 4]
    assert (colour.int() - torch.tensor([200, 40, 90])).abs().max() <= 3  # JPEG's rounding


def test_grayscale_is_pillows_luma_and_rgb_from_gray_repeats_it(tmp_path):
    path = write_image(tmp_path / "c.png")
    gray = read_images([path], channels=1).images[0, 0]
    expected = np.array(Image.open(path).convert("L"))
    assert torch.equal(gray, torch.from_numpy(expected))
    single = write_image(tmp_path / "g.png", mode="L")
    rgb = read_images([single], channels=3).images[0]
    assert torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[1], rgb[2])


def test_size_scales_the_shorter_side_and_crops_the_centre(tmp_path):
    # a wide image: red, green and blue thirds; fitted to a square only green remains
    pixels = np.zeros((20, 60, 3), np.uint8)
    pixels[:, :20, 0] = pixels[:, 20:40, 1] = pixels[:, 40:, 2] = 255
    path = tmp_path / "wide.png"
    Image.fromarray(pixels).save(path)
    image = read_images([path], channels=3, size=10).images[0].int()
    assert image.shape == (3, 10, 10)
    assert (image[1] > 200).all() and (image[0, :, 2:-2] < 40).all()


def test_exif_orientation_and_transparency(tmp_path):
    pixels = np.zeros((4, 8, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees clockwise when shown
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif)
    assert read_images([tmp_path / "rotated.jpg"], channels=3).images.shape == (1, 3, 8, 4)
    clear = write_image(tmp_path / "clear.png", colour=(0, 0, 0, 0), mode="RGBA")
    assert (read_images([clear], channels=3).images == 255).all()  # shown on white


def test_sixteen_bit_images_keep_their_range(tmp_path):
    values = np.array([[0, 32768], [65535, 256]], np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    image = read_images([tmp_path / "deep.png"], channels=1).images[0, 0]
    assert image.tolist() == [[0, 127], [255, 0]]


def test_class_subfolders_are_labels_in_sorted_order(tmp_path):
    root = class_folder(tmp_path / "set", {"dog": 2, "cat": 3})
    (root / ".hidden").mkdir()
    files = scan_classes(root)
    assert files.classes == ["cat", "dog"]
    assert files.labels == [0, 0, 0, 1, 1]
    assert [p.parent.name for p in files.paths] == ["cat"] * 3 + ["dog"] * 2
    write_image(root / "cat" / "nested" / "deep.png")  # inside a class, as ImageFolder walks
    assert len(scan_classes(root).paths) == 6


def test_a_flat_folder_is_unlabelled(tmp_path):
    for i in range(3):
        write_image(tmp_path / f"{i}.webp")
    (tmp_path / "notes.txt").write_text("not an image")
    files = scan_classes(tmp_path)
    assert files.labels is None and files.classes == [] and len(files.paths) == 3


def test_layout_errors_name_the_folder_and_the_fix(tmp_path):
    with pytest.raises(UserError, match=r"missing: no such folder; point data.folder"):
        scan_classes(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"empty: no image files \(PNG, JPEG"):
        scan_classes(empty)
    root = class_folder(tmp_path / "set", {"cat": 2})
    (root / "dog").mkdir()
    with pytest.raises(UserError, match=r"set/dog: an empty class folder .* remove the folder"):
        scan_classes(root)
    mixed = class_folder(tmp_path / "mixed", {"cat": 1})
    write_image(mixed / "loose.png")
    with pytest.raises(UserError, match=r"mixed: holds both images \(loose.png"):
        scan_classes(mixed)


def test_seeded_split_is_stratified_disjoint_and_repeatable(tmp_path):
    files = scan_classes(class_folder(tmp_path, {"a": 10, "b": 5, "c": 2}))
    split = seeded_split(files, test_fraction=0.2, seed=3)
    train, test = split["train"], split["test"]
    assert not set(train.paths) & set(test.paths)
    assert sorted(train.paths + test.paths) == sorted(files.paths)
    assert sorted(test.labels) == [0, 0, 1, 2]  # 2 of 10, 1 of 5, and 1 of 2 (at least one)
    assert seeded_split(files, 0.2, 3)["test"].paths == test.paths
    assert seeded_split(files, 0.2, 4)["test"].paths != test.paths


def test_train_and_test_subfolders_are_used_as_given(tmp_path):
    class_folder(tmp_path / "train", {"cat": 3, "dog": 2})
    class_folder(tmp_path / "test", {"dog": 1})
    split = scan_folder(tmp_path, test_fraction=0.5, seed=0)
    assert len(split["train"].paths) == 5 and split["test"].classes == ["cat", "dog"]
    assert split["test"].labels == [1]  # dog is the training set's class 1
    class_folder(tmp_path / "test", {"bird": 1})
    with pytest.raises(UserError, match=r"classes bird have no folder in .*train"):
        scan_folder(tmp_path, 0.5, 0)


def test_unpaired_domains_need_all_four_folders(tmp_path):
    for name in ("trainA", "trainB", "testA"):
        write_image(tmp_path / name / "x.jpg")
    with pytest.raises(UserError, match=r"no testB/; an unpaired set has the folders trainA/"):
        scan_unpaired(tmp_path)
    write_image(tmp_path / "testB" / "y.png")
    domains = scan_unpaired(tmp_path)
    assert {name: len(f.paths) for name, f in domains.items()} == {
        "trainA": 1, "trainB": 1, "testA": 1, "testB": 1
    }  # fmt: skip


@pytest.mark.faults
def test_a_broken_file_stops_the_run_with_its_name_unless_skipping_is_asked(tmp_path):
    good = [write_image(tmp_path / f"{i}.png") for i in range(3)]
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good[0].read_bytes()[:60])
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"this is text, not a JPEG")
    paths = [good[0], truncated, good[1], fake, good[2]]
    with pytest.raises(UserError, match=r"truncated.png: not a readable image .*data.skip_unread"):
        read_images(paths, channels=3)
    decoded = read_images(paths, channels=3, skip_unreadable=True, root=tmp_path)
    assert decoded.paths == good and len(decoded.images) == 3
    assert [entry["path"] for entry in decoded.skipped] == ["truncated.png", "fake.jpg"]
    with pytest.raises(UserError, match=r"none of the 2 files could be read"):
        read_images([truncated, fake], channels=3, skip_unreadable=True)


def test_mixed_sizes_need_a_size(tmp_path):
    small = write_image(tmp_path / "small.png", size=(8, 6))
    large = write_image(tmp_path / "large.png", size=(16, 12))
    with pytest.raises(UserError, match=r"large.png: 16x12 pixels, but .*small.png is 8x6; set "
                                        r"data.image_size"):  # fmt: skip
        read_images([small, large], channels=3)
    assert read_images([small, large], channels=3, size=4).images.shape == (2, 3, 4, 4)


def test_the_memory_cap_names_its_knob(tmp_path):
    paths = [write_image(tmp_path / f"{i}.png", size=(32, 32)) for i in range(4)]
    cap = 4 * 3 * 32 * 32 / 2**30
    assert len(read_images(paths, channels=3, max_memory_gb=cap).images) == 4
    for size in (None, 32):
        with pytest.raises(UserError, match=r"over data.max_memory_gb=.*Raise data.max_memory_gb"):
            read_images(paths, channels=3, size=size, max_memory_gb=cap * 0.99)


def test_checksum_follows_names_and_bytes_and_threads_change_nothing(tmp_path):
    paths = [write_image(tmp_path / f"{i:02d}.png") for i in range(20)]
    one = read_images(paths, channels=3, workers=1, root=tmp_path)
    many = read_images(paths, channels=3, workers=4, root=tmp_path)
    assert torch.equal(one.images, many.images) and one.sha256 == many.sha256
    write_image(paths[5])
    assert read_images(paths, channels=3, root=tmp_path).sha256 != one.sha256
