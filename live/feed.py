"""The live feed between `python -m ingest` and the web workers that show it.

The ring buffer lives in the process that ingests. When the web side runs elsewhere (gunicorn
workers, `INGEST_ENABLED=false`), each worker follows a copy:

- `LiveFeedPublisher` (in the ingest process) takes each chunk of new ring entries and, in one
  Lua script, numbers them from a shared counter (`<ERROR_CHANNEL>:live:seq`), publishes them
  on `<ERROR_CHANNEL>:live` and appends them to a capped list (`<ERROR_CHANNEL>:live:recent`,
  `RING_BUFFER_SIZE` long). Every second it writes its status (`IngestService.status()`) to a
  hash (`<ERROR_CHANNEL>:live:status`, one field per ingest process) that expires 5 s after
  the last write.
- `LiveFeedFollower` (in each web worker) subscribes, back-fills from the list, and fills its
  own `RingBuffer` with `extend_entries`, so every worker holds the same sequence numbers and
  a browser sees one cursor whichever worker answers. It is the `LiveView` the dashboard
  needs: `listening_state()`, `monitor_summary()` and `status()` come from the heartbeat;
  without a fresh one the health is `unknown`.

Why a script: numbering, publishing and appending happen atomically in Redis, so the order of
the numbers is the order of publication even with several ingest processes (a consumer group,
INGEST_SOURCE=stream), and a restarted ingest continues the numbering instead of restarting at
1 (which every follower would ignore as old). When the counter is missing (first run, or a
Redis that lost its data) it starts from the current time in microseconds, above any number
handed out before (that would take a million messages a second).

Wire format: a published message is `<first seq>|[event, event, ...]`, a list item
`<seq>|event`, each event an `ErrorEvent` as JSON. The feed is best effort: a message lost
while a follower reconnects is recovered from the list when it resubscribes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from redis.backoff import ExponentialWithJitterBackoff

from live.ring_buffer import Entry, RingBuffer
from live.status import ListeningState, conservation
from queries.records import ErrorEvent, iso_utc, parse_iso_utc

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_TTL_MS = 5000
STALE_AFTER = 5.0  # seconds without a new heartbeat before a process is taken for gone
PRUNE_AFTER = 60.0  # a field older than this (a crashed process) is removed by a live one
RECENT_TTL_MS = 7 * 24 * 3600 * 1000
_MAX_EVENTS_PER_CALL = 1000
_READ_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)

# KEYS: seq counter, recent list. ARGV: channel, counter start, list length, events (JSON).
_PUBLISH_SCRIPT = """
local n = #ARGV - 3
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[2]) end
local first = redis.call('INCRBY', KEYS[1], n) - n + 1
local items = {}
for i = 1, n do
  items[#items + 1] = string.format('%d', first + i - 1) .. '|' .. ARGV[i + 3]
  if #items == 500 or i == n then
    redis.call('RPUSH', KEYS[2], unpack(items))
    items = {}
  end
end
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('PEXPIRE', KEYS[2], RECENT_TTL_MS)
local body = '[' .. table.concat(ARGV, ',', 4) .. ']'
redis.call('PUBLISH', ARGV[1], string.format('%d', first) .. '|' .. body)
return first
""".replace("RECENT_TTL_MS", str(RECENT_TTL_MS))


@dataclass(frozen=True)
class FeedNames:
    """The Redis names of one monitor's live feed, all derived from ERROR_CHANNEL (so a hash
    tag in it, `{tickstock}:errors`, keeps them in one Redis Cluster slot)."""

    channel: str
    seq: str
    recent: str
    status: str

    @classmethod
    def for_channel(cls, error_channel: str) -> FeedNames:
        base = f"{error_channel}:live"
        return cls(base, f"{base}:seq", f"{base}:recent", f"{base}:status")


_EVENT_FIELDS = tuple(f.name for f in fields(ErrorEvent))


def encode_event(event: ErrorEvent) -> bytes:
    return orjson.dumps(event, default=str, option=orjson.OPT_NON_STR_KEYS)


def decode_event(data: dict[str, Any]) -> ErrorEvent:
    values = {name: data.get(name) for name in _EVENT_FIELDS}
    for name in ("timestamp", "received_at"):
        values[name] = datetime.fromisoformat(values[name])
    values["context"] = values["context"] or {}
    values["is_test"] = bool(values["is_test"])  # absent from an older ingest's feed
    return ErrorEvent(**values)


def parse_published(message: bytes) -> list[Entry]:
    """`<first>|[events]` -> entries numbered from `first`."""
    head, _, body = message.partition(b"|")
    first = int(head)
    return [Entry(first + i, decode_event(item)) for i, item in enumerate(orjson.loads(body))]


def parse_recent(items: Iterable[bytes]) -> list[Entry]:
    entries = []
    for item in items:
        head, _, body = item.partition(b"|")
        entries.append(Entry(int(head), decode_event(orjson.loads(body))))
    entries.sort(key=lambda e: e.seq)
    return entries


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class LiveFeedPublisher(threading.Thread):
    """In the ingest process: publish new ring entries and a heartbeat; never blocks the
    pipeline (`publish` only queues; a full queue drops its oldest, counted)."""

    def __init__(self, redis_url: str, error_channel: str, status: Callable[[], dict[str, Any]],
                 capacity: int, max_pending: int = 20_000,
                 scrub: Callable[[Any], Any] = lambda value: value) -> None:
        super().__init__(name="live-feed-publisher", daemon=True)
        self.names = FeedNames.for_channel(error_channel)
        self.client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
        self.script = self.client.register_script(_PUBLISH_SCRIPT)
        self.status = status
        self.capacity = capacity
        self.scrub = scrub
        self.process_id = process_id()
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

    def publish(self, entries: Sequence[Entry]) -> None:
        """A pipeline listener: queue the chunk's new entries for the publishing thread."""
        with self._lock:
            room = self._pending.maxlen - len(self._pending)  # type: ignore[operator]
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
            self.client.hdel(self.names.status, self.process_id)
        except redis.RedisError as exc:
            log.warning("could not remove the live feed's heartbeat: %s", exc)
        self.client.close()

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
                         for _ in range(min(len(self._pending), _MAX_EVENTS_PER_CALL))]
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
        pipe.hset(self.names.status, self.process_id, beat)
        pipe.pexpire(self.names.status, HEARTBEAT_TTL_MS)
        pipe.execute()

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


class _Zeros(dict):  # type: ignore[type-arg]
    """Counters while no ingest reports: every name reads 0 (the metrics need them all)."""

    def __missing__(self, key: str) -> int:
        return 0


@dataclass
class _Beat:
    value: bytes
    seen: float  # monotonic time the value last changed, in this process
    status: dict[str, Any]


class LiveFeedFollower(threading.Thread):
    """In a web worker: a copy of the ingest's ring buffer and its status, as a LiveView."""

    def __init__(self, redis_url: str, error_channel: str, capacity: int,
                 stale_after: float = STALE_AFTER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name="live-feed-follower", daemon=True)
        self.redis_url = redis_url
        self.names = FeedNames.for_channel(error_channel)
        self.error_channel = error_channel
        self.ring = RingBuffer(capacity)
        self.stale_after = stale_after
        self.clock = clock
        self.backoff = ExponentialWithJitterBackoff(cap=2.0, base=0.1)
        self._ready = threading.Event()
        self._stop_event = threading.Event()
        self._start_lock = threading.Lock()
        self._beats: dict[str, _Beat] = {}
        self._beats_read_at: float | None = None
        self._last_status: dict[str, Any] | None = None
        self._blind_since = datetime.now(UTC)
        self.worker = ""  # set when started, after a fork
        # Written by this thread only; read by the status views.
        self.connected = False
        self.received = 0
        self.gaps = 0
        self.undecodable = 0
        self.backfills = 0
        self.last_error: str | None = None

    def start(self, wait: float = 2.0) -> None:  # type: ignore[override]
        """Start following (once; later calls do nothing), waiting up to `wait` seconds for
        the back-fill so a first page is not empty."""
        with self._start_lock:
            if not self.is_alive() and not self._stop_event.is_set():
                self.worker = process_id()
                super().start()
        self._ready.wait(wait)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    # -- the thread ---------------------------------------------------------------------
    def run(self) -> None:
        attempt = 0
        while not self._stop_event.is_set():
            try:
                self._follow()
                attempt = 0
            except Exception as exc:  # a follower logs and carries on
                self.connected = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, (*_READ_ERRORS, redis.RedisError)):
                    log.exception("live feed follower failed; restarting it")
                elif attempt == 0:
                    log.warning("not following the live feed: %s", self.last_error)
                attempt += 1
                self._ready.set()  # nothing to wait for: show what there is
                self._stop_event.wait(self.backoff.compute(attempt))
        self.connected = False

    def _follow(self) -> None:
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=5,
                                      socket_timeout=5, health_check_interval=10)
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(self.names.channel)
            # Subscribed before the back-fill, so nothing falls between the two; what comes
            # twice is ignored by sequence number.
            while pubsub.get_message(timeout=1.0) is None:
                if self._stop_event.is_set():
                    return
            self._backfill(client)
            self._read_beats(client)
            self.connected = True
            self.last_error = None
            self._ready.set()
            next_beat = self.clock() + HEARTBEAT_INTERVAL
            while not self._stop_event.is_set():
                message = pubsub.get_message(timeout=0.25)
                if message is not None and message["type"] == "message":
                    self._take(message["data"])
                if self.clock() >= next_beat:
                    self._read_beats(client)
                    next_beat = self.clock() + HEARTBEAT_INTERVAL
        finally:
            self.connected = False
            try:
                pubsub.close()
                client.close()
            except Exception:  # noqa: BLE001 - closing a broken link may fail too
                pass

    def _backfill(self, client: redis.Redis) -> None:
        try:
            entries = parse_recent(client.lrange(self.names.recent, 0, -1))
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            self.undecodable += 1
            log.warning("live feed back-fill unreadable: %s", exc)
            return
        added = self.ring.extend_entries(entries)
        self.backfills += 1
        self.received += len(added)

    def _take(self, data: bytes) -> None:
        try:
            entries = parse_published(data)
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            self.undecodable += 1
            log.warning("live feed message unreadable: %s", exc)
            return
        last = self.ring.last_seq
        if entries and last and entries[0].seq > last + 1:
            self.gaps += 1
        self.received += len(self.ring.extend_entries(entries))

    def _read_beats(self, client: redis.Redis) -> None:
        now = self.clock()
        beats: dict[str, _Beat] = {}
        for field, value in client.hgetall(self.names.status).items():
            pid = field.decode("utf-8", "replace")
            known = self._beats.get(pid)
            if known is not None and known.value == value:
                beats[pid] = known  # unchanged: its age keeps growing
                continue
            try:
                status = orjson.loads(value)["status"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                self.undecodable += 1
                continue
            # A changed value is a live heartbeat; ages are measured on this process's
            # clock, so the two hosts' clocks need not agree.
            beats[pid] = _Beat(value, now, status)
        self._beats = beats
        self._beats_read_at = now

    # -- the LiveView -------------------------------------------------------------------
    def _fresh(self) -> list[dict[str, Any]]:
        now = self.clock()
        if self._beats_read_at is None or now - self._beats_read_at > self.stale_after:
            return []
        return [beat.status for _, beat in sorted(self._beats.items())
                if now - beat.seen <= self.stale_after]

    def status(self) -> dict[str, Any]:
        """The ingest's status from its heartbeat (summed over several ingest processes),
        with `ingest: "no heartbeat"` and `subscribed: false` when there is none."""
        fresh = self._fresh()
        if fresh:
            status = combine(fresh)
            status["ingest"] = "ok"
            self._last_status = status
            self._blind_since = datetime.now(UTC)
        else:
            last = self._last_status or {}
            status = {**last, "ingest": "no heartbeat", "subscribed": False,
                      "notListeningSince": iso_utc(self._blind_since),
                      "counters": _Zeros(last.get("counters") or {}),
                      "lastBatchSeconds": last.get("lastBatchSeconds", 0.0),
                      "storeOk": last.get("storeOk"),
                      "channel": self.error_channel, "ingestProcesses": []}
        status["follower"] = {
            # Which web worker answered: each has its own copy of the feed.
            "worker": self.worker,
            "following": self.connected, "channel": self.names.channel,
            "received": self.received, "gaps": self.gaps, "backfills": self.backfills,
            "undecodable": self.undecodable, "lastError": self.last_error,
            "ringBuffer": {"size": len(self.ring), "capacity": self.ring.capacity,
                           "lastSeq": self.ring.last_seq},
        }
        return status

    def listening_state(self) -> ListeningState:
        status = self.status()
        return ListeningState(
            subscribed=bool(status.get("subscribed")),
            store_ok=status.get("storeOk") is not False,
            not_listening_since=parse_iso_utc(status.get("notListeningSince")),
            last_message_at=parse_iso_utc(status.get("lastMessageAt")),
            blind_reason=(NO_HEARTBEAT if status.get("ingest") == "no heartbeat" else None),
        )

    def monitor_summary(self) -> dict[str, Any]:
        status = self.status()
        return {
            "subscribed": bool(status.get("subscribed")),
            "storeOk": status.get("storeOk") is not False,
            "notListeningSince": status.get("notListeningSince"),
            "lastMessageAt": status.get("lastMessageAt"),
            "channel": status.get("channel", self.error_channel),
            "source": status.get("source"),
            "ingest": status["ingest"],
            "ingestProcesses": len(status.get("ingestProcesses") or []),
        }


NO_HEARTBEAT = "no heartbeat from the ingest process (is `python -m ingest` running?)"


def combine(statuses: list[dict[str, Any]]) -> dict[str, Any]:
    """One status for several ingest processes sharing a stream: counters summed, subscribed
    while any is, the store ok only while none says otherwise."""
    first = statuses[0]
    if len(statuses) == 1:
        combined = dict(first)
    else:
        combined = dict(first)
        names = {name for s in statuses for name in s.get("counters", {})}
        counters = {name: sum(s.get("counters", {}).get(name, 0) for s in statuses)
                    for name in names}
        combined["counters"] = counters
        combined["rates"] = {name: round(sum(s.get("rates", {}).get(name, 0.0)
                                             for s in statuses), 2)
                             for name in first.get("rates", {})}
        if {"received", "replayed", "stored"} <= counters.keys():
            combined["conservation"] = conservation(counters)
        combined["subscribed"] = any(s.get("subscribed") for s in statuses)
        oks = [s.get("storeOk") for s in statuses]
        combined["storeOk"] = False if False in oks else (True if True in oks else None)
        combined["lastBatchSeconds"] = max(s.get("lastBatchSeconds", 0.0) for s in statuses)
        last_messages = [s["lastMessageAt"] for s in statuses if s.get("lastMessageAt")]
        combined["lastMessageAt"] = max(last_messages) if last_messages else None
        if combined["subscribed"]:
            combined["notListeningSince"] = None
    combined["ingestProcesses"] = [
        {"source": s.get("source"), "subscribed": s.get("subscribed"),
         "storeOk": s.get("storeOk"), "startedAt": s.get("startedAt"),
         "received": s.get("counters", {}).get("received")} for s in statuses]
    return combined
