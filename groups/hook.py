"""Error groups: kept current in each batch's transaction, triaged by people.

States: `unresolved` (new), `resolved`, `ignored` (for good, until a time, or until N more
events), `regressed` (a new event arrived in a resolved group). An ignored group's events are
stored and counted but do not notify.

The batch hook works on the writer's DBAPI connection with plain SQL that both PostgreSQL
and SQLite accept, so the groups move in the same transaction as the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg2.extras import execute_values

from queries.dialects import (
    PAGE_ROWS,
    db_time,
    for_update,
    from_db_time,
    insert_new,
    is_postgres,
    select_in,
    update_many,
    write_many,
)
from queries.records import SEVERITY_RANK, ErrorEvent

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class GroupChange:
    """What a batch did to one group, for the alert rules."""

    fingerprint: str
    state: str  # after the batch
    previous_state: str | None  # None: the group is new
    events: int  # new events in this batch

    @property
    def regressed(self) -> bool:
        return self.state == "regressed" and self.previous_state == "resolved"

    @property
    def notifies(self) -> bool:
        return self.state != "ignored"


@dataclass
class _Aggregate:
    first: ErrorEvent
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    worst: str = "debug"


class GroupsHook:
    """The store's batch hook: upsert the groups and symbols of the batch's new events.

    `changes` holds what the last batch did, for whoever acts after the commit (alerts).
    """

    name = "groups"

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))

    def __call__(self, conn: Any, dialect: str, events: list[ErrorEvent]) -> list[GroupChange]:
        now = self.clock()
        groups: dict[str, _Aggregate] = {}
        symbols: dict[tuple[str, str], list[Any]] = {}
        for event in events:
            fp = event.fingerprint
            # Test traffic stays out of the groups' counts (queries/counted.py).
            if fp is None or event.is_test:
                continue
            agg = groups.get(fp)
            if agg is None:
                agg = groups[fp] = _Aggregate(event, first_seen=event.timestamp,
                                              last_seen=event.timestamp)
            agg.count += 1
            if event.timestamp < agg.first_seen:
                agg.first_seen = event.timestamp
            if event.timestamp > agg.last_seen:
                agg.last_seen = event.timestamp
            if SEVERITY_RANK[event.severity] > SEVERITY_RANK[agg.worst]:
                agg.worst = event.severity
            if event.symbol:
                seen = symbols.setdefault((fp, event.symbol), [0, event.timestamp])
                seen[0] += 1
                if event.timestamp > seen[1]:
                    seen[1] = event.timestamp
        if not groups:
            return []
        cur = conn.cursor()
        existing = self._existing(cur, dialect, list(groups))
        inserts, updates, changes = [], [], {}
        for fp, agg in groups.items():
            old = existing.get(fp)
            if old is None:
                inserts.append((fp, group_title(agg.first), agg.first.error_type,
                                agg.first.category, agg.first.component, agg.first.operation,
                                db_time(agg.first_seen, dialect), db_time(agg.last_seen, dialect),
                                agg.count, agg.worst, "unresolved", db_time(now, dialect)))
                changes[fp] = GroupChange(fp, "unresolved", None, agg.count)
            else:
                changes[fp] = self._update(fp, agg, old, now, dialect, updates)
        if inserts:
            inserted = insert_new(
                cur, dialect,
                "INSERT INTO error_groups (fingerprint, title, error_type, category, component, "
                "operation, first_seen, last_seen, event_count, worst_severity, state, "
                "state_changed_at) VALUES {values}", "fingerprint", inserts)
            # Another ingest process made the same new group at the same moment: its row is
            # there now (committed, locked by us from here on), so these events update it.
            raced = [row[0] for row in inserts if row[0] not in inserted]
            if raced:
                for fp, old in self._existing(cur, dialect, raced).items():
                    changes[fp] = self._update(fp, groups[fp], old, now, dialect, updates)
        if updates:
            update_many(
                cur, dialect, "error_groups",
                {"first_seen": "timestamptz", "last_seen": "timestamptz",
                 "event_count": "bigint", "worst_severity": "text", "state": "text",
                 "state_changed_at": "timestamptz", "regressed_at": "timestamptz"},
                updates, add=("event_count",))
        if symbols:
            self._symbols(cur, dialect, symbols)
        cur.close()
        return list(changes.values())

    @staticmethod
    def _update(fp: str, agg: _Aggregate, old: dict[str, Any], now: datetime, dialect: str,
                updates: list[tuple[Any, ...]]) -> GroupChange:
        """Add the batch's events to an existing group: the row to update, the change."""
        state = next_state(old["state"], old["ignore_until"], old["ignore_until_count"],
                           old["event_count"] + agg.count, now)
        worst = agg.worst if SEVERITY_RANK[agg.worst] > SEVERITY_RANK[old["worst"]] \
            else old["worst"]
        first_seen = min(old["first_seen"], agg.first_seen)
        last_seen = max(old["last_seen"], agg.last_seen)
        changed = state != old["state"]
        updates.append((
            db_time(first_seen, dialect), db_time(last_seen, dialect), agg.count, worst, state,
            db_time(now, dialect) if changed else db_time(old["changed_at"] or now, dialect),
            db_time(now, dialect) if state == "regressed" and changed
            else (db_time(old["regressed_at"], dialect) if old["regressed_at"] else None),
            fp))
        return GroupChange(fp, state, old["state"], agg.count)

    def _existing(self, cur: Any, dialect: str,
                  fingerprints: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        lock = for_update(dialect)
        for row in select_in(cur, dialect,
                              "SELECT fingerprint, state, ignore_until, ignore_until_count, "
                              "event_count, worst_severity, first_seen, last_seen, "
                              "state_changed_at, regressed_at FROM error_groups "
                              "WHERE fingerprint {in_list}" + lock, fingerprints):
            found[row[0]] = {
                "state": row[1], "ignore_until": from_db_time(row[2]),
                "ignore_until_count": row[3], "event_count": row[4], "worst": row[5],
                "first_seen": from_db_time(row[6]), "last_seen": from_db_time(row[7]),
                "changed_at": from_db_time(row[8]), "regressed_at": from_db_time(row[9])}
        return found

    def _symbols(self, cur: Any, dialect: str,
                 symbols: dict[tuple[str, str], list[Any]]) -> None:
        rows = [(fp, symbol, count, db_time(last, dialect))
                for (fp, symbol), (count, last) in symbols.items()]
        sql = ("INSERT INTO error_group_symbols (fingerprint, symbol, event_count, last_seen) "
               "VALUES {values} ON CONFLICT (fingerprint, symbol) DO UPDATE "
               "SET event_count = error_group_symbols.event_count + excluded.event_count, "
               "last_seen = CASE WHEN excluded.last_seen > error_group_symbols.last_seen "
               "THEN excluded.last_seen ELSE error_group_symbols.last_seen END")
        if is_postgres(dialect):
            # Which symbols are new to their group, told by the upsert itself (xmax = 0 on a
            # row it inserted): a look before could miss one another ingest just added.
            added = [fp for fp, inserted in execute_values(
                cur, sql.format(values="%s") + " RETURNING fingerprint, (xmax = 0)", rows,
                page_size=PAGE_ROWS, fetch=True) if inserted]
        else:
            known = {(row[0], row[1]) for row in select_in(
                cur, dialect,
                "SELECT fingerprint, symbol FROM error_group_symbols WHERE fingerprint {in_list}",
                sorted({fp for fp, _ in symbols}))}
            write_many(cur, dialect, sql, rows)
            added = [fp for fp, symbol in symbols if (fp, symbol) not in known]
        grown: dict[str, int] = {}
        for fp in added:
            grown[fp] = grown.get(fp, 0) + 1
        if grown:
            update_many(cur, dialect, "error_groups", {"symbol_count": "integer"},
                        [(n, fp) for fp, n in grown.items()], add=("symbol_count",))


# One statement per batch on PostgreSQL (psycopg2's executemany is a round trip per row);
# SQLite runs in-process, where executemany is already cheap.
def group_title(event: ErrorEvent) -> str:
    """What a person reads in the groups list: the type and the first line of the message."""
    text = event.error_message.strip()
    first_line = text.splitlines()[0] if text else "(no message)"
    return f"{event.error_type or event.category}: {first_line}"[:300]


def next_state(state: str, ignore_until: datetime | None, ignore_until_count: int | None,
               count_after: int, now: datetime) -> str:
    """A group's state after a new event arrives."""
    if state == "resolved":
        return "regressed"
    if state == "ignored":
        if ignore_until is not None and now >= ignore_until:
            return "unresolved"
        if ignore_until_count is not None and count_after >= ignore_until_count:
            return "unresolved"
    return state


def effective_state(state: str, ignore_until: datetime | None, now: datetime) -> str:
    """What to show: an ignore whose time has passed is over even before the next event."""
    if state == "ignored" and ignore_until is not None and now >= ignore_until:
        return "unresolved"
    return state


class GroupNotFound(LookupError):
    pass
