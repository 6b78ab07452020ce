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
from ingest.normalise import Limits, is_recurrence_id, normalise, recurrence_id
from ingest.spool import Spool
from live.ring_buffer import Entry, RingBuffer
from queries.records import SEVERITY_RANK, ErrorEvent, Rejection, iso_utc, new_event

log = logging.getLogger(__name__)

# Called with the ring entries (sequence number and event) that were new in a chunk.
EntryListener = Callable[[Sequence[Entry]], None]
# Producers (`source`) whose clocks are followed; past it the table starts again, so a
# producer that sends a new source name with every message cannot grow it without end.
MAX_CLOCK_SOURCES = 1000
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
        # The latest event of each producer, for its clock skew (`clock_skew`).
        self.latest_by_source: dict[str, ErrorEvent] = {}
        # Identical messages without an id or a timestamp, received in one read (one time
        # stamp): how many of each id so far, so that each gets its own id (normalise.py).
        self._recurrence_stamp: float | None = None
        self._recurrences: dict[str, int] = {}

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

    def _own_recurrence_id(self, event: ErrorEvent, received: float) -> ErrorEvent:
        """The n-th identical message of one time received gets `<id>.<n>` (from n = 2).

        The same spool records give the same ids again on a replay, so a replay stays
        harmless; only a crash inside such a run of copies can merge a few of them.
        """
        if received != self._recurrence_stamp:
            self._recurrence_stamp = received
            self._recurrences = {}
        seen = self._recurrences.get(event.error_id, 0) + 1
        self._recurrences[event.error_id] = seen
        if seen == 1:
            return event
        e = event
        return new_event(recurrence_id(e.error_id, seen), e.error_type, e.error_message,
                         e.error_traceback, e.severity, e.category, e.source, e.component,
                         e.operation, e.symbol, e.context, e.timestamp, e.received_at,
                         e.fingerprint, e.is_test)

    def clock_skew(self, warn_seconds: float) -> list[dict[str, Any]]:
        """Each producer's clock against ours, from its latest message: skew = its timestamp
        minus the time received (seconds), flagged past `warn_seconds`; worst first."""
        rows = []
        for source, event in list(self.latest_by_source.items()):
            skew = event.clock_skew_seconds
            rows.append({"source": source, "skewSeconds": round(skew, 3),
                         "lastReceivedAt": iso_utc(event.received_at),
                         "flagged": abs(skew) >= warn_seconds})
        rows.sort(key=lambda r: -abs(r["skewSeconds"]))
        return rows

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
        latest = self.latest_by_source
        if len(latest) > MAX_CLOCK_SOURCES:
            latest.clear()
        for payload, received in items:
            if received != last_received:
                received_at = datetime.fromtimestamp(received, UTC)
                last_received = received
            result = normalise_one(payload, received_at, limits)
            if isinstance(result, Rejection):
                rejected.append(result)
                if error_log is not None:
                    write_rejection(error_log, result)
                continue
            if is_recurrence_id(result.error_id):
                result = self._own_recurrence_id(result, received)
            latest[result.source] = result
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
