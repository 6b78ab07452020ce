"""The last N accepted errors in memory, each with a sequence number, for the live views."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from queries.records import ErrorEvent


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    event: ErrorEvent


class RingBuffer:
    """Bounded, thread-safe; `since(seq)` costs the number of newer entries, not the size.

    A re-sent copy of an error still in the buffer is not added twice, so the live list shows
    each `error_id` once, as the store does.
    """

    def __init__(self, capacity: int = 2000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._entries: deque[Entry] = deque()
        self._ids: set[str] = set()
        self._last_seq = 0
        self._lock = threading.Lock()

    def extend(self, events: Iterable[ErrorEvent]) -> list[Entry]:
        """Append events not already held; returns the entries added, with their sequence."""
        added: list[Entry] = []
        with self._lock:
            for event in events:
                if event.error_id in self._ids:
                    continue
                self._last_seq += 1
                entry = Entry(self._last_seq, event)
                self._put(entry)
                added.append(entry)
        return added

    def extend_entries(self, entries: Iterable[Entry]) -> list[Entry]:
        """Append entries numbered elsewhere (a follower of another process's buffer);
        entries not newer than the last held are ignored."""
        added: list[Entry] = []
        with self._lock:
            for entry in entries:
                if entry.seq <= self._last_seq or entry.event.error_id in self._ids:
                    continue
                self._last_seq = entry.seq
                self._put(entry)
                added.append(entry)
        return added

    def _put(self, entry: Entry) -> None:
        self._entries.append(entry)
        self._ids.add(entry.event.error_id)
        if len(self._entries) > self.capacity:
            self._ids.discard(self._entries.popleft().event.error_id)

    def append(self, event: ErrorEvent) -> bool:
        return len(self.extend((event,))) == 1

    def since(self, seq: int, limit: int | None = None) -> list[Entry]:
        """Entries newer than `seq`, oldest first; with `limit`, only the newest `limit`."""
        with self._lock:
            newer: list[Entry] = []
            for entry in reversed(self._entries):
                if entry.seq <= seq or (limit is not None and len(newer) >= limit):
                    break
                newer.append(entry)
        newer.reverse()
        return newer

    def latest(self, count: int) -> list[Entry]:
        return self.since(0, limit=count)

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def oldest_seq(self) -> int:
        """The oldest sequence still held (0 when empty): a cursor older than it missed rows."""
        with self._lock:
            return self._entries[0].seq if self._entries else 0

    def __len__(self) -> int:
        return len(self._entries)
