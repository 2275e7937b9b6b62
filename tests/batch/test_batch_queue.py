"""The batch's queues hold at most a bound of pixels (and of items), yet never refuse an image."""

import queue

import pytest

from irestore.batch.queue import PixelQueue


def test_queue_is_bounded_by_pixels_and_count_and_an_oversize_item_passes_alone():
    q = PixelQueue(weigh=lambda item: item, max_pixels=100, max_items=3)
    q.put(60)
    with pytest.raises(queue.Full):
        q.put(50, timeout=0.05)  # 110 pixels would be held
    q.put(40)
    assert q.pixels == 100
    assert q.get() == 60 and q.get() == 40 and q.pixels == 0
    q.put(500)  # larger than the bound: passes when the queue is empty
    with pytest.raises(queue.Full):
        q.put(1, timeout=0.05)
    assert q.get() == 500
    for item in (0, 0, 0):
        q.put(item)
    with pytest.raises(queue.Full):
        q.put(0, timeout=0.05)  # the count bound
    with pytest.raises(queue.Empty):
        PixelQueue(weigh=len).get(timeout=0.05)
