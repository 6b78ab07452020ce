"""The thread between the spool and the writer: normalise, log, keep the latest, hand on.

It reads the spool in order, in chunks, so its per-message cost is normalisation and little
else. When the writer's backlog passes its bound (the database is away, or slower than the
flood), it stops reading: what arrives meanwhile waits in the spool on disk, not in memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ingest.batch_writer import BatchWriter
from ingest.external import ExternalPosition, normalise_record
from ingest.file_log import write_event, write_rejection
from ingest.normalise import Limits, normalise
from ingest.spool import Spool
from live.ring_buffer import Entry, RingBuffer
from queries.records import SEVERITY_RANK, ErrorEvent, Rejection

log = logging.getLogger(__name__)

# Called with the ring entries (sequence number and event) that were new in a chunk.
EntryListener = Callable[[Sequence[Entry]], None]
Normaliser = Callable[[bytes, datetime, Limits], ErrorEvent | Rejection]


class Pipeline(threading.Thread):
    def __init__(
        self,
        spool: Spool,
        writer: BatchWriter,
        ring: RingBuffer,
        limits: Limits,
        store_min_severity: str = "warning",
        error_log: logging.Logger | None = None,
        max_backlog: int = 200_000,
        chunk: int = 2000,
        external: Spool | None = None,
    ) -> None:
        """`external`: the spool of events from the processing channels (ingest/external.py),
        read beside the main one."""
        super().__init__(name="ingest-pipeline", daemon=True)
        self.spool = spool
        self.writer = writer
        self.ring = ring
        self.limits = limits
        self.min_rank = SEVERITY_RANK[store_min_severity]
        self.error_log = error_log
        self.max_backlog = max_backlog
        self.chunk = chunk
        self.external = external
        self.listeners: list[EntryListener] = []
        self._stop_event = threading.Event()
        # Written by this thread only; read by the status views.
        self.processed = 0
        self.accepted = 0
        self.rejected = 0
        self.log_only = 0
        self.by_severity: dict[str, int] = dict.fromkeys(SEVERITY_RANK, 0)

    def add_listener(self, listener: EntryListener) -> None:
        """`listener(entries)` is called with the new entries of each chunk, on this thread.

        A re-sent copy of an error still in the ring buffer is not new and is not passed on,
        so listeners (alerts, the live feed) do not count it twice."""
        self.listeners.append(listener)

    def stop(self, timeout: float = 10.0) -> None:
        """Process what the spool holds (while the writer keeps up), then end the thread."""
        self._stop_event.set()
        self.spool.wake()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        while True:
            stopping = self._stop_event.is_set()
            if self.writer.pending >= self.max_backlog:
                if stopping:
                    break  # the rest stays in the spool for the next start
                self.spool.sync_if_due()  # the journal keeps growing meanwhile
                time.sleep(0.02)
                continue
            took_external = self._read_external()
            items, position = self.spool.read(
                self.chunk, timeout=0.0 if stopping or took_external else 0.2)
            if not items:
                if stopping and not took_external:
                    break
                continue
            try:
                self.process(items, position)
            except Exception:
                log.exception("pipeline failed on a chunk of %d messages", len(items))

    def _read_external(self) -> bool:
        """Process a chunk of the external spool, if it holds any; True if it did."""
        external = self.external
        if external is None or external.unread <= 0:
            return False
        items, position = external.read(self.chunk, timeout=0.0)
        if not items:
            return False
        try:
            self.process(items, ExternalPosition(position), normalise_record)
        except Exception:
            log.exception("pipeline failed on a chunk of %d external events", len(items))
        return True

    def process(self, items: Sequence[tuple[bytes, float]], position: Any = None,
                normalise_one: Normaliser = normalise) -> None:
        """Normalise a chunk of (payload, received time) and hand it on; `position` (the
        spool's, after the chunk) is passed to the writer to be checkpointed once stored.
        `normalise_one` reads the external spool's records (channel and payload)."""
        accepted: list[ErrorEvent] = []
        rejected: list[Rejection] = []
        limits = self.limits
        min_rank = self.min_rank
        error_log = self.error_log
        by_severity = self.by_severity
        last_received = None
        received_at = None
        for payload, received in items:
            if received != last_received:
                received_at = datetime.fromtimestamp(received, UTC)
                last_received = received
            result = normalise_one(payload, received_at, limits)  # type: ignore[arg-type]
            if isinstance(result, Rejection):
                rejected.append(result)
                if error_log is not None:
                    write_rejection(error_log, result)
                continue
            by_severity[result.severity] += 1
            if error_log is not None:
                write_event(error_log, result)
            if SEVERITY_RANK[result.severity] >= min_rank:
                accepted.append(result)
            else:
                self.log_only += 1
        self.processed += len(items)
        self.accepted += len(accepted)
        self.rejected += len(rejected)
        if rejected:
            log.warning("rejected %d malformed messages (first: %s)", len(rejected),
                        rejected[0].reason)
        self.writer.submit(accepted, rejected, position)
        entries = self.ring.extend(accepted) if accepted else []
        if entries:
            for listener in self.listeners:
                try:
                    listener(entries)
                except Exception:
                    log.exception("listener %r failed", listener)
