"""The durable source (`INGEST_SOURCE=stream`): a Redis Stream read with a consumer group.

Pub/sub forgets what is published while nobody listens; a stream keeps it. TickStockPL adds
each error beside its PUBLISH:

    XADD tickstock:errors:stream MAXLEN ~ 1000000 * data '<the same JSON>'

Entries are read with XREADGROUP, journaled in the spool like pub/sub payloads, and
acknowledged (XACK) only once the store has committed them, so an entry delivered to a
monitor that dies before committing is delivered again (re-read from this consumer's pending
list on restart, or claimed by another consumer with XAUTOCLAIM after `claim_idle_ms`).
Entries without a `data` field are taken as the JSON object of their fields.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import redis
from redis.backoff import ExponentialWithJitterBackoff

from ingest.spool import Position

log = logging.getLogger(__name__)

_READ_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class StreamSubscriber(threading.Thread):
    """Reads `stream` as `consumer` of `group` into `sink(payload, received) -> Position`."""

    def __init__(self, redis_url: str, stream: str, group: str,
                 sink: Callable[[bytes, float], Position | None],
                 consumer: str | None = None, batch: int = 1000,
                 claim_idle_ms: int = 60_000) -> None:
        super().__init__(name="ingest-stream-reader", daemon=True)
        self.redis_url = redis_url
        self.stream = stream
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.sink = sink
        self.batch = batch
        self.claim_idle_ms = claim_idle_ms
        self.backoff = ExponentialWithJitterBackoff(cap=2.0, base=0.1)
        self._stop_event = threading.Event()
        self._unacked: deque[tuple[Position, bytes]] = deque()
        self._unacked_lock = threading.Lock()
        self._ack_client: redis.Redis | None = None
        # Written by this thread (acks: by the writer's); read by the status views.
        self.received = 0
        self.acked = 0
        self.reconnects = 0
        self.subscribed = False
        self.subscribed_since: datetime | None = None
        self.not_listening_since: datetime | None = datetime.now(UTC)
        self.last_error: str | None = None
        self.gaps: list[tuple[datetime, datetime | None, str]] = []
        self._last_received: float | None = None

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def last_message_time(self) -> datetime | None:
        received = self._last_received
        return None if received is None else datetime.fromtimestamp(received, UTC)

    # -- acknowledgement, called on the writer's thread after each checkpoint ------------
    def acknowledge(self, committed: Position) -> None:
        """XACK every entry journaled before `committed`."""
        ids: list[bytes] = []
        with self._unacked_lock:
            while self._unacked and self._unacked[0][0] <= committed:
                ids.append(self._unacked.popleft()[1])
        if not ids:
            return
        try:
            if self._ack_client is None:
                self._ack_client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
            for start in range(0, len(ids), 1000):
                self.acked += self._ack_client.xack(self.stream, self.group,
                                                    *ids[start:start + 1000])
        except redis.RedisError as exc:
            # Not acknowledged means delivered again later: a duplicate, never a loss.
            log.warning("could not acknowledge %d stream entries: %s", len(ids), exc)
            self._ack_client = None

    # -- the thread ---------------------------------------------------------------------
    def run(self) -> None:
        attempt = 0
        while not self._stop_event.is_set():
            try:
                self._consume()
            except _READ_ERRORS as exc:
                self._lost(exc)
                attempt += 1
                self._stop_event.wait(self.backoff.compute(attempt))
            except Exception as exc:  # the reader must never die silently
                self._lost(exc)
                log.exception("stream reader failed unexpectedly; restarting it")
                attempt += 1
                self._stop_event.wait(self.backoff.compute(attempt))
            else:
                attempt = 0
        self.subscribed = False

    def _consume(self) -> None:
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=5,
                                      socket_timeout=10, socket_keepalive=True)
        try:
            try:
                # From "0": what was added before the group existed is read too.
                client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._mark_subscribed()
            # First what was delivered to this consumer but never acknowledged.
            self._read(client, "0")
            last_claim = time.monotonic()
            while not self._stop_event.is_set():
                self._read(client, ">", block_ms=1000)
                if time.monotonic() - last_claim > self.claim_idle_ms / 1000:
                    self._claim(client)
                    last_claim = time.monotonic()
        finally:
            client.close()

    def _read(self, client: redis.Redis, start: str, block_ms: int | None = None) -> None:
        cursor = start
        while not self._stop_event.is_set():
            answer = client.xreadgroup(self.group, self.consumer, {self.stream: cursor},
                                       count=self.batch, block=block_ms)
            entries = answer[0][1] if answer else []
            self._take(entries)
            if start == ">" or not entries:
                return
            cursor = entries[-1][0]  # walking this consumer's pending list

    def _claim(self, client: redis.Redis) -> None:
        """Take over entries another consumer was given and never acknowledged."""
        answer = client.xautoclaim(self.stream, self.group, self.consumer,
                                   min_idle_time=self.claim_idle_ms, start_id="0-0",
                                   count=self.batch)
        self._take(answer[1])

    def _take(self, entries: list) -> None:  # type: ignore[type-arg]
        for entry_id, fields in entries:
            if not fields:
                continue  # deleted from the stream while pending
            payload = fields.get(b"data")
            if payload is None:
                payload = orjson.dumps({k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                                        for k, v in fields.items()})
            received = time.time()
            position = self.sink(payload, received)
            self.received += 1
            self._last_received = received
            if position is not None:
                with self._unacked_lock:
                    self._unacked.append((position, entry_id))

    def _mark_subscribed(self) -> None:
        now = datetime.now(UTC)
        if self.gaps and self.gaps[-1][1] is None:
            self.gaps[-1] = (self.gaps[-1][0], now, self.gaps[-1][2])
        self.subscribed = True
        self.subscribed_since = now
        self.not_listening_since = None
        log.info("reading stream %s as %s/%s", self.stream, self.group, self.consumer)

    def _lost(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("not reading stream %s: %s", self.stream, self.last_error)
        if self.subscribed:
            self.reconnects += 1
            now = datetime.now(UTC)
            self.gaps.append((now, None, self.last_error))
            del self.gaps[:-100]
            self.not_listening_since = now
        self.subscribed = False
        self.subscribed_since = None
