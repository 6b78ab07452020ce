"""The reader of the processing channels: one Redis connection subscribed to every channel of
PROCESSING_CHANNELS (a name with `*` is a pattern), the monitor's only connection to them.

Run events go to the run tracker; `processing_error` and serious `ALERT_TRIGGERED` events are
handed to the ingest as errors with their channel; events of unknown shape on the run
channels are dead-lettered with their channel; the rest is ignored. It never subscribes to a
channel TickStockPL must listen on (settings.py refuses such a list): a subscriber there
would be counted in the producer's PUBLISH reply and hide a missing data loader.

It reconnects with capped exponential backoff and jitter, and resubscribes; a link that stops
answering its health-check PINGs counts as dead.

In a Redis Cluster (REDIS_CLUSTER=true) the channels are shard channels (SSUBSCRIBE, one
connection per node that owns one of them) and there are no patterns (settings.py says so).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import redis
from redis.backoff import ExponentialWithJitterBackoff

from jobs.events import ERROR, RUN, UNKNOWN, Classified, classify
from jobs.rules import RunTracker
from live import redis_client
from queries.records import iso_utc

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Sink = Callable[[bytes, str], bool]  # (raw, channel) -> journaled
DeadLetter = Callable[[bytes, str, str], bool]  # (raw, channel, reason) -> journaled


class ProcessingReader(threading.Thread):
    def __init__(self, redis_url: str, channels: Sequence[str], runs: RunTracker,
                 submit_error: Sink, dead_letter: DeadLetter,
                 on_listening: Callable[[datetime], None] | None = None,
                 clock: Clock | None = None, health_check_interval: int = 10) -> None:
        super().__init__(name="jobs-processing-reader", daemon=True)
        self.redis_url = redis_url
        self.channels = [c for c in channels if "*" not in c]
        self.patterns = [c for c in channels if "*" in c]
        self.runs = runs
        self.submit_error = submit_error
        self.dead_letter = dead_letter
        self.on_listening = on_listening or (lambda since: None)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.health_check_interval = health_check_interval
        self.backoff = ExponentialWithJitterBackoff(cap=2.0, base=0.1)
        self._stop_event = threading.Event()
        # Written by this thread; read by the status.
        self.subscribed = False
        self.subscribed_since: datetime | None = None
        self.last_error: str | None = None
        self.reconnects = 0
        self.counts = {"events": 0, "run": 0, "error": 0, "unknown": 0, "ignore": 0,
                       "refused": 0}
        self.last_event_at: datetime | None = None

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def status(self) -> dict[str, object]:
        return {"thread": self.name, "alive": self.is_alive(), "subscribed": self.subscribed,
                "subscribedSince": iso_utc(self.subscribed_since)
                if self.subscribed_since else None,
                "channels": self.channels, "patterns": self.patterns,
                "lastError": self.last_error, "reconnects": self.reconnects,
                "counts": dict(self.counts),
                "lastEventAt": iso_utc(self.last_event_at) if self.last_event_at else None}

    def run(self) -> None:
        attempt = 0
        while not self._stop_event.is_set():
            try:
                self._listen()
                attempt = 0
            except Exception as exc:  # a reader must never die silently
                self.subscribed = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, redis.RedisError | OSError):
                    log.exception("processing reader failed; reconnecting")
                attempt += 1
                self.reconnects += 1
                self._stop_event.wait(self.backoff.compute(attempt))
        self.subscribed = False

    def _listen(self) -> None:
        client = redis_client.connect(self.redis_url, socket_connect_timeout=5,
                                      socket_keepalive=True,
                                      health_check_interval=self.health_check_interval)
        pubsub = client.pubsub()
        try:
            if self.channels:
                redis_client.subscribe(pubsub, self.channels, redis_client.is_cluster(client))
            if self.patterns:
                pubsub.psubscribe(*self.patterns)
            waiting = len(self.channels) + len(self.patterns)
            while not self._stop_event.is_set():
                message = redis_client.get_message(pubsub, timeout=0.5)
                if message is None:
                    continue
                kind = message["type"]
                if kind in ("subscribe", "psubscribe"):
                    waiting -= 1
                    if waiting == 0 and not self.subscribed:
                        self.subscribed = True
                        self.subscribed_since = self.clock()
                        self.last_error = None
                        self.on_listening(self.subscribed_since)
                elif kind in ("message", "pmessage"):
                    channel = message["channel"]
                    if isinstance(channel, bytes):
                        channel = channel.decode("utf-8", "replace")
                    data = message["data"]
                    self.handle(data if isinstance(data, bytes) else str(data).encode(),
                                channel)
        finally:
            self.subscribed = False
            pubsub.close()
            client.close()

    def handle(self, raw: bytes, channel: str) -> str:
        """Route one event; returns what it was (run, error, unknown, ignore)."""
        now = self.clock()
        self.counts["events"] += 1
        self.last_event_at = now
        found = classify(raw, channel)
        kind = found.kind
        if kind == RUN:
            assert found.document is not None and found.phase and found.step
            if self.runs.observe(found.document, found.phase, found.step, now) is None:
                kind = UNKNOWN
                found = Classified(UNKNOWN, reason="a run event with no run_id, and no run "
                                                   "is running")
        if kind == ERROR:
            if not self.submit_error(raw, channel):
                self.counts["refused"] += 1
        elif kind == UNKNOWN:
            if not self.dead_letter(raw, channel, f"unknown event shape: {found.reason}"):
                self.counts["refused"] += 1
        self.counts[kind] += 1
        return kind
