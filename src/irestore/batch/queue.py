"""A FIFO between the batch's threads bounded by the pixels it holds, not only by its length.

With a bound on the count alone, two queued 12 MP images hold ten times what two 1 MP images do;
a bound on pixels keeps the read-ahead and the write-behind within a fixed amount of memory on
any folder. An item larger than the bound still passes, alone, so no image is ever refused.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable

QUEUE_PIXELS = 24_000_000  # per queue: two 12 MP photos (about 290 MB as float32 RGB)


class PixelQueue:
    """``put``/``get`` like :class:`queue.Queue` (raising queue.Full / queue.Empty on timeout)."""

    def __init__(self, weigh: Callable[[object], int], max_pixels: int = QUEUE_PIXELS, max_items: int = 2) -> None:
        self.weigh, self.max_pixels, self.max_items = weigh, max_pixels, max_items
        self._items: deque[tuple[object, int]] = deque()
        self._pixels = 0
        self._changed = threading.Condition()

    def _has_room(self, pixels: int) -> bool:
        if not self._items:
            return True
        return len(self._items) < self.max_items and self._pixels + pixels <= self.max_pixels

    def put(self, item, timeout: float | None = None) -> None:
        pixels = self.weigh(item)
        with self._changed:
            if not self._changed.wait_for(lambda: self._has_room(pixels), timeout):
                raise queue.Full
            self._items.append((item, pixels))
            self._pixels += pixels
            self._changed.notify_all()

    def get(self, timeout: float | None = None):
        with self._changed:
            if not self._changed.wait_for(lambda: bool(self._items), timeout):
                raise queue.Empty
            item, pixels = self._items.popleft()
            self._pixels -= pixels
            self._changed.notify_all()
            return item

    @property
    def pixels(self) -> int:
        with self._changed:
            return self._pixels
