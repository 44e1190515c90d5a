"""Multi-process training with PyTorch's own DistributedDataParallel, under ``torchrun``.

    torchrun --nproc_per_node 2 -m autoencoders train vae-mnist          # 2 processes, CPU
    torchrun --nproc_per_node 8 -m autoencoders train ... --set train.device=\\"cuda\\"
    torchrun --nnodes 2 --rdzv-backend c10d --rdzv-endpoint HOST:29400 --nproc_per_node 8 \\
        -m autoencoders train ...                                        # two machines

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; with ``WORLD_SIZE > 1`` the
trainer joins the process group (gloo on CPU, NCCL on CUDA), wraps the model in DDP, gives
each rank an equal slice of every global batch (``train.batch_size`` stays the global
batch), sums the logged loss terms across ranks, and lets only rank 0 write the run
folder. Checkpoints hold global state only (step, permutation, optimiser), so a run can
resume with another number of processes. Without ``torchrun`` nothing here is used.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str = "cpu") -> tuple[int, int]:
    """Join the process group if launched by torchrun; return ``(rank, world_size)``."""
    world = world_size()
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
        if device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), dist.get_world_size()


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def all_reduce_sum_(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks in place (a no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (identity in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class LossForward(torch.nn.Module):
    """Routes ``model.loss`` through ``forward`` so DDP's gradient hooks see it."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x, y=None):
        out = self.model.loss(x) if y is None else self.model.loss(x, y)
        return out.total, out.terms
