"""A debugging trace of what each rank trained on, for checking distributed training.

    IRESTORE_TRAIN_TRACE=DIR torchrun ... -m irestore train ...

makes every rank append one JSON line per optimiser step to DIR/rank<R>.jsonl:
{"step", "rank", "samples": [a hash of each sample of each micro-batch], "grad_norm" (before
clipping, after DDP's all-reduce), "weights": a hash of the network's weights after the step}.
Off (no cost, no host syncs) unless the variable is set.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import Tensor, nn

TRACE_ENV = "IRESTORE_TRAIN_TRACE"


def sample_hashes(batch: dict) -> list[str]:
    """One hash per sample: its values in every per-sample tensor and string list of the batch."""
    size = len(batch["prompt"]) if "prompt" in batch else next(v for v in batch.values() if isinstance(v, Tensor)).shape[0]
    digests = [hashlib.sha1() for _ in range(size)]
    for key in sorted(batch):
        value = batch[key]
        if isinstance(value, list) and len(value) == size and all(isinstance(v, str) for v in value):
            items = [v.encode() for v in value]  # prompts, photo names
        elif isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == size:
            items = [_bytes(v) for v in value]
        else:
            continue
        for digest, item in zip(digests, items):
            digest.update(key.encode())
            digest.update(item)
    return [digest.hexdigest()[:16] for digest in digests]


def weights_hash(network: nn.Module) -> str:
    """A hash of the weights' values (memory format aside), identical on ranks that agree bit for bit."""
    digest = hashlib.sha1()
    for name, tensor in network.state_dict().items():
        digest.update(name.encode())
        digest.update(_bytes(tensor))
    return digest.hexdigest()[:16]


def _bytes(tensor: Tensor) -> bytes:
    """The raw values in logical order, for any dtype (bf16 has no NumPy view)."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


class TrainTrace:
    """Appends this rank's step records to DIR/rank<R>.jsonl (a resumed run appends too)."""

    def __init__(self, folder: Path, rank: int):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"rank{rank}.jsonl"
        self.rank = rank

    @classmethod
    def from_env(cls, rank: int) -> TrainTrace | None:
        folder = os.environ.get(TRACE_ENV)
        return cls(Path(folder), rank) if folder else None

    def record(self, step: int, batches: list[dict], grad_norm: Tensor, network: nn.Module) -> None:
        row = {"step": step, "rank": self.rank, "samples": [h for batch in batches for h in sample_hashes(batch)],
               "grad_norm": float(grad_norm), "weights": weights_hash(network)}
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")


def read_trace(folder: Path, rank: int) -> list[dict]:
    path = Path(folder) / f"rank{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


__all__ = ["TRACE_ENV", "TrainTrace", "read_trace", "sample_hashes", "weights_hash"]
