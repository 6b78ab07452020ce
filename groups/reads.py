"""Reads of the error groups for the API and the Groups page; plain dicts out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Engine

from groups.hook import effective_state
from queries.counts import group_slot_counts
from queries.records import as_utc, iso_utc
from queries.schema import error_group_symbols, error_groups, error_logs

SORTS = {
    "last_seen": error_groups.c.last_seen.desc(),
    "count": error_groups.c.event_count.desc(),
    "first_seen": error_groups.c.first_seen.desc(),
}
TOP_SYMBOLS = 5


def _when(value: datetime | None) -> str | None:
    return iso_utc(as_utc(value)) if value is not None else None


def _group(row: Any, now: datetime) -> dict[str, Any]:
    ignore_until = as_utc(row.ignore_until) if row.ignore_until else None
    return {
        "fingerprint": row.fingerprint,
        "title": row.title,
        "type": row.error_type,
        "category": row.category,
        "component": row.component,
        "operation": row.operation,
        "firstSeen": _when(row.first_seen),
        "lastSeen": _when(row.last_seen),
        "count": row.event_count,
        "worstSeverity": row.worst_severity,
        "symbolCount": row.symbol_count,
        "state": effective_state(row.state, ignore_until, now),
        "stateChangedAt": _when(row.state_changed_at),
        "ignoreUntil": _when(row.ignore_until),
        "ignoreUntilCount": row.ignore_until_count,
        "resolvedAt": _when(row.resolved_at),
        "regressedAt": _when(row.regressed_at),
    }


def list_groups(engine: Engine, state: str | None = None, hours: int | None = None,
                q: str | None = None, sort: str = "last_seen", limit: int = 100,
                now: datetime | None = None) -> list[dict[str, Any]]:
    """Groups newest (or biggest) first, with their top symbols and counts for the last 24
    clock hours (the current one last)."""
    now = now or datetime.now(UTC)
    query = select(error_groups)
    if state == "ignored":
        query = query.where(error_groups.c.state == "ignored",
                            or_(error_groups.c.ignore_until.is_(None),
                                error_groups.c.ignore_until > now))
    elif state == "unresolved":
        query = query.where(or_(error_groups.c.state == "unresolved",
                                and_(error_groups.c.state == "ignored",
                                     error_groups.c.ignore_until <= now)))
    elif state:
        query = query.where(error_groups.c.state == state)
    if hours:
        query = query.where(error_groups.c.last_seen >= now - timedelta(hours=hours))
    if q:
        like = f"%{q.lower()}%"
        query = query.where(or_(func.lower(error_groups.c.title).like(like),
                                func.lower(error_groups.c.component).like(like),
                                func.lower(error_groups.c.error_type).like(like)))
    query = query.order_by(SORTS[sort]).limit(limit)
    with engine.connect() as conn:
        groups = [_group(row, now) for row in conn.execute(query)]
        fingerprints = [g["fingerprint"] for g in groups]
        symbols = _top_symbols(conn, fingerprints)
        # The strip's 24 slots are clock hours, the current one last (as far as it has come):
        # each is one bucket of the groups' count table, whatever the rows.
        start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
        series = _hourly(conn, fingerprints, start, start + timedelta(hours=24))
    for group in groups:
        group["topSymbols"] = symbols.get(group["fingerprint"], [])
        group["hourly"] = series.get(group["fingerprint"], [0] * 24)
    return groups


def _top_symbols(conn: Any, fingerprints: list[str]) -> dict[str, list[dict[str, Any]]]:
    if not fingerprints:
        return {}
    rank = func.row_number().over(partition_by=error_group_symbols.c.fingerprint,
                                  order_by=error_group_symbols.c.event_count.desc()).label("rank")
    inner = select(error_group_symbols.c.fingerprint, error_group_symbols.c.symbol,
                   error_group_symbols.c.event_count, rank).where(
        error_group_symbols.c.fingerprint.in_(fingerprints)).subquery()
    top: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(select(inner).where(inner.c.rank <= TOP_SYMBOLS)
                            .order_by(inner.c.fingerprint, inner.c.rank)):
        top.setdefault(row.fingerprint, []).append({"symbol": row.symbol,
                                                    "count": row.event_count})
    return top


def _hourly(conn: Any, fingerprints: list[str], start: datetime,
            end: datetime) -> dict[str, list[int]]:
    """Counts per hour for each fingerprint between start and end (oldest hour first), on
    the producer's time: from the groups' count table and the raw edges of each hour
    (queries/counts.py), the same as counting the rows."""
    hours = int((end - start) / timedelta(hours=1))
    return group_slot_counts(conn, fingerprints, start, hours)


def group_detail(engine: Engine, fingerprint: str, events: int = 50,
                 now: datetime | None = None) -> dict[str, Any] | None:
    """One group with its recent events, an hourly series over 7 days and its latest
    traceback; None when unknown."""
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        row = conn.execute(select(error_groups).where(
            error_groups.c.fingerprint == fingerprint)).first()
        if row is None:
            return None
        group = _group(row, now)
        recent = conn.execute(
            select(error_logs.c.error_id, error_logs.c.error_message, error_logs.c.severity,
                   error_logs.c.symbol, error_logs.c.timestamp, error_logs.c.error_traceback)
            .where(error_logs.c.fingerprint == fingerprint)
            .order_by(error_logs.c.timestamp.desc()).limit(events)).all()
        group["topSymbols"] = _top_symbols(conn, [fingerprint]).get(fingerprint, [])
        start = (now - timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
        series = _hourly(conn, [fingerprint], start, start + timedelta(hours=7 * 24 + 1))
    group["events"] = [{"id": r.error_id, "message": r.error_message, "severity": r.severity,
                        "symbol": r.symbol, "timestamp": _when(r.timestamp)} for r in recent]
    group["latestTraceback"] = next((r.error_traceback for r in recent if r.error_traceback),
                                    None)
    group["hourly"] = {"start": iso_utc(start), "counts": series[fingerprint]}
    return group
