"""The alerts and silences tables: saving the engine's alerts, reading for the API and page."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from queries.records import as_utc, iso_utc
from queries.schema import alert_feed, alert_outbox, alerts, error_groups, silences

_ALERT_FIELDS = ("id", "rule", "alert_key", "state", "started_at", "ended_at", "last_event_at",
                 "event_count", "summary", "sample", "last_notice", "notified_at", "notices",
                 "suppressed")


def save_alerts(engine: Engine, rows: list[dict[str, Any]],
                outbox: Sequence[dict[str, Any]] = (),
                feed: tuple[str, str] | None = None, now: datetime | None = None) -> None:
    """Insert or update alerts by id (each row has the columns of `alerts`), in the same
    transaction add the notices their changes made to the outbox (a row already there is
    left alone) and, with `feed` = (name, last id), say up to which event they go."""
    with engine.begin() as conn:
        for row in rows:
            values = {k: row[k] for k in _ALERT_FIELDS if k in row}
            done = conn.execute(update(alerts).where(alerts.c.id == row["id"]).values(values))
            if done.rowcount == 0:
                conn.execute(insert(alerts).values(values))
        for notice in outbox:
            conn.execute(_insert_new(conn, alert_outbox, notice))
        if feed is not None:
            name, last_id = feed
            when = now or datetime.now(UTC)
            done = conn.execute(update(alert_feed).where(alert_feed.c.name == name)
                                .values(last_id=last_id, updated_at=when))
            if done.rowcount == 0:
                conn.execute(insert(alert_feed).values(name=name, last_id=last_id,
                                                       updated_at=when))


def _insert_new(conn: Connection, table: Table, values: dict[str, Any]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, in the dialect of the connection."""
    dialect = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    return dialect(table).values(values).on_conflict_do_nothing()


def read_feed(engine: Engine, name: str) -> dict[str, Any] | None:
    """The alert leader's place in the event stream and who leads, or None (nobody yet)."""
    with engine.connect() as conn:
        row = conn.execute(select(alert_feed).where(alert_feed.c.name == name)).mappings().first()
    return dict(row) if row else None


def claim_feed(engine: Engine, name: str, leader: str, start_id: str,
               now: datetime) -> str:
    """A new leader says so; the last id evaluated (`start_id` when there is none yet)."""
    with engine.begin() as conn:
        row = conn.execute(select(alert_feed.c.last_id).where(alert_feed.c.name == name)
                           ).first()
        if row is None:
            conn.execute(insert(alert_feed).values(name=name, last_id=start_id, leader=leader,
                                                   leader_since=now, updated_at=now))
            return start_id
        conn.execute(update(alert_feed).where(alert_feed.c.name == name)
                     .values(leader=leader, leader_since=now, updated_at=now))
        return row.last_id


def load_firing(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(alerts).where(alerts.c.state == "firing")).mappings().all()
    return [{k: (as_utc(v) if isinstance(v, datetime) else v) for k, v in row.items()}
            for row in rows]


def _alert_json(row: Any) -> dict[str, Any]:
    def when(value: datetime | None) -> str | None:
        return iso_utc(as_utc(value)) if value else None

    return {"id": row.id, "rule": row.rule, "key": row.alert_key, "state": row.state,
            "startedAt": when(row.started_at), "endedAt": when(row.ended_at),
            "lastEventAt": when(row.last_event_at), "count": row.event_count,
            "summary": row.summary, "sample": row.sample, "lastNotice": row.last_notice,
            "notifiedAt": when(row.notified_at), "notices": row.notices,
            "suppressed": row.suppressed}


def list_alerts(engine: Engine, state: str = "firing", limit: int = 200) -> list[dict[str, Any]]:
    """Alerts newest first: `firing`, `resolved` or `all`."""
    query = select(alerts).order_by(alerts.c.started_at.desc()).limit(limit)
    if state != "all":
        query = query.where(alerts.c.state == state)
    with engine.connect() as conn:
        return [_alert_json(row) for row in conn.execute(query)]


def count_alerts(engine: Engine, state: str) -> int:
    """How many alerts are in `state` (firing or resolved); uses the index on `state`."""
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(alerts)
                            .where(alerts.c.state == state)).scalar_one()


def count_firing(engine: Engine) -> int:
    return count_alerts(engine, "firing")


def firing_keys(engine: Engine, rule: str) -> list[str]:
    """The keys of the firing alerts of one rule (the channels nobody listens on, ...)."""
    with engine.connect() as conn:
        return list(conn.execute(select(alerts.c.alert_key).where(
            alerts.c.state == "firing", alerts.c.rule == rule)).scalars())


def _silence_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "rule": row.rule, "key": row.alert_key,
            "until": iso_utc(as_utc(row.until)), "reason": row.reason,
            "createdBy": row.created_by, "createdAt": iso_utc(as_utc(row.created_at))}


def list_silences(engine: Engine, now: datetime | None = None,
                  active_only: bool = True) -> list[dict[str, Any]]:
    query = select(silences).order_by(silences.c.until.desc())
    if active_only:
        query = query.where(silences.c.until > (now or datetime.now(UTC)))
    with engine.connect() as conn:
        return [_silence_json(row) for row in conn.execute(query)]


def add_silence(engine: Engine, rule: str, key: str | None, until: datetime, reason: str,
                created_by: str, now: datetime | None = None) -> dict[str, Any]:
    values = {"id": uuid.uuid4().hex, "rule": rule, "alert_key": key, "until": until,
              "reason": reason, "created_by": created_by, "created_at": now or datetime.now(UTC)}
    with engine.begin() as conn:
        conn.execute(insert(silences).values(values))
        row = conn.execute(select(silences).where(silences.c.id == values["id"])).one()
    return _silence_json(row)


def delete_silence(engine: Engine, silence_id: str) -> bool:
    with engine.begin() as conn:
        return conn.execute(delete(silences).where(silences.c.id == silence_id)).rowcount > 0


def ignored_fingerprints(engine: Engine, now: datetime) -> list[str]:
    """Groups ignored right now (for good or until a time still ahead)."""
    query = select(error_groups.c.fingerprint).where(
        error_groups.c.state == "ignored",
        or_(error_groups.c.ignore_until.is_(None), error_groups.c.ignore_until > now))
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())
