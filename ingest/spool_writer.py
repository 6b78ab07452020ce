"""The spool's one writer: appends payloads to the segment files, one `os.write` per batch.

It runs in the reader process (pub/sub, `ingest/reader.py`) or on the stream reader's thread.
A payload counts as appended only once the write holding it has returned, so once the monitor
says "received" the payload is in the kernel's hands and a `kill -9` cannot lose it. There is
no fsync here: the main process syncs the segments every `fsync_interval` (spool.py), so the
reader never waits on the disk.

The writer owns the segment files it writes; the main process reads them, following their
size, and deletes those wholly committed. A segment is finished once `active_segment` has
moved past it. `writer.lock` (flock) keeps a second writer off the spool, even one left
behind by a main process that was killed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from ingest.reader_state import ReaderState
from ingest.spool_format import (
    HEADER,
    WRITER_LOCK,
    Position,
    SpoolBusy,
    segment_path,
    whole_records,
)

log = logging.getLogger(__name__)


def take_writer_lock(folder: Path, timeout: float) -> int:
    """The spool's writer lock (an fd; closing it releases the lock). Raises SpoolBusy
    when another process keeps it for `timeout` seconds."""
    fd = os.open(folder / WRITER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise SpoolBusy(
                    f"SPOOL_DIR {folder} is in use by another ingest process; stop it, or "
                    "give each ingest process its own SPOOL_DIR") from None
            time.sleep(0.05)


class SpoolWriter:
    def __init__(self, folder: str | Path, state: ReaderState, max_bytes: int,
                 segment_bytes: int, lock_timeout: float = 10.0) -> None:
        self.folder = Path(folder)
        self.state = state
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock_fd = take_writer_lock(self.folder, lock_timeout)
        self._fd = -1
        self._last_refusal_log = 0.0
        self._last_write_error = ""
        self._torn = False
        segment = state.active_segment
        try:
            data = segment_path(self.folder, segment).read_bytes()
        except FileNotFoundError:
            data = b""
        if data:
            self._count_what_was_not_counted(segment, data)
        # A writer before this one (a reader process that died) may have been cut mid-write:
        # leave its segment as it is, finished, and start a clean one.
        self._open(segment + 1 if data else segment)

    def _count_what_was_not_counted(self, segment: int, data: bytes) -> None:
        """A writer killed between its write() and its counters left records on disk that
        were never counted as received: count them from the file, which is the truth."""
        state = self.state
        records = whole_records(data)[0]
        missed = state.segment_start_appended[segment % 2] + records - state.appended
        if missed > 0:
            log.warning("the spool writer before this one was stopped after writing %d "
                        "record(s) and before counting them; they are counted now", missed)
            state.written_bytes = max(state.written_bytes,
                                      state.segment_start_written[segment % 2] + len(data))
            state.appended += missed

    def _open(self, segment: int) -> None:
        self._fd = os.open(segment_path(self.folder, segment),
                           os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segment = segment
        self._size = 0
        state = self.state
        state.segment_start_appended[segment % 2] = state.appended
        state.segment_start_written[segment % 2] = state.written_bytes
        # Only once the file exists and its slot is set: from now on the segment before it
        # is finished.
        state.active_segment = segment

    def append(self, payloads: Sequence[bytes], received: float) -> Position | None:
        """Journal `payloads` with one write; the position after them, or None when none was
        taken (refused payloads, for a full spool or a failing disk, are counted and logged)."""
        state = self.state
        room = self.max_bytes - (state.initial_bytes + state.written_bytes
                                 - state.released_bytes)
        pack = HEADER.pack
        parts: list[bytes] = []
        sizes: list[int] = []
        total = 0
        for payload in payloads:
            size = HEADER.size + len(payload)
            if total + size > room:
                continue
            parts.append(pack(len(payload), received))
            parts.append(payload)
            sizes.append(size)
            total += size
        if len(sizes) < len(payloads):
            self._refuse(len(payloads) - len(sizes), f"the spool is full ({self.max_bytes} bytes)")
        if not sizes:
            return None
        if self._size and self._size + total > self.segment_bytes:
            self._rotate()
        kept, kept_bytes = self._write(b"".join(parts), sizes)
        if kept < len(sizes):
            self._refuse(len(sizes) - kept, f"cannot write the spool: {self._last_write_error}")
        self._size += kept_bytes
        state.written_bytes += kept_bytes
        state.appended += kept
        after = Position(self._segment, self._size)
        if self._torn:
            self._torn = False
            self._rotate()
        return after if kept else None

    def _write(self, data: bytes, sizes: list[int]) -> tuple[int, int]:
        """Write `data`; (records, bytes) that made it whole. A torn tail is cut off."""
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, view[written:])
            return len(sizes), written
        except OSError as exc:
            self._last_write_error = str(exc)
        # A disk error (ENOSPC) part-way: keep the whole records written, cut the rest, so
        # the main process (which may already have read those records) agrees with the count.
        kept = kept_bytes = 0
        for size in sizes:
            if kept_bytes + size > written:
                break
            kept += 1
            kept_bytes += size
        try:
            os.ftruncate(self._fd, self._size + kept_bytes)
        except OSError as exc:
            # The main process skips a torn record at the end of a finished segment.
            log.error("cannot cut a torn spool record (%s); starting a new segment", exc)
            self._torn = True
        return kept, kept_bytes

    def _refuse(self, count: int, reason: str) -> None:
        self.state.refused += count
        now = time.monotonic()
        if now - self._last_refusal_log > 10:
            self._last_refusal_log = now
            log.error("%s: %d message(s) refused (%d refused so far)", reason, count,
                      self.state.refused)

    def _rotate(self) -> None:
        os.close(self._fd)
        self._open(self._segment + 1)

    def close(self) -> None:
        if self._fd >= 0:
            os.fdatasync(self._fd)
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
