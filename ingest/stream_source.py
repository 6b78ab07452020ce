"""The durable source (`INGEST_SOURCE=stream`): a Redis Stream read with a consumer group.

Pub/sub forgets what is published while nobody listens; a stream keeps it. TickStockPL adds
each error beside its PUBLISH:

    XADD tickstock:errors:stream MAXLEN ~ 1000000 * data '<the same JSON>'

Entries are read with XREADGROUP, journaled in the spool like pub/sub payloads, and
acknowledged (XACK) only once the store has committed them, so an entry delivered to a
monitor that dies before committing is delivered again (re-read from this consumer's pending
list on restart, or claimed by another consumer with XAUTOCLAIM after `claim_idle_ms`).
Entries without a `data` field are taken as the JSON object of their fields.

Several monitors in one group (docs/deploy.md):
- "idle" must mean "dead". A live consumer whose store is down keeps its entries pending for
  as long as the outage lasts, so it touches them (XCLAIM to itself, JUSTID) well within
  `claim_idle_ms`, and it stops reading new entries while its own backlog is past
  `max_backlog`: its peers never take over the work of a consumer that is alive.
- Every `reclaim_interval_ms` each consumer follows XAUTOCLAIM's cursor to the end of the
  pending list, taking what dead consumers left (as much as its backlog allows), and deletes
  consumers that have nothing pending and have not been heard from for `claim_idle_ms`.
- The default consumer name is stable across restarts (the host and the spool folder, which
  one process holds at a time), so a restarted monitor finds its own pending entries at once.
- Entries trimmed away before anyone read them (a producer's MAXLEN smaller than a backlog)
  are counted as `lost_trimmed`: the stream's `entries-added` less the group's `entries-read`
  (what Redis handed out to the group's consumers), once the group has read to the end; plus
  pending entries deleted before they were stored.
"""

from __future__ import annotations

import hashlib
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
from live import redis_client

log = logging.getLogger(__name__)

_READ_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


def _by_name(reply: dict) -> dict[str, object]:
    return {redis_client.text(name): value for name, value in reply.items()}


def default_consumer(spool_dir: str) -> str:
    """A consumer name that survives restarts: the host and the spool folder (one ingest
    holds a spool folder at a time, so two live processes never share the name)."""
    folder = os.path.realpath(spool_dir)
    return f"{socket.gethostname()}-{hashlib.sha256(folder.encode()).hexdigest()[:8]}"


class StreamSubscriber(threading.Thread):
    """Reads `stream` as `consumer` of `group` into `sink(payload, received) -> Position`."""

    def __init__(self, redis_url: str, stream: str, group: str,
                 sink: Callable[[bytes, float], Position | None],
                 consumer: str | None = None, batch: int = 1000,
                 claim_idle_ms: int = 60_000, reclaim_interval_ms: int = 5000,
                 max_backlog: int = 10_000) -> None:
        super().__init__(name="ingest-stream-reader", daemon=True)
        self.redis_url = redis_url
        self.stream = stream
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.sink = sink
        self.batch = batch
        self.claim_idle_ms = claim_idle_ms
        self.reclaim_interval_ms = reclaim_interval_ms
        self.max_backlog = max_backlog
        self.backoff = ExponentialWithJitterBackoff(cap=2.0, base=0.1)
        self._stop_event = threading.Event()
        self._unacked: deque[tuple[Position, bytes]] = deque()
        self._unacked_lock = threading.Lock()
        self._ack_client: redis_client.Client | None = None
        # Written by this thread (acks: by the writer's); read by the status views.
        self.received = 0
        self.acked = 0
        self.claimed = 0
        self.lost_trimmed = 0  # the deployment's, as last read from Redis
        self.trim_checks = 0  # times the group was found read to the end and lost_trimmed set
        self.deleted_pending = 0  # this consumer's: pending entries gone before they were stored
        self.consumers_removed = 0
        self.backlog_paused = False
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
                self._ack_client = redis_client.connect(self.redis_url, socket_timeout=5)
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
        # A RedisCluster routes every command by the stream's slot; every command here names
        # the stream alone, so each MULTI below is one slot's.
        client = redis_client.connect(self.redis_url, socket_connect_timeout=5,
                                      socket_timeout=10, socket_keepalive=True)
        try:
            self._create_group(client)
            self._mark_subscribed()
            # First what was delivered to this consumer but never acknowledged.
            self._read(client, "0")
            last_reclaim = last_touch = time.monotonic()
            while not self._stop_event.is_set():
                if self.backlog() >= self.max_backlog:
                    # Store slow or away: take nothing new, so nothing of ours goes idle.
                    self.backlog_paused = True
                    self._stop_event.wait(0.2)
                else:
                    self.backlog_paused = False
                    # Short blocks keep the touches well inside the claim threshold.
                    self._read(client, ">",
                               block_ms=max(50, min(1000, self.claim_idle_ms // 6)))
                now = time.monotonic()
                if now - last_touch > self.claim_idle_ms / 3000:
                    self._touch(client)
                    last_touch = now
                if now - last_reclaim > self.reclaim_interval_ms / 1000:
                    self._reclaim(client)
                    self._count_trimmed(client)
                    last_reclaim = time.monotonic()
        finally:
            client.close()

    def _create_group(self, client: redis_client.Client) -> None:
        """The group, from the stream's first entry; what was trimmed before it existed is
        history, not a loss: the group's `entries-read` starts where the group does."""
        try:
            info = client.xinfo_stream(self.stream)
            history = max(0, int(info.get("entries-added", 0)) - int(info.get("length", 0)))
        except redis.ResponseError:  # no stream yet
            history = 0
        try:
            # From "0": what was added before the group existed is read too.
            client.xgroup_create(self.stream, self.group, id="0", mkstream=True,
                                 entries_read=history)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def backlog(self) -> int:
        """Entries this consumer was given and has not yet acknowledged."""
        with self._unacked_lock:
            return len(self._unacked)

    def _read(self, client: redis_client.Client, start: str, block_ms: int | None = None) -> None:
        """From ">": what is new, waiting up to `block_ms` (Redis hands each new entry to the
        consumer that has waited longest, so a trickle spreads over the group). From "0": this
        consumer's own pending list, to its end."""
        cursor = start
        while not self._stop_event.is_set():
            answer = client.xreadgroup(self.group, self.consumer, {self.stream: cursor},
                                       count=self.batch, block=block_ms if start == ">" else None)
            entries = answer[0][1] if answer else []
            self._take(entries, client)
            if start == ">" or not entries:
                return
            cursor = entries[-1][0]  # walking this consumer's pending list

    def _touch(self, client: redis_client.Client) -> None:
        """Reset the idle time of this consumer's pending entries: they are not a dead
        consumer's, however long the store takes."""
        with self._unacked_lock:
            ids = [entry_id for _, entry_id in self._unacked]
        for start in range(0, len(ids), 1000):
            client.xclaim(self.stream, self.group, self.consumer, 0, ids[start:start + 1000],
                          justid=True)

    def _reclaim(self, client: redis_client.Client) -> None:
        """Take over what dead consumers left, following the cursor to the end; remove the
        dead consumers that have nothing left."""
        cursor = "0-0"
        while not self._stop_event.is_set():
            room = self.max_backlog - self.backlog()
            if room <= 0:
                break
            answer = client.xautoclaim(self.stream, self.group, self.consumer,
                                       min_idle_time=self.claim_idle_ms, start_id=cursor,
                                       count=min(self.batch, room))
            cursor = answer[0]
            self.claimed += len(answer[1])
            self._take(answer[1], client)
            # Redis 7 drops pending entries that were deleted from the stream, and says which.
            if len(answer) > 2 and answer[2]:
                self.deleted_pending += len(answer[2])
            if cursor in (b"0-0", "0-0"):
                break
        for consumer in client.xinfo_consumers(self.stream, self.group):
            name = redis_client.text(consumer["name"])
            if name != self.consumer and consumer["pending"] == 0 and \
                    consumer["idle"] > self.claim_idle_ms:
                self.consumers_removed += client.xgroup_delconsumer(
                    self.stream, self.group, name) == 0

    def _count_trimmed(self, client: redis_client.Client) -> None:
        """Entries added to the stream that the deployment never received: counted while the
        group has read up to the stream's last entry (nothing unread is left to tell apart).
        The group's `entries-read` is Redis's own count of what XREADGROUP handed out, kept
        in the same step as the hand-out, so a consumer killed just after a read leaves it
        right; trimmed entries nobody read never enter it. Redis before 7.0 has no such
        count: nothing is reported lost there."""
        pipe = client.pipeline(transaction=True)
        pipe.xinfo_stream(self.stream)
        pipe.xinfo_groups(self.stream)
        info, groups = pipe.execute()
        # A cluster's MULTI pipeline hands back the raw replies, names as bytes.
        info, groups = _by_name(info), [_by_name(g) for g in groups]
        group = next((g for g in groups if redis_client.text(g["name"]) == self.group), None)
        if group is None or group.get("entries-read") is None or redis_client.text(
                group["last-delivered-id"]) != redis_client.text(info["last-generated-id"]):
            return
        lost = max(0, int(info["entries-added"]) - int(group["entries-read"]))
        self.lost_trimmed = max(self.lost_trimmed, lost)
        self.trim_checks += 1

    def _take(self, entries: list, client: redis_client.Client | None = None) -> None:
        gone: list[bytes] = []
        for entry_id, fields in entries:
            if not fields:
                gone.append(entry_id)  # deleted from the stream while pending
                continue
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
        if gone:
            self.deleted_pending += len(gone)
            if client is not None:  # nothing left to store: off the pending list
                client.xack(self.stream, self.group, *gone)

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
