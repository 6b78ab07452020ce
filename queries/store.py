"""The batched write path: one COPY (PostgreSQL) or one executemany (SQLite) per batch.

`ON CONFLICT (error_id) DO NOTHING` makes duplicates and replays harmless. On PostgreSQL the
conflict is taken on `error_ids` (see queries/schema.py: a table partitioned by day cannot
hold a unique error_id), in the same statement as the insert into `error_logs`. A row the
database refuses does not sink its batch: the batch is split until the refused rows are
found, those are returned as rejections, and the rest is stored.

On PostgreSQL a batch can be staged (CSV built and COPYed into the connection's staging table)
by one thread while another store's connection inserts and commits the previous batch, so the
two halves of the work overlap; see ingest/batch_writer.py.
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg2
from sqlalchemy.engine import Engine

from queries.count_tables import sqlite_count_batch
from queries.dialects import db_time, placeholder, sqlite_time
from queries.records import ErrorEvent, Rejection
from queries.schema import INSERT_COLUMNS

log = logging.getLogger(__name__)

_COLS = ", ".join(INSERT_COLUMNS)
# SQLSTATE classes of an unreachable or unwilling server: connection exception, insufficient
# resources, operator intervention (shutdown, crash recovery).
_PG_OUTAGE_CLASSES = frozenset({"08", "53", "57"})
# Errors that say "try again", not "this data is wrong": serialization failure and deadlock
# (class 40), lock not available (55P03). Maintenance (retention) takes short table locks, so
# a batch may meet one; it is retried at once, and never bisected into dead letters.
_PG_TRANSIENT_CLASSES = frozenset({"40"})
_PG_TRANSIENT_CODES = frozenset({"55P03"})
_TRANSIENT_RETRIES = 3

# The new ids go to error_ids first; only those go on to error_logs. `ON CONFLICT DO NOTHING`
# on error_logs itself is for an older, unpartitioned table that still has UNIQUE(error_id).
_PG_INSERT = (
    "WITH new_ids AS ("
    " INSERT INTO error_ids (error_id, \"timestamp\")"
    " SELECT error_id, \"timestamp\" FROM error_logs_staging"
    " ON CONFLICT (error_id) DO NOTHING RETURNING error_id) "
    f"INSERT INTO error_logs ({_COLS}) SELECT {', '.join('s.' + c for c in INSERT_COLUMNS)} "
    "FROM error_logs_staging s JOIN new_ids USING (error_id) "
    "ON CONFLICT DO NOTHING RETURNING error_id")


_STAGING_WITHOUT_DEFAULTS = (
    "DO $$ DECLARE col text; BEGIN"
    " FOR col IN SELECT attname FROM pg_attribute"
    " WHERE attrelid = 'pg_temp.error_logs_staging'::regclass AND attnum > 0"
    " AND NOT attisdropped AND attname <> ALL (%s) LOOP"
    " EXECUTE format('ALTER TABLE pg_temp.error_logs_staging ALTER COLUMN %%I DROP DEFAULT,"
    " ALTER COLUMN %%I DROP NOT NULL', col, col);"
    " END LOOP; END $$" % ("'{" + ",".join(INSERT_COLUMNS) + "}'::text[]"))


class StoreUnavailable(RuntimeError):
    """The database cannot be reached (or is locked); the batch was not written, retry later."""


@dataclass
class BatchResult:
    inserted: int = 0
    duplicates: int = 0
    refused: list[Rejection] = field(default_factory=list)
    new_events: list[ErrorEvent] = field(default_factory=list)
    # What each hook returned, by the hook's `name`; lists are joined across split batches.
    hook_results: dict[str, Any] = field(default_factory=dict)


# Runs inside the batch's transaction with the events that were new (not duplicates), e.g.
# to keep the error groups current: (DBAPI connection, dialect name, new events) -> result.
BatchHook = Callable[[Any, str, list[ErrorEvent]], Any]


def _context_json(event: ErrorEvent) -> str:
    try:
        return orjson.dumps(event.context).decode("utf-8")
    except TypeError:  # integers beyond 64 bits
        return json.dumps(event.context, ensure_ascii=False)


def _csv_field(value: object) -> str:
    if value is None:
        return ""
    return '"' + str(value).replace('"', '""') + '"'


def _csv_rows(events: Sequence[ErrorEvent]) -> str:
    """The events as COPY's CSV, built with str.replace (twice as fast as csv.writer here).

    Text is always quoted, so an empty string stays ''; None is an unquoted empty field,
    which COPY reads as NULL (as SQLite stores it)."""
    lines: list[str] = []
    append = lines.append
    for e in events:
        row = (e.error_id, e.error_type, e.error_message, e.error_traceback, e.severity,
               e.category, e.source, e.component, e.operation, e.symbol, _context_json(e),
               e.timestamp.isoformat(), e.fingerprint, e.received_at.isoformat(),
               "t" if e.is_test else "f")
        try:
            append(",".join(["" if v is None else '"' + v.replace('"', '""') + '"'
                             for v in row]) + "\n")
        except AttributeError:  # not text (a number, say): the slow way
            append(",".join(_csv_field(v) for v in row) + "\n")
    return "".join(lines)


def _is_outage(exc: BaseException) -> bool:
    """Errors that mean "the database is away", as opposed to "this data is refused".

    A missing table counts as away too: dead-lettering every row because someone dropped
    the table would bury good errors; the writer retries and says so instead.
    """
    if isinstance(exc, psycopg2.Error):
        code = exc.pgcode
        if code is None:  # raised by the client: no connection, or it broke
            return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError))
        return code[:2] in _PG_OUTAGE_CLASSES or code == "42P01"
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return any(word in text for word in (
            "locked", "unable to open", "disk i/o", "busy", "no such table", "readonly"))
    return False


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, psycopg2.Error) and exc.pgcode:
        return exc.pgcode[:2] in _PG_TRANSIENT_CLASSES or exc.pgcode in _PG_TRANSIENT_CODES
    return False


def _is_missing_table(exc: BaseException) -> bool:
    if isinstance(exc, psycopg2.Error):
        return exc.pgcode == "42P01"
    return isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc).lower()


class ErrorStore:
    """Writes batches of events and dead letters; one instance per writer thread."""

    def __init__(self, engine: Engine, hooks: Sequence[BatchHook] = ()) -> None:
        self.engine = engine
        self.hooks = list(hooks)
        self.dialect = engine.dialect.name
        self._conn = None  # the writer's own DBAPI connection, kept between batches
        self._staging_ready = False

    # -- connection ---------------------------------------------------------------------
    def _connection(self):
        if self._conn is None:
            try:
                self._conn = self.engine.raw_connection()
            except Exception as exc:
                raise StoreUnavailable(f"cannot connect to the database: {exc}") from exc
            self._staging_ready = False
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
            except Exception:  # noqa: BLE001 - the connection is broken anyway
                pass
            self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001
                pass
            self._conn = None

    def ping(self) -> bool:
        try:
            conn = self._connection()
            cur = conn.cursor()
            cur.execute("SELECT 1")
            cur.fetchall()
            cur.close()
            conn.rollback()
            return True
        except Exception:  # noqa: BLE001
            self._drop_connection()
            return False

    # -- errors -------------------------------------------------------------------------
    @property
    def can_stage(self) -> bool:
        """Whether `stage` does anything: PostgreSQL's COPY into a staging table."""
        return self.dialect == "postgresql"

    def twin(self) -> ErrorStore:
        """Another store on the same engine and hooks, with its own connection."""
        return ErrorStore(self.engine, self.hooks)

    def stage(self, events: Sequence[ErrorEvent]) -> bool:
        """COPY `events` into the staging table in an open transaction, for the next
        `write_batch(events, staged=True)` on this store to insert and commit.

        Never raises: False means nothing is staged (SQLite, or the COPY failed: the database
        is away, or a row is refused) and `write_batch` does the whole work and says why."""
        if not events or not self.can_stage:
            return False
        try:
            conn = self._connection()
        except StoreUnavailable:
            return False
        try:
            self._stage(conn, events)
            return True
        except Exception as exc:  # noqa: BLE001 - write_batch meets it again and reports it
            log.debug("could not stage a batch of %d: %s", len(events), exc)
            self._abandon(conn)
            return False

    def write_batch(self, events: Sequence[ErrorEvent], staged: bool = False) -> BatchResult:
        """Store `events` (duplicates skipped); raises StoreUnavailable if the database is away.

        `staged`: `stage(events)` succeeded on this store and nothing has used it since."""
        if not events:
            return BatchResult()
        attempt = 0
        while True:
            try:
                new, hook_results = self._insert(events, staged)
                return BatchResult(inserted=len(new), duplicates=len(events) - len(new),
                                   new_events=new, hook_results=hook_results)
            except StoreUnavailable:
                raise
            except Exception as exc:
                staged = False  # the rollback emptied the staging table
                if _is_transient(exc) and attempt < _TRANSIENT_RETRIES:
                    attempt += 1
                    log.info("batch of %d met %s; retrying it", len(events), exc.pgcode)
                    continue
                if _is_outage(exc) or _is_transient(exc):
                    self._drop_connection()
                    raise StoreUnavailable(
                        f"could not store batch of {len(events)} (first id "
                        f"{events[0].error_id}): {exc}".strip()) from exc
                return self._split(events, exc)

    def _split(self, events: Sequence[ErrorEvent], exc: Exception) -> BatchResult:
        """The database refused the batch: find the refused rows by halving."""
        if len(events) == 1:
            event = events[0]
            reason = f"refused by the database: {type(exc).__name__}: {exc}".strip()
            return BatchResult(refused=[Rejection(
                raw=_event_as_json(event), reason=reason[:2000],
                received_at=event.received_at, error_id=event.error_id)])
        middle = len(events) // 2
        result = BatchResult()
        for part in (events[:middle], events[middle:]):
            sub = self.write_batch(part)
            result.inserted += sub.inserted
            result.duplicates += sub.duplicates
            result.refused.extend(sub.refused)
            result.new_events.extend(sub.new_events)
            for name, value in sub.hook_results.items():
                if isinstance(value, list):
                    result.hook_results.setdefault(name, []).extend(value)
                else:
                    result.hook_results[name] = value
        return result

    def _insert(self, events: Sequence[ErrorEvent],
                staged: bool = False) -> tuple[list[ErrorEvent], dict[str, Any]]:
        conn = self._connection()
        try:
            if self.dialect == "postgresql":
                if not staged:
                    self._stage(conn, events)
                new_ids = self._insert_staged(conn)
            else:
                new_ids = self._insert_sqlite(conn, events)
            new = _first_of_each(events, new_ids)
            hook_results = self._run_hooks(conn, new) if new and self.hooks else {}
            conn.commit()
            return new, hook_results
        except Exception:
            self._abandon(conn)
            raise

    def _abandon(self, conn) -> None:
        """Roll the open transaction back (a dead connection is dropped instead)."""
        # A staging table made in this transaction is gone with its rollback.
        self._staging_ready = False
        try:
            conn.rollback()
        except Exception:  # noqa: BLE001 - a dead connection cannot roll back
            self._drop_connection()

    def _run_hooks(self, conn, new: list[ErrorEvent]) -> dict[str, Any]:
        """Run the hooks in a savepoint: a failing hook must never cost the rows themselves."""
        results: dict[str, Any] = {}
        cur = conn.cursor()
        cur.execute("SAVEPOINT batch_hooks")
        try:
            for hook in self.hooks:
                results[getattr(hook, "name", repr(hook))] = hook(conn, self.dialect, new)
        except Exception as exc:
            if _is_outage(exc) and not _is_missing_table(exc):
                raise
            log.exception("a batch hook failed; the %d rows are stored without it", len(new))
            cur.execute("ROLLBACK TO SAVEPOINT batch_hooks")
            results = {}
        cur.execute("RELEASE SAVEPOINT batch_hooks")
        cur.close()
        return results

    def _stage(self, conn, events: Sequence[ErrorEvent]) -> None:
        # Only the first copy of each id goes in: it is the stored one, the rest are duplicates.
        events = list({e.error_id: e for e in reversed(events)}.values())[::-1]
        cur = conn.cursor()
        if not self._staging_ready:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS error_logs_staging "
                "(LIKE error_logs INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            # The insert takes only INSERT_COLUMNS from staging: the other columns' defaults
            # (a random UUID, now()) would be made for every staged row and thrown away.
            cur.execute(_STAGING_WITHOUT_DEFAULTS)
            self._staging_ready = True
        text = _csv_rows(events)
        # One read of the whole text: psycopg2 reads the file `size` characters at a time, and
        # each read takes the GIL back from the pipeline thread (up to a switch interval).
        cur.copy_expert(f"COPY error_logs_staging ({_COLS}) FROM STDIN WITH (FORMAT csv)",
                        io.StringIO(text), size=max(8192, len(text)))
        cur.close()

    def _insert_staged(self, conn) -> set[str]:
        cur = conn.cursor()
        cur.execute(_PG_INSERT)
        inserted = {row[0] for row in cur.fetchall()}
        cur.close()
        return inserted

    def _insert_sqlite(self, conn, events: Sequence[ErrorEvent]) -> set[str]:
        cur = conn.cursor()
        # One writer thread per SQLite file: what is not there before the insert is new.
        ids = list({e.error_id for e in events})
        existing: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            cur.execute("SELECT error_id FROM error_logs WHERE error_id IN "
                        f"({', '.join('?' * len(chunk))})", chunk)
            existing.update(row[0] for row in cur.fetchall())
        # The count tables' INSERT trigger stands aside while this row is there: the new
        # rows are counted below, per batch (queries/count_tables.py).
        cur.execute("INSERT INTO error_counts_paused (id) VALUES (1)")
        cur.executemany(
            f"INSERT INTO error_logs (id, {_COLS}) VALUES (?{', ?' * len(INSERT_COLUMNS)}) "
            "ON CONFLICT (error_id) DO NOTHING",
            [(uuid.uuid4().hex, e.error_id, e.error_type, e.error_message, e.error_traceback,
              e.severity, e.category, e.source, e.component, e.operation, e.symbol,
              _context_json(e), sqlite_time(e.timestamp), e.fingerprint,
              sqlite_time(e.received_at), 1 if e.is_test else 0) for e in events])
        cur.execute("DELETE FROM error_counts_paused")
        new_ids = set(ids) - existing
        sqlite_count_batch(cur, _first_of_each(events, set(new_ids)))
        cur.close()
        return new_ids

    # -- dead letters -------------------------------------------------------------------
    def write_rejections(self, rejections: Sequence[Rejection]) -> None:
        """Store dead letters; raises StoreUnavailable if the database is away."""
        if not rejections:
            return
        conn = self._connection()
        marker = placeholder(self.dialect)
        try:
            cur = conn.cursor()
            cur.executemany(
                "INSERT INTO rejected_messages (received_at, reason, error_id, raw_bytes, raw) "
                f"VALUES ({', '.join([marker] * 5)})",
                [(db_time(r.received_at, self.dialect), r.reason.replace("\x00", ""), r.error_id,
                  r.raw_bytes, r.raw.replace("\x00", "")) for r in rejections])
            cur.close()
            conn.commit()
        except Exception as exc:
            try:
                conn.rollback()
            except Exception:  # noqa: BLE001
                pass
            self._drop_connection()
            raise StoreUnavailable(
                f"could not store {len(rejections)} rejected messages: {exc}") from exc


def _first_of_each(events: Sequence[ErrorEvent], new_ids: set[str]) -> list[ErrorEvent]:
    """The events whose id was new, each id once (the first copy is the stored one)."""
    new: list[ErrorEvent] = []
    for event in events:
        if event.error_id in new_ids:
            new.append(event)
            new_ids.discard(event.error_id)
    return new


def _event_as_json(event: ErrorEvent) -> str:
    document = {
        "error_id": event.error_id, "error_type": event.error_type,
        "error_message": event.error_message, "error_traceback": event.error_traceback,
        "severity": event.severity, "category": event.category, "source": event.source,
        "component": event.component, "operation": event.operation, "symbol": event.symbol,
        "context": event.context, "timestamp": event.timestamp.isoformat(),
        "fingerprint": event.fingerprint, "received_at": event.received_at.isoformat(),
        "is_test": event.is_test,
    }
    try:
        return orjson.dumps(document, default=str).decode("utf-8", "replace")
    except TypeError:  # integers beyond 64 bits
        return json.dumps(document, default=str, ensure_ascii=False)
