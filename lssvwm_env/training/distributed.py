"""Data parallelism across processes started by `torchrun` (gloo on CPU, nccl on GPU).

Gradients are averaged with one all-reduce per parameter after backward; parameters are broadcast
from rank 0 at start. This is what DistributedDataParallel does, without its bucketing and overlap,
which buy nothing at this model size and would hide the world model's non-forward entry points."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def from_environment(device: torch.device) -> "Distributed":
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return Distributed()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return Distributed(rank=dist.get_rank(), world_size=world_size)

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        if self.world_size > 1:
            for tensor in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(tensor.data, src=0)

    def average_gradients(self, parameters: list[torch.nn.Parameter]) -> None:
        if self.world_size > 1:
            for p in parameters:
                if p.grad is not None:
                    dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                    p.grad.div_(self.world_size)

    def average(self, value: float) -> float:
        if self.world_size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return t.item() / self.world_size

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
