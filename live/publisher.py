"""The ingest side of the live feed (live/feed.py says how it works)."""


from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import redis

from live import redis_client
from live.feed import (
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TTL_MS,
    MAX_EVENTS_PER_CALL,
    PRUNE_AFTER,
    FeedNames,
    encode_event,
    process_id,
    publish_script,
)
from live.ring_buffer import Entry
from queries.records import ErrorEvent

log = logging.getLogger(__name__)


class LiveFeedPublisher(threading.Thread):
    """In the ingest process: publish new ring entries and a heartbeat; never blocks the
    pipeline (`publish` only queues; a full queue drops its oldest, counted)."""

    def __init__(self, redis_url: str, error_channel: str, status: Callable[[], dict[str, Any]],
                 capacity: int, max_pending: int = 20_000,
                 scrub: Callable[[Any], Any] = lambda value: value,
                 slot: str | None = None) -> None:
        super().__init__(name="live-feed-publisher", daemon=True)
        self.names = FeedNames.for_channel(error_channel)
        self.redis_url = redis_url
        self._client: redis_client.Client | None = None
        self._script: Any = None
        self.status = status
        self.capacity = capacity
        self.scrub = scrub
        self.process_id = process_id()
        # The heartbeat's field: a stable slot (host and spool folder) when given, so a
        # restarted process takes its own place back instead of leaving a dead one behind.
        self.slot = slot or self.process_id
        self._pending: deque[ErrorEvent] = deque(maxlen=max_pending)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop_event = threading.Event()
        # Written by this thread (dropped: by the pipeline's); read by the status.
        self.published = 0
        self.dropped = 0
        self.lost = 0
        self.last_seq = 0
        self.last_error: str | None = None

    @property
    def client(self) -> redis_client.Client:
        """Made on first use: a cluster client connects when made, and Redis may be away at
        start (the thread retries)."""
        if self._client is None:
            self._client = redis_client.connect(self.redis_url, socket_connect_timeout=5,
                                                socket_timeout=5)
        return self._client

    @property
    def script(self) -> Any:
        """The publishing script, PUBLISH or SPUBLISH as the client's Redis wants."""
        if self._script is None:
            client = self.client
            self._script = client.register_script(publish_script(redis_client.is_cluster(client)))
        return self._script

    def publish(self, entries: Sequence[Entry]) -> None:
        """A pipeline listener: queue the chunk's new entries for the publishing thread."""
        with self._lock:
            room = self._pending.maxlen - len(self._pending)
            if len(entries) > room:
                self.dropped += len(entries) - room
            self._pending.extend(entry.event for entry in entries)
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish what is queued, then remove this process's heartbeat."""
        self._stop_event.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout)
        try:
            self.client.hdel(self.names.status, self.slot)
        except redis.RedisError as exc:
            log.warning("could not remove the live feed's heartbeat: %s", exc)
        if self._client is not None:
            self._client.close()

    def run(self) -> None:
        next_beat = 0.0
        next_prune = time.monotonic() + PRUNE_AFTER
        while True:
            stopping = self._stop_event.is_set()
            if not stopping:
                self._wake.wait(max(0.0, min(HEARTBEAT_INTERVAL, next_beat - time.monotonic())))
                self._wake.clear()
            try:
                self._send_pending()
                now = time.monotonic()
                if now >= next_beat and not stopping:
                    self._heartbeat()
                    next_beat = now + HEARTBEAT_INTERVAL
                if now >= next_prune:
                    self._prune()
                    next_prune = now + PRUNE_AFTER
                if self.last_error is not None:
                    log.warning("live feed publishing again")
                    self.last_error = None
            except redis.RedisError as exc:
                if self.last_error is None:
                    log.warning("live feed cannot reach Redis (followers see no heartbeat): %s",
                                exc)
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._stop_event.wait(0.5)
            except Exception:
                log.exception("live feed publisher failed; carrying on")
                self._stop_event.wait(0.5)
            if stopping:
                return

    def _send_pending(self) -> None:
        while True:
            with self._lock:
                batch = [self._pending.popleft()
                         for _ in range(min(len(self._pending), MAX_EVENTS_PER_CALL))]
            if not batch:
                return
            try:
                first = self.script(
                    keys=[self.names.seq, self.names.recent],
                    args=[self.names.channel, time.time_ns() // 1000, self.capacity,
                          *(encode_event(e) for e in batch)])
            except redis.RedisError:
                self.lost += len(batch)  # followers recover from the list once it is back
                raise
            self.published += len(batch)
            self.last_seq = int(first) + len(batch) - 1

    def _heartbeat(self) -> None:
        status = self.scrub(self.status())
        status["liveFeed"] = {"published": self.published, "dropped": self.dropped,
                              "lost": self.lost, "lastSeq": self.last_seq}
        beat = orjson.dumps({"id": self.process_id, "at": time.time(), "status": status},
                            default=str)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.names.status, self.slot, beat)
        pipe.pexpire(self.names.status, HEARTBEAT_TTL_MS)
        pipe.execute()

    def silent_peers(self, after: float) -> dict[str, float]:
        """The other processes of the deployment silent for longer than `after` seconds
        (slot -> seconds), from their last heartbeats; a crashed one stays listed until
        pruned."""
        now = time.time()
        silent: dict[str, float] = {}
        for field, value in self.client.hgetall(self.names.status).items():
            slot = field.decode("utf-8", "replace")
            if slot == self.slot:
                continue
            try:
                seconds = now - float(orjson.loads(value)["at"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
            if seconds > after:
                silent[slot] = seconds
        return silent

    def _prune(self) -> None:
        """Remove the heartbeats of processes that died without saying so."""
        now = time.time()
        for field, value in self.client.hgetall(self.names.status).items():
            try:
                old = now - float(orjson.loads(value)["at"]) > PRUNE_AFTER
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                old = True
            if old:
                self.client.hdel(self.names.status, field)
