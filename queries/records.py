"""Plain records passed between the ingest and the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SEVERITIES = ("debug", "info", "warning", "error", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
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
    fingerprint: str | None = None  # the error group (ingest/fingerprint.py)

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


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that could not be stored as an error: it goes to the dead-letter table."""

    raw: str
    reason: str
    received_at: datetime
    error_id: str | None = None
    raw_bytes: int = field(default=0)


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a `Z`, the API's time format."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
