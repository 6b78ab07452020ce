"""Delivery of alert notices to ALERT_WEBHOOK_URL, on its own thread.

Each notice is one JSON POST: Slack-compatible (`text`) plus the structured fields. Failures
are retried with capped exponential backoff and jitter; a 429's `Retry-After` is honoured;
after `max_tries` the notice is given up and counted. The queue is bounded and `send` never
blocks, so a slow or dead receiver never holds up the ingest.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from redis.backoff import ExponentialWithJitterBackoff

from alerts.rules import Notice
from queries.records import as_utc

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 300.0


@dataclass
class DeliveryStats:
    delivered: int = 0
    failed: int = 0  # given up after max_tries, or dropped from a full queue
    retries: int = 0
    last_error: str | None = None
    last_delivered_at: datetime | None = None
    last_latency: float | None = None


def payload_of(notice: Notice) -> dict[str, object]:
    return {"text": notice.text(), "kind": notice.kind, **notice.alert}


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (as_utc(moment) - datetime.now(UTC)).total_seconds())


class WebhookNotifier(threading.Thread):
    def __init__(self, url: str, max_tries: int = 5, timeout: float = 5.0,
                 backoff: ExponentialWithJitterBackoff | None = None,
                 queue_size: int = 1000) -> None:
        super().__init__(name="alert-webhook", daemon=True)
        self.url = url
        self.max_tries = max_tries
        self.timeout = timeout
        self.backoff = backoff or ExponentialWithJitterBackoff(cap=30.0, base=0.5)
        self._queue: queue.Queue[tuple[Notice, float]] = queue.Queue(queue_size)
        self._stop_event = threading.Event()
        self.stats = DeliveryStats()

    def send(self, notice: Notice) -> None:
        """Queue a notice; never blocks (a full queue counts as a failed delivery)."""
        try:
            self._queue.put_nowait((notice, time.monotonic()))
        except queue.Full:
            self.stats.failed += 1
            self.stats.last_error = "notification queue full"
            log.error("alert notification dropped: the webhook queue is full")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                notice, queued = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            self._deliver(notice, queued)

    def _deliver(self, notice: Notice, queued: float) -> None:
        body = json.dumps(payload_of(notice)).encode("utf-8")
        for attempt in range(1, self.max_tries + 1):
            wait = self._post(body, notice.key)
            if wait is None:
                self.stats.delivered += 1
                self.stats.last_delivered_at = datetime.now(UTC)
                self.stats.last_latency = time.monotonic() - queued
                return
            if attempt == self.max_tries or self._stop_event.is_set():
                break
            self.stats.retries += 1
            if self._stop_event.wait(wait if wait > 0 else self.backoff.compute(attempt)):
                break
        self.stats.failed += 1
        log.error("gave up delivering a %s notice for %s/%s after %d tries: %s", notice.kind,
                  notice.alert.get("rule"), notice.alert.get("key"), self.max_tries,
                  self.stats.last_error)

    def _post(self, body: bytes, key: str | None = None) -> float | None:
        """None when delivered; else seconds to wait (0: use the backoff)."""
        wait, error = post(self.url, body, self.timeout, key)
        if error is not None:
            self.stats.last_error = error
        return wait


def post(url: str, body: bytes, timeout: float,
         idempotency_key: str | None = None) -> tuple[float | None, str | None]:
    """POST one notice: (None, None) when delivered; else (seconds to wait, 0 for the
    backoff; what failed). `Idempotency-Key` lets a receiver drop a repeat of one notice."""
    headers = {"Content-Type": "application/json", "User-Agent": "tickstock-error-monitor"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
        return None, None
    except urllib.error.HTTPError as exc:
        if exc.code == 429:
            after = retry_after_seconds(exc.headers.get("Retry-After"))
            if after is not None:
                return min(after, MAX_RETRY_AFTER), f"HTTP {exc.code}"
        return 0.0, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        # The URL may hold a token: say what failed, never where.
        reason = getattr(exc, "reason", exc)
        return 0.0, f"{type(exc).__name__}: {reason}"
