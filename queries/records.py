"""Plain records passed between the ingest and the store."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

SEVERITIES = ("debug", "info", "warning", "error", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
# The severities that alert, notify on the page and count as errors in health.
SERIOUS = frozenset({"error", "critical"})
CATEGORIES = (
    "pattern", "indicator", "database", "network", "validation", "performance",
    "configuration", "security", "integration", "websocket", "redis", "unknown",
)

# Column widths of `error_logs`; normalisation cuts text to fit them.
COLUMN_LIMITS = {
    "error_id": 255,
    "error_type": 255,
    "source": 100,
    "component": 255,
    "operation": 255,
    "symbol": 64,
}

DEAD_LETTER_RAW_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """One normalised error, as it is stored (CONTRACT.md §2)."""

    error_id: str
    error_type: str | None
    error_message: str
    error_traceback: str | None
    severity: str
    category: str
    source: str
    component: str | None
    operation: str | None
    symbol: str | None
    context: dict[str, Any]
    timestamp: datetime
    received_at: datetime
    fingerprint: str | None = None  # the error group (groups/fingerprint.py)
    # Test traffic (category `test`, or `context.test` true): stored and shown as test, but
    # no alert, no health change, and out of every count unless asked for (queries/counted.py).
    is_test: bool = False

    @property
    def clock_skew_seconds(self) -> float:
        """The producer's clock minus ours: `timestamp - received_at`, in seconds."""
        return (self.timestamp - self.received_at).total_seconds()

    def to_summary(self) -> dict[str, Any]:
        """The short shape of the REST API's lists (`id` is the producer's `error_id`)."""
        return {
            "id": self.error_id,
            "type": self.error_type,
            "message": self.error_message,
            "severity": self.severity,
            "category": self.category,
            "symbol": self.symbol,
            "component": self.component,
            "timestamp": iso_utc(self.timestamp),
        }


# `new_event(...)` is `ErrorEvent(...)` (same positional arguments, an equal object), made by
# setting the slots directly: a frozen dataclass's __init__ goes through object.__setattr__
# for every field, which is most of the cost of an event on the ingest's hot path.
_EVENT_FIELDS = ("error_id", "error_type", "error_message", "error_traceback", "severity",
                 "category", "source", "component", "operation", "symbol", "context",
                 "timestamp", "received_at", "fingerprint", "is_test")
if tuple(f.name for f in fields(ErrorEvent)) != _EVENT_FIELDS:  # pragma: no cover
    raise RuntimeError("ErrorEvent's fields changed: update new_event")
(_set_error_id, _set_error_type, _set_error_message, _set_error_traceback, _set_severity,
 _set_category, _set_source, _set_component, _set_operation, _set_symbol, _set_context,
 _set_timestamp, _set_received_at, _set_fingerprint, _set_is_test) = (
    getattr(ErrorEvent, name).__set__ for name in _EVENT_FIELDS)
_new_object = object.__new__


def new_event(error_id: str, error_type: str | None, error_message: str,
              error_traceback: str | None, severity: str, category: str, source: str,
              component: str | None, operation: str | None, symbol: str | None,
              context: dict[str, Any], timestamp: datetime, received_at: datetime,
              fingerprint: str | None = None, is_test: bool = False) -> ErrorEvent:
    event = _new_object(ErrorEvent)
    _set_error_id(event, error_id)
    _set_error_type(event, error_type)
    _set_error_message(event, error_message)
    _set_error_traceback(event, error_traceback)
    _set_severity(event, severity)
    _set_category(event, category)
    _set_source(event, source)
    _set_component(event, component)
    _set_operation(event, operation)
    _set_symbol(event, symbol)
    _set_context(event, context)
    _set_timestamp(event, timestamp)
    _set_received_at(event, received_at)
    _set_fingerprint(event, fingerprint)
    _set_is_test(event, is_test)
    return event


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that could not be stored as an error: it goes to the dead-letter table."""

    raw: str
    reason: str
    received_at: datetime
    error_id: str | None = None
    raw_bytes: int = field(default=0)


def parse_iso_utc(value: datetime | str | None) -> datetime | None:
    """The inverse of iso_utc: an aware UTC datetime, or None for nothing or unreadable text.
    A time without a zone is UTC (every time this project writes is), never local time."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)  # takes the `Z` from Python 3.11 on
        except ValueError:
            return None
    else:
        return None
    return as_utc(moment)


def as_utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime; a naive one is taken as UTC, never local time
    (SQLite and raw DB-API cursors hand back naive datetimes; every time written is UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a `Z`, the API's time format."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
