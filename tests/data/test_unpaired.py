"""data.name unpaired: the CycleGAN's own layout (trainA/ trainB/ testA/ testB/ of PNG files the
tests write) through the real prepare stage: train.pt and test.pt hold domain A's images then
domain B's, unlabelled; domains.pt holds the two domains with no pairs; bad layouts stop with
the folder and the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dataset_files import write_image
from genmodels.config import DataParams, parse_params
from genmodels.data.domains import load_domains
from genmodels.data.prepare import prepare
from genmodels.data.prepared import load_prepared, subset_indices
from genmodels.errors import UserError

COUNTS = {"trainA": 5, "trainB": 3, "testA": 2, "testB": 4}  # domains of different sizes


def unpaired_folder(root, counts=COUNTS, size=(8, 8)):
    for name, count in counts.items():
        for i in range(count):
            write_image(root / name / f"{name}_{i}.png", size)
    return root


def pixels(paths) -> torch.Tensor:
    """uint8 [N, 3, H, W] as Pillow reads the files."""
    return torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)
                        for p in paths])  # fmt: skip


def files(root, name):
    return sorted((root / name).glob("*.png"))


def params(tmp_path, folder, **overrides) -> DataParams:
    return DataParams(name="unpaired", folder=str(folder), download=False,
                      prepared_dir=str(tmp_path / "prepared"), **overrides)  # fmt: skip


def test_each_split_is_domain_a_then_domain_b_unlabelled(tmp_path):
    root = unpaired_folder(tmp_path / "horse2zebra")

    manifest = prepare(params(tmp_path, root))

    prepared = load_prepared(tmp_path / "prepared")
    assert torch.equal(prepared.train_images,
                       pixels(files(root, "trainA") + files(root, "trainB")))  # fmt: skip
    assert torch.equal(prepared.test_images, pixels(files(root, "testA") + files(root, "testB")))
    assert prepared.classes == [] and prepared.num_classes == 0
    assert set(prepared.train_labels.tolist()) == set(prepared.test_labels.tolist()) == {0}
    assert manifest["counts"] == {"train": 8, "test": 6}
    assert manifest["source"]["skipped"] == [] and len(manifest["source"]["sha256"]) == 64

    domains = load_domains(tmp_path / "prepared")
    assert not domains.paired
    assert domains.test_labels is None and domains.train_a_labels is None
    for key, name in (("train_a", "trainA"), ("train_b", "trainB"), ("test_a", "testA"),
                      ("test_b", "testB")):  # fmt: skip
        assert torch.equal(getattr(domains, key), pixels(files(root, name))), key
    # the indices point into train.pt
    assert torch.equal(prepared.train_images[domains.train_b_index], domains.train_b)
    assert (domains.domain_a, domains.domain_b) == ("horse2zebra:A", "horse2zebra:B")

    entry = manifest["domains"]
    assert entry["source"] == "unpaired" and entry["paired"] is False
    assert entry["folder"] == str(root)
    assert entry["counts"] == {"train_a": 5, "train_b": 3, "test_a": 2, "test_b": 4}
    written = json.loads((tmp_path / "prepared" / "manifest.json").read_text())
    assert written["domains"] == entry == domains.info
    # where the files lie is not what identifies them: a moved folder keeps its weights
    assert "folder" not in domains.identity() and domains.identity()["sha256"]


def test_both_domains_are_fitted_to_one_size_and_channel_count(tmp_path):
    root = tmp_path / "set"
    unpaired_folder(root, {"trainA": 2, "testA": 2}, size=(20, 12))
    unpaired_folder(root, {"trainB": 2, "testB": 2}, size=(9, 9))

    prepare(params(tmp_path, root, image_size=8, channels=1))

    domains = load_domains(tmp_path / "prepared")
    for images in (domains.train_a, domains.train_b, domains.test_a, domains.test_b):
        assert images.shape[1:] == (1, 8, 8)


def test_domains_of_different_sizes_need_image_size(tmp_path):
    root = tmp_path / "set"
    unpaired_folder(root, {"trainA": 2, "testA": 2}, size=(8, 8))
    unpaired_folder(root, {"trainB": 2, "testB": 2}, size=(10, 8))

    # the same message as for one folder of mixed sizes, naming the file that differs
    with pytest.raises(UserError, match=r"trainB_0.png: 10x8 pixels, but .*trainA_0.png is 8x8; "
                                        r"set data.image_size"):  # fmt: skip
        prepare(params(tmp_path, root))


def test_a_missing_domain_folder_is_named_with_the_layout(tmp_path):
    root = unpaired_folder(tmp_path / "set", {"trainA": 1, "testA": 1, "testB": 1})
    with pytest.raises(
        UserError, match=r"set: no trainB/; an unpaired set has the folders trainA/"
    ):
        prepare(params(tmp_path, root))


def test_an_empty_domain_folder_is_named(tmp_path):
    root = unpaired_folder(tmp_path / "set", {"trainA": 1, "trainB": 1, "testB": 1})
    (root / "testA").mkdir()
    with pytest.raises(UserError, match=r"testA: no image files .*; add its images"):
        prepare(params(tmp_path, root))


@pytest.mark.faults
def test_an_unreadable_image_stops_the_run_unless_skipping_is_asked(tmp_path):
    root = unpaired_folder(tmp_path / "set")
    (root / "trainB" / "broken.png").write_bytes(b"not a PNG")

    with pytest.raises(UserError, match=r"broken.png: not a readable image.*data.skip_unreadable"):
        prepare(params(tmp_path, root))

    manifest = prepare(params(tmp_path, root, skip_unreadable=True))
    assert [s["path"] for s in manifest["source"]["skipped"]] == ["trainB/broken.png"]
    assert manifest["domains"]["counts"]["train_b"] == COUNTS["trainB"]


def test_a_domain_left_with_no_readable_image_is_named(tmp_path):
    root = unpaired_folder(tmp_path / "set", {"trainA": 2, "testA": 2, "testB": 2})
    (root / "trainB").mkdir()
    (root / "trainB" / "broken.png").write_bytes(b"not a PNG")
    with pytest.raises(UserError, match=r"trainB: no image of this domain is left"):
        prepare(params(tmp_path, root, skip_unreadable=True))


def test_a_domain_of_one_test_image_is_refused(tmp_path):
    # FID and KID of a single image are undefined: the evaluation would fail much later
    root = unpaired_folder(tmp_path / "set", {"trainA": 2, "trainB": 2, "testA": 2, "testB": 1})
    with pytest.raises(UserError, match=r"testB: only 1 image of this domain is left .* at "
                                        r"least 2 images per split"):  # fmt: skip
        prepare(params(tmp_path, root))


def test_limits_take_a_seeded_subset_of_each_split_keeping_the_domains_apart(tmp_path):
    root = unpaired_folder(tmp_path / "set", {"trainA": 6, "trainB": 6, "testA": 3, "testB": 3})
    manifest = prepare(params(tmp_path, root, limit_train=7, limit_test=4, subset_seed=3))

    domains = load_domains(tmp_path / "prepared")
    train_files = files(root, "trainA") + files(root, "trainB")
    kept = [train_files[i] for i in subset_indices(12, 7, 3).tolist()]
    assert torch.equal(torch.cat([domains.train_a, domains.train_b]), pixels(kept))
    assert len(domains.train_a) == sum(p.parent.name == "trainA" for p in kept)
    assert manifest["counts"] == {"train": 7, "test": 4}


def test_a_limit_that_empties_a_domain_is_named(tmp_path):
    root = unpaired_folder(tmp_path / "set", {"trainA": 3, "trainB": 3, "testA": 2, "testB": 2})
    # one training image can only come from one of the two domains
    with pytest.raises(UserError, match=r"train[AB]: (no|only 1) image of this domain is left "
                                        r"\(after data.limit_train"):  # fmt: skip
        prepare(params(tmp_path, root, limit_train=1))


def test_unpaired_needs_a_folder():
    models = {"c": {"family": "cyclegan", "steps": 10}}
    with pytest.raises(UserError, match=r"data.name unpaired needs data.folder: set it to the "
                                        r"folder holding trainA/"):  # fmt: skip
        parse_params({"data": {"name": "unpaired"}, "models": models})
    parsed = parse_params({"data": {"name": "unpaired", "folder": "x"}, "models": models})
    assert parsed.data.resize_policy == "fit"
