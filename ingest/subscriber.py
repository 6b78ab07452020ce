"""The one thread that reads `ERROR_CHANNEL`: it only reads and journals, nothing else.

Redis cuts a pub/sub client whose output buffer grows past its limit, so this thread never
parses, logs or waits on the database: each payload goes straight to the spool. It
reconnects by itself with capped exponential backoff and jitter (redis-py's
`ExponentialWithJitterBackoff`), resubscribes, and treats a link that stops answering its
health-check PINGs as dead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import redis
from redis.backoff import ExponentialWithJitterBackoff

log = logging.getLogger(__name__)

_READ_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class Subscriber(threading.Thread):
    """Reads the channel into `sink(payload, received_time)`; counts what it saw.

    `sink` must not block (the spool's append is one write to the page cache); what it
    refuses it counts itself.
    """

    def __init__(
        self,
        redis_url: str,
        channel: str,
        sink: Callable[[bytes, float], bool],
        health_check_interval: int = 10,
        backoff: ExponentialWithJitterBackoff | None = None,
    ) -> None:
        super().__init__(name="ingest-subscriber", daemon=True)
        self.redis_url = redis_url
        self.channel = channel
        self.sink = sink
        self.health_check_interval = health_check_interval
        self.backoff = backoff or ExponentialWithJitterBackoff(cap=2.0, base=0.1)
        self._stop_event = threading.Event()
        self._pubsub: redis.client.PubSub | None = None
        # Written by this thread only; read by the status views.
        self.received = 0
        self.reconnects = 0
        self.subscribed = False
        self.subscribed_since: datetime | None = None
        self.not_listening_since: datetime | None = datetime.now(UTC)
        self._last_received: float | None = None
        self.last_error: str | None = None
        self.gaps: list[tuple[datetime, datetime | None, str]] = []

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        attempt = 0
        while not self._stop_event.is_set():
            try:
                self._listen()
                attempt = 0
            except _READ_ERRORS as exc:
                self._lost(exc)
                attempt += 1
                delay = self.backoff.compute(attempt)
                log.warning("not listening on %s (%s); retrying in %.1f s",
                            self.channel, self.last_error, delay)
                self._stop_event.wait(delay)
            except Exception as exc:
                self._lost(exc)
                log.exception("subscriber failed unexpectedly; restarting it")
                attempt += 1
                self._stop_event.wait(self.backoff.compute(attempt))
        # A requested stop is not a gap in listening; only losses are recorded as gaps.
        self.subscribed = False
        self.subscribed_since = None

    def _listen(self) -> None:
        client = redis.Redis.from_url(
            self.redis_url,
            health_check_interval=self.health_check_interval,
            socket_connect_timeout=5,
            socket_keepalive=True,
            retry_on_timeout=False,
        )
        pubsub = client.pubsub()
        self._pubsub = pubsub
        try:
            pubsub.subscribe(self.channel)
            self._read(pubsub)
        finally:
            self._pubsub = None
            try:
                pubsub.close()
                client.close()
            except Exception:  # noqa: BLE001 - closing a broken link may fail too
                pass

    def _read(self, pubsub: redis.client.PubSub) -> None:
        sink = self.sink
        stop = self._stop_event
        ping_sent_at = 0.0
        dead_after = max(2.0 * self.health_check_interval, 5.0)
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.5)
            if message is None:
                # A PING that gets no PONG means a dead link that TCP has not noticed yet.
                if pubsub.health_check_response_counter > 0:
                    now = time.monotonic()
                    if not ping_sent_at:
                        ping_sent_at = now
                    elif now - ping_sent_at > dead_after:
                        raise redis.ConnectionError(
                            f"no answer to a health check for {dead_after:.0f} s")
                else:
                    ping_sent_at = 0.0
                continue
            kind = message["type"]
            if kind == "message":
                received = time.time()
                self.received += 1
                sink(message["data"], received)
                self._last_received = received
            elif kind == "subscribe":
                self._mark_subscribed()

    def last_message_time(self) -> datetime | None:
        received = self._last_received
        return None if received is None else datetime.fromtimestamp(received, UTC)

    def _mark_subscribed(self) -> None:
        now = datetime.now(UTC)
        if self.gaps and self.gaps[-1][1] is None:
            start, _, reason = self.gaps[-1]
            self.gaps[-1] = (start, now, reason)
            log.warning("listening again on %s after %.1f s", self.channel,
                        (now - start).total_seconds())
        else:
            log.info("listening on %s", self.channel)
        self.subscribed = True
        self.subscribed_since = now
        self.not_listening_since = None

    def _lost(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.subscribed:
            self.reconnects += 1
        self._mark_unsubscribed(self.last_error)

    def _mark_unsubscribed(self, reason: str) -> None:
        if self.subscribed:
            now = datetime.now(UTC)
            self.gaps.append((now, None, reason))
            del self.gaps[:-100]
            self.not_listening_since = now
        self.subscribed = False
        self.subscribed_since = None
