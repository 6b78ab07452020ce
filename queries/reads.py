"""The reads the API and dashboard make; plain dicts out, never ORM objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from queries.counted import RECEIVED, counted
from queries.counts import matrix_counts
from queries.records import as_utc, iso_utc
from queries.schema import error_logs

SHOWN_SEVERITIES = ("warning", "error", "critical")
_SUMMARY_COLUMNS = (
    error_logs.c.error_id, error_logs.c.error_type, error_logs.c.error_message,
    error_logs.c.severity, error_logs.c.category, error_logs.c.symbol,
    error_logs.c.component, error_logs.c.timestamp,
)


def error_summary(row: Any) -> dict[str, Any]:
    """An error as `GET /api/errors/recent` lists it (CONTRACT.md §4)."""
    return {
        "id": row.error_id,
        "type": row.error_type,
        "message": row.error_message,
        "severity": row.severity,
        "category": row.category,
        "symbol": row.symbol,
        "component": row.component,
        "timestamp": iso_utc(as_utc(row.timestamp)),
    }


def recent_errors(engine: Engine, limit: int = 100,
                  include_test: bool = False) -> list[dict[str, Any]]:
    """The `limit` errors received last, newest first (by the time received: a producer's
    clock hours behind must not bury a new error); test traffic only when asked for."""
    query = (select(*_SUMMARY_COLUMNS).where(*counted(include_test))
             .order_by(RECEIVED.desc()).limit(limit))
    with engine.connect() as conn:
        return [error_summary(row) for row in conn.execute(query)]


def error_statistics(engine: Engine, hours: int, now: datetime | None = None) -> dict[str, Any]:
    """Counts by severity and by category over the last `hours` hours (every row received
    since then), from the count tables and the window's raw edge (queries/counts.py)."""
    since = (now or datetime.now(UTC)) - timedelta(hours=hours)
    by_severity = dict.fromkeys(SHOWN_SEVERITIES, 0)
    categories: dict[str, int] = {}
    with engine.connect() as conn:
        cells = matrix_counts(conn, since, None)
    for (_, severity, category), n in cells.items():
        by_severity[severity] = by_severity.get(severity, 0) + n
        categories[category] = categories.get(category, 0) + n
    by_category = dict(sorted(categories.items(), key=lambda kv: (-kv[1], kv[0])))
    return {
        "timeRange": f"last_{hours}_hours",
        "bySeverity": by_severity,
        "byCategory": by_category,
        "total": sum(by_severity.values()),
    }


def serious_counts(engine: Engine, since: datetime) -> tuple[int, int]:
    """(critical, error) counts of the rows received since `since` (test traffic never
    counts): minute buckets and the raw edge of the window (queries/counts.py)."""
    counts = {"critical": 0, "error": 0}
    with engine.connect() as conn:
        for (_, severity, _), n in matrix_counts(conn, since, None,
                                                 severities=("critical", "error")).items():
            counts[severity] += n
    return counts["critical"], counts["error"]


def get_error(engine: Engine, error_id: str) -> dict[str, Any] | None:
    """One stored error in full, or None."""
    with engine.connect() as conn:
        row = conn.execute(
            select(error_logs).where(error_logs.c.error_id == error_id)).first()
    if row is None:
        return None
    full = error_summary(row)
    full.update({
        "uuid": str(row.id),
        "traceback": row.error_traceback,
        "operation": row.operation,
        "source": row.source,
        "context": row.context,
        "createdAt": iso_utc(as_utc(row.created_at)),
        "receivedAt": iso_utc(as_utc(row.received_at)),
        "clockSkewSeconds": round(
            (as_utc(row.timestamp) - as_utc(row.received_at)).total_seconds(), 3),
        "test": bool(row.is_test),
    })
    return full
