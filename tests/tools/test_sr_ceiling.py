"""tools/sr_ceiling.py: the profile's srresnet instance trained on the held-out tiles alone, for
its step budget, and judged on the whole held-out images as evaluate@srresnet judges them."""

from __future__ import annotations

import sys

import pytest
import torch

from genmodels.config import parse_params
from genmodels.data.prepared import PreparedData
from genmodels.errors import UserError
from genmodels.metrics.space import EvaluatorSpace
from genmodels.models.srgan import SRGANRecipe
from helpers import REPO
from sr_helpers import rgb_space, rotation_network, smooth_rgb

sys.path.insert(0, str(REPO / "tools"))
import sr_ceiling  # noqa: E402

CPU = torch.device("cpu")
SR = {"family": "srgan", "variant": "srresnet", "steps": 6, "batch_size": 4, "channels": 8,
      "blocks": 1}  # fmt: skip


@pytest.fixture(scope="module")
def photos() -> PreparedData:
    """Four held-out 128x128 images as 4x4 grids of 32x32 tiles; other images to train on."""
    train, test = smooth_rgb(96, 0), smooth_rgb(64, 1)
    manifest = {"dataset": "tiny", "classes": [], "test_tiles": [[4, 4]] * 4}
    return PreparedData(train, torch.zeros(96, dtype=torch.long), test,
                        torch.zeros(64, dtype=torch.long), manifest)  # fmt: skip


@pytest.fixture(scope="module")
def space(photos) -> EvaluatorSpace:
    images = photos.train_images, photos.test_images
    labels = photos.train_labels, photos.test_labels
    return rgb_space((*images, labels), rotation_network(photos.train_images), labelled=False)


def test_the_ceiling_trains_on_the_test_tiles_alone_for_the_instances_steps(
    photos, space, monkeypatch
):
    seen = []
    step_fn = SRGANRecipe.training_step

    def recording(self, batch, step):
        seen.append(batch.images.clone())
        return step_fn(self, batch, step)

    monkeypatch.setattr(SRGANRecipe, "training_step", recording)
    params = parse_params({"models": {"sr": SR}})
    record = sr_ceiling.ceiling(params, "sr", photos, space, CPU)
    assert len(seen) == SR["steps"] and all(len(b) == SR["batch_size"] for b in seen)
    tiles = photos.test_images.float() / 255
    for images in seen:  # every training image is one of the held-out tiles, none a train one
        for image in images:
            assert any(torch.equal(image, tile) for tile in tiles)
    assert record["steps"] == SR["steps"] and record["train_images"] == 64
    assert record["test_images"] == 4  # judged on the four whole images
    assert record["psnr_y_gain_over_bicubic"] == pytest.approx(
        record["psnr_y"] - record["bicubic_psnr_y"]
    )
    assert record["psnr_y_gain_min"] == 1.0


def test_the_ceiling_takes_only_an_srresnet_with_steps(photos, space):
    params = parse_params({"models": {"gan_sr": SR | {"variant": "srgan", "pretrain_steps": 2}}})
    with pytest.raises(UserError, match="--instance gan_sr: .*variant srresnet"):
        sr_ceiling.ceiling(params, "gan_sr", photos, space, CPU)


def test_the_ceiling_names_a_folder_without_params(tmp_path, capsys):
    with pytest.raises(SystemExit):
        sr_ceiling.main(["--profile", str(tmp_path)])
    assert f"--profile {tmp_path}: no params.yaml there" in capsys.readouterr().err


def test_the_photo_page_sets_the_ceiling_beside_the_target():
    import profile_docs

    assert "not measured yet (`make sr-ceiling`)" in profile_docs.ceiling_line(None)
    record = {"steps": 2500, "train_images": 152, "psnr_y_gain_over_bicubic": 0.9426}
    line = profile_docs.ceiling_line(record)
    assert "2,500 steps trained on the held-out photos' own 152 tiles gain +0.94 dB" in line
