"""Daily partitions of `error_logs` on PostgreSQL: made ahead, detached and dropped when expired.

A partition holds one UTC day: `error_logs_p20241030` is FOR VALUES FROM ('2024-10-30
00:00+00') TO ('2024-10-31 00:00+00'). Rows of a day without a partition go to
`error_logs_default`.

Locks, because the ingest writes all the time (measured in bench/retention.py):
- A new day is made as a plain table (LIKE error_logs) and then ATTACHed: ATTACH takes only
  SHARE UPDATE EXCLUSIVE on error_logs (inserts and reads go on), and ACCESS EXCLUSIVE on the
  DEFAULT partition while it checks that none of its rows belongs to the new day. Rows of that
  day already in DEFAULT are moved into the new table first, in the same transaction.
- An expired day is DETACHed (ACCESS EXCLUSIVE on error_logs and DEFAULT, catalog work only:
  milliseconds) and then dropped as a plain table, which no longer locks error_logs.
  `DETACH ... CONCURRENTLY` would avoid that lock, but PostgreSQL refuses it while a DEFAULT
  partition exists ("cannot detach partitions concurrently when a default partition exists").
- Every such statement runs with a short `lock_timeout` and is retried: waiting behind a long
  read must never make the ingest queue behind us for long.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any, TypeVar

import psycopg2
import psycopg2.errors

from queries.count_tables import (
    pg_add_table_rows,
    pg_count_tables_of_error_logs,
    pg_function_ddl,
)
from queries.schema import DEFAULT_PARTITION, error_logs, error_logs_table_ddl

log = logging.getLogger(__name__)

PREFIX = "error_logs_p"
_DAY_NAME = re.compile(r"^error_logs_p(\d{8})$")
_BOUND = re.compile(r"FROM \((?P<lo>[^)]*)\) TO \((?P<hi>[^)]*)\)")
LOCK_TIMEOUT_MS = 200
LOCK_ATTEMPTS = 25
COLUMNS = ", ".join(f'"{c.name}"' for c in error_logs.columns)

T = TypeVar("T")


class LockBusy(RuntimeError):
    """A table lock could not be had within the attempts; nothing was changed."""


@dataclass(frozen=True)
class Partition:
    name: str
    lower: datetime | None  # None: MINVALUE
    upper: datetime | None  # None: MAXVALUE
    default: bool = False


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def partition_name(day: date) -> str:
    return f"{PREFIX}{day:%Y%m%d}"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, dtime(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def day_of(name: str) -> date | None:
    match = _DAY_NAME.match(name)
    return datetime.strptime(match.group(1), "%Y%m%d").date() if match else None


def _parse_bound(text: str) -> datetime | None:
    text = text.strip()
    if text.upper() in ("MINVALUE", "MAXVALUE"):
        return None
    return datetime.fromisoformat(text.strip("'")).astimezone(UTC)


class DdlTimer:
    """The longest a DDL transaction took (lock wait included): the ingest's worst stall."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.statements = 0

    def add(self, seconds: float) -> None:
        self.longest = max(self.longest, seconds)
        self.statements += 1


def with_short_locks(conn: Any, what: str, action: Callable[[Any], T],
                     timer: DdlTimer | None = None, attempts: int = LOCK_ATTEMPTS,
                     timeout_ms: int = LOCK_TIMEOUT_MS) -> T:
    """Run `action(cursor)` in its own transaction with a short lock_timeout, retrying."""
    for attempt in range(1, attempts + 1):
        cur = conn.cursor()
        started = time.perf_counter()
        try:
            cur.execute(f"SET LOCAL lock_timeout = '{int(timeout_ms)}ms'")
            result = action(cur)
            conn.commit()
            if timer is not None:
                timer.add(time.perf_counter() - started)
            return result
        except (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected):
            conn.rollback()
            if attempt == attempts:
                break
            time.sleep(min(2.0, 0.05 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.0))
        except Exception:
            conn.rollback()
            raise
        finally:
            cur.close()
    raise LockBusy(f"{what}: the table stayed locked by others through {attempts} attempts")


def list_partitions(conn: Any) -> list[Partition]:
    """The partitions attached to error_logs (the session's TimeZone must be UTC)."""
    cur = conn.cursor()
    cur.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'error_logs'::regclass "
        "ORDER BY c.relname")
    found = []
    for name, bound in cur.fetchall():
        if bound.strip().upper() == "DEFAULT":
            found.append(Partition(name, None, None, default=True))
            continue
        match = _BOUND.search(bound)
        if match is None:  # not a range partition: leave it alone
            continue
        found.append(Partition(name, _parse_bound(match.group("lo")),
                               _parse_bound(match.group("hi"))))
    cur.close()
    conn.commit()
    return found


def detached_days(conn: Any) -> list[Partition]:
    """Day tables not attached to error_logs: left by a run that stopped between steps."""
    cur = conn.cursor()
    cur.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND NOT c.relispartition "
        "AND c.relname LIKE 'error\\_logs\\_p%'")
    names = [row[0] for row in cur.fetchall()]
    cur.close()
    conn.commit()
    found = []
    for name in names:
        day = day_of(name)
        if day is not None:
            lower, upper = day_bounds(day)
            found.append(Partition(name, lower, upper))
    return found


def attach(conn: Any, part: Partition, create: bool, timer: DdlTimer | None = None) -> int:
    """Attach `part` (made first when `create`), moving in its rows from DEFAULT; returns them."""
    name = ident(part.name)

    def action(cur: Any) -> int:
        # Inserts that would land in DEFAULT wait the few milliseconds this takes (those into
        # the days' partitions go on): a row of this day written into DEFAULT between the move
        # and the ATTACH would make the ATTACH fail.
        cur.execute(f"LOCK TABLE {ident(DEFAULT_PARTITION)} IN EXCLUSIVE MODE")
        if create:
            cur.execute(f"CREATE TABLE {name} "
                        "(LIKE error_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        else:
            # A day table left detached: its rows were taken out of the counts with the
            # DETACH (below), so they go back in with the ATTACH.
            for statement in pg_add_table_rows(part.name, +1):
                cur.execute(statement)
        # Before the move: the rows moved in from DEFAULT are counted by its triggers (out
        # of DEFAULT) and by this table's (in), so the counts stay as they were.
        for statement in error_logs_table_ddl(part.name):
            cur.execute(statement)
        # Rows of this day that went to DEFAULT (no partition yet, or while it was detached)
        # must move, or ATTACH refuses: DEFAULT may not hold rows of an attached range.
        cur.execute(
            f"WITH moved AS (DELETE FROM {ident(DEFAULT_PARTITION)} "
            f'WHERE "timestamp" >= %s AND "timestamp" < %s RETURNING {COLUMNS}) '
            f"INSERT INTO {name} ({COLUMNS}) SELECT {COLUMNS} FROM moved",
            (part.lower, part.upper))
        moved = cur.rowcount
        cur.execute(f"ALTER TABLE error_logs ATTACH PARTITION {name} "
                    "FOR VALUES FROM (%s) TO (%s)", (part.lower, part.upper))
        return moved

    return with_short_locks(conn, f"attach {part.name}", action, timer)


def ensure_days(conn: Any, days: Iterable[date], timer: DdlTimer | None = None) -> list[str]:
    """Make the partitions of `days` that no attached partition covers yet; returns them."""
    existing = [p for p in list_partitions(conn) if not p.default]
    made = []
    for day in days:
        lower, upper = day_bounds(day)
        if any((p.lower is None or p.lower < upper) and (p.upper is None or p.upper > lower)
               for p in existing):
            continue
        part = Partition(partition_name(day), lower, upper)
        moved = attach(conn, part, create=True, timer=timer)
        if moved:
            log.info("partition %s made; %d rows moved in from %s", part.name, moved,
                     DEFAULT_PARTITION)
        existing.append(part)
        made.append(part.name)
    return made


def detach(conn: Any, part: Partition, timer: DdlTimer | None = None) -> None:
    """Detach `part`, taking its rows out of the counts in the same transaction (DETACH and
    DROP fire no trigger: queries/count_tables.py).

    error_logs is locked first, as the DETACH locks it: the day's rows are counted out while
    nothing can be written into it. Locking the day first and error_logs after deadlocks
    with an ingest that writes a late row into that day (it holds error_logs and waits for
    the day). The ingest and the readers wait for the counting: 1.5-3 s for a day of 33k
    rows, about 10 s for one of 333k, on a busy 2-core machine (bench/read_counts.py prints
    it), most of it the day's ten-minute name buckets; once a day, for each day dropped."""

    def action(cur: Any) -> None:
        cur.execute("LOCK TABLE error_logs IN ACCESS EXCLUSIVE MODE")
        for statement in pg_add_table_rows(part.name, -1):
            cur.execute(statement)
        cur.execute(f"ALTER TABLE error_logs DETACH PARTITION {ident(part.name)}")

    with_short_locks(conn, f"detach {part.name}", action, timer)


def drop_detached(conn: Any, part: Partition) -> None:
    """Drop a day table that is no longer attached (locks nothing the ingest uses)."""
    with_short_locks(conn, f"drop {part.name}",
                     lambda cur: cur.execute(f"DROP TABLE IF EXISTS {ident(part.name)}"))


# -- migrating an unpartitioned table -------------------------------------------------------
LEGACY = "error_logs_legacy"


def legacy_exists(conn: Any) -> bool:
    cur = conn.cursor()
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (LEGACY,))
    found = bool(cur.fetchone()[0])
    cur.close()
    conn.commit()
    return found


def switch_to_partitioned(conn: Any, ddl: list[str], days: Iterable[date],
                          timer: DdlTimer | None = None) -> int:
    """Rename the plain error_logs (and its indexes) to error_logs_legacy, make the partitioned
    table in its place with the partitions of `days`, and record every legacy error_id in
    error_ids, in one transaction.

    From its commit on, the ingest writes into the partitioned table, and a re-sent copy of
    a legacy error is still a duplicate. Returns the ids recorded.
    """

    def action(cur: Any) -> int:
        cur.execute("LOCK TABLE error_logs IN ACCESS EXCLUSIVE MODE")
        cur.execute("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE i.indrelid = 'error_logs'::regclass")
        for (index,) in cur.fetchall():
            cur.execute(f"ALTER INDEX {ident(index)} RENAME TO {ident(index[:52] + '_legacy')}")
        cur.execute(f"ALTER TABLE error_logs RENAME TO {ident(LEGACY)}")
        for statement in ddl:
            cur.execute(statement)
        for day in days:  # made now, while empty: the ingest's next rows land in their day
            lower, upper = day_bounds(day)
            cur.execute(f"CREATE TABLE {ident(partition_name(day))} PARTITION OF error_logs "
                        "FOR VALUES FROM (%s) TO (%s)", (lower, upper))
        # The new tables count like the old one (which keeps its triggers under its new
        # name: moving a row out of it and into error_logs leaves the counts as they were).
        for statement in pg_function_ddl():
            cur.execute(statement)
        for table in pg_count_tables_of_error_logs(cur):
            for statement in error_logs_table_ddl(table):
                cur.execute(statement)
        cur.execute(f'INSERT INTO error_ids (error_id, "timestamp") SELECT error_id, "timestamp" '
                    f"FROM {ident(LEGACY)} ON CONFLICT (error_id) DO NOTHING")
        return cur.rowcount

    # Renaming needs the table to itself for a moment: allow a longer wait than daily work.
    return with_short_locks(conn, "switch error_logs to partitioned", action, timer,
                            attempts=10, timeout_ms=2000)


def move_legacy_rows(conn: Any, batch_rows: int,
                     progress: Callable[[int], None] | None = None) -> int:
    """Move the legacy rows into the partitioned table in batches, then drop the legacy table.

    Each batch is one transaction (DELETE ... RETURNING into INSERT), so a stopped migration
    resumes where it was by running it again.
    """
    cur = conn.cursor()
    cur.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped", (LEGACY,))
    legacy_columns = {row[0] for row in cur.fetchall()}
    conn.commit()
    columns = ", ".join(f'"{c.name}"' for c in error_logs.columns if c.name in legacy_columns)
    moved = 0
    while True:
        cur.execute(
            f"WITH moved AS (DELETE FROM {ident(LEGACY)} WHERE ctid = ANY(ARRAY("
            f"SELECT ctid FROM {ident(LEGACY)} LIMIT {int(batch_rows)})) RETURNING {columns}) "
            f"INSERT INTO error_logs ({columns}) SELECT {columns} FROM moved")
        count = cur.rowcount
        conn.commit()
        moved += count
        if progress is not None:
            progress(moved)
        if count == 0:
            break
    cur.execute(f"DROP TABLE {ident(LEGACY)}")
    conn.commit()
    cur.close()
    return moved
