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

from queries.records import SEVERITY_RANK, ErrorEvent

STATES = ("unresolved", "resolved", "ignored", "regressed")
SETTABLE_STATES = ("unresolved", "resolved", "ignored")
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


def _to_db(moment: datetime, dialect: str) -> Any:
    if dialect == "postgresql":
        return moment
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _from_db(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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
            if event.timestamp < agg.first_seen:  # type: ignore[operator]
                agg.first_seen = event.timestamp
            if event.timestamp > agg.last_seen:  # type: ignore[operator]
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
        inserts, updates, changes = [], [], []
        for fp, agg in groups.items():
            old = existing.get(fp)
            if old is None:
                inserts.append((fp, group_title(agg.first), agg.first.error_type,
                                agg.first.category, agg.first.component, agg.first.operation,
                                _to_db(agg.first_seen, dialect), _to_db(agg.last_seen, dialect),
                                agg.count, agg.worst, "unresolved", _to_db(now, dialect)))
                changes.append(GroupChange(fp, "unresolved", None, agg.count))
                continue
            state = next_state(old["state"], old["ignore_until"], old["ignore_until_count"],
                               old["event_count"] + agg.count, now)
            worst = agg.worst if SEVERITY_RANK[agg.worst] > SEVERITY_RANK[old["worst"]] \
                else old["worst"]
            first_seen = min(old["first_seen"], agg.first_seen)  # type: ignore[type-var]
            last_seen = max(old["last_seen"], agg.last_seen)  # type: ignore[type-var]
            changed = state != old["state"]
            updates.append((
                _to_db(first_seen, dialect), _to_db(last_seen, dialect), agg.count, worst, state,
                _to_db(now, dialect) if changed else _to_db(old["changed_at"] or now, dialect),
                _to_db(now, dialect) if state == "regressed" and changed
                else (_to_db(old["regressed_at"], dialect) if old["regressed_at"] else None),
                fp))
            changes.append(GroupChange(fp, state, old["state"], agg.count))
        if inserts:
            _write_many(
                cur, dialect,
                "INSERT INTO error_groups (fingerprint, title, error_type, category, component, "
                "operation, first_seen, last_seen, event_count, worst_severity, state, "
                "state_changed_at) VALUES {values}", inserts)
        if updates:
            _update_many(
                cur, dialect, "error_groups",
                {"first_seen": "timestamptz", "last_seen": "timestamptz",
                 "event_count": "bigint", "worst_severity": "text", "state": "text",
                 "state_changed_at": "timestamptz", "regressed_at": "timestamptz"},
                updates, add=("event_count",))
        if symbols:
            self._symbols(cur, dialect, symbols)
        cur.close()
        return changes

    def _existing(self, cur: Any, dialect: str,
                  fingerprints: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        lock = " FOR UPDATE" if dialect == "postgresql" else ""
        for row in _select_in(cur, dialect,
                              "SELECT fingerprint, state, ignore_until, ignore_until_count, "
                              "event_count, worst_severity, first_seen, last_seen, "
                              "state_changed_at, regressed_at FROM error_groups "
                              "WHERE fingerprint {in_list}" + lock, fingerprints):
            found[row[0]] = {
                "state": row[1], "ignore_until": _from_db(row[2]),
                "ignore_until_count": row[3], "event_count": row[4], "worst": row[5],
                "first_seen": _from_db(row[6]), "last_seen": _from_db(row[7]),
                "changed_at": _from_db(row[8]), "regressed_at": _from_db(row[9])}
        return found

    def _symbols(self, cur: Any, dialect: str,
                 symbols: dict[tuple[str, str], list[Any]]) -> None:
        fingerprints = sorted({fp for fp, _ in symbols})
        known = {(row[0], row[1]) for row in _select_in(
            cur, dialect,
            "SELECT fingerprint, symbol FROM error_group_symbols WHERE fingerprint {in_list}",
            fingerprints)}
        _write_many(
            cur, dialect,
            "INSERT INTO error_group_symbols (fingerprint, symbol, event_count, last_seen) "
            "VALUES {values} ON CONFLICT (fingerprint, symbol) DO UPDATE "
            "SET event_count = error_group_symbols.event_count + excluded.event_count, "
            "last_seen = CASE WHEN excluded.last_seen > error_group_symbols.last_seen "
            "THEN excluded.last_seen ELSE error_group_symbols.last_seen END",
            [(fp, symbol, count, _to_db(last, dialect))
             for (fp, symbol), (count, last) in symbols.items()])
        grown: dict[str, int] = {}
        for key in symbols:
            if key not in known:
                grown[key[0]] = grown.get(key[0], 0) + 1
        if grown:
            _update_many(cur, dialect, "error_groups", {"symbol_count": "integer"},
                         [(n, fp) for fp, n in grown.items()], add=("symbol_count",))


# One statement per batch on PostgreSQL (psycopg2's executemany is a round trip per row);
# SQLite runs in-process, where executemany is already cheap.
_PAGE_ROWS = 1000


def _select_in(cur: Any, dialect: str, sql: str, keys: list[str]) -> list[Any]:
    """Rows of `sql` (with `{in_list}` after the key column) for all `keys`."""
    if dialect == "postgresql":
        cur.execute(sql.format(in_list="= ANY(%s)"), (keys,))
        return cur.fetchall()
    rows: list[Any] = []
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        cur.execute(sql.format(in_list=f"IN ({', '.join('?' * len(chunk))})"), chunk)
        rows.extend(cur.fetchall())
    return rows


def _write_many(cur: Any, dialect: str, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """`sql` (with `{values}` where the rows go) for every row."""
    if not rows:
        return
    if dialect == "postgresql":
        execute_values(cur, sql.format(values="%s"), rows, page_size=_PAGE_ROWS)
    else:
        cur.executemany(sql.format(values=f"({', '.join('?' * len(rows[0]))})"), rows)


def _update_many(cur: Any, dialect: str, table: str, columns: dict[str, str],
                 rows: list[tuple[Any, ...]], add: tuple[str, ...] = ()) -> None:
    """Set `columns` (name -> PostgreSQL type) by fingerprint; each row is the values in
    order, then the fingerprint. Columns in `add` are added to, not replaced."""
    if not rows:
        return
    if dialect == "postgresql":
        sets = ", ".join(f"{c} = t.{c} + v.{c}" if c in add else f"{c} = v.{c}"
                         for c in columns)
        template = "(" + ", ".join(f"%s::{kind}" for kind in columns.values()) + ", %s)"
        execute_values(
            cur, f"UPDATE {table} AS t SET {sets} FROM (VALUES %s) "
            f"AS v({', '.join(columns)}, fingerprint) WHERE t.fingerprint = v.fingerprint",
            rows, template=template, page_size=_PAGE_ROWS)
    else:
        sets = ", ".join(f"{c} = {c} + ?" if c in add else f"{c} = ?" for c in columns)
        cur.executemany(f"UPDATE {table} SET {sets} WHERE fingerprint = ?", rows)


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


def set_state(conn: Any, dialect: str, fingerprint: str, state: str, now: datetime,
              until: datetime | None = None, count: int | None = None) -> None:
    """Resolve, ignore or reopen a group; raises GroupNotFound for an unknown fingerprint.

    `count` ignores the group until that many more events have arrived."""
    if state not in SETTABLE_STATES:
        raise ValueError(f"state must be one of {', '.join(SETTABLE_STATES)}, got {state!r}")
    mark = "%s" if dialect == "postgresql" else "?"
    cur = conn.cursor()
    lock = " FOR UPDATE" if dialect == "postgresql" else ""
    cur.execute(f"SELECT event_count FROM error_groups WHERE fingerprint = {mark}{lock}",
                (fingerprint,))
    row = cur.fetchone()
    if row is None:
        cur.close()
        raise GroupNotFound(fingerprint)
    until_count = row[0] + count if (state == "ignored" and count) else None
    cur.execute(
        f"UPDATE error_groups SET state = {mark}, state_changed_at = {mark}, "
        f"ignore_until = {mark}, ignore_until_count = {mark}, "
        f"resolved_at = {mark} WHERE fingerprint = {mark}",
        (state, _to_db(now, dialect),
         _to_db(until, dialect) if (state == "ignored" and until) else None,
         until_count,
         _to_db(now, dialect) if state == "resolved" else None, fingerprint))
    cur.close()


