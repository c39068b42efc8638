"""Processes under ``torchrun`` and the resumable, sharded stream of training items.

``torchrun --nproc_per_node=N -m mpg_sam2 train ...`` sets ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``; with ``WORLD_SIZE > 1`` the trainer joins the process group and wraps the model
in ``DistributedDataParallel``. Without them everything runs in one process, unwrapped.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "ShardedStream", "setup_distributed", "teardown_distributed"]


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """Mean of a tensor over processes (the tensor itself in one process)."""
        if not self.enabled:
            return value
        value = value.clone()
        dist.all_reduce(value)
        return value / self.world_size


def setup_distributed(device: str) -> tuple[DistributedContext, torch.device]:
    """Join the process group when torchrun started several processes; returns the device to use.

    ``device`` is "auto", "cpu", "cuda" or "cuda:N"; under torchrun "cuda" means
    ``cuda:LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for but CUDA is not available; pass --device cpu")
    if device == "cuda":
        device = f"cuda:{local_rank}"
    torch_device = torch.device(device)
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)
    context = DistributedContext(rank=rank, world_size=world, local_rank=local_rank)
    if context.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch_device.type == "cuda" else "gloo")
    return context, torch_device


def teardown_distributed(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


class ShardedStream(torch.utils.data.Sampler):
    """An endless stream of ``(item index, draw)`` keys for one process, starting at ``start``.

    Epoch ``e`` is a permutation of all items seeded by ``(seed, e)``, padded to a multiple of
    the world size and dealt out round-robin (as ``DistributedSampler`` does). ``draw`` is the
    global position in the stream; it seeds the item's augmentation. ``start`` counts this
    process's items already consumed, so a resumed run continues the same stream.
    """

    def __init__(self, num_items: int, seed: int, context: DistributedContext = DistributedContext(), start: int = 0) -> None:
        if num_items < 1:
            raise ValueError("the training set is empty")
        self.num_items = num_items
        self.seed = seed
        self.context = context
        self.start = start
        self.per_rank = -(-num_items // context.world_size)

    def _epoch(self, epoch: int) -> np.ndarray:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_items)
        total = self.per_rank * self.context.world_size
        return np.resize(order, total)  # repeats the first items to pad, like DistributedSampler

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start
        while True:
            epoch, offset = divmod(position, self.per_rank)
            order = self._epoch(epoch)
            for k in range(offset, self.per_rank):
                slot = k * self.context.world_size + self.context.rank
                draw = epoch * self.per_rank * self.context.world_size + slot
                yield int(order[slot]), int(draw)
                position += 1
