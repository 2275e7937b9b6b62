"""What a restore is doing deep inside, for whoever watches the thread it runs in.

The batch runner shows progress inside a big image (which plan step runs, how many of its tiles
are done) and records the tile sizes automatic tiling chose; tiling and the planner report here,
without knowing who listens. With no watcher, reporting costs one attribute lookup.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Watcher:
    on_stage: Callable[[str], None] | None = None  # a plan step (or "planning") begins
    on_tiles: Callable[[int, int], None] | None = None  # (tiles done, tiles in this pass)
    tiles: list[int] = field(default_factory=list)  # distinct tile sizes used, in order (whole-image runs: none)


_local = threading.local()


@contextmanager
def watch(watcher: Watcher) -> Iterator[Watcher]:
    """Report this thread's events to ``watcher`` within the block."""
    before = getattr(_local, "watcher", None)
    _local.watcher = watcher
    try:
        yield watcher
    finally:
        _local.watcher = before


def _current() -> Watcher | None:
    return getattr(_local, "watcher", None)


def stage(name: str) -> None:
    watcher = _current()
    if watcher is not None and watcher.on_stage is not None:
        watcher.on_stage(name)


def tile_chosen(size: int | None) -> None:
    watcher = _current()
    if watcher is not None and size is not None and int(size) not in watcher.tiles:  # once, not per sampler step
        watcher.tiles.append(int(size))


def tiles_done(done: int, total: int) -> None:
    watcher = _current()
    if watcher is not None and watcher.on_tiles is not None:
        watcher.on_tiles(done, total)
