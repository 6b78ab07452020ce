"""The web side of the live feed (live/feed.py says how it works): a copy of the ingest's
ring buffer and status in each web worker."""


from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import redis
from redis.backoff import ExponentialWithJitterBackoff

from live import redis_client
from live.feed import (
    HEARTBEAT_INTERVAL,
    READ_ERRORS,
    STALE_AFTER,
    FeedNames,
    parse_published,
    parse_recent,
    process_id,
)
from live.ring_buffer import RingBuffer
from live.status import ListeningState, MonitorStatus, conservation
from queries.records import iso_utc, parse_iso_utc

log = logging.getLogger(__name__)


class _Zeros(dict):
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

    def start(self, wait: float = 2.0) -> None:
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
                if not isinstance(exc, (*READ_ERRORS, redis.RedisError)):
                    log.exception("live feed follower failed; restarting it")
                elif attempt == 0:
                    log.warning("not following the live feed: %s", self.last_error)
                attempt += 1
                self._ready.set()  # nothing to wait for: show what there is
                self._stop_event.wait(self.backoff.compute(attempt))
        self.connected = False

    def _follow(self) -> None:
        # In a cluster: the node of the feed's slot, which holds its channel and its keys
        # alike (one hash tag); a slot moved elsewhere ends this link and the next one finds
        # the new owner.
        sharded = redis_client.is_cluster_url(self.redis_url)
        client = redis_client.connect_node(self.redis_url, self.names.channel,
                                           socket_connect_timeout=5, socket_timeout=5,
                                           health_check_interval=10)
        pubsub = client.pubsub()
        try:
            redis_client.subscribe(pubsub, [self.names.channel], sharded)
            # Subscribed before the back-fill, so nothing falls between the two; what comes
            # twice is ignored by sequence number.
            while redis_client.get_message(pubsub, timeout=1.0) is None:
                if self._stop_event.is_set():
                    return
            self._backfill(client)
            self._read_beats(client)
            self.connected = True
            self.last_error = None
            self._ready.set()
            next_beat = self.clock() + HEARTBEAT_INTERVAL
            while not self._stop_event.is_set():
                message = redis_client.get_message(pubsub, timeout=0.25)
                if message is not None and message["type"] == "message":
                    self._take(message["data"])
                elif message is not None and message["type"] == "unsubscribe":
                    raise redis.ConnectionError("the live feed's slot moved to another node")
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

    def status(self) -> MonitorStatus:
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
        status["processes"] = self.processes()
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

    def processes(self) -> list[dict[str, Any]]:
        """Every ingest process heard from in the last minute: up, or down once silent for
        longer than `stale_after`, with its stream consumer and what it holds pending."""
        now, wall = self.clock(), datetime.now(UTC)
        rows = []
        for pid, beat in sorted(self._beats.items()):
            silent = max(0.0, now - beat.seen)
            stream = beat.status.get("stream") or {}
            rows.append({"process": pid, "source": beat.status.get("source"),
                         "consumer": stream.get("consumer"), "pending": stream.get("pending"),
                         "lastHeardAt": iso_utc(wall - timedelta(seconds=silent)),
                         "silentSeconds": round(silent, 1),
                         "state": "up" if silent <= self.stale_after else "down"})
        return rows

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


def combine(statuses: list[MonitorStatus]) -> MonitorStatus:
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
