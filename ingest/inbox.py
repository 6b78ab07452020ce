"""The bounded queue between the Redis reader and the pipeline.

A deque and a condition rather than `queue.Queue`: the reader hands over one message at a
time but the pipeline takes thousands at once, and `put` must never block the reader.
"""

from __future__ import annotations

import threading
from collections import deque


class Inbox:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[tuple[bytes, float]] = deque()
        self._ready = threading.Condition(threading.Lock())

    def put(self, payload: bytes, received: float) -> bool:
        """Queue one payload; False (and nothing queued) when the inbox is full."""
        items = self._items
        if len(items) >= self.capacity:
            return False
        items.append((payload, received))
        if len(items) == 1:
            with self._ready:
                self._ready.notify()
        return True

    def take(self, max_items: int, timeout: float) -> list[tuple[bytes, float]]:
        """Up to `max_items` payloads, oldest first; waits up to `timeout` for the first."""
        items = self._items
        if not items:
            with self._ready:
                if not items:
                    self._ready.wait(timeout)
        taken: list[tuple[bytes, float]] = []
        popleft = items.popleft
        try:
            for _ in range(min(max_items, len(items))):
                taken.append(popleft())
        except IndexError:
            pass
        return taken

    def wake(self) -> None:
        with self._ready:
            self._ready.notify_all()

    def __len__(self) -> int:
        return len(self._items)
