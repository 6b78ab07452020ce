"""`python -m retention --migrate`: an unpartitioned PostgreSQL error_logs (made by an older
version) becomes partitioned by day; a stopped migration resumes where it stopped."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from queries.schema import error_logs_layout, postgres_error_logs_ddl
from retention.partitions import (
    ensure_days,
    legacy_exists,
    move_legacy_rows,
    partition_name,
    switch_to_partitioned,
)
from retention.policy import Clock, Progress, RetentionPolicy


def migrate(conn: Any, policy: RetentionPolicy, clock: Clock,
            progress: Progress | None = None) -> str:
    """Partition error_logs on this (UTC, detached) PostgreSQL connection; what was done."""
    layout = error_logs_layout(conn)
    conn.commit()
    if layout == "missing":
        return "no error_logs table: start the monitor once, it makes a partitioned one"
    # The days the kept rows fall on, and the days ahead, get their partitions, so
    # that the moved rows (and the ingest's) land in them rather than in DEFAULT.
    today = clock().astimezone(UTC).date()
    first = today - timedelta(days=policy.days)
    days = [first + timedelta(days=n)
            for n in range((today - first).days + policy.partitions_ahead + 1)]
    recorded = 0
    made: list[str] = []
    if layout == "plain":
        recorded = switch_to_partitioned(conn, postgres_error_logs_ddl(), days)
        made = [partition_name(day) for day in days]
    elif not legacy_exists(conn):
        return "error_logs is already partitioned; nothing to do"
    made += ensure_days(conn, days)
    moved = move_legacy_rows(conn, policy.batch_rows,
                             (lambda n: progress("moving rows", n)) if progress else None)
    return (f"error_logs is partitioned by day: {len(made)} partitions made, {moved} rows "
            f"moved, {recorded} error ids recorded; the old table is dropped")
