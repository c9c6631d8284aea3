"""Multi-process training under ``torchrun`` (DistributedDataParallel), with no change for the
user: ``torchrun --nproc_per_node=N -m streamer train …`` instead of ``stylecast train …``.

torchrun sets WORLD_SIZE / RANK / LOCAL_RANK; without them (or with WORLD_SIZE=1) everything here
is a no-op and training runs in one process. NCCL on CUDA, gloo on CPU. Rank 0 alone writes the
run directory, stats, samples and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device: str) -> World:
    """Join the process group torchrun describes (or none); returns this process's place in it."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return World(rank, local, size)


def device_for(world: World, device: torch.device) -> torch.device:
    """Each rank on its own GPU; CPU ranks share the CPU."""
    return torch.device("cuda", world.local_rank) if world.distributed and device.type == "cuda" else device


def share_path(world: World, path: Path | None) -> Path:
    """Rank 0's ``path`` on every rank (the run directory it created)."""
    if not world.distributed:
        assert path is not None
        return path
    box = [str(path) if world.main else None]
    dist.broadcast_object_list(box, src=0)
    return Path(str(box[0]))


def wrap(world: World, module: torch.nn.Module) -> torch.nn.Module:
    """DDP around ``module`` when distributed (gradients all-reduced in backward), else itself."""
    if not world.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [world.local_rank] if next(module.parameters()).is_cuda else None
    return DistributedDataParallel(module, device_ids=ids)


def finish(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
