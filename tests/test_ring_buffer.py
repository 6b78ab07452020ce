"""The in-memory ring buffer the live views poll."""

from __future__ import annotations

import threading

import pytest

from live.ring_buffer import RingBuffer
from tests.factories import event


def test_since_returns_only_newer_entries_oldest_first():
    ring = RingBuffer(10)
    ring.extend(event(error_id=f"e{i}") for i in range(5))
    newer = ring.since(3)
    assert [e.seq for e in newer] == [4, 5]
    assert [e.event.error_id for e in newer] == ["e3", "e4"]
    assert ring.since(5) == []
    assert [e.seq for e in ring.since(0, limit=2)] == [4, 5]


def test_capacity_keeps_the_latest_and_sequence_keeps_growing():
    ring = RingBuffer(3)
    ring.extend(event(error_id=f"e{i}") for i in range(7))
    assert len(ring) == 3
    assert [e.seq for e in ring.since(0)] == [5, 6, 7]
    assert ring.oldest_seq == 5 and ring.last_seq == 7
    # A cursor older than the oldest entry sees what is left; the caller reloads.
    assert [e.seq for e in ring.since(2)] == [5, 6, 7]


def test_a_resent_copy_is_not_added_twice_while_held():
    ring = RingBuffer(3)
    assert ring.append(event(error_id="a")) is True
    assert ring.append(event(error_id="a")) is False
    ring.extend(event(error_id=x) for x in "bcd")  # "a" falls out
    assert ring.append(event(error_id="a")) is True


def test_concurrent_writers_and_readers_see_increasing_sequences():
    ring = RingBuffer(1000)
    seen: list[int] = []

    def read() -> None:
        cursor = 0
        for _ in range(2000):
            for entry in ring.since(cursor):
                assert entry.seq > cursor
                cursor = entry.seq
                seen.append(entry.seq)

    reader = threading.Thread(target=read)
    reader.start()
    for batch in range(50):
        ring.extend(event(error_id=f"{batch}-{i}") for i in range(20))
    reader.join()
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert ring.last_seq == 1000


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        RingBuffer(0)
