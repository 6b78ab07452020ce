"""The spool on disk: order, checkpoints, segment rotation, replay, torn tails, the cap."""

from __future__ import annotations

import os

from ingest.spool import HEADER, Spool
from ingest.spool_writer import SpoolWriter


def _payloads(spool: Spool, limit: int = 100_000) -> list[bytes]:
    records, _ = spool.read(limit, timeout=0)
    return [payload for payload, _ in records]


def test_payloads_come_back_in_order_with_their_received_time(tmp_path):
    spool = Spool(tmp_path)
    spool.open()
    for i in range(10):
        assert spool.append(f"m{i}".encode(), 1000.0 + i)
    records, position = spool.read(4, timeout=0)
    assert records == [(f"m{i}".encode(), 1000.0 + i) for i in range(4)]
    assert _payloads(spool) == [f"m{i}".encode() for i in range(4, 10)]
    assert spool.unread == 0 and position.segment == spool.first_new_segment
    spool.close()


def test_segments_rotate_and_committed_ones_are_deleted(tmp_path):
    spool = Spool(tmp_path, segment_bytes=4096)
    spool.open()
    for i in range(100):
        spool.append(b"x" * 500, float(i))
    assert len(list(tmp_path.glob("seg-*.log"))) >= 12
    records, position = spool.read(1000, timeout=0)
    assert len(records) == 100
    spool.commit(position)
    assert len(list(tmp_path.glob("seg-*.log"))) == 1  # only the active segment is left
    assert spool.pending_bytes == 0
    spool.close()


def test_what_was_not_committed_is_replayed_after_a_restart(tmp_path):
    first = Spool(tmp_path, segment_bytes=500)
    first.open()
    for i in range(30):
        first.append(f"r{i}".encode(), float(i))
    _, position = first.read(10, timeout=0)
    first.commit(position)
    first.read(10, timeout=0)  # read but never committed: a crash here
    first.close()

    second = Spool(tmp_path, segment_bytes=500)
    second.open()
    assert second.replay_total == 20
    second.append(b"new", 99.0)
    payloads = _payloads(second)
    assert payloads == [f"r{i}".encode() for i in range(10, 30)] + [b"new"]
    assert second.replayed == 20
    second.close()


def test_a_torn_record_at_the_end_of_an_old_segment_is_skipped(tmp_path):
    first = Spool(tmp_path)
    first.open()
    first.append(b"whole", 1.0)
    first.close()
    segment = next(tmp_path.glob("seg-*.log"))
    with open(segment, "ab") as tail:  # a crash in the middle of a write
        tail.write(HEADER.pack(100, 2.0) + b"only part")
    second = Spool(tmp_path)
    second.open()
    second.append(b"after", 3.0)
    assert _payloads(second) == [b"whole", b"after"]
    assert second.torn_records == 1
    second.close()


def test_a_full_spool_refuses_and_counts(tmp_path):
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.open()
    accepted = sum(spool.append(b"y" * 988, 0.0) is not None for _ in range(20))
    assert accepted == 10_000 // (988 + HEADER.size)
    assert spool.refused == 20 - accepted
    _, position = spool.read(100, timeout=0)
    spool.commit(position)  # stored: the space is given back
    assert spool.append(b"y" * 988, 0.0)
    spool.close()


def test_a_record_larger_than_one_read_comes_back_whole(tmp_path):
    spool = Spool(tmp_path)
    spool.open()
    big = os.urandom(6 * 1024 * 1024)
    spool.append(b"small", 0.0)
    spool.append(big, 1.0)
    assert _payloads(spool) == [b"small", big]
    spool.close()


def _killed_after_write(spool: Spool, *payloads: bytes) -> None:
    """What a reader process killed between its write() and its counters leaves: records in
    the active segment that no counter knows of."""
    assert spool.state is not None
    segment = spool.folder / f"seg-{spool.state.active_segment:012d}.log"
    assert segment.exists()
    with open(segment, "ab") as file:
        for payload in payloads:
            file.write(HEADER.pack(len(payload), 5.0) + payload)


def test_records_a_killed_writer_never_counted_are_counted_by_the_next_one(tmp_path):
    spool = Spool(tmp_path, segment_bytes=4096)
    spool.open()
    assert spool.state is not None
    dead = SpoolWriter(tmp_path, spool.state, spool.max_bytes, spool.segment_bytes)
    for i in range(60):  # several segments, so the count is per segment, not from zero
        dead.append([b"x" * 100 + str(i).encode()], 1.0)
    assert spool.state.active_segment > 1
    _killed_after_write(spool, b"uncounted-1", b"uncounted-2")
    dead.close()  # the process is gone; its lock with it
    assert spool.appended == 60

    successor = SpoolWriter(tmp_path, spool.state, spool.max_bytes, spool.segment_bytes)
    assert spool.appended == 62
    successor.append([b"after"], 2.0)
    payloads = _payloads(spool)
    assert payloads[-3:] == [b"uncounted-1", b"uncounted-2", b"after"]
    assert len(payloads) == 63 and spool.unread == 0
    # A third writer finds nothing missed: nothing is counted twice.
    successor.close()
    SpoolWriter(tmp_path, spool.state, spool.max_bytes, spool.segment_bytes).close()
    assert spool.appended == 63
    spool.close()


def test_a_writer_killed_as_it_began_a_segment_leaves_nothing_uncounted(tmp_path):
    """Killed after it made the next segment's file, before it moved to it: the segment it
    was on is counted from its own start, not from the new one's."""
    spool = Spool(tmp_path)
    spool.open()
    assert spool.state is not None
    dead = SpoolWriter(tmp_path, spool.state, spool.max_bytes, spool.segment_bytes)
    dead.append([b"one", b"two"], 1.0)
    segment = spool.state.active_segment
    (tmp_path / f"seg-{segment + 1:012d}.log").touch()
    spool.state.segment_start_appended[(segment + 1) % 2] = spool.state.appended
    dead.close()
    successor = SpoolWriter(tmp_path, spool.state, spool.max_bytes, spool.segment_bytes)
    successor.append([b"three"], 2.0)
    assert spool.appended == 3
    assert _payloads(spool) == [b"one", b"two", b"three"] and spool.unread == 0
    successor.close()
    spool.close()
