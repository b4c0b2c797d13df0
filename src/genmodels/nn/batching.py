"""The one way a function runs over a set of images: in batches, as [0, 1] floats, results back
on the CPU."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


@torch.no_grad()
def map_batches(
    fn: Callable[[Tensor], Tensor | tuple[Tensor, ...]],
    images: Tensor,
    batch_size: int,
    device: torch.device | None = None,
) -> Tensor | tuple[Tensor, ...]:
    """`fn` over batches of uint8 (0..255, scaled to [0, 1]) or float images, moved to `device`
    when given; its outputs (a tensor, or a tuple of tensors) concatenated on the CPU."""
    outputs = []
    for part in images.split(batch_size):
        if device is not None:
            part = part.to(device)
        part = part.float().div(255.0) if part.dtype == torch.uint8 else part
        out = fn(part)
        outputs.append(tuple(t.cpu() for t in out) if isinstance(out, tuple) else out.cpu())
    if isinstance(outputs[0], tuple):
        return tuple(torch.cat(column) for column in zip(*outputs, strict=True))
    return torch.cat(outputs)
