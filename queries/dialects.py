"""Where PostgreSQL and SQLite differ in the SQL this project writes by hand, in one place,
each with its reason. Code above the store calls these instead of testing the dialect.

Larger differences live with the feature they serve, because only PostgreSQL has them:
- the batch insert: COPY into a staging table, then INSERT ... SELECT through the small
  `error_ids` table (queries/store.py), because a partitioned table cannot hold
  UNIQUE(error_id); SQLite has one table with the unique key and takes `executemany`;
- daily partitions of error_logs and dropping whole days (retention/partitions.py, run.py);
- advisory locks (retention/run.py; SQLite runs use an flock, retention/run_lock.py);
- json_populate_recordset for restores (retention/restore.py);
- trigram indexes for free-text search (queries/search.py);
- the planner's statistics of severity x category on each partition
  (queries/planner_stats.py): SQLite keeps none.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg2.extras import execute_values
from sqlalchemy import Integer, cast, func, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from queries.records import as_utc

POSTGRES = "postgresql"
# How SQLAlchemy stores a DateTime on SQLite; raw cursors must write the same text.
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
# Rows per statement for execute_values (PostgreSQL) and chunked IN lists (SQLite).
PAGE_ROWS = 1000
_SQLITE_IN_LIST = 500  # below SQLite's default limit of bound parameters


def is_postgres(bind: Engine | Connection | str) -> bool:
    name = bind if isinstance(bind, str) else bind.dialect.name
    return name == POSTGRES


def placeholder(dialect: str) -> str:
    """The DB-API parameter mark: psycopg2 is `format` style, sqlite3 `qmark`."""
    return "%s" if dialect == POSTGRES else "?"


def sqlite_time(moment: datetime) -> str:
    """How SQLAlchemy stores a DateTime on SQLite: naive text, here always in UTC."""
    return moment.astimezone(UTC).strftime(SQLITE_TIME)


def db_time(moment: datetime, dialect: str) -> Any:
    """A time for a raw cursor: psycopg2 takes aware datetimes, SQLite columns hold text."""
    return moment if dialect == POSTGRES else sqlite_time(moment)


def from_db_time(value: Any) -> datetime | None:
    """A time read by a raw cursor: SQLite hands back its text, both may be naive (UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return as_utc(value)


def for_update(dialect: str) -> str:
    """Row locks: PostgreSQL has them; SQLite locks the whole file for a writer anyway."""
    return " FOR UPDATE" if dialect == POSTGRES else ""


def select_in(cur: Any, dialect: str, sql: str, keys: list[str]) -> list[Any]:
    """Rows of `sql` (with `{in_list}` after the key column) for all `keys`: one array
    parameter on PostgreSQL, chunked IN lists on SQLite (it has no arrays)."""
    if dialect == POSTGRES:
        cur.execute(sql.format(in_list="= ANY(%s)"), (keys,))
        return cur.fetchall()
    rows: list[Any] = []
    for start in range(0, len(keys), _SQLITE_IN_LIST):
        chunk = keys[start:start + _SQLITE_IN_LIST]
        cur.execute(sql.format(in_list=f"IN ({', '.join('?' * len(chunk))})"), chunk)
        rows.extend(cur.fetchall())
    return rows


def write_many(cur: Any, dialect: str, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """`sql` (with `{values}` where the rows go) for every row: multi-row VALUES pages on
    PostgreSQL (one round trip per page), `executemany` on SQLite (in process, no trips)."""
    if not rows:
        return
    if dialect == POSTGRES:
        execute_values(cur, sql.format(values="%s"), rows, page_size=PAGE_ROWS)
    else:
        cur.executemany(sql.format(values=f"({', '.join('?' * len(rows[0]))})"), rows)


def insert_new(cur: Any, dialect: str, sql: str, key: str,
               rows: list[tuple[Any, ...]]) -> set[Any]:
    """Insert the rows whose `key` (the first value of each row) is not there yet; the keys
    inserted. PostgreSQL: ON CONFLICT DO NOTHING RETURNING, since another process may insert
    the same key between our look and our insert; SQLite locks the file for one writer, so
    there a look before is enough and every row goes in."""
    if not rows:
        return set()
    if dialect == POSTGRES:
        returned = execute_values(
            cur, sql.format(values="%s") + f" ON CONFLICT ({key}) DO NOTHING RETURNING {key}",
            rows, page_size=PAGE_ROWS, fetch=True)
        return {row[0] for row in returned}
    cur.executemany(sql.format(values=f"({', '.join('?' * len(rows[0]))})"), rows)
    return {row[0] for row in rows}


def update_many(cur: Any, dialect: str, table: str, columns: dict[str, str],
                rows: list[tuple[Any, ...]], add: tuple[str, ...] = ()) -> None:
    """Set `columns` (name -> PostgreSQL type) by fingerprint; each row is the values in
    order, then the fingerprint. Columns in `add` are added to, not replaced. PostgreSQL
    joins a VALUES list (typed, since VALUES has no column types), SQLite updates per row."""
    if not rows:
        return
    if dialect == POSTGRES:
        sets = ", ".join(f"{c} = t.{c} + v.{c}" if c in add else f"{c} = v.{c}"
                         for c in columns)
        template = "(" + ", ".join(f"%s::{kind}" for kind in columns.values()) + ", %s)"
        execute_values(
            cur, f"UPDATE {table} AS t SET {sets} FROM (VALUES %s) "
            f"AS v({', '.join(columns)}, fingerprint) WHERE t.fingerprint = v.fingerprint",
            rows, template=template, page_size=PAGE_ROWS)
    else:
        sets = ", ".join(f"{c} = {c} + ?" if c in add else f"{c} = ?" for c in columns)
        cur.executemany(f"UPDATE {table} SET {sets} WHERE fingerprint = ?", rows)


def epoch_bucket(bind: Engine | Connection, column: Any, seconds: int) -> ColumnElement[int]:
    """SQL: the UTC bucket number of a time column (epoch seconds // `seconds`). SQLite keeps
    UTC text, which strftime('%s') reads as UTC epoch seconds."""
    if is_postgres(bind):
        return cast(func.floor(func.extract("epoch", column) / seconds), Integer)
    return cast(func.strftime("%s", column), Integer) / seconds


def set_statement_timeout(conn: Connection, milliseconds: int) -> None:
    """Stop a read past `milliseconds` (PostgreSQL; SQLite reads have no such setting)."""
    if is_postgres(conn):
        conn.execute(text(f"SET LOCAL statement_timeout = {int(milliseconds)}"))


def without_jit(conn: Connection) -> None:
    """PostgreSQL compiles big aggregates with JIT, which costs more than it saves here."""
    if is_postgres(conn):
        conn.execute(text("SET LOCAL jit = off"))
