"""The spool: an append-only journal on disk of every payload received, until it is stored.

The reader thread appends each payload (one `os.write`, no fsync) before counting it as
received, so once the monitor says "received", the payload is in the kernel's hands and a
`kill -9` cannot lose it. The pipeline reads the journal in order; the batch writer reports
what it has committed, and segments wholly behind that checkpoint are deleted. While the
database is away the pipeline stops reading and the journal simply grows (up to
`max_bytes`), so a database outage, a flood and a crash are one mechanism. On start, what is
left behind the last checkpoint is read first: that is the replay.

Layout of `SPOOL_DIR`: `seg-000000000001.log`, ... (records: u32 length, f64 received epoch
seconds, payload) and `checkpoint` (JSON: the segment and offset committed up to).
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

HEADER = struct.Struct("<Id")
SEGMENT_BYTES = 8 * 1024 * 1024
_READ_BYTES = 4 * 1024 * 1024
_NAME = "seg-{:012d}.log"


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """A place in the journal: everything before it has been read (or committed)."""

    segment: int
    offset: int


class Spool:
    def __init__(self, folder: str | Path, max_bytes: int = 500 * 1024 * 1024,
                 segment_bytes: int = SEGMENT_BYTES, fsync_interval: float = 0.1) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        # Small caps get small segments, so committed space is given back in time.
        self.segment_bytes = max(4096, min(segment_bytes, max_bytes // 4))
        self.fsync_interval = fsync_interval
        self._lock = threading.Lock()
        self._data = threading.Condition(threading.Lock())
        self._reader_waiting = False
        self._fd = -1
        self._active = 0
        self._active_size = 0
        self._segments: dict[int, int] = {}  # segment -> size in bytes, for every file kept
        self._total_bytes = 0
        self._read = Position(0, 0)
        self._read_fd = -1
        self._read_fd_segment = -1
        self._checkpoint = Position(0, 0)
        self._commit_listeners: list[Callable[[Position], None]] = []
        self._last_sync = 0.0
        self._dirty = False
        self._last_full_warning = 0.0
        self.first_new_segment = 0
        # Counters; each is written by one thread.
        self.appended = 0  # reader thread
        self.refused = 0  # reader thread: spool full or disk error
        self.read_records = 0  # pipeline thread
        self.replayed = 0  # pipeline thread: records left by an earlier run
        self.replay_total = 0  # found at open
        self.torn_records = 0

    # -- opening ------------------------------------------------------------------------
    def open(self) -> None:
        """Find what an earlier run left behind and start a new segment after it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._checkpoint = self._load_checkpoint()
        for path in sorted(self.folder.glob("seg-*.log")):
            number = int(path.stem[4:])
            if number < self._checkpoint.segment:
                path.unlink()  # committed before the last stop
                continue
            self._segments[number] = path.stat().st_size
            self._total_bytes += self._segments[number]
        self._read = max(self._checkpoint, Position(min(self._segments, default=0), 0))
        self.replay_total = self._count_records_from(self._read)
        self._active = max(self._segments, default=self._checkpoint.segment) + 1
        self.first_new_segment = self._active
        self._open_active()
        if self.replay_total:
            log.warning("the spool holds %d messages from an earlier run; they are stored first",
                        self.replay_total)

    def _load_checkpoint(self) -> Position:
        try:
            data = json.loads((self.folder / "checkpoint").read_text())
            return Position(int(data["segment"]), int(data["offset"]))
        except FileNotFoundError:
            return Position(0, 0)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("unreadable spool checkpoint (%s): replaying the whole spool", exc)
            return Position(0, 0)

    def _count_records_from(self, start: Position) -> int:
        count = 0
        for number in sorted(self._segments):
            if number < start.segment:
                continue
            data = (self.folder / _NAME.format(number)).read_bytes()
            offset = start.offset if number == start.segment else 0
            while offset + HEADER.size <= len(data):
                length = HEADER.unpack_from(data, offset)[0]
                if offset + HEADER.size + length > len(data):
                    break
                offset += HEADER.size + length
                count += 1
        return count

    def _open_active(self) -> None:
        path = self.folder / _NAME.format(self._active)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._active_size = 0
        self._segments[self._active] = 0

    # -- the reader thread --------------------------------------------------------------
    def append(self, payload: bytes, received: float) -> Position | None:
        """Journal one payload and return the position after it; None (counted, logged) when
        the spool is full or the disk fails."""
        record = HEADER.pack(len(payload), received) + payload
        with self._lock:
            if self.pending_bytes + len(record) > self.max_bytes:
                self._refuse(f"the spool is full ({self.max_bytes} bytes)")
                return None
            if self._active_size and self._active_size + len(record) > self.segment_bytes:
                self._rotate()
            try:
                written = os.write(self._fd, record)
                while written < len(record):
                    written += os.write(self._fd, record[written:])
            except OSError as exc:
                # A partial record would corrupt the segment: cut it back.
                os.ftruncate(self._fd, self._active_size)
                self._refuse(f"cannot write the spool: {exc}")
                return None
            self._active_size += len(record)
            self._total_bytes += len(record)
            self._segments[self._active] = self._active_size
            self._dirty = True
            self.appended += 1
            after = Position(self._active, self._active_size)
        if self._reader_waiting:
            with self._data:
                self._data.notify()
        return after

    def _refuse(self, reason: str) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._last_full_warning > 10:
            self._last_full_warning = now
            log.error("%s: message refused (%d refused so far)", reason, self.refused)

    def _rotate(self) -> None:
        os.fdatasync(self._fd)
        os.close(self._fd)
        self._active += 1
        self._open_active()

    # -- the pipeline thread ------------------------------------------------------------
    def read(self, max_records: int, timeout: float) -> tuple[list[tuple[bytes, float]], Position]:
        """Up to `max_records` payloads in order, and the position after them.

        Waits up to `timeout` for data when there is none.
        """
        records = self._read_some(max_records)
        if not records and timeout > 0:
            with self._data:
                self._reader_waiting = True
                if not self._has_unread():
                    self._data.wait(timeout)
                self._reader_waiting = False
            records = self._read_some(max_records)
        self.read_records += len(records)
        self._sync_if_due()
        return records, self._read

    def _has_unread(self) -> bool:
        with self._lock:
            return (self._read.segment < self._active
                    or self._read.offset < self._active_size)

    def _read_some(self, max_records: int) -> list[tuple[bytes, float]]:
        records: list[tuple[bytes, float]] = []
        while len(records) < max_records:
            with self._lock:
                segment, offset = self._read.segment, self._read.offset
                later = [s for s in self._segments if s > segment]
                if segment not in self._segments:
                    if not later:
                        return records
                    self._read = Position(min(later), 0)
                    continue
                end = self._segments[segment]
                finished = segment != self._active
            if offset >= end:
                if not finished:
                    return records
                self._read = Position(min(later), 0)
                continue
            data = self._pread(segment, min(end - offset, _READ_BYTES), offset)
            if len(data) >= HEADER.size:
                whole = HEADER.size + HEADER.unpack_from(data, 0)[0]
                if whole > len(data) and offset + whole <= end:
                    data = self._pread(segment, whole, offset)  # one record beyond _READ_BYTES
            pos = self._parse(data, records, max_records, segment < self.first_new_segment)
            if pos == 0:
                if finished:
                    # A record cut short by a crash at the end of an old segment.
                    self.torn_records += 1
                    log.error("spool segment %d ends in a torn record (%d bytes skipped)",
                              segment, end - offset)
                    self._read = Position(min(later), 0) if later else Position(segment, end)
                    continue
                return records
            self._read = Position(segment, offset + pos)
        return records

    def _parse(self, data: bytes, records: list[tuple[bytes, float]], max_records: int,
               replaying: bool) -> int:
        """Append whole records from `data`; returns the bytes consumed."""
        pos = 0
        unpack = HEADER.unpack_from
        size = len(data)
        before = len(records)
        while len(records) < max_records and pos + HEADER.size <= size:
            length, received = unpack(data, pos)
            stop = pos + HEADER.size + length
            if stop > size:
                break
            records.append((data[pos + HEADER.size:stop], received))
            pos = stop
        if replaying:
            self.replayed += len(records) - before
        return pos

    def _pread(self, segment: int, size: int, offset: int) -> bytes:
        if self._read_fd_segment != segment:
            if self._read_fd >= 0:
                os.close(self._read_fd)
            self._read_fd = os.open(self.folder / _NAME.format(segment), os.O_RDONLY)
            self._read_fd_segment = segment
        return os.pread(self._read_fd, size, offset)

    def _sync_if_due(self) -> None:
        # fsync in batches: a kill -9 loses nothing written; a power cut loses at most
        # `fsync_interval` seconds of journal.
        now = time.monotonic()
        if self._dirty and now - self._last_sync >= self.fsync_interval:
            with self._lock:
                self._dirty = False
                os.fdatasync(self._fd)
            self._last_sync = now

    def wake(self) -> None:
        with self._data:
            self._data.notify_all()

    # -- the writer thread --------------------------------------------------------------
    def add_commit_listener(self, listener: Callable[[Position], None]) -> None:
        """`listener(position)` runs (on the writer's thread) after each checkpoint."""
        self._commit_listeners.append(listener)

    def commit(self, position: Position) -> None:
        """Everything before `position` is stored: record it, delete finished segments."""
        if position <= self._checkpoint:
            return
        self._checkpoint = position
        tmp = self.folder / "checkpoint.tmp"
        tmp.write_text(json.dumps({"segment": position.segment, "offset": position.offset}))
        os.replace(tmp, self.folder / "checkpoint")
        with self._lock:
            done = [s for s in self._segments if s < position.segment and s != self._active]
            for segment in done:
                self._total_bytes -= self._segments.pop(segment)
        for segment in done:
            try:
                (self.folder / _NAME.format(segment)).unlink()
            except FileNotFoundError:
                pass
        for listener in self._commit_listeners:
            listener(position)

    # -- status -------------------------------------------------------------------------
    @property
    def pending_bytes(self) -> int:
        """Bytes on disk not yet committed to the store."""
        checkpoint = self._checkpoint
        done = checkpoint.offset if checkpoint.segment in self._segments else 0
        return self._total_bytes - done

    @property
    def unread(self) -> int:
        """Records journaled but not yet read by the pipeline."""
        return self.appended + self.replay_total - self.read_records

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.fdatasync(self._fd)
                os.close(self._fd)
                self._fd = -1
            if self._read_fd >= 0:
                os.close(self._read_fd)
                self._read_fd = -1
