"""Tiled inference against the whole image, on a real SRResNet exported by the real code and a
real photo: equal away from the tile borders, and no seams across them."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from scipy.ndimage import uniform_filter
from skimage import data as photos

from genmodels.export import export_onnx
from genmodels.nn.srresnet import DeployedSRResNet, SRResNet
from genmodels.serving.tiling import run_tiled, tile_starts
from genmodels.training.recipe import Exportable

SCALE = 4
TILE, OVERLAP = 64, 24


@pytest.fixture(scope="module")
def upscaler(tmp_path_factory):
    torch.manual_seed(0)
    generator = SRResNet(SCALE, channels=8, blocks=2, image_channels=3)
    path = tmp_path_factory.mktemp("sr") / "generator.onnx"
    export_onnx(
        Exportable(
            name="generator",
            module=DeployedSRResNet(generator).eval(),
            example_inputs=(torch.rand(1, 3, 16, 16),),
            input_names=["image"],
            output_names=["high_res"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}},
            doc="test upscaler",
            metadata={"task": "upscale", "scale": str(SCALE)},
        ),
        path,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {"image": batch})[0]


@pytest.fixture(scope="module")
def photo():
    """scikit-image's cat, 150x200 of it, as [3, H, W] floats."""
    return (photos.chelsea()[40:190, 100:300].transpose(2, 0, 1) / 255.0).astype(np.float32)


def border_mask(height: int, width: int, tile: int, overlap: int, scale: int = SCALE):
    """True on the output pixels inside a strip two tiles share."""
    mask = np.zeros((height * scale, width * scale), bool)
    for starts, axis in (
        (tile_starts(height, tile, overlap), 0),
        (tile_starts(width, tile, overlap), 1),
    ):
        for a, b in zip(starts, starts[1:], strict=False):
            strip = slice(b * scale, (a + tile) * scale)
            if axis == 0:
                mask[strip] = True
            else:
                mask[:, strip] = True
    return mask


def jump_ratio(image: np.ndarray, tile: int, overlap: int, scale: int = SCALE) -> float:
    """Mean step between neighbouring output pixels near the edges of the tiles (within a few
    pixels of where one begins or ends inside the image: seams are dips and ridges, not only
    steps) over the mean step elsewhere; 1: the edges look like any other place. The windows
    span whole periods of the scale, whose sub-pixel phases differ in their statistics."""
    reach = 4 * scale
    ratios = []
    for axis in (0, 1):
        starts = tile_starts(image.shape[axis] // scale, tile, overlap)
        cuts = {s * scale for s in starts[1:]} | {(s + tile) * scale for s in starts[:-1]}
        other = (1, 2) if axis == 0 else (0, 2)
        steps = np.abs(np.diff(image, axis=axis)).mean(axis=other)  # steps[i]: i -> i + 1
        near = np.zeros(len(steps), bool)
        for cut in cuts:
            near[max(cut - reach, 0) : cut + reach] = True
        ratios.append(steps[near].mean() / steps[~near].mean())
    return max(ratios)


def test_windows_cover_the_axis_with_at_least_the_overlap():
    for length in (1, 47, 48, 49, 100, 150, 997):
        starts = tile_starts(length, TILE, OVERLAP)
        assert starts[0] == 0 and starts[-1] + min(TILE, length) == length
        assert all(b - a <= TILE - OVERLAP for a, b in zip(starts, starts[1:], strict=False))
    assert tile_starts(30, TILE, OVERLAP) == [0]


def test_tiles_equal_the_whole_image_away_from_their_borders(upscaler, photo):
    whole = upscaler(photo[None])[0].transpose(1, 2, 0)
    tiled = run_tiled(upscaler, photo, SCALE, TILE, OVERLAP, dtype=np.float32)
    assert tiled.shape == whole.shape == (150 * SCALE, 200 * SCALE, 3)
    away = ~border_mask(150, 200, TILE, OVERLAP)
    assert away.mean() > 0.1
    assert np.abs(tiled - whole)[away].max() <= 1e-5
    # in the shared strips the blend stays close to the whole image on average
    assert np.abs(tiled - whole)[~away].mean() < 0.01


def test_no_seams_across_the_tile_borders(upscaler, photo):
    tiled = run_tiled(upscaler, photo, SCALE, TILE, OVERLAP, dtype=np.float32)
    assert jump_ratio(tiled, TILE, OVERLAP) < 1.02


def test_the_seam_measure_sees_zero_padding_and_the_blend_removes_it(photo):
    def blur(batch):  # a 9x9 mean with zero padding: darker at every tile edge
        return uniform_filter(batch, size=(1, 1, 9, 9), mode="constant")

    naive = run_tiled(blur, photo, 1, 50, 0, dtype=np.float32)  # abutting tiles
    tiled = run_tiled(blur, photo, 1, TILE, OVERLAP, dtype=np.float32)
    assert jump_ratio(naive, 50, 0, scale=1) > 1.5
    assert jump_ratio(tiled, TILE, OVERLAP, scale=1) < 1.02
    whole = blur(photo[None])[0].transpose(1, 2, 0)
    assert np.abs(tiled - whole)[~border_mask(150, 200, TILE, OVERLAP, scale=1)].max() <= 1e-6


def test_the_8_bit_output_is_the_float_one_rounded(upscaler, photo):
    small = photo[:, :60, :70]
    as_float = run_tiled(upscaler, small, SCALE, TILE, OVERLAP, dtype=np.float32)
    as_bytes = run_tiled(upscaler, small, SCALE, TILE, OVERLAP)
    assert as_bytes.dtype == np.uint8
    expected = (np.clip(as_float, 0, 1) * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(as_bytes, expected)


def test_a_graph_that_is_not_fully_convolutional_is_named():
    def fixed(batch):
        return np.zeros((1, 1, 8, 8), np.float32)

    with pytest.raises(ValueError, match="not fully convolutional"):
        run_tiled(fixed, np.zeros((1, 40, 40), np.float32), 2, 16, 4)
