"""The health rule shared by the API and the page (CONTRACT.md §4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from queries.reads import serious_counts
from queries.records import iso_utc

HEALTH_WINDOW = timedelta(minutes=5)
DEGRADED_ABOVE = 10


@dataclass(frozen=True)
class Health:
    status: str  # operational | degraded | critical | unknown
    colour: str  # green | yellow | red | gray
    critical_errors: int | None
    errors: int | None
    reason: str
    check_time: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "health": self.colour,
            "criticalErrors": self.critical_errors,
            "errors": self.errors,
            "reason": self.reason,
            "checkTime": iso_utc(self.check_time),
        }


def classify(critical: int, errors: int, now: datetime) -> Health:
    if critical > 0:
        return Health("critical", "red", critical, errors,
                      f"{critical} critical in the last 5 minutes", now)
    if errors > DEGRADED_ABOVE:
        return Health("degraded", "yellow", critical, errors,
                      f"{errors} errors in the last 5 minutes", now)
    return Health("operational", "green", critical, errors, "no critical, few errors", now)


def health_status(engine: Engine, subscribed: bool, store_ok: bool,
                  now: datetime | None = None, blind_reason: str | None = None) -> Health:
    """The health over the last 5 minutes; `unknown` whenever the monitor cannot see.

    A blind monitor must never look green: not subscribed, or a store it cannot read or
    write, gives `unknown`/`gray` with the reason (`blind_reason` when the caller knows it
    better, e.g. a web worker that hears no heartbeat from the ingest process).
    """
    now = now or datetime.now(UTC)
    if not subscribed:
        return Health("unknown", "gray", None, None,
                      blind_reason or "not subscribed to the error channel", now)
    if not store_ok:
        return Health("unknown", "gray", None, None, "the error store is unreachable", now)
    try:
        critical, errors = serious_counts(engine, now - HEALTH_WINDOW)
    except SQLAlchemyError as exc:
        return Health("unknown", "gray", None, None,
                      f"the error store cannot be read: {type(exc).__name__}", now)
    return classify(critical, errors, now)
