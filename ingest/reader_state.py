"""What the reader process and the main process share: one small struct in a mapped file.

The reader (its own process, `ingest/reader.py`) writes the spool and its link's state; the
main process reads them for the status, and writes back how much of the spool is committed
so that the reader can keep the spool under its cap. Every field has exactly one writer.
Counters and times are single aligned 8-byte words, which the other process always sees
whole; the spool's segment sizes come from the files themselves, so no field needs to agree
with another and no lock is shared between the processes (a lock held by a killed process
would hang the other one). The one place where counters and files can part is a writer
killed between its write() and its counters; the writer that follows counts the active
segment's records from the file, from where the segment began (`segment_start_*`).

The file lives in the spool folder (`reader.state`); it is rewritten at each start.
"""

from __future__ import annotations

import ctypes
import math
import mmap
import os
import time
from datetime import UTC, datetime
from pathlib import Path

GAP_SLOTS = 100
_REASON_BYTES = 240
_ERROR_BYTES = 480
STATE_FILE = "reader.state"


class _Gap(ctypes.Structure):
    _fields_ = [("start", ctypes.c_double), ("end", ctypes.c_double),
                ("reason", ctypes.c_char * _REASON_BYTES)]


class ReaderState(ctypes.Structure):
    """Times are epoch seconds, 0.0 meaning none."""

    _fields_ = [
        # The spool, written by its one writer.
        ("active_segment", ctypes.c_int64),
        ("appended", ctypes.c_int64),
        ("refused", ctypes.c_int64),
        ("written_bytes", ctypes.c_int64),
        # `appended` and `written_bytes` when segment n was begun, at [n % 2]: set before
        # `active_segment` moves to n, so the slot of the active segment is always complete.
        ("segment_start_appended", ctypes.c_int64 * 2),
        ("segment_start_written", ctypes.c_int64 * 2),
        # The spool, written by the main process: bytes found at open, bytes committed since.
        ("initial_bytes", ctypes.c_int64),
        ("released_bytes", ctypes.c_int64),
        # The link to Redis, written by the reader.
        ("subscribed", ctypes.c_int64),
        ("subscribed_since", ctypes.c_double),
        ("not_listening_since", ctypes.c_double),
        ("last_message", ctypes.c_double),
        ("reconnects", ctypes.c_int64),
        ("last_error", ctypes.c_char * _ERROR_BYTES),
        ("local_address", ctypes.c_char * 64),
        ("gap_count", ctypes.c_int64),
        ("gaps", _Gap * GAP_SLOTS),
    ]

    # -- written by the reader ----------------------------------------------------------
    def mark_subscribed(self) -> float | None:
        """Record a (re)subscription; returns how long the gap it closes lasted, if any."""
        now = time.time()
        closed = None
        if self.gap_count:
            gap = self.gaps[(self.gap_count - 1) % GAP_SLOTS]
            if gap.end == 0.0:
                gap.end = now
                closed = now - gap.start
        self.subscribed_since = now
        self.not_listening_since = 0.0
        self.subscribed = 1
        return closed

    def mark_lost(self, reason: str) -> None:
        """The link was lost (or never made): a gap opens if we were listening."""
        self.last_error = _cut(reason, _ERROR_BYTES)
        if self.subscribed:
            now = time.time()
            self.reconnects += 1
            gap = self.gaps[self.gap_count % GAP_SLOTS]
            gap.reason = _cut(reason, _REASON_BYTES)
            gap.end = 0.0
            gap.start = now
            self.gap_count += 1
            self.not_listening_since = now
        self.subscribed = 0
        self.subscribed_since = 0.0

    def mark_stopped(self) -> None:
        """A requested stop is not a gap in listening."""
        self.subscribed = 0
        self.subscribed_since = 0.0

    # -- read by the main process -------------------------------------------------------
    def gap_list(self) -> list[tuple[datetime, datetime | None, str]]:
        count = self.gap_count
        found = []
        for index in range(max(0, count - GAP_SLOTS), count):
            gap = self.gaps[index % GAP_SLOTS]
            start = moment(gap.start)
            if start is not None:
                found.append((start, moment(gap.end),
                              gap.reason.decode("utf-8", "replace")))
        return found

    def error_text(self) -> str | None:
        return self.last_error.decode("utf-8", "replace") or None


def _cut(text: str, size: int) -> bytes:
    # The field must end in NUL; a cut may split a character, which `replace` shows as such.
    return text.encode("utf-8", "replace")[:size - 1]


def moment(epoch: float) -> datetime | None:
    """A state time as a timezone-aware datetime (None for 0.0, or for a word no clock wrote).

    A status read must never fail the page that asked for it: a state file left by another
    build, or one cut short, can hold any bit pattern, and `fromtimestamp` raises on most.
    """
    if not epoch or not math.isfinite(epoch):
        return None
    try:
        return datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def create_state(folder: Path) -> ReaderState:
    """A fresh, zeroed state file in `folder`, mapped; the mapping lives as long as the struct."""
    path = folder / STATE_FILE
    # A new file, not the old one cut to zero: a mapping of the old one must never fault.
    path.unlink(missing_ok=True)
    with open(path, "wb") as file:
        file.truncate(ctypes.sizeof(ReaderState))
    return map_state(path)


def map_state(path: str | Path) -> ReaderState:
    """Map an existing state file (the reader process does this with the path it is given)."""
    fd = os.open(path, os.O_RDWR)
    try:
        memory = mmap.mmap(fd, ctypes.sizeof(ReaderState))
    finally:
        os.close(fd)
    # from_buffer keeps `memory` alive for as long as the struct is referenced.
    return ReaderState.from_buffer(memory)
