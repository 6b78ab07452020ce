"""One alert state for a deployment of several ingest processes (INGEST_SOURCE=stream).

Each process forwards its alert events to the stream `<ERROR_CHANNEL>:alerts:events`
(alerts/events.py). Exactly one process, the leader (alerts/leader.py), reads that stream
into its engine, so the windows count the deployment's events and every alert fires once;
its keeper alone saves alert state and writes the outbox, its sender alone posts.

The leader saves, in the transaction of the alert changes, the id of the last entry they go
up to (`alert_feed`). A process taking over loads the saved alerts, counts the entries of the
last windows up to that id into its windows (they were evaluated: they fire nothing), and
evaluates from the next entry on: nothing is evaluated twice, nothing is skipped, whatever
the old leader had done but not saved is done again, once.

An entry can reach the stream twice (a consumer that died after forwarding but before its
store commit: its entries are claimed and forwarded again by a peer); the leader counts an
error_id once within the longest window.

Followers reload the saved alert state every ALERT_RELOAD_MS, so every process (its status,
the Monitor page) shows the leader's state, and try to become leader every
ALERT_LEADER_RETRY_MS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis
from redis.exceptions import RedisClusterException
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from alerts.catalog import EVENT_RULES
from alerts.events import EventForwarder, decode, entry_time
from alerts.keeper import AlertKeeper, alert_from_row
from alerts.leader import Leadership
from alerts.rules import AlertEngine
from alerts.store import claim_feed, load_firing, read_feed
from live import redis_client
from queries.records import ErrorEvent

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
READ_COUNT = 1000


class SharedAlerts(threading.Thread):
    def __init__(self, engine: AlertEngine, keeper: AlertKeeper, db: Engine,
                 leadership: Leadership, forwarder: EventForwarder, name: str,
                 redis_url: str, retry_ms: int = 1000, reload_ms: int = 2000,
                 on_lead: Callable[[], None] | None = None,
                 clock: Clock | None = None) -> None:
        super().__init__(name="alert-leader", daemon=True)
        self.engine = engine
        self.keeper = keeper
        self.db = db
        self.leadership = leadership
        self.forwarder = forwarder
        self.stream = forwarder.stream
        self.name = name  # who this process is, as the Monitor page shows the leader
        self.redis_url = redis_url
        self.retry = retry_ms / 1000.0
        self.reload = reload_ms / 1000.0
        self.on_lead = on_lead or (lambda: None)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.leading = False
        self.leader: str | None = None  # who leads, as last read
        self.last_id: str | None = None
        self.evaluated = 0
        self.repeats_skipped = 0
        self.takeovers = 0
        self.last_error: str | None = None
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._span = max(engine.rules.window(r) for r in EVENT_RULES).total_seconds()
        self._stop_event = threading.Event()
        self._client: redis_client.Client | None = None
        engine.active = False  # until the lock is ours

    # -- start and stop -------------------------------------------------------------------
    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)
        if self.leading:
            self.keeper.save()
        self.engine.active = False
        self.leading = False
        self.leadership.release()
        if self._client is not None:
            self._client.close()

    def try_lead(self) -> bool:
        """One try to become the leader (also at start, before the pipeline runs)."""
        if self.leading:
            return True
        try:
            if self.leadership.try_acquire():
                self._take_over()
        except (SQLAlchemyError, redis.RedisError, RedisClusterException) as exc:
            self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            log.warning("could not take over the alerts: %s", self.last_error)
            self._step_down()
        return self.leading

    def run(self) -> None:
        next_try = next_reload = 0.0
        while not self._stop_event.is_set():
            try:
                if self.leading:
                    if time.monotonic() >= next_try:
                        next_try = time.monotonic() + self.retry
                        if not self.leadership.still_held():
                            self._step_down()
                            continue
                        self.forwarder.flush()
                    self._evaluate_next()
                    continue
                now = time.monotonic()
                if now >= next_try:
                    next_try = now + self.retry
                    self.forwarder.flush()  # what Redis refused before, if anything
                    if self.try_lead():
                        continue
                if now >= next_reload:
                    next_reload = now + self.reload
                    self._follow()
                self._stop_event.wait(min(self.retry, self.reload, 0.5))
            except (SQLAlchemyError, redis.RedisError, RedisClusterException) as exc:
                self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                self._client = None
                self._stop_event.wait(min(self.retry, 1.0))
            except Exception:
                log.exception("shared alerts failed; carrying on")
                self._stop_event.wait(1.0)

    # -- leading --------------------------------------------------------------------------
    def _redis(self) -> redis_client.Client:
        if self._client is None:
            self._client = redis_client.connect(self.redis_url, socket_connect_timeout=5,
                                                socket_timeout=10)
        return self._client

    def _take_over(self) -> None:
        now = self.clock()
        # Nobody led before: start with the entries of the last error_rate window.
        since = now.timestamp() - self.engine.rules.error_rate_window.total_seconds()
        start = f"{int(since * 1000)}-0"
        last_id = claim_feed(self.db, self.stream, self.name, start, now)
        firing = [alert_from_row(row) for row in load_firing(self.db)]
        with self.keeper.save_lock:
            self.keeper.discard()
            self.engine.reset(firing)
            self._seen.clear()
            self._count_past(last_id, now)
            self.last_id = last_id
            self.keeper.start_from((self.stream, last_id))
            self.keeper.load_silences()
            self.engine.active = True
        self.leading = True
        self.leader = self.name
        self.takeovers += 1
        log.info("alert leader: %s, going on after event %s (%d alerts firing)", self.name,
                 last_id, len(firing))
        self.on_lead()

    def _count_past(self, last_id: str, now: datetime) -> None:
        """The entries of the last windows up to `last_id`, into the windows only."""
        client = self._redis()
        start = f"{int((now.timestamp() - self._span) * 1000)}-0"
        past: list[tuple[datetime, ErrorEvent]] = []
        while True:
            entries = client.xrange(self.stream, min=start, max=last_id, count=READ_COUNT)
            for entry_id, fields in entries:
                found = decode(fields[b"e"])
                if isinstance(found, ErrorEvent) and self._first_time(found, entry_id):
                    past.append((entry_time(entry_id), found))
            if len(entries) < READ_COUNT:
                break
            start = "(" + redis_client.text(entries[-1][0])
        self.engine.count_past(past)

    def _evaluate_next(self) -> None:
        """Read what follows the last id (waiting a little) and evaluate it."""
        block = int(min(self.retry, 1.0) * 1000)
        answer = self._redis().xread({self.stream: self.last_id or "$"}, count=READ_COUNT,
                                     block=block)
        if not answer or not self.leading:
            return
        entries = answer[0][1]
        events: list[ErrorEvent] = []
        regressed: list[str] = []
        for entry_id, fields in entries:
            raw = fields.get(b"e")
            if raw is None:
                continue
            found = decode(raw)
            if isinstance(found, list):
                regressed.extend(found)
            elif self._first_time(found, entry_id):
                events.append(found)
        last_id = redis_client.text(entries[-1][0])
        with self.keeper.save_lock:
            if events:
                self.engine.observe(events)
            if regressed:
                self.engine.regressed(regressed)
            self.last_id = last_id
            self.keeper.progress = (self.stream, last_id)
            self.evaluated += len(events)
            self.keeper.save()

    def _first_time(self, event: ErrorEvent, entry_id: bytes | str) -> bool:
        """False for an error_id already counted within the longest window."""
        seen = self._seen
        at = entry_time(entry_id).timestamp()
        while seen:
            oldest_id, oldest_at = next(iter(seen.items()))
            if at - oldest_at <= self._span:
                break
            del seen[oldest_id]
        if event.error_id in seen:
            self.repeats_skipped += 1
            return False
        seen[event.error_id] = at
        return True

    def _step_down(self) -> None:
        if self.leading:
            log.warning("no longer the alert leader: another process takes over")
        self.engine.active = False
        self.leading = False
        self.keeper.discard()
        self.leadership.release()

    # -- following ------------------------------------------------------------------------
    def _follow(self) -> None:
        """Show the leader's saved state."""
        firing = [alert_from_row(row) for row in load_firing(self.db)]
        feed = read_feed(self.db, self.stream)
        with self.keeper.save_lock:
            if not self.leading:
                self.engine.reset(firing)
                self.keeper.discard()
        self.leader = feed["leader"] if feed else None

    def status(self) -> dict[str, Any]:
        return {"leader": self.leader, "isLeader": self.leading, "me": self.name,
                "lastEventId": self.last_id, "evaluated": self.evaluated,
                "repeatsSkipped": self.repeats_skipped, "takeovers": self.takeovers,
                "forwarded": self.forwarder.forwarded, "forwardWaiting": self.forwarder.waiting,
                "lastError": self.last_error or self.forwarder.last_error}
