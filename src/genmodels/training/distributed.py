"""Training on several processes with PyTorch's own engine: genmodels.training.launch (one
machine, loopback only) or torchrun (several machines) starts the processes, torch.distributed
connects them (gloo on the CPU, nccl on CUDA), DistributedDataParallel keeps their gradients in
step. A process started alone is a world of one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from genmodels.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, metrics, plots and MLflow records."""
        return self.rank == 0


def world_from_env() -> World:
    """The world torchrun describes in RANK, WORLD_SIZE and LOCAL_RANK; one process without."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def start(world: World, device: torch.device) -> torch.device:
    """Joins the process group; returns the device this process trains on."""
    if not world.distributed:
        return device
    if device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
        device = torch.device("cuda", world.local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        rendezvous = os.environ.get("GENMODELS_RENDEZVOUS")  # genmodels.training.launch's file
        if rendezvous:
            dist.init_process_group(
                backend, init_method=rendezvous, rank=world.rank, world_size=world.size
            )
        else:  # torchrun's env:// store
            dist.init_process_group(backend)
    log.info("rank %d of %d on %s (%s)", world.rank, world.size, device, backend)
    return device


def stop(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrapper(world: World, device: torch.device):
    """A function that wraps one network for data-parallel training.

    Buffers are not broadcast at every forward: BatchNorm statistics stay per process (rank 0's
    are saved), and a forward on rank 0 alone (the monitor, sample grids) needs no partner.
    """
    from torch.nn.parallel import DistributedDataParallel

    def wrap(module: torch.nn.Module) -> torch.nn.Module:
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)

    return wrap


def mean_over_ranks(values: dict[str, float], world: World) -> dict[str, float]:
    """Each logged number averaged over the processes (every rank logs the same keys)."""
    if not world.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(tensor)
    return dict(zip(keys, (tensor / world.size).tolist(), strict=True))


def gather_objects(obj: Any, world: World) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not world.distributed:
        return [obj]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, world: World) -> Any:
    """Rank 0's `obj` on every rank."""
    if not world.distributed:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def check_batch(batch_size: int, world: World) -> int:
    """The per-process share of the global batch."""
    if batch_size % world.size:
        raise UserError(
            f"batch_size {batch_size} does not split over {world.size} processes; "
            "use a multiple of the process count (--nproc_per_node x nodes)"
        )
    return batch_size // world.size
