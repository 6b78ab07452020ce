"""Small builders for test data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from queries.records import ErrorEvent


def message(**fields: Any) -> dict[str, Any]:
    """A well-formed producer message (CONTRACT.md §1, first shape); fields override."""
    base: dict[str, Any] = {
        "error_id": f"test_{uuid.uuid4().hex}",
        "error_type": "PatternDetectionError",
        "error_message": "Pattern detection failed for Doji: Insufficient data",
        "error_traceback": "Traceback (most recent call last):\n  ...",
        "severity": "error",
        "category": "pattern",
        "context": {"component": "PatternDetector", "operation": "detect_doji",
                    "symbol": "AAPL", "timeframe": "daily"},
        "timestamp": datetime.now(UTC).isoformat(),
    }
    base.update(fields)
    return base


def payload(**fields: Any) -> bytes:
    return orjson.dumps(message(**fields))


def event(**fields: Any) -> ErrorEvent:
    """A normalised event, as the store receives it."""
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "error_id": f"test_{uuid.uuid4().hex}",
        "error_type": "PatternDetectionError",
        "error_message": "Pattern detection failed",
        "error_traceback": None,
        "severity": "error",
        "category": "pattern",
        "source": "TickStockPL",
        "component": "PatternDetector",
        "operation": "detect_doji",
        "symbol": "AAPL",
        "context": {},
        "timestamp": now,
        "received_at": now,
    }
    base.update(fields)
    if "timestamp" in fields and "received_at" not in fields:
        # An event "from two days ago" was received then too, unless a test says otherwise.
        base["received_at"] = fields["timestamp"]
    return ErrorEvent(**base)
