"""The CycleGAN's domains: hand-checked transforms, and a split in which no image meets its pair."""

from __future__ import annotations

import json

import pytest
import torch

from genmodels.config import DataParams, DomainParams
from genmodels.data.domains import (
    DOMAINS_FILE,
    bold,
    build_domains,
    invert,
    load_domains,
    sobel_edges,
    split_halves,
    transform,
    transform_uint8,
)
from genmodels.data.prepare import prepare
from genmodels.data.prepared import load_prepared
from genmodels.errors import UserError


def vertical_step(height: float = 1.0, size: int = 5) -> torch.Tensor:
    """Columns 0, 0, h, h, h: one vertical edge between columns 1 and 2."""
    image = torch.zeros(1, 1, size, size)
    image[..., 2:] = height
    return image


def test_sobel_edges_of_a_step_read_its_height_on_both_sides_of_it():
    edges = sobel_edges(vertical_step())
    # gx = (1 + 2 + 1) x 1 = 4 on the two columns that see the step, / 4; borders replicated
    expected = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0]).expand(5, 5)
    assert torch.allclose(edges[0, 0], expected)
    assert torch.allclose(sobel_edges(vertical_step(0.2))[0, 0], 0.2 * expected)
    assert torch.allclose(sobel_edges(vertical_step().transpose(2, 3))[0, 0], expected.t())


def test_sobel_threshold_drops_faint_edges_and_keeps_strong_ones():
    assert sobel_edges(vertical_step(0.2), threshold=0.3).eq(0).all()
    assert torch.equal(
        sobel_edges(vertical_step(0.5), threshold=0.3), sobel_edges(vertical_step(0.5))
    )


def test_sobel_of_a_flat_image_is_zero_and_a_corner_is_clipped_to_one():
    assert sobel_edges(torch.full((2, 1, 6, 6), 0.7)).abs().max() < 1e-6  # conv rounding
    corner = torch.zeros(1, 1, 4, 4)
    corner[..., 2:, 2:] = 1.0
    edges = sobel_edges(corner)
    assert edges.max() == 1.0 and edges.min() == 0.0  # sqrt(gx^2 + gy^2) / 4 > 1 at the corner


def test_bold_is_a_grey_dilation_by_a_square():
    image = torch.zeros(1, 1, 5, 5)
    image[0, 0, 2, 2], image[0, 0, 0, 4] = 0.6, 0.3
    dilated = bold(image)
    expected = torch.zeros(5, 5)
    expected[0:2, 3:5] = 0.3
    expected[1:4, 1:4] = 0.6  # the brighter neighbour wins where both reach
    assert torch.equal(dilated[0, 0], expected)
    wide = bold(image, size=5)
    assert wide[0, 0, 0, 0] == 0.6 and wide[0, 0, 4, 4] == 0.6


def test_invert():
    image = torch.tensor([[[[0.0, 0.25], [1.0, 0.5]]]])
    assert torch.equal(invert(image), torch.tensor([[[[1.0, 0.75], [0.0, 0.5]]]]))


@pytest.mark.parametrize("name", ["edges", "bold", "invert"])
def test_transforms_keep_shape_and_pixel_range(digits_prepared, name):
    images = digits_prepared.test_images[:64]
    params = DomainParams(transform=name)
    mapped = transform(images.float() / 255.0, params)
    assert mapped.shape == images.shape and mapped.min() >= 0 and mapped.max() <= 1
    as_uint8 = transform_uint8(images, params, batch_size=10)  # batching changes nothing
    assert as_uint8.dtype == torch.uint8 and as_uint8.shape == images.shape
    assert torch.equal(as_uint8, transform_uint8(images, params))
    assert (as_uint8.float() / 255 - mapped).abs().max() <= 0.5 / 255 + 1e-6


def test_split_halves_are_disjoint_and_cover_every_image():
    a, b = split_halves(11, seed=3)
    assert len(a) == 5 and len(b) == 6
    assert set(a.tolist()).isdisjoint(b.tolist()) and set(a.tolist()) | set(b.tolist()) == set(
        range(11)
    )
    assert torch.equal(split_halves(11, seed=3)[0], a) and not torch.equal(
        split_halves(11, 4)[0], a
    )


def pixels(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images}


def test_no_training_image_meets_its_own_pair(digits_dir):
    prepared, domains = load_prepared(digits_dir), load_domains(digits_dir)
    images = prepared.train_images
    index_a, index_b = domains.train_a_index, domains.train_b_index
    # by the saved source indices: disjoint halves of the whole training set
    assert set(index_a.tolist()).isdisjoint(index_b.tolist())
    assert sorted(index_a.tolist() + index_b.tolist()) == list(range(len(images)))
    # and by the pixels: A holds the A half as it is, B the transform of the B half ...
    params = DomainParams()
    assert torch.equal(domains.train_a, images[index_a])
    assert torch.equal(domains.train_b, transform_uint8(images[index_b], params))
    assert torch.equal(domains.train_a_labels, prepared.train_labels[index_a])
    # ... so no A image is the source of any B image, and no B image is the pair of an A image
    assert not pixels(domains.train_a) & pixels(images[index_b])
    assert not pixels(transform_uint8(domains.train_a, params)) & pixels(domains.train_b)


def test_the_test_set_keeps_its_true_pairs(digits_dir):
    prepared, domains = load_prepared(digits_dir), load_domains(digits_dir)
    assert torch.equal(domains.test_a, prepared.test_images)
    assert torch.equal(domains.test_b, transform_uint8(prepared.test_images, DomainParams()))
    assert torch.equal(domains.test_labels, prepared.test_labels)
    assert domains.domain_a == "digits" and domains.domain_b == "digits:edges"
    assert domains.train_count == len(prepared.train_images)


def test_prepare_records_the_domains_in_the_manifest(digits_dir):
    manifest = json.loads((digits_dir / "manifest.json").read_text())
    entry = manifest["domains"]
    assert entry["file"] == DOMAINS_FILE and entry["transform"] == "edges"
    counts = manifest["counts"]
    assert entry["counts"]["train_a"] + entry["counts"]["train_b"] == counts["train"]
    assert entry["counts"]["test"] == counts["test"]


def test_prepare_builds_the_transform_the_params_name(tmp_path):
    params = DataParams(name="digits", prepared_dir=str(tmp_path), download=False,
                        limit_train=100, limit_test=20,
                        domains=DomainParams(transform="bold", split_seed=7))  # fmt: skip
    prepare(params)
    domains, prepared = load_domains(tmp_path), load_prepared(tmp_path)
    assert domains.domain_b == "digits:bold" and domains.info["split_seed"] == 7
    assert torch.equal(domains.train_a_index, split_halves(100, 7)[0])
    expected = build_domains(prepared.train_images, prepared.train_labels, prepared.test_images,
                             prepared.test_labels, params.domains)  # fmt: skip
    assert torch.equal(domains.train_b, expected["train_b"])


@pytest.mark.faults
def test_missing_or_damaged_domains_file_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="dvc repro prepare"):
        load_domains(tmp_path)
    (tmp_path / DOMAINS_FILE).write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="corrupt or unreadable"):
        load_domains(tmp_path)
    torch.save({"train_a": torch.zeros(1)}, tmp_path / DOMAINS_FILE)
    with pytest.raises(UserError, match="missing"):
        load_domains(tmp_path)


def test_domain_params_are_validated():
    with pytest.raises(ValueError, match="odd"):
        DomainParams(bold_size=4)
    with pytest.raises(ValueError):
        DomainParams(transform="blur")
