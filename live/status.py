"""What the running ingest tells the web side about itself: listening state and accounting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


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
