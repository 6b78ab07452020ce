"""Webhook deliveries through the `alert_outbox` table: exactly one notice per alert change.

The alert keeper writes a notice's row in the transaction that records the alert's change
(alerts/store.py save_alerts), so a notice exists if and only if its change was recorded:
a leader that dies before its commit leaves neither, and the next leader, evaluating the
same events again, makes it once. The sender (the leader's) posts each pending row with an
`Idempotency-Key` header (the row's id: the alert and its notice number) and marks it sent;
failures are retried with capped exponential backoff (a 429's Retry-After honoured) until
ALERT_WEBHOOK_MAX_TRIES. A crash between the POST and the mark makes the next sender post
it once more with the same key: the receiver can drop that one repeat.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.backoff import ExponentialWithJitterBackoff
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from alerts.rules import Notice
from alerts.webhook import DeliveryStats, payload_of, post
from queries.schema import alert_outbox

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def outbox_row(notice: Notice, now: datetime) -> dict[str, Any]:
    """The row that waits for delivery; its id is the notice's Idempotency-Key."""
    return {"id": notice.key, "alert_id": str(notice.alert.get("id")), "kind": notice.kind,
            "payload": json.dumps(payload_of(notice)), "state": "pending",
            "created_at": now, "next_try_at": now, "attempts": 0}


def due(engine: Engine, now: datetime, limit: int = 50) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(
            select(alert_outbox.c.id, alert_outbox.c.payload, alert_outbox.c.attempts)
            .where(alert_outbox.c.state == "pending", alert_outbox.c.next_try_at <= now)
            .order_by(alert_outbox.c.created_at, alert_outbox.c.id).limit(limit)))


def count_pending(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(alert_outbox)
                            .where(alert_outbox.c.state == "pending")).scalar_one()


def mark(engine: Engine, row_id: str, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(update(alert_outbox).where(alert_outbox.c.id == row_id).values(values))


@dataclass(frozen=True)
class _Row:
    id: str
    payload: str
    attempts: int


class OutboxSender(threading.Thread):
    """Delivers the outbox's pending rows while `may_send()` (this process leads)."""

    def __init__(self, url: str, db: Engine, max_tries: int = 5, timeout: float = 5.0,
                 backoff: ExponentialWithJitterBackoff | None = None,
                 may_send: Callable[[], bool] | None = None, poll: float = 0.5,
                 clock: Clock | None = None) -> None:
        super().__init__(name="alert-outbox", daemon=True)
        self.url = url
        self.db = db
        self.max_tries = max_tries
        self.timeout = timeout
        self.backoff = backoff or ExponentialWithJitterBackoff(cap=30.0, base=0.5)
        self.may_send = may_send or (lambda: True)
        self.poll = poll
        self.clock = clock or (lambda: datetime.now(UTC))
        self.stats = DeliveryStats()
        self.pending = 0  # as last counted
        self._wake = threading.Event()
        self._stop_event = threading.Event()
        self._fresh: deque[_Row] = deque()
        self._fresh_lock = threading.Lock()
        # Rows this sender finished (sent or given up): a row can be both handed over and
        # found by the poll that ran before the hand-over, and must go out once.
        self._finished: set[str] = set()
        self._finished_order: deque[str] = deque()

    def wake(self, committed: Sequence[dict[str, Any]] = ()) -> None:
        """New rows were committed: send them now (handed over as they were written, so no
        query stands between the commit and the POST), rather than at the next poll."""
        with self._fresh_lock:
            self._fresh.extend(_Row(r["id"], r["payload"], r["attempts"]) for r in committed)
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        while not self._stop_event.is_set():
            self._wake.wait(self.poll)
            self._wake.clear()
            if self._stop_event.is_set():
                continue
            if not self.may_send():
                with self._fresh_lock:  # the leader's to send, from the table
                    self._fresh.clear()
                continue
            try:
                self.send_due()
            except SQLAlchemyError as exc:
                self.stats.last_error = f"outbox: {str(exc).splitlines()[0]}"
            except Exception:
                log.exception("alert outbox sender failed; carrying on")

    def send_due(self) -> None:
        """Post the rows just committed, then every other row that is due, oldest first."""
        while True:
            with self._fresh_lock:
                if not self._fresh:
                    break
                fresh = self._fresh.popleft()
            if self._stop_event.is_set() or not self.may_send():
                return
            self._deliver(fresh)
        for row in due(self.db, self.clock()):
            if self._stop_event.is_set() or not self.may_send():
                return
            self._deliver(row)
        self.pending = count_pending(self.db)

    def _finish(self, row_id: str) -> None:
        self._finished.add(row_id)
        self._finished_order.append(row_id)
        while len(self._finished_order) > 10_000:
            self._finished.discard(self._finished_order.popleft())

    def _deliver(self, row: _Row | Any) -> None:
        if row.id in self._finished:
            return
        started = time.monotonic()
        wait, error = post(self.url, row.payload.encode("utf-8"), self.timeout, row.id)
        now = self.clock()
        attempts = row.attempts + 1
        if wait is None:
            self._finish(row.id)
            mark(self.db, row.id, state="sent", sent_at=now, attempts=attempts,
                 last_error=None)
            self.stats.delivered += 1
            self.stats.last_delivered_at = now
            self.stats.last_latency = time.monotonic() - started
            return
        self.stats.last_error = error
        if attempts >= self.max_tries:
            self._finish(row.id)
            mark(self.db, row.id, state="failed", attempts=attempts,
                 last_error=(error or "")[:300])
            self.stats.failed += 1
            log.error("gave up delivering alert notice %s after %d tries: %s", row.id,
                      attempts, error)
            return
        self.stats.retries += 1
        delay = wait if wait and wait > 0 else self.backoff.compute(attempts)
        mark(self.db, row.id, attempts=attempts, last_error=(error or "")[:300],
             next_try_at=now + timedelta(seconds=delay))
