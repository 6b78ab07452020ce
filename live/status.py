"""What the running ingest tells the web side about itself: listening state and accounting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict


@dataclass(frozen=True)
class ListeningState:
    """What the monitor itself can see: enough for the health rule's `unknown`."""

    subscribed: bool
    store_ok: bool
    not_listening_since: datetime | None
    last_message_at: datetime | None
    # Why the monitor cannot see, when it knows better than "not subscribed".
    blind_reason: str | None = None


def conservation(counters: dict[str, int]) -> dict[str, Any]:
    """received + replayed must equal everything accounted for; `holds` says if it does."""
    came = counters["received"] + counters["replayed"]
    went = (counters["stored"] + counters["duplicate"] + counters["rejected"]
            + counters["refused"] + counters["log_only"] + counters["spool_unread"]
            + counters["pending_write"] + counters["dropped"])
    return {"in": came, "accountedFor": went, "holds": came == went}


class MonitorStatus(TypedDict, total=False):
    """The monitor's own status, as `GET /api/monitor/status` serves it (camelCase: it is
    the API's JSON) and the Monitor page, the metrics and the live feed's heartbeat read it.

    The ingest fills the first group; a web worker's follower adds `ingest`, `follower` and
    `ingestProcesses`; app.py adds `retention`.
    """

    startedAt: str | None
    channel: str
    source: str
    subscribed: bool
    subscribedSince: str | None
    notListeningSince: str | None
    lastRedisError: str | None
    lastMessageAt: str | None
    storeOk: bool | None
    storeDownSince: str | None
    lastStoreError: str | None
    lastCommitAt: str | None
    lastBatchRows: int
    lastBatchSeconds: float
    storeLatencySeconds: float
    ringBuffer: dict[str, int]
    counters: dict[str, int]
    rates: dict[str, float]
    conservation: dict[str, Any]
    spool: dict[str, Any]
    history: list[dict[str, Any]]
    alerts: dict[str, Any]  # with several ingest processes also `leader` and `shared`
    stream: dict[str, Any]
    pubsubLease: str
    # Web side only
    ingest: str
    follower: dict[str, Any]
    ingestProcesses: list[dict[str, Any]]
    processes: list[dict[str, Any]]
    retention: dict[str, Any]


StatusSource = Callable[[], MonitorStatus]
