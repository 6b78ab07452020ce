"""What the web side needs from the running ingest, as protocols: the dashboard never
imports ingest internals; `app.py` hands it an object with this shape."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class ListeningStateLike(Protocol):
    subscribed: bool
    store_ok: bool
    not_listening_since: datetime | None
    last_message_at: datetime | None


class EntryLike(Protocol):
    seq: int
    event: Any  # queries.records.ErrorEvent


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

    def status(self) -> dict[str, Any]: ...
