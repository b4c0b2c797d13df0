"""Does the generator copy its training images? Nearest-neighbour distances in pixel space.

Real test images are the yardstick: they come from the same distribution as the training set but
were never seen, so their distance to the nearest training image is what "new" looks like. A
generator whose samples sit much closer to the training set than that is reproducing it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

Images = Tensor | np.ndarray


def _flat(images: Images, name: str) -> Tensor:
    """Rows of pixels [N, D] on the CPU; uint8 images are scaled to [0, 1] first."""
    x = torch.as_tensor(images).detach().cpu()
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    if not x.is_floating_point():
        raise ValueError(f"{name} must be float images in [0, 1] (or uint8), got {x.dtype}")
    if x.dim() not in (2, 4):
        raise ValueError(f"{name} must be [N, C, H, W] images or [N, D] rows, got {tuple(x.shape)}")
    return x.flatten(1)


@torch.no_grad()
def nearest_neighbour_distances(queries: Images, reference: Images, chunk: int = 2048) -> Tensor:
    """L2 distance from each query to its nearest reference row [N_queries], float64.

    Both sets are chunked, so memory stays at chunk x chunk distances whatever their sizes. The
    nearest row is found with torch.cdist in the inputs' precision (its matmul form loses ~1e-4 in
    float32); the distance to it is then recomputed directly in float64, so an exact copy gives 0.
    """
    q, ref = _flat(queries, "queries"), _flat(reference, "reference")
    if q.shape[1] != ref.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} pixels, reference {ref.shape[1]}")
    if len(ref) == 0:
        raise ValueError("reference set is empty")
    dtype = torch.promote_types(q.dtype, ref.dtype)
    q, ref = q.to(dtype), ref.to(dtype)
    best = torch.full((len(q),), float("inf"), dtype=dtype)
    best_index = torch.zeros(len(q), dtype=torch.int64)
    for i in range(0, len(q), chunk):
        rows = slice(i, i + chunk)
        for j in range(0, len(ref), chunk):
            value, index = torch.cdist(q[rows], ref[j : j + chunk]).min(dim=1)
            closer = value < best[rows]
            best[rows] = torch.where(closer, value, best[rows])
            best_index[rows] = torch.where(closer, index + j, best_index[rows])
    return (q.double() - ref[best_index].double()).norm(dim=1)


def memorisation_report(
    generated: Images,
    train: Images,
    test: Images | None = None,
    quantile: float = 0.05,
    chunk: int = 2048,
    test_nn: Tensor | None = None,
) -> dict[str, float]:
    """Nearest-training-image distances of generated and of real test images, compared.

    ratio = generated_to_train / test_to_train: well below 1 means the samples are closer to the
    training images than unseen real images are, i.e. copies. copied_fraction is the share of
    generated samples closer to the training set than the `quantile` (5 %) of test images are.
    `test_nn`, the test images' distances computed once beforehand, replaces `test`.
    """
    if (test is None) == (test_nn is None):
        raise ValueError("give the test images or their precomputed distances, not both")
    gen_nn = nearest_neighbour_distances(generated, train, chunk)
    if test_nn is None:
        test_nn = nearest_neighbour_distances(test, train, chunk)
    test_nn = test_nn.double()
    test_to_train = test_nn.mean().item()
    if test_to_train == 0:
        raise ValueError("every test image is also in the training set; the split is broken")
    threshold = torch.quantile(test_nn, quantile)
    generated_to_train = gen_nn.mean().item()
    return {
        "generated_to_train": generated_to_train,
        "test_to_train": test_to_train,
        "ratio": generated_to_train / test_to_train,
        "copied_fraction": (gen_nn < threshold).double().mean().item(),
    }
