"""map_batches: the one way a function runs over a set of images."""

from __future__ import annotations

import torch

from genmodels.nn.batching import map_batches


def test_uint8_images_reach_the_function_as_unit_floats_in_batches():
    images = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8)
    seen = []

    def record(batch):
        seen.append((batch.dtype, len(batch), batch.min().item(), batch.max().item()))
        return batch * 2

    out = map_batches(record, images, batch_size=4)
    assert [n for _, n, _, _ in seen] == [4, 4, 2]
    assert all(dtype == torch.float32 and 0 <= lo <= hi <= 1 for dtype, _, lo, hi in seen)
    assert torch.equal(out, images.float().div(255.0) * 2)


def test_float_images_pass_as_they_are_and_match_one_whole_batch():
    torch.manual_seed(0)
    layer = torch.nn.Conv2d(1, 3, 3, padding=1).eval()
    images = torch.rand(9, 1, 6, 6)
    out = map_batches(layer, images, batch_size=2, device=torch.device("cpu"))
    with torch.no_grad():
        whole = layer(images)
    assert out.shape == (9, 3, 6, 6) and not out.requires_grad
    assert torch.allclose(out, whole, atol=1e-6)


def test_tuple_outputs_are_concatenated_each():
    images = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1)
    first, second = map_batches(lambda b: (b.flatten(1), -b.flatten(1)), images, batch_size=4)
    assert first.flatten().tolist() == list(range(6))
    assert second.flatten().tolist() == [-x for x in range(6)]
