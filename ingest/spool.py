"""The spool: an append-only journal on disk of every payload received, until it is stored.

The reader (its own process for pub/sub, see reader.py; the stream reader's thread through
`append`) journals each batch of payloads with one write before counting them as received
(spool_writer.py), so once the monitor says "received" the payload is in the kernel's hands
and a `kill -9` cannot lose it. This side, in the main process, reads the journal in order,
following the segment files by their size; the batch writer reports what it has committed,
and segments wholly behind that checkpoint are deleted. While the database is away the
pipeline stops reading and the journal simply grows (up to `max_bytes`), so a database
outage, a flood and a crash are one mechanism. On start, what is left behind the last
checkpoint is read first: that is the replay. Layout: spool_format.py.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ingest.reader_state import ReaderState, create_state
from ingest.spool_format import (
    HEADER,
    SEGMENT_BYTES,
    Position,
    segment_number,
    segment_path,
    whole_records,
)
from ingest.spool_writer import SpoolWriter, take_writer_lock

__all__ = ["HEADER", "Position", "Spool"]

log = logging.getLogger(__name__)

_READ_BYTES = 4 * 1024 * 1024
# How often a waiting read looks for new records: the writer is in another process.
_POLL_SECONDS = 0.005
# A writer left behind by a killed main process notices within a second and lets go.
_OLD_WRITER_WAIT = 15.0


class Spool:
    def __init__(self, folder: str | Path, max_bytes: int = 500 * 1024 * 1024,
                 segment_bytes: int = SEGMENT_BYTES, fsync_interval: float = 0.1) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        # Small caps get small segments, so committed space is given back in time.
        self.segment_bytes = max(4096, min(segment_bytes, max_bytes // 4))
        self.fsync_interval = fsync_interval
        self.state: ReaderState | None = None  # shared with the writer; made by `open`
        self._writer: SpoolWriter | None = None  # only when this process writes (`append`)
        self._wakeup = threading.Event()
        self._read = Position(0, 0)
        self._read_fd = -1
        self._read_fd_segment = -1
        # Sizes of finished segments (the writer has moved past them), for reading and for
        # giving their bytes back once committed. The pipeline adds the segments it reads,
        # the writer's commit removes the ones behind the checkpoint: never the same keys.
        self._finished: dict[int, int] = {}
        self._replay_segments: frozenset[int] = frozenset()
        self._checkpoint = Position(0, 0)
        self._oldest = 0  # the lowest segment not yet deleted
        self._freed = 0  # bytes of the segments deleted since open
        self._commit_listeners: list[Callable[[Position], None]] = []
        self._last_sync = 0.0
        self._synced_bytes = 0
        self._sync_from = 0
        self.first_new_segment = 0
        # Counters of this side; each is written by one thread.
        self.read_records = 0  # pipeline thread
        self.replayed = 0  # pipeline thread: records left by an earlier run
        self.replay_total = 0  # found at open
        self.torn_records = 0

    # -- opening ------------------------------------------------------------------------
    def open(self) -> None:
        """Find what an earlier run left behind; the writer starts a new segment after it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        os.close(take_writer_lock(self.folder, _OLD_WRITER_WAIT))
        self._checkpoint = self._load_checkpoint()
        segments: dict[int, int] = {}
        for path in sorted(self.folder.glob("seg-*.log")):
            number = segment_number(path)
            if number < self._checkpoint.segment:
                path.unlink()  # committed before the last stop
                continue
            segments[number] = path.stat().st_size
        self.first_new_segment = max(segments, default=self._checkpoint.segment) + 1
        self._replay_segments = frozenset(segments)
        self._finished = dict(segments)
        self._oldest = min(segments, default=self.first_new_segment)
        self._sync_from = self.first_new_segment
        self._read = max(self._checkpoint,
                         Position(min(segments, default=self.first_new_segment), 0))
        self.replay_total = self._count_records_from(self._read, segments)
        state = self.state = create_state(self.folder)
        state.active_segment = self.first_new_segment
        state.initial_bytes = sum(segments.values())
        state.released_bytes = self._released(self._checkpoint)
        state.not_listening_since = time.time()
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

    def _count_records_from(self, start: Position, segments: dict[int, int]) -> int:
        count = 0
        for number in sorted(segments):
            if number < start.segment:
                continue
            data = segment_path(self.folder, number).read_bytes()
            count += whole_records(data, start.offset if number == start.segment else 0)[0]
        return count

    def writer_config(self) -> dict[str, object]:
        """What a writer in another process needs to journal into this spool."""
        return {"spool_folder": str(self.folder.resolve()), "spool_max_bytes": self.max_bytes,
                "spool_segment_bytes": self.segment_bytes}

    # -- writing from this process (the stream reader, tests) ---------------------------
    def append(self, payload: bytes, received: float) -> Position | None:
        """Journal one payload and return the position after it; None (counted, logged) when
        the spool is full or the disk fails."""
        if self._writer is None:
            assert self.state is not None, "open the spool first"
            self._writer = SpoolWriter(self.folder, self.state, self.max_bytes,
                                       self.segment_bytes)
        return self._writer.append((payload,), received)

    # -- the pipeline thread ------------------------------------------------------------
    def read(self, max_records: int, timeout: float) -> tuple[list[tuple[bytes, float]], Position]:
        """Up to `max_records` payloads in order, and the position after them.

        Waits up to `timeout` for data when there is none.
        """
        records = self._read_some(max_records) if self.unread > 0 else []
        if not records and timeout > 0:
            deadline = time.monotonic() + timeout
            self._wakeup.clear()
            while not records:
                left = deadline - time.monotonic()
                if left <= 0 or self._wakeup.wait(min(_POLL_SECONDS, left)):
                    break
                if self.unread > 0:
                    records = self._read_some(max_records)
        self.read_records += len(records)
        self.sync_if_due()
        return records, self._read

    def _read_some(self, max_records: int) -> list[tuple[bytes, float]]:
        records: list[tuple[bytes, float]] = []
        state = self.state
        assert state is not None, "open the spool first"
        while len(records) < max_records:
            segment, offset = self._read.segment, self._read.offset
            # Read `active_segment` before the size: a segment it has passed is complete.
            finished = segment < state.active_segment
            end = self._segment_end(segment, finished)
            if end is None or offset >= end:
                if not finished:
                    return records
                self._read = Position(segment + 1, 0)
                continue
            data = self._pread(segment, min(end - offset, _READ_BYTES), offset)
            if len(data) >= HEADER.size:
                whole = HEADER.size + HEADER.unpack_from(data, 0)[0]
                if whole > len(data) and offset + whole <= end:
                    data = self._pread(segment, whole, offset)  # one record beyond _READ_BYTES
            pos = self._parse(data, records, max_records, segment in self._replay_segments)
            if pos == 0:
                if finished:
                    # A record cut short by a crash at the end of an old segment.
                    self.torn_records += 1
                    log.error("spool segment %d ends in a torn record (%d bytes skipped)",
                              segment, end - offset)
                    self._read = Position(segment + 1, 0)
                    continue
                return records  # the rest of a record the writer is still writing
            self._read = Position(segment, offset + pos)
        return records

    def _segment_end(self, segment: int, finished: bool) -> int | None:
        """The segment's size (None: not there); final once the segment is finished."""
        size = self._finished.get(segment)
        if size is not None:
            return size
        try:
            fd = self._read_fd_for(segment)
        except FileNotFoundError:
            return None
        size = os.fstat(fd).st_size
        if finished:
            self._finished[segment] = size
        return size

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

    def _read_fd_for(self, segment: int) -> int:
        if self._read_fd_segment != segment:
            fd = os.open(segment_path(self.folder, segment), os.O_RDONLY)
            if self._read_fd >= 0:
                os.close(self._read_fd)
            self._read_fd, self._read_fd_segment = fd, segment
        return self._read_fd

    def _pread(self, segment: int, size: int, offset: int) -> bytes:
        return os.pread(self._read_fd_for(segment), size, offset)

    def sync_if_due(self, force: bool = False) -> None:
        """fsync what was journaled, in batches: a kill -9 loses nothing written; a power cut
        loses at most `fsync_interval` seconds of journal. Done here, not by the writer, so
        the reader never waits on the disk."""
        now = time.monotonic()
        state = self.state
        if state is None or (not force and now - self._last_sync < self.fsync_interval):
            return
        self._last_sync = now
        written = state.written_bytes
        if written == self._synced_bytes:
            return
        active = state.active_segment
        for segment in range(self._sync_from, active + 1):
            try:
                fd = os.open(segment_path(self.folder, segment), os.O_RDONLY)
            except FileNotFoundError:
                continue  # already committed and deleted, or not made yet
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
        self._sync_from = active
        self._synced_bytes = written

    def wake(self) -> None:
        self._wakeup.set()

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
        for segment in range(self._oldest, position.segment):
            path = segment_path(self.folder, segment)
            size = self._finished.pop(segment, None)
            try:
                if size is None:
                    size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                size = 0
            self._freed += size
        self._oldest = max(self._oldest, position.segment)
        if self.state is not None:
            self.state.released_bytes = self._released(position)
        for listener in self._commit_listeners:
            listener(position)

    def _released(self, checkpoint: Position) -> int:
        """Bytes given back: deleted segments, and the committed part of the checkpoint's."""
        exists = (checkpoint.segment >= self.first_new_segment
                  or checkpoint.segment in self._replay_segments)
        return self._freed + (checkpoint.offset if exists else 0)

    # -- status -------------------------------------------------------------------------
    @property
    def appended(self) -> int:
        return self.state.appended if self.state is not None else 0

    @property
    def refused(self) -> int:
        """Payloads the writer could not journal: the spool was full, or the disk failed."""
        return self.state.refused if self.state is not None else 0

    @property
    def pending_bytes(self) -> int:
        """Bytes on disk not yet committed to the store."""
        state = self.state
        if state is None:
            return 0
        return state.initial_bytes + state.written_bytes - state.released_bytes

    @property
    def unread(self) -> int:
        """Records journaled but not yet read by the pipeline."""
        return self.appended + self.replay_total - self.read_records

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.sync_if_due(force=True)
        if self._read_fd >= 0:
            os.close(self._read_fd)
            self._read_fd = -1
            self._read_fd_segment = -1
