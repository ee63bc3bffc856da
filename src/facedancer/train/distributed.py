"""Data-parallel training over ``torch.distributed``, launched by ``torchrun``.

    torchrun --nproc_per_node 8 -m facedancer train facedancer-sface --set data.root=DATA      # one node
    torchrun --nnodes 4 --node_rank R --nproc_per_node 8 --rdzv_backend c10d \\
        --rdzv_endpoint HOST:29500 -m facedancer train ...                                      # four nodes

Each process trains on its own share of every batch position (see ``data.PairSampler``) and gradients
are averaged with one ``all_reduce`` per model and optimiser step, as stylegan2-ada/stylegan3 do. We do
not wrap G and D in ``DistributedDataParallel``: a FaceDancer step runs D three times (real, detached
fake, fake for G), G twice (swap, cycle) and takes R1's double backward, a pattern DDP's bucketed
reducer does not support; averaging after backward is exact and keeps gradient accumulation trivial.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def init(device_type: str) -> World:
    """Join the process group torchrun describes in the environment (a single process otherwise)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)  # NCCL collectives run on the current device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), local_rank)


def shutdown(world: World) -> None:
    if world.active and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_parameters(module: nn.Module, world: World) -> None:
    """Every rank starts from rank 0's weights."""
    if world.active:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def average_gradients(module: nn.Module, world: World) -> None:
    """Mean of each parameter's gradient over ranks, in one flat all_reduce."""
    if not world.active:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def any_rank(flag: bool, world: World, device: torch.device) -> bool:
    """True when ``flag`` is true on any rank (stop requests, non-finite losses): all ranks agree."""
    if not world.active:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather(value: object, world: World) -> list[object]:
    if not world.active:
        return [value]
    out: list[object] = [None] * world.size
    dist.all_gather_object(out, value)
    return out


def broadcast_object(value: object, world: World) -> object:
    """Rank 0's ``value`` on every rank (e.g. the run directory it created)."""
    if not world.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()
