"""The deployment's alert events: every ingest process adds the events the rules need to one
Redis stream, `<ERROR_CHANNEL>:alerts:events`, and the alert leader reads it (alerts/shared.py).

An entry is one compact orjson object per event, only the fields the rules and an alert's
sample use (the message and traceback cut short), or `{"regressed": [fingerprints]}` for
groups the writer found back after being resolved. The stream is capped (`MAXLEN ~`) at
ALERT_EVENTS_MAX_ENTRIES: the leader reads within milliseconds, the cap only bounds memory.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from redis.exceptions import RedisClusterException

from live import redis_client
from queries.records import SERIOUS, ErrorEvent, as_utc, new_event

log = logging.getLogger(__name__)

# The sample of an alert keeps this much of its latest event (the page shows no more).
MESSAGE_CHARS = 2000
TRACEBACK_CHARS = 2000
# Events kept while Redis is away, to be added once it is back (the oldest go first).
MAX_WAITING = 10_000


def events_stream(channel: str) -> str:
    return f"{channel}:alerts:events"


def relevant(event: ErrorEvent) -> bool:
    """What the rules can count: serious, not test traffic."""
    return event.severity in SERIOUS and not event.is_test


def encode_event(event: ErrorEvent) -> bytes:
    return orjson.dumps({
        "i": event.error_id, "t": event.error_type, "m": event.error_message[:MESSAGE_CHARS],
        "b": (event.error_traceback or "")[:TRACEBACK_CHARS] or None, "s": event.severity,
        "c": event.category, "o": event.source, "p": event.component, "op": event.operation,
        "y": event.symbol, "f": event.fingerprint, "ts": event.timestamp.isoformat(),
        "r": event.received_at.isoformat()})


def decode(raw: bytes) -> ErrorEvent | list[str]:
    """An event, or the fingerprints of a `regressed` entry."""
    data: dict[str, Any] = orjson.loads(raw)
    if "regressed" in data:
        return [str(fp) for fp in data["regressed"]]
    return new_event(data["i"], data["t"], data["m"], data["b"], data["s"], data["c"],
                     data["o"], data["p"], data["op"], data["y"], {},
                     as_utc(datetime.fromisoformat(data["ts"])),
                     as_utc(datetime.fromisoformat(data["r"])), data["f"], False)


def entry_time(entry_id: bytes | str) -> datetime:
    """When Redis added an entry: the milliseconds of its id."""
    return datetime.fromtimestamp(
        int(redis_client.text(entry_id).split("-", 1)[0]) / 1000, UTC)


class EventForwarder:
    """Adds this process's alert events to the deployment's stream (on the pipeline and the
    writer threads); what Redis refuses waits in memory and goes with the next add."""

    def __init__(self, redis_url: str, stream: str, max_entries: int) -> None:
        self.stream = stream
        self.max_entries = max_entries
        self.redis_url = redis_url
        # Made on first use: a cluster client connects when made, and Redis may be away.
        self._client: redis_client.Client | None = None
        self._waiting: deque[bytes] = deque(maxlen=MAX_WAITING)
        self._lock = threading.Lock()
        self.forwarded = 0
        self.last_error: str | None = None

    def events(self, events: Sequence[ErrorEvent]) -> None:
        self._add([encode_event(e) for e in events if relevant(e)])

    def regressed(self, fingerprints: Sequence[str]) -> None:
        self._add([orjson.dumps({"regressed": list(fingerprints)})])

    def flush(self) -> None:
        """What waits since Redis refused it (the leader's loop calls this)."""
        self._add([])

    def _add(self, payloads: list[bytes]) -> None:
        with self._lock:
            self._waiting.extend(payloads)
            if not self._waiting:
                return
            batch = list(self._waiting)
            try:
                if self._client is None:
                    self._client = redis_client.connect(
                        self.redis_url, socket_connect_timeout=5, socket_timeout=5)
                pipe = self._client.pipeline(transaction=False)
                for payload in batch:
                    pipe.xadd(self.stream, {"e": payload}, maxlen=self.max_entries,
                              approximate=True)
                pipe.execute()
            except (redis.RedisError, RedisClusterException) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("cannot forward %d alert events (kept to retry): %s", len(batch),
                            self.last_error)
                return
            for _ in batch:
                self._waiting.popleft()
            self.forwarded += len(batch)
            self.last_error = None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
