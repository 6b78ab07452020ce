"""The watch thread: every JOBS_CHECK_INTERVAL_MS it asks Redis how many listen on the
channels TickStockPL must listen on (PUBSUB NUMSUB: a question, not a subscription), SCANs
the job status keys, hands every condition to the alert engine, and saves what changed.

A restart rebuilds the state: runs still running (and recent ones) and open jobs come back
from the store before the first check, and the first SCAN finds which of those jobs are
still there (a job whose key is gone is `lost`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
import redis
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from jobs import store
from jobs.rules import (
    Conditions,
    JobTracker,
    ListenerCheck,
    MissedRunCheck,
    RunTracker,
    linked_ids,
)
from live import redis_client
from queries.records import ErrorEvent, iso_utc

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# Runs and jobs are kept in memory this long after their last event (the store keeps them).
MEMORY = timedelta(days=1)
_MAX_LINKS = 10_000


class ConditionSink(Protocol):
    def sync_conditions(self, rule: str,
                        active: dict[str, tuple[str, dict[str, Any] | None]]) -> None: ...


class JobsWatch(threading.Thread):
    def __init__(self, redis_url: str, listener_channels: Sequence[str], status_keys: str,
                 interval: float, runs: RunTracker, jobs: JobTracker,
                 listeners: ListenerCheck, missed: MissedRunCheck, alerts: ConditionSink,
                 db: Engine, clock: Clock | None = None) -> None:
        super().__init__(name="jobs-watch", daemon=True)
        self.redis_url = redis_url
        self.listener_channels = list(listener_channels)
        self.status_keys = status_keys
        self.prefix = status_keys.rstrip("*")
        self.interval = interval
        self.runs, self.jobs, self.listeners, self.missed = runs, jobs, listeners, missed
        self.alerts = alerts
        self.db = db
        self.clock = clock or (lambda: datetime.now(UTC))
        self._client: redis_client.Client | None = None
        self._stop_event = threading.Event()
        self._saved_runs: dict[str, int] = {}
        self._saved_jobs: dict[str, int] = {}
        self._links: deque[tuple[str, str, str, datetime]] = deque(maxlen=_MAX_LINKS)
        self._open_ids: dict[str, frozenset[str]] = {"run": frozenset(), "job": frozenset()}
        # Written by this thread; read by the status.
        self.cycles = 0
        self.last_check_at: datetime | None = None
        self.last_redis_error: str | None = None
        self.last_store_error: str | None = None
        self.loaded = False

    # -- start and stop -------------------------------------------------------------------
    def load(self) -> None:
        """Runs and jobs of the last run of the monitor, before the first check."""
        since = self.clock() - MEMORY
        try:
            runs, jobs = store.load_runs(self.db, since), store.load_jobs(self.db, since)
        except SQLAlchemyError as exc:
            self.last_store_error = str(exc).splitlines()[0]
            log.warning("could not load the runs and jobs of the last run: %s", exc)
            return
        self.runs.load(runs)
        self.jobs.load(jobs)
        # Loaded as they are stored: nothing to save until they change.
        self._saved_runs = {r.run_id: r.version for r in runs}
        self._saved_jobs = {j.job_id: j.version for j in jobs}
        self.loaded = True

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)
        self._save()
        if self._client is not None:
            self._client.close()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.check()
            except Exception:  # the watch must never die silently
                log.exception("jobs watch failed; carrying on")
            self._stop_event.wait(self.interval)

    # -- errors naming a run or a job (on the pipeline thread) ---------------------------
    def link(self, events: Sequence[ErrorEvent]) -> None:
        """Note which new errors name a run or a job; saved with the next check."""
        open_ids = self._open_ids
        for event in events:
            for kind, ref in linked_ids(event, open_ids):
                self._links.append((kind, ref, event.error_id, event.received_at))

    # -- one check ------------------------------------------------------------------------
    def check(self) -> None:
        now = self.clock()
        try:
            client = self._redis()
            if self.listener_channels:
                counts = redis_client.subscriber_counts(client, self.listener_channels)
                self.listeners.update(counts, now)
            self.jobs.update(self._status_documents(client), now)
            self.last_redis_error = None
        except redis.RedisError as exc:
            self.last_redis_error = f"{type(exc).__name__}: {exc}"
            self._client = None
        conditions: Conditions = {}
        with self.runs.lock:
            runs = list(self.runs.runs.values())
        for found in (self.runs.conditions(now), self.jobs.conditions(now),
                      self.listeners.conditions(now), self.missed.conditions(now, runs)):
            conditions.update(found)
        for rule, active in conditions.items():
            self.alerts.sync_conditions(rule, active)
        self._open_ids = {"run": frozenset(self.runs.known_ids()),
                          "job": frozenset(self.jobs.known_ids())}
        self._save()
        self.runs.forget_before(now - MEMORY)
        self.jobs.forget_before(now - MEMORY)
        self.cycles += 1
        self.last_check_at = now

    def _redis(self) -> redis_client.Client:
        if self._client is None:
            self._client = redis_client.connect(self.redis_url, socket_connect_timeout=5,
                                                socket_timeout=5)
        return self._client

    def _status_documents(self, client: redis_client.Client) -> dict[str, dict[str, Any]]:
        """{job_id: status} of every key matching the pattern: JSON strings or hashes."""
        keys = list(client.scan_iter(match=self.status_keys, count=500))
        if not keys:
            return {}
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.type(key)
            kinds = pipe.execute()
        with client.pipeline(transaction=False) as pipe:
            for key, kind in zip(keys, kinds, strict=True):
                if _text(kind) == "hash":
                    pipe.hgetall(key)
                else:
                    pipe.get(key)
            values = pipe.execute(raise_on_error=False)
        found: dict[str, dict[str, Any]] = {}
        for key, value in zip(keys, values, strict=True):
            job_id = _text(key)[len(self.prefix):][:200]
            if value is None or isinstance(value, Exception) or not job_id:
                continue  # expired between SCAN and GET, or not a string or hash
            found[job_id] = _status_document(value)
        return found

    def _save(self) -> None:
        runs = self.runs.take_changed(self._saved_runs)
        jobs = self.jobs.take_changed(self._saved_jobs)
        links = []
        while self._links:
            links.append(self._links.popleft())
        if not (runs or jobs or links):
            return
        try:
            store.save(self.db, runs, jobs, links)
        except SQLAlchemyError as exc:
            self.last_store_error = str(exc).splitlines()[0]
            self._links.extendleft(reversed(links))  # runs and jobs stay changed: retried
            return
        self.last_store_error = None
        self._saved_runs.update({r.run_id: r.version for r in runs})
        self._saved_jobs.update({j.job_id: j.version for j in jobs})

    def status(self) -> dict[str, Any]:
        now = self.clock()
        nxt = self.missed.next_start()
        return {"thread": self.name, "alive": self.is_alive(), "cycles": self.cycles,
                "lastCheckAt": iso_utc(self.last_check_at) if self.last_check_at else None,
                "lastRedisError": self.last_redis_error,
                "lastStoreError": self.last_store_error,
                "listeners": self.listeners.status(now),
                "runsTracked": len(self.runs.runs), "jobsTracked": len(self.jobs.jobs),
                "nextScheduledStart": iso_utc(nxt) if nxt else None}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _status_document(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    text = _text(value)
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"status": text.strip()[:16] or "submitted"}  # a bare status string
    return document if isinstance(document, dict) else {"status": str(document)[:16]}
