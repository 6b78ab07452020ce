"""What the web side needs from the running ingest, as protocols: the dashboard never
imports ingest internals; `app.py` hands it an object with this shape (the IngestService
in one process, a LiveFeedFollower in a web worker)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from live.status import MonitorStatus
from queries.records import ErrorEvent


class ListeningStateLike(Protocol):
    subscribed: bool
    store_ok: bool
    not_listening_since: datetime | None
    last_message_at: datetime | None
    # Why the monitor cannot see, when it knows better than "not subscribed".
    blind_reason: str | None


class EntryLike(Protocol):
    seq: int
    event: ErrorEvent


class RingLike(Protocol):
    def since(self, seq: int, limit: int | None = None) -> list[EntryLike]: ...

    @property
    def last_seq(self) -> int: ...

    @property
    def oldest_seq(self) -> int: ...


class LiveView(Protocol):
    ring: RingLike

    def listening_state(self) -> ListeningStateLike: ...

    def monitor_summary(self) -> dict[str, Any]: ...

    def status(self) -> MonitorStatus: ...
