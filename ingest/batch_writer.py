"""The threads that write accepted events and dead letters to the store in batches.

A batch is written when it reaches `max_rows`, or when its oldest event has waited
`max_wait` seconds, so a lone error is stored within a fraction of a second and a flood goes
in large batches. While the database is away the batch is kept and retried with capped
backoff; nothing is thrown away.

Two threads share the work so that the database is never idle while Python works, nor Python
while the database does: the stager takes the next batch and COPYs it into a staging table on
one connection while the writer inserts and commits the previous one on another. Batches are
committed one at a time, in the order they were taken (the stager waits for a free
connection), so the commit checkpoint, the error groups and the locks see one writer, as before.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.backoff import ExponentialWithJitterBackoff

from queries.records import ErrorEvent, Rejection
from queries.store import BatchResult, ErrorStore, StoreUnavailable

log = logging.getLogger(__name__)


@dataclass
class _Job:
    """A batch on its way: taken by the stager, committed by the writer."""

    store: ErrorStore
    batch: list[tuple[ErrorEvent, float]]  # (event, submitted at): put back as they came
    events: list[ErrorEvent]
    rejections: list[Rejection]
    generation: int
    staged: bool = False
    rows_done: bool = False


class BatchWriter(threading.Thread):
    def __init__(self, store: ErrorStore, max_rows: int = 5000, max_wait: float = 0.1,
                 backoff: ExponentialWithJitterBackoff | None = None,
                 on_commit: Callable[[Any], None] | None = None) -> None:
        super().__init__(name="ingest-batch-writer", daemon=True)
        self.store = store
        self.max_rows = max_rows
        self.max_wait = max_wait
        self.backoff = backoff or ExponentialWithJitterBackoff(cap=4.0, base=0.25)
        self._events: deque[tuple[ErrorEvent, float]] = deque()
        self._rejections: deque[Rejection] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._stop_event = threading.Event()
        self._flush_deadline = 0.0
        # Markers say "all submitted before me is in": (events submitted so far, the batch
        # generation at submit, the caller's position). `on_commit(position)` is called once
        # every event and dead letter submitted before a marker is committed.
        self.on_commit = on_commit
        self._markers: deque[tuple[int, int, Any]] = deque()
        self.batch_listeners: list[Callable[[BatchResult], None]] = []
        self._submitted = 0
        self._committed = 0
        self._generation = 0
        self._in_flight = 0  # events taken by the stager and not yet committed
        # Two connections when batches can be staged: one stages while the other commits.
        self.stores = [store, store.twin()] if store.can_stage else [store]
        self._free: queue.Queue[ErrorStore] = queue.Queue()
        for each in self.stores:
            self._free.put(each)
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=1)
        self._closed = threading.Event()  # the writer gave up at stop: the stager ends too
        self._stager = threading.Thread(target=self._stage_loop, name="ingest-batch-stager",
                                        daemon=True)
        # Written by the writer thread only; read by the status views.
        self.stored = 0
        self.duplicates = 0
        self.refused = 0
        self.dead_letters_stored = 0
        self.batches = 0
        self.last_batch_rows = 0
        self.last_batch_seconds = 0.0
        self.last_store_latency = 0.0  # received -> committed, for the oldest row of a batch
        self.outages: list[tuple[datetime, datetime | None, str]] = []
        self.last_commit_at: datetime | None = None
        self.store_ok: bool | None = None
        self.store_down_since: datetime | None = None
        self.last_error: str | None = None

    # -- called by the pipeline ---------------------------------------------------------
    def submit(self, events: Sequence[ErrorEvent], rejections: Sequence[Rejection] = (),
               position: Any = None) -> None:
        """Queue events and dead letters; `position` is reported to `on_commit` once they
        (and everything before them) are committed."""
        if not events and not rejections and position is None:
            return
        now = time.monotonic()
        with self._cond:
            # The stager sleeps until there is work (markers of batches in flight are not
            # work for it), then waits for a full batch or the first event's deadline.
            was_idle = not self._work_waiting()
            self._events.extend((e, now) for e in events)
            self._rejections.extend(rejections)
            self._submitted += len(events)
            if position is not None:
                self._markers.append((self._submitted, self._generation, position))
            if was_idle or len(self._events) >= self.max_rows:
                self._cond.notify()

    @property
    def pending(self) -> int:
        """Events not yet committed: waiting for a batch, or in one being written."""
        return len(self._events) + self._in_flight

    @property
    def pending_rejections(self) -> int:
        return len(self._rejections)

    def start(self) -> None:
        super().start()
        self._stager.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Write everything pending (retrying for up to `timeout` s), then end the threads."""
        with self._cond:
            self._stopping = True
            self._flush_deadline = time.monotonic() + timeout
            self._cond.notify_all()
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout + 5)
        self._closed.set()
        if self._stager.is_alive():
            self._stager.join(5)
        left = self.pending + self.pending_rejections
        if left:
            log.error("stopped with %d events and %d dead letters not written: %s",
                      self.pending, self.pending_rejections, self.last_error)
        for store in self.stores:
            store.close()

    # -- the stager thread --------------------------------------------------------------
    def _stage_loop(self) -> None:
        while True:
            store = self._take(self._free)
            if store is None:
                return
            batch, rejections, generation = self._next_batch()
            if batch is None:
                self._free.put(store)
                self._give(None)
                return
            job = _Job(store, batch, [event for event, _ in batch], rejections, generation)
            if job.events:
                job.staged = store.stage(job.events)
            if not self._give(job):
                self._put_back(job)
                return

    def _take(self, source: queue.Queue[Any]) -> Any:
        while not self._closed.is_set():
            try:
                return source.get(timeout=0.2)
            except queue.Empty:
                continue
        return None

    def _give(self, job: _Job | None) -> bool:
        while not self._closed.is_set():
            try:
                self._jobs.put(job, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _next_batch(self) -> tuple[list[tuple[ErrorEvent, float]] | None, list[Rejection], int]:
        with self._cond:
            while not self._work_waiting():
                if self._stopping:
                    return None, [], 0
                self._cond.wait(0.5)
            if self._events and not self._stopping:
                deadline = self._events[0][1] + self.max_wait
                while len(self._events) < self.max_rows and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            take = min(self.max_rows, len(self._events))
            batch = [self._events.popleft() for _ in range(take)]
            self._in_flight += take
            rejections = list(self._rejections)
            self._rejections.clear()
            self._generation += 1
            return batch, rejections, self._generation

    def _work_waiting(self) -> bool:
        """Events or dead letters to take, or a marker that needs a batch taken after it (its
        dead letters came after the last batch was taken); other markers are done when the
        batches in flight are committed."""
        return bool(self._events or self._rejections
                    or (self._markers and self._markers[-1][1] >= self._generation))

    # -- the writer thread --------------------------------------------------------------
    def run(self) -> None:
        while True:
            job = self._take(self._jobs)
            if job is None:
                break
            if not self._commit(job):
                self._closed.set()  # stopping, and the store is still away: give up
                while True:
                    try:
                        later = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if later is not None:
                        self._put_back(later)
                self._put_back(job)
                break
            self._free.put(job.store)

    def _commit(self, job: _Job) -> bool:
        """Write the job, retrying while the store is away; False: stopping, and it never came
        back before the deadline."""
        attempt = 0
        while True:
            try:
                self._write(job)
                self._advance(len(job.batch), job.generation)
                return True
            except Exception as exc:
                job.staged = False  # a failed write rolled the staging table back
                attempt += 1
                if isinstance(exc, StoreUnavailable):
                    self._mark_down(exc)
                else:
                    log.exception("unexpected failure writing a batch of %d; retrying",
                                  len(job.batch))
                if self._stopping and time.monotonic() >= self._flush_deadline:
                    return False
                delay = self.backoff.compute(attempt)
                if self._stopping:  # the stop event is set: sleep, within the deadline
                    time.sleep(min(delay, max(0.0, self._flush_deadline - time.monotonic())))
                else:
                    self._stop_event.wait(delay)

    def _advance(self, rows: int, generation: int) -> None:
        """Report the furthest marker whose events and dead letters are all committed, one
        per kind of position: the main spool's and the external spool's (ingest/external.py)
        are checkpointed apart, so the furthest of each is reported, not only the last."""
        furthest: dict[type, Any] = {}
        with self._cond:
            self._committed += rows
            if self._rejections:
                return  # refused rows wait to be dead-lettered: not all is in yet
            while self._markers:
                count, submitted_in, marker = self._markers[0]
                if count > self._committed or submitted_in >= generation:
                    break
                self._markers.popleft()
                furthest[type(marker)] = marker
        if furthest and self.on_commit is not None:
            for position in furthest.values():
                try:
                    self.on_commit(position)
                except Exception:
                    log.exception("could not record the commit checkpoint")

    def _put_back(self, job: _Job) -> None:
        """Return a job that will not be written now to the front of the queue, so that
        what is left is counted (and, at the next start, taken again from the spool)."""
        with self._cond:
            if job.rows_done:
                self._committed += len(job.batch)
            else:
                self._in_flight -= len(job.batch)
                self._events.extendleft(reversed(job.batch))
            self._rejections.extendleft(reversed(job.rejections))

    def _write(self, job: _Job) -> None:
        if not job.batch and not job.rejections:
            return
        started = time.perf_counter()
        store = job.store
        if job.batch and not job.rows_done:
            staged, job.staged = job.staged, False
            result = store.write_batch(job.events, staged=staged)
            job.rows_done = True  # committed: a retry writes only the dead letters
            with self._cond:  # no longer pending, now stored: keep the counts' sum steady
                self._in_flight -= len(job.batch)
            if result.refused:
                log.warning("the database refused %d of %d rows; they are dead-lettered",
                            len(result.refused), len(job.batch))
                job.rejections.extend(result.refused)
            self.stored += result.inserted
            self.duplicates += result.duplicates
            for listener in self.batch_listeners:
                try:
                    listener(result)
                except Exception:
                    log.exception("batch listener %r failed", listener)
            self.refused += len(result.refused)
            self.batches += 1
            self.last_batch_rows = len(job.batch)
            oldest = min(event.received_at for event in job.events)
            self.last_store_latency = (datetime.now(UTC) - oldest).total_seconds()
        if job.rejections:
            store.write_rejections(job.rejections)
            self.dead_letters_stored += len(job.rejections)
            job.rejections = []  # written: a later failure must not write them twice
        self.last_batch_seconds = time.perf_counter() - started
        self.last_commit_at = datetime.now(UTC)
        if self.store_ok is not True:
            if self.store_down_since is not None:
                log.warning("the store is back after %.1f s",
                            (self.last_commit_at - self.store_down_since).total_seconds())
                if self.outages and self.outages[-1][1] is None:
                    self.outages[-1] = (self.outages[-1][0], self.last_commit_at,
                                        self.outages[-1][2])
            self.store_ok = True
            self.store_down_since = None

    def _mark_down(self, exc: StoreUnavailable) -> None:
        self.last_error = str(exc)
        if self.store_ok is not False:
            self.store_down_since = datetime.now(UTC)
            self.outages.append((self.store_down_since, None, str(exc)[:500]))
            del self.outages[:-100]
            log.error("the store is unreachable; %d events wait in memory: %s",
                      self.pending, exc)
        self.store_ok = False
