"""Distributed execution under torchrun: process group set-up, rank facts and agreement.

A single process (no torchrun) is world size 1 and every collective here is a no-op, so the
training loop has one code path. NCCL on CUDA, Gloo on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from irestore.devices import resolve_device


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def setup(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the process group when started by torchrun; return this process's facts and device."""
    device = resolve_device(device_name)
    if not launched_by_torchrun():
        return DistInfo(), device
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=30), device_id=device if device.type == "cuda" else None)
    return info, device


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def agree_to_stop(interrupted: bool, out_of_time: bool, info: DistInfo, device: torch.device) -> tuple[bool, bool]:
    """One collective per step: stop everywhere if any rank was interrupted, and when rank 0's
    clock says the time is up (the other ranks' clocks are ignored, so all decide alike)."""
    if not info.enabled:
        return interrupted, out_of_time
    votes = torch.tensor([float(interrupted), float(out_of_time and info.is_main)], device=device)
    dist.all_reduce(votes, op=dist.ReduceOp.MAX)
    return bool(votes[0].item() > 0), bool(votes[1].item() > 0)


def mean_over_ranks(value: float, info: DistInfo, device: torch.device) -> float:
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64 if device.type != "mps" else torch.float32, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item()) / info.world_size
