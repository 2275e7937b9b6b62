"""Data loading for training: an endless, seeded per-rank stream of batches that can start
at any batch of any epoch.

Dataset items draw their randomness from (seed, epoch, index), so the order of indices and
the epoch fully determine a batch. The sampler yields (epoch, index) pairs and `EpochItems`
sets the epoch inside the worker before reading the item: with persistent workers the
dataset copies live in other processes, where a `set_epoch` call in this one would not reach.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate
from torch.utils.data.distributed import DistributedSampler

from irestore.training.distributed import DistInfo


class EpochItems(Dataset):
    """Index with (epoch, index): sets the wrapped dataset's epoch, then reads the item."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        self.dataset.set_epoch(epoch)
        return self.dataset[index]


class EndlessShardSampler(Sampler[tuple[int, int]]):
    """This rank's seeded shard of every epoch in turn (torch's DistributedSampler), as
    (epoch, index) pairs, from batch `position` of `epoch` on. Each epoch is cut to whole
    batches, so batches never straddle epochs; one iterator serves the whole run, so the
    workers keep prefetching across epoch boundaries instead of draining at each one."""

    def __init__(self, dataset: Dataset, info: DistInfo, seed: int, batch_size: int):
        self.shard = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed, drop_last=True)
        self.batch_size = batch_size
        self.batches_per_epoch = len(self.shard) // batch_size
        self.epoch, self.position = 0, 0

    def start(self, epoch: int, position: int) -> None:
        self.epoch, self.position = epoch, position

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, skip = self.epoch, self.position * self.batch_size
        while True:
            self.shard.set_epoch(epoch)
            indices = list(self.shard)[skip : self.batches_per_epoch * self.batch_size]
            yield from ((epoch, index) for index in indices)
            epoch, skip = epoch + 1, 0


class BatchStream:
    """Endless training batches; knows the epoch and how many batches of it were consumed,
    which is all a resume needs to continue with the very next batch."""

    def __init__(self, dataset: Dataset, info: DistInfo, batch_size: int, workers: int, seed: int, pin_memory: bool,
                 collate: Callable[[list[dict]], dict] = default_collate):
        self.sampler = EndlessShardSampler(dataset, info, seed, batch_size)
        self.batches_per_epoch = self.sampler.batches_per_epoch
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"the training set has {len(dataset)} samples: too few for one batch of {batch_size} "
                f"on each of {info.world_size} process(es)"
            )
        self.loader = DataLoader(
            EpochItems(dataset),
            batch_size=batch_size,
            sampler=self.sampler,
            drop_last=True,
            collate_fn=collate,
            num_workers=workers,
            pin_memory=pin_memory,
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
        )
        self.epoch, self.position = 0, 0
        self._iterator: Iterator[dict] | None = None

    def seek(self, epoch: int, position: int) -> None:
        """Continue at batch `position` of `epoch`."""
        self.epoch, self.position = epoch, position
        self._iterator = None

    def next(self) -> dict:
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
        if self._iterator is None:
            self.sampler.start(self.epoch, self.position)
            self._iterator = iter(self.loader)
        batch = next(self._iterator)
        self.position += 1
        return batch


def fixed_subset(dataset: Dataset, count: int) -> list[dict]:
    """`count` items spread evenly over a validation set, read once (epoch 0) and kept."""
    dataset.set_epoch(0)
    total = len(dataset)
    if total == 0:
        raise ValueError("the validation set is empty")
    picks = sorted({int(i) for i in torch.linspace(0, total - 1, min(count, total)).round().tolist()})
    return [dataset[i] for i in picks]

