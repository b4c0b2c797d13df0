"""The FID Inception: TF's pooling in the right blocks, its 2,048 features, and its loader on
weights files the tests write with torchvision's Inception3 at 1,008 classes (the layout of
pytorch-fid's pt_inception-2015-12-05 file)."""

from __future__ import annotations

import hashlib

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.inception import Inception3, InceptionA, InceptionE

from genmodels.errors import UserError
from genmodels.nn.inception import (
    FIDInception,
    FIDInceptionA,
    FIDInceptionE,
    FIDInceptionEMax,
    load_fid_inception,
)


def mean_of_valid_neighbours(x: torch.Tensor) -> torch.Tensor:
    """3x3 means over the pixels inside the image only, written as two convolutions."""
    channels = x.shape[1]
    ones = torch.ones(channels, 1, 3, 3)
    sums = F.conv2d(F.pad(x, (1, 1, 1, 1)), ones, groups=channels)
    counts = F.conv2d(F.pad(torch.ones_like(x[:, :1]), (1, 1, 1, 1)), ones[:1])
    return sums / counts


def randomised(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and batch-norm statistics, so that no block is close to the identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                values = torch.rand(tensor.shape, generator=generator)
                tensor.copy_(values + 0.5 if "running_var" in name else values - 0.5)
    return module.eval()


def test_the_pooled_branch_averages_without_the_padding_or_takes_the_max():
    x = torch.rand(1, 16, 6, 6)
    pool_channels = 8
    for fid_block, tv_block, pool in (
        (FIDInceptionA(16, pool_channels), InceptionA(16, pool_channels), mean_of_valid_neighbours),
        (FIDInceptionE(16), InceptionE(16), mean_of_valid_neighbours),
        (FIDInceptionEMax(16), InceptionE(16), lambda t: F.max_pool2d(t, 3, 1, 1)),
    ):
        randomised(fid_block)
        tv_block.load_state_dict(fid_block.state_dict())
        tv_block.eval()
        with torch.no_grad():
            ours, theirs = fid_block(x), tv_block(x)
            branch = fid_block.branch_pool(pool(x))
        width = branch.shape[1]
        assert torch.equal(ours[:, :-width], theirs[:, :-width])  # the other branches as is
        torch.testing.assert_close(ours[:, -width:], branch)
        assert not torch.allclose(ours[:, -width:], theirs[:, -width:])  # not torchvision's


def write_weights(path, classes=1008, aux=False, seed=0):
    net = randomised(Inception3(classes, aux_logits=aux, init_weights=False), seed)
    torch.save(net.state_dict(), path)
    return net


def test_loaded_weights_give_2048_features_for_any_size_and_channel_count(tmp_path):
    path = tmp_path / "pt_inception.pth"
    written = write_weights(path)
    model, digest = load_fid_inception(path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = model.net.state_dict()
    for name, tensor in written.state_dict().items():
        if not name.startswith("fc."):
            assert torch.equal(loaded[name], tensor)
    gray = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        features = model(gray)  # grey repeated to RGB, then resized to 299x299
        assert features.shape == (1, 2048)
        resized = F.interpolate(gray.repeat(1, 3, 1, 1), size=(299, 299), mode="bilinear",
                                align_corners=False)  # fmt: skip
        torch.testing.assert_close(features, model(resized))
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.faults
def test_a_missing_damaged_or_other_weights_file_names_the_fix(tmp_path):
    with pytest.raises(
        UserError,
        match=r"absent.pth: no FID Inception weights \(evaluate.inception_weights\); download https",
    ):
        load_fid_inception(tmp_path / "absent.pth")
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"damaged.pth: corrupt or unreadable .*download https"):
        load_fid_inception(damaged)
    imagenet = tmp_path / "imagenet.pth"  # torchvision's own ImageNet layout: 1,000 classes
    write_weights(imagenet, classes=1000, aux=True)
    with pytest.raises(UserError, match=r"not the FID Inception's weights .*AuxLogits.*1000 "
                                        r"classes where it has 1008"):  # fmt: skip
        load_fid_inception(imagenet)
    wrong = tmp_path / "wrong.pth"
    state = FIDInception().net.state_dict() | {"fc.weight": torch.zeros(1008, 2048)}
    state["Mixed_5b.branch1x1.conv.weight"] = torch.zeros(64, 192, 3, 3)
    torch.save(state, wrong)
    with pytest.raises(UserError, match=r"Mixed_5b.branch1x1.conv.weight is \(64, 192, 3, 3\)"):
        load_fid_inception(wrong)
