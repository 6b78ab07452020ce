"""Retention: remove what is older than RETENTION_DAYS, archived first when asked; and the
maintenance commands.

    python -m retention --dry-run         what would go, counts per day
    python -m retention --now             run it now (a progress bar on a terminal)
    python -m retention --restore FILE..  load archives back (duplicates ignored)
    python -m retention --migrate         make an unpartitioned error_logs partitioned

With cutoff = now - RETENTION_DAYS (a row exactly at the cutoff stays), a run removes:
- error_logs rows with "timestamp" < cutoff. On partitioned PostgreSQL whole expired days are
  detached and dropped; the day holding the cutoff and the DEFAULT partition are trimmed by
  batched deletes. SQLite and an unpartitioned table get batched deletes only, each of
  RETENTION_BATCH_ROWS rows in its own transaction: never one huge DELETE.
- their `error_ids` entries (PostgreSQL), and dead letters received before the cutoff;
- when those tables exist: alerts resolved before the cutoff; error groups last seen before
  it with no events left, unless resolved or ignored (they stay, so that a recurrence is a
  regression, or stays ignored), and the symbols of removed groups; expired silences.
On PostgreSQL it also makes the daily partitions RETENTION_PARTITIONS_AHEAD days ahead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
from sqlalchemy import delete, desc, insert, select
from sqlalchemy.engine import Engine

from queries.records import iso_utc
from queries.schema import (
    DEFAULT_PARTITION,
    error_logs_layout,
    maintenance_runs,
    metadata,
    postgres_error_logs_ddl,
)
from queries.store import sqlite_time
from retention.archive import (
    ArchiveError,
    ArchiveWriter,
    Mark,
    read_archive,
    sqlite_row_json,
    sqlite_values,
    table_of,
)
from retention.partitions import (
    DdlTimer,
    LockBusy,
    Partition,
    attach,
    day_bounds,
    detach,
    detached_days,
    drop_detached,
    ensure_days,
    ident,
    legacy_exists,
    list_partitions,
    move_legacy_rows,
    partition_name,
    switch_to_partitioned,
)

log = logging.getLogger(__name__)

JOB = "retention"
# One run at a time per PostgreSQL database (the app's job and a `--now` by hand).
_PG_LOCK_KEY = 7_415_361_829_001
_sqlite_locks: dict[str, threading.Lock] = {}
_sqlite_locks_guard = threading.Lock()
# Tables whose rows count as "removed" (error_ids is bookkeeping).
_COUNTED = ("error_logs", "rejected_messages", "alerts", "error_groups", "error_group_symbols",
            "alert_silences")

Clock = Callable[[], datetime]
Progress = Callable[[str, int], None]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Rule:
    """What retention removes from one table besides error_logs: rows whose `time_column` is
    before the cutoff and that meet `where` (SQL on alias `t`); skipped when the table or a
    needed column is missing (tables other features add)."""

    table: str
    time_column: str
    where: str = ""
    needs: tuple[str, ...] = ()
    archive: bool = True
    other_tables: tuple[str, ...] = ()  # tables `where` reads


RULES = (
    Rule("rejected_messages", "received_at"),
    Rule("alerts", "ended_at", "t.state = 'resolved'", ("state",)),
    # A group with events left is kept whatever its last_seen says; a resolved or ignored one
    # is kept even without events, so that its next event is a regression or stays ignored.
    Rule("error_groups", "last_seen", "t.state NOT IN ('resolved', 'ignored') AND NOT EXISTS "
         "(SELECT 1 FROM error_logs e WHERE e.fingerprint = t.fingerprint)",
         ("state", "fingerprint")),
    Rule("error_group_symbols", "last_seen", "NOT EXISTS "
         "(SELECT 1 FROM error_groups g WHERE g.fingerprint = t.fingerprint)", ("fingerprint",),
         other_tables=("error_groups",)),
    Rule("alert_silences", "until", archive=False),
)


@dataclass(frozen=True)
class RetentionPolicy:
    days: int = 30
    archive_dir: str = ""
    batch_rows: int = 10_000
    partitions_ahead: int = 7

    @classmethod
    def from_settings(cls, settings: Any) -> RetentionPolicy:
        return cls(days=settings.retention_days, archive_dir=settings.retention_archive_dir,
                   batch_rows=settings.retention_batch_rows,
                   partitions_ahead=settings.retention_partitions_ahead)


@dataclass
class RunReport:
    started_at: datetime
    cutoff: datetime
    layout: str = ""
    finished_at: datetime | None = None
    ok: bool = False
    error: str | None = None
    skipped: str | None = None
    removed: dict[str, int] = field(default_factory=dict)
    partitions_created: list[str] = field(default_factory=list)
    partitions_dropped: list[str] = field(default_factory=list)
    partitions_trimmed: list[str] = field(default_factory=list)
    archive_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0
    longest_lock_seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # step -> seconds

    @property
    def rows_removed(self) -> int:
        return sum(n for table, n in self.removed.items() if table in _COUNTED)

    def count(self, table: str, rows: int) -> None:
        self.removed[table] = self.removed.get(table, 0) + rows

    def as_json(self) -> dict[str, Any]:
        return {
            "startedAt": iso_utc(self.started_at),
            "finishedAt": iso_utc(self.finished_at) if self.finished_at else None,
            "cutoff": iso_utc(self.cutoff), "layout": self.layout, "ok": self.ok,
            "error": self.error, "skipped": self.skipped, "rowsRemoved": self.rows_removed,
            "removed": dict(self.removed), "partitionsCreated": self.partitions_created,
            "partitionsDropped": self.partitions_dropped,
            "partitionsTrimmed": self.partitions_trimmed, "archiveFiles": self.archive_files,
            "notes": self.notes, "durationSeconds": round(self.duration_seconds, 3),
            "longestLockSeconds": round(self.longest_lock_seconds, 4),
            "phases": {step: round(seconds, 3) for step, seconds in self.phases.items()},
        }


@dataclass
class Plan:
    """What a run would do now: rows per table and day, partitions to drop, trim and make."""

    cutoff: datetime
    layout: str
    days: dict[str, dict[str, int]] = field(default_factory=dict)
    drop: list[str] = field(default_factory=list)
    trim: list[str] = field(default_factory=list)
    create: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(sum(days.values()) for days in self.days.values())


@dataclass
class RunRecord:
    """The last run as kept in maintenance_runs."""

    started_at: datetime
    finished_at: datetime | None
    ok: bool
    rows_removed: int
    detail: dict[str, Any]


class _Stopped(RuntimeError):
    pass


class Retention:
    """Runs retention on one database; `clock` returns the aware UTC now (tests move it)."""

    def __init__(self, engine: Engine, policy: RetentionPolicy, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.policy = policy
        self.clock = clock
        self.dialect = engine.dialect.name

    # -- connection and the one-run-at-a-time lock ---------------------------------------
    def _connect(self) -> Any:
        conn = self.engine.raw_connection()
        if self.dialect == "postgresql":
            # Session settings (time zone, lock timeouts) must not leak into the pool.
            conn.detach()
            cur = conn.cursor()
            cur.execute("SET TimeZone = 'UTC'")
            cur.close()
            conn.commit()
        return conn

    def _acquire(self, conn: Any) -> bool:
        if self.dialect == "postgresql":
            cur = conn.cursor()
            cur.execute("SELECT pg_try_advisory_lock(%s)", (_PG_LOCK_KEY,))
            got = bool(cur.fetchone()[0])
            cur.close()
            conn.commit()
            return got
        with _sqlite_locks_guard:
            lock = _sqlite_locks.setdefault(str(self.engine.url), threading.Lock())
        return lock.acquire(blocking=False)

    def _release(self, conn: Any) -> None:
        if self.dialect != "postgresql":
            _sqlite_locks[str(self.engine.url)].release()
        # PostgreSQL: the advisory lock goes with the (detached) connection when it closes.

    def layout(self, conn: Any) -> str:
        return error_logs_layout(conn) if self.dialect == "postgresql" else "sqlite"

    # -- the run ----------------------------------------------------------------------------
    def run(self, progress: Progress | None = None,
            should_stop: Callable[[], bool] | None = None) -> RunReport:
        """Remove what is older than the cutoff; never raises, the report says how it went."""
        started = time.perf_counter()
        now = self.clock()
        report = RunReport(started_at=now, cutoff=now - timedelta(days=self.policy.days))
        archive = ArchiveWriter(self.policy.archive_dir) if self.policy.archive_dir else None
        timer = DdlTimer()
        conn = None
        locked = False
        try:
            conn = self._connect()
            locked = self._acquire(conn)
            if not locked:
                report.skipped = "another retention run is in progress"
                return report
            report.layout = self.layout(conn)
            _Run(self, conn, report, archive, timer, progress, should_stop).everything()
            report.ok = True
        except _Stopped:
            report.error = "stopped before the end; the rest is removed by the next run"
        except (ArchiveError, LockBusy) as exc:
            report.error = str(exc)
            log.error("retention stopped: %s", exc)
        except Exception as exc:
            report.error = f"{type(exc).__name__}: {exc}".strip()
            log.exception("retention failed")
        finally:
            report.finished_at = self.clock()
            report.duration_seconds = time.perf_counter() - started
            report.longest_lock_seconds = timer.longest
            if archive is not None:
                report.archive_files = archive.files
            if conn is not None:
                if locked:
                    self._release(conn)
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - a broken connection is gone anyway
                    pass
            if not report.skipped:
                self._record(report)
            log.info("retention: %s", _summary(report))
        return report

    def _record(self, report: RunReport) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(maintenance_runs).values(
                    job=JOB, started_at=report.started_at, finished_at=report.finished_at,
                    ok=report.ok, rows_removed=report.rows_removed,
                    detail=json.dumps(report.as_json())))
                # The table stays small: runs older than the retention go too, but never the
                # last successful one.
                last_ok = select(maintenance_runs.c.id).where(
                    maintenance_runs.c.job == JOB, maintenance_runs.c.ok.is_(True)).order_by(
                    desc(maintenance_runs.c.started_at)).limit(1).scalar_subquery()
                conn.execute(delete(maintenance_runs).where(
                    maintenance_runs.c.job == JOB,
                    maintenance_runs.c.started_at < report.cutoff,
                    maintenance_runs.c.id != last_ok))
        except Exception:
            log.exception("could not record the retention run")

    def last_run(self, successful: bool = False) -> RunRecord | None:
        query = select(maintenance_runs).where(maintenance_runs.c.job == JOB)
        if successful:
            query = query.where(maintenance_runs.c.ok.is_(True))
        query = query.order_by(desc(maintenance_runs.c.started_at)).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        try:
            detail = json.loads(row.detail) if row.detail else {}
        except ValueError:
            detail = {}
        return RunRecord(_utc(row.started_at), _utc(row.finished_at) if row.finished_at else None,
                         bool(row.ok), int(row.rows_removed), detail)

    # -- dry run ----------------------------------------------------------------------------
    def plan(self) -> Plan:
        """What a run would remove now, by table and day (UTC), and the partition work."""
        now = self.clock()
        cutoff = now - timedelta(days=self.policy.days)
        conn = self._connect()
        try:
            layout = self.layout(conn)
            result = Plan(cutoff=cutoff, layout=layout)
            run = _Run(self, conn, RunReport(now, cutoff), None, DdlTimer(), None, None)
            result.days["error_logs"] = run.count_by_day("error_logs", '"timestamp"', "")
            for rule in RULES:
                missing = run.missing(rule)
                if missing:
                    result.skipped.append(f"{rule.table}: {missing}")
                    continue
                result.days[rule.table] = run.count_by_day(
                    rule.table, ident(rule.time_column), run.condition(rule))
            if layout == "partitioned":
                parts = [p for p in list_partitions(conn) if not p.default]
                for part in sorted(parts, key=_by_start):
                    if part.upper is not None and part.upper <= cutoff:
                        result.drop.append(part.name)
                    elif part.lower is None or part.lower < cutoff:
                        result.trim.append(part.name)
                result.trim.append(DEFAULT_PARTITION)
                result.create = run.days_to_make(parts)
            return result
        finally:
            conn.close()

    # -- restore ----------------------------------------------------------------------------
    def restore(self, paths: Iterable[str | Path],
                progress: Progress | None = None) -> dict[str, dict[str, int]]:
        """Load archive files back; rows already there are skipped. Returns read/inserted."""
        totals: dict[str, dict[str, int]] = {}
        for path in paths:
            table = table_of(path)
            if table not in metadata.tables:
                raise ValueError(f"{path}: unknown table {table}")
            counts = totals.setdefault(table, {"read": 0, "inserted": 0})
            chunk: list[dict[str, Any]] = []
            for document in read_archive(path):
                chunk.append(document)
                if len(chunk) >= 2000:
                    counts["inserted"] += self._restore_chunk(table, chunk)
                    counts["read"] += len(chunk)
                    chunk = []
                    if progress is not None:
                        progress(f"{Path(path).name}", counts["read"])
            if chunk:
                counts["inserted"] += self._restore_chunk(table, chunk)
                counts["read"] += len(chunk)
                if progress is not None:
                    progress(f"{Path(path).name}", counts["read"])
        return totals

    def _restore_chunk(self, table: str, documents: list[dict[str, Any]]) -> int:
        conn = self.engine.raw_connection()
        try:
            cur = conn.cursor()
            existing = self._columns(cur, table)
            keys: set[str] = set()
            for document in documents:
                if table == "error_logs" and "received_at" not in document:
                    # Archived before rows kept the time received: as the schema upgrade does.
                    document["received_at"] = document.get("created_at") or document.get(
                        "timestamp")
                keys.update(document)
            columns = [c.name for c in metadata.tables[table].columns
                       if c.name in keys and c.name in existing]
            if table == "rejected_messages":  # the id is the sequence's: a new one is drawn
                columns = [c for c in columns if c != "id"]
            if self.dialect == "postgresql":
                inserted = _restore_postgres(cur, table, columns, documents)
            else:
                inserted = _restore_sqlite(cur, table, columns, documents)
            conn.commit()
            return inserted
        except Exception:
            conn.rollback()
            raise
        finally:
            conn.close()

    def _columns(self, cur: Any, table: str) -> set[str]:
        if self.dialect == "postgresql":
            cur.execute("SELECT column_name FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND table_name = %s", (table,))
            return {row[0] for row in cur.fetchall()}
        cur.execute(f"PRAGMA table_info({ident(table)})")
        return {row[1] for row in cur.fetchall()}

    # -- migration ----------------------------------------------------------------------------
    def migrate(self, progress: Progress | None = None) -> str:
        """Make an unpartitioned PostgreSQL error_logs partitioned; resumes a stopped one."""
        if self.dialect != "postgresql":
            return "nothing to migrate: partitions are a PostgreSQL feature (SQLite stays as it is)"
        conn = self._connect()
        try:
            layout = error_logs_layout(conn)
            conn.commit()
            if layout == "missing":
                return "no error_logs table: start the monitor once, it makes a partitioned one"
            # The days the kept rows fall on, and the days ahead, get their partitions, so
            # that the moved rows (and the ingest's) land in them rather than in DEFAULT.
            today = self.clock().astimezone(UTC).date()
            first = today - timedelta(days=self.policy.days)
            days = [first + timedelta(days=n)
                    for n in range((today - first).days + self.policy.partitions_ahead + 1)]
            recorded = 0
            made: list[str] = []
            if layout == "plain":
                recorded = switch_to_partitioned(conn, postgres_error_logs_ddl(), days)
                made = [partition_name(day) for day in days]
            elif not legacy_exists(conn):
                return "error_logs is already partitioned; nothing to do"
            made += ensure_days(conn, days)
            moved = move_legacy_rows(conn, self.policy.batch_rows,
                                     (lambda n: progress("moving rows", n)) if progress else None)
            return (f"error_logs is partitioned by day: {len(made)} partitions made, {moved} rows "
                    f"moved, {recorded} error ids recorded; the old table is dropped")
        finally:
            conn.close()


class _Run:
    """One run's work on one connection."""

    def __init__(self, retention: Retention, conn: Any, report: RunReport,
                 archive: ArchiveWriter | None, timer: DdlTimer, progress: Progress | None,
                 should_stop: Callable[[], bool] | None) -> None:
        self.retention = retention
        self.conn = conn
        self.report = report
        self.archive = archive
        self.timer = timer
        self.progress = progress
        self.should_stop = should_stop
        self.pg = retention.dialect == "postgresql"
        self.cutoff = report.cutoff
        self.batch = retention.policy.batch_rows
        self._column_cache: dict[str, set[str]] = {}

    def _phase(self, step: str, started: float) -> None:
        now = time.perf_counter()
        self.report.phases[step] = self.report.phases.get(step, 0.0) + now - started

    def everything(self) -> None:
        layout = self.report.layout
        started = time.perf_counter()
        if layout == "partitioned":
            # Days ahead first: the ingest needs them even when the archive is broken.
            today = self.retention.clock().astimezone(UTC).date()
            try:
                self.report.partitions_created.extend(ensure_days(
                    self.conn, [today + timedelta(days=n)
                                for n in range(self.retention.policy.partitions_ahead + 1)],
                    self.timer))
            except (LockBusy, psycopg2.Error) as exc:
                # Rows of a day without its partition wait in DEFAULT: retention goes on.
                self.conn.rollback()
                self.report.notes.append(f"could not make the partitions ahead: {exc}")
                log.warning("retention: could not make the partitions ahead: %s", exc)
            self._phase("partitions ahead", started)
        if self.archive is not None:
            self.archive.check()  # before anything is deleted
        started = time.perf_counter()
        if layout == "partitioned":
            self.partitioned_errors()
        elif layout in ("plain", "sqlite"):
            self.delete_rows("error_logs", "error_logs", '"timestamp"', "")
        self._phase("error_logs", started)
        started = time.perf_counter()
        if self.pg:
            # Only ids whose row is gone: a late event of an expired day stored during this run
            # keeps its id, so a re-sent copy of it is still a duplicate. error_ids holds the
            # row's timestamp, so each probe looks in one partition only.
            self.delete_rows("error_ids", "error_ids", '"timestamp"', (
                'NOT EXISTS (SELECT 1 FROM error_logs e WHERE e.error_id = t.error_id '
                'AND e."timestamp" = t."timestamp")'), archive=False)
            self._phase("error_ids", started)
        started = time.perf_counter()
        for rule in RULES:
            missing = self.missing(rule)
            if missing:
                continue
            self.delete_rows(rule.table, rule.table, ident(rule.time_column),
                             self.condition(rule), archive=rule.archive)
        self._phase("dead letters, groups, alerts", started)

    # -- what exists ------------------------------------------------------------------------
    def columns(self, table: str) -> set[str]:
        if table not in self._column_cache:
            cur = self.conn.cursor()
            self._column_cache[table] = self.retention._columns(cur, table)
            cur.close()
            self.conn.commit()
        return self._column_cache[table]

    def missing(self, rule: Rule) -> str:
        """Why `rule` cannot apply here ("" when it can)."""
        have = self.columns(rule.table)
        if not have:
            return "no such table"
        lacking = [c for c in (rule.time_column, *rule.needs) if c not in have]
        if lacking:
            return f"no column {', '.join(lacking)}"
        absent = [t for t in rule.other_tables if not self.columns(t)]
        return f"no table {', '.join(absent)}" if absent else ""

    def condition(self, rule: Rule) -> str:
        where = rule.where
        if rule.table == "error_groups" and "fingerprint" not in self.columns("error_logs"):
            # An error_logs without fingerprints cannot say which events a group has left.
            where = "t.state NOT IN ('resolved', 'ignored')"
        return where

    # -- batched deletes --------------------------------------------------------------------
    def _check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise _Stopped()

    def _tick(self, label: str) -> None:
        if self.progress is not None:
            self.progress(label, self.report.rows_removed)

    def delete_rows(self, physical: str, table: str, time_sql: str, where: str,
                    archive: bool = True) -> int:
        """Delete rows of `physical` before the cutoff (and meeting `where`), a batch at a time,
        each archived and fsynced before its transaction commits."""
        writer = self.archive if archive else None
        condition = f"t.{time_sql} < {{cutoff}}" + (f" AND ({where})" if where else "")
        total = 0
        while True:
            self._check_stop()
            if self.pg:
                rows, mark = self._pg_batch(physical, table, time_sql, condition, writer)
            else:
                rows, mark = self._sqlite_batch(physical, table, time_sql, condition, writer)
            if rows == 0:
                break
            try:
                self.conn.commit()
            except Exception:
                if writer is not None and mark is not None:
                    writer.undo(mark)
                raise
            total += rows
            self.report.count(table, rows)
            self._tick(physical)
            if rows < self.batch:
                break
        return total

    def _pg_batch(self, physical: str, table: str, time_sql: str, condition: str,
                  writer: ArchiveWriter | None) -> tuple[int, Mark | None]:
        name = ident(physical)
        sql = (f"DELETE FROM {name} AS d WHERE d.ctid = ANY(ARRAY("
               f"SELECT t.ctid FROM {name} AS t WHERE {condition.format(cutoff='%(cutoff)s')} "
               f"LIMIT {int(self.batch)}))")
        if writer is not None:
            sql += (f" RETURNING to_char(d.{time_sql} AT TIME ZONE 'UTC', 'YYYY-MM-DD'), "
                    "row_to_json(d)::text")
        cur = self.conn.cursor()
        try:
            cur.execute(sql, {"cutoff": self.cutoff})
            rows = cur.rowcount
            mark = None
            if writer is not None and rows:
                mark = writer.write(table, cur.fetchall())
            return rows, mark
        except Exception:
            self.conn.rollback()
            raise
        finally:
            cur.close()

    def _sqlite_batch(self, physical: str, table: str, time_sql: str, condition: str,
                      writer: ArchiveWriter | None) -> tuple[int, Mark | None]:
        cur = self.conn.cursor()
        try:
            # IMMEDIATE: the write lock first, so the rows read are exactly the rows deleted.
            cur.execute("BEGIN IMMEDIATE")
            cur.execute(f"SELECT t.rowid, t.* FROM {ident(physical)} AS t "
                        f"WHERE {condition.format(cutoff=':cutoff')} ORDER BY t.rowid "
                        f"LIMIT {int(self.batch)}", {"cutoff": sqlite_time(self.cutoff)})
            fetched = cur.fetchall()
            if not fetched:
                self.conn.rollback()
                return 0, None
            mark = None
            if writer is not None:
                columns = [d[0] for d in cur.description[1:]]
                known = metadata.tables.get(table)
                time_at = columns.index(time_sql.strip('"'))
                mark = writer.write(table, (
                    (str(row[1 + time_at])[:10], sqlite_row_json(known, columns, row[1:]))
                    for row in fetched))
            ids = [row[0] for row in fetched]
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                cur.execute(f"DELETE FROM {ident(physical)} WHERE rowid IN "
                            f"({', '.join('?' * len(chunk))})", chunk)
            return len(ids), mark
        except Exception:
            self.conn.rollback()
            raise
        finally:
            cur.close()

    # -- partitions -------------------------------------------------------------------------
    def days_to_make(self, parts: list[Partition]) -> list[str]:
        today = self.retention.clock().astimezone(UTC).date()
        wanted = []
        for n in range(self.retention.policy.partitions_ahead + 1):
            day = today + timedelta(days=n)
            lower, upper = day_bounds(day)
            if not any((p.lower is None or p.lower < upper) and (p.upper is None or p.upper > lower)
                       for p in parts):
                wanted.append(partition_name(day))
        return wanted

    def partitioned_errors(self) -> None:
        conn, report = self.conn, self.report
        # A run that stopped between detach and drop left its day as a plain table.
        for part in detached_days(conn):
            if part.upper is not None and part.upper <= self.cutoff:
                self.remove_detached(part, reattach_on_failure=False)
            else:
                attach(conn, part, create=False, timer=self.timer)
                report.notes.append(f"{part.name} was left detached; attached again")
        parts = [p for p in list_partitions(conn) if not p.default]
        for part in sorted(parts, key=_by_start):
            self._check_stop()
            if part.upper is not None and part.upper <= self.cutoff:
                self.drop_partition(part)
            elif part.lower is None or part.lower < self.cutoff:
                if self.delete_rows(part.name, "error_logs", '"timestamp"', ""):
                    report.partitions_trimmed.append(part.name)
        if self.delete_rows(DEFAULT_PARTITION, "error_logs", '"timestamp"', ""):
            report.partitions_trimmed.append(DEFAULT_PARTITION)

    def drop_partition(self, part: Partition) -> None:
        try:
            detach(self.conn, part, self.timer)
        except LockBusy as exc:
            # Never wait on the ingest for long: delete its rows in batches instead.
            self.report.notes.append(f"{exc}; its rows are deleted in batches instead")
            if self.delete_rows(part.name, "error_logs", '"timestamp"', ""):
                self.report.partitions_trimmed.append(part.name)
            return
        self.remove_detached(part, reattach_on_failure=True)

    def remove_detached(self, part: Partition, reattach_on_failure: bool) -> None:
        """Archive (when asked) and drop a detached day; a failed archive attaches it again."""
        marks: list[Mark] = []
        try:
            rows = self._archive_table(part, marks) if self.archive else self._count(part)
            drop_detached(self.conn, part)
        except Exception:
            if self.archive is not None:
                self.archive.undo(*marks)
            if reattach_on_failure:
                try:
                    attach(self.conn, part, create=False, timer=self.timer)
                except Exception:
                    log.exception("%s stays detached until the next run", part.name)
            raise
        self.report.count("error_logs", rows)
        self.report.partitions_dropped.append(part.name)
        self._tick(part.name)

    def _count(self, part: Partition) -> int:
        cur = self.conn.cursor()
        cur.execute(f"SELECT count(*) FROM {ident(part.name)}")
        rows = int(cur.fetchone()[0])
        cur.close()
        self.conn.commit()
        return rows

    def _archive_table(self, part: Partition, marks: list[Mark]) -> int:
        assert self.archive is not None
        name = part.name
        if (part.lower is not None and part.upper is not None
                and part.upper - part.lower == timedelta(days=1)
                and part.lower == datetime.combine(part.lower.date(), datetime.min.time(), UTC)):
            # One UTC day: the server writes the JSON lines straight into the day's file.
            # CSV with a quote and a delimiter that JSON never holds raw: each line is the
            # row_to_json text as it is (no COPY text-format escaping).
            cur = self.conn.cursor()
            try:
                mark, rows = self.archive.write_stream(
                    "error_logs", part.lower.date().isoformat(), lambda out: cur.copy_expert(
                        f"COPY (SELECT row_to_json(t)::text FROM {ident(name)} AS t) TO STDOUT "
                        "WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')", out))
                marks.append(mark)
                return rows
            finally:
                cur.close()
                self.conn.commit()
        cur = self.conn.cursor(name=f"retention_{uuid.uuid4().hex[:12]}")
        cur.itersize = self.batch
        try:
            cur.execute(f"SELECT to_char(t.\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD'), "
                        f"row_to_json(t)::text FROM {ident(name)} AS t")
            rows = 0
            while True:
                chunk = cur.fetchmany(self.batch)
                if not chunk:
                    break
                marks.append(self.archive.write("error_logs", chunk))
                rows += len(chunk)
            return rows
        finally:
            cur.close()
            self.conn.commit()

    # -- counting for the dry run -----------------------------------------------------------
    def count_by_day(self, table: str, time_sql: str, where: str) -> dict[str, int]:
        condition = f"t.{time_sql} < {{cutoff}}" + (f" AND ({where})" if where else "")
        cur = self.conn.cursor()
        if self.pg:
            cur.execute(f"SELECT to_char(t.{time_sql} AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, "
                        f"count(*) FROM {ident(table)} AS t "
                        f"WHERE {condition.format(cutoff='%(cutoff)s')} GROUP BY day ORDER BY day",
                        {"cutoff": self.cutoff})
        else:
            cur.execute(f"SELECT substr(t.{time_sql}, 1, 10) AS day, count(*) FROM "
                        f"{ident(table)} AS t WHERE {condition.format(cutoff=':cutoff')} "
                        "GROUP BY day ORDER BY day", {"cutoff": sqlite_time(self.cutoff)})
        counts = {str(day): int(n) for day, n in cur.fetchall()}
        cur.close()
        self.conn.commit()
        return counts


def _restore_postgres(cur: Any, table: str, columns: list[str],
                      documents: list[dict[str, Any]]) -> int:
    names = ", ".join(ident(c) for c in columns)
    rows = json.dumps(documents)
    if table == "error_logs":
        # Through error_ids, like the store: an id stored already is a duplicate.
        picked = ", ".join(f"r.{ident(c)}" for c in columns)
        cur.execute(
            "WITH r AS (SELECT DISTINCT ON (error_id) * FROM "
            "json_populate_recordset(NULL::error_logs, %s::json) ORDER BY error_id), "
            "new_ids AS (INSERT INTO error_ids (error_id, \"timestamp\") "
            "SELECT error_id, \"timestamp\" FROM r ON CONFLICT (error_id) DO NOTHING "
            f"RETURNING error_id) INSERT INTO error_logs ({names}) SELECT {picked} FROM r "
            "JOIN new_ids n ON n.error_id = r.error_id ON CONFLICT DO NOTHING", (rows,))
    elif table == "rejected_messages":
        # Dead letters have no key of their own: the same time and text is the same letter.
        cur.execute(
            f"INSERT INTO rejected_messages ({names}) SELECT {names} FROM "
            "json_populate_recordset(NULL::rejected_messages, %s::json) AS x WHERE NOT EXISTS "
            "(SELECT 1 FROM rejected_messages m WHERE m.received_at = x.received_at "
            "AND m.raw = x.raw AND m.reason = x.reason)", (rows,))
    else:
        cur.execute(f"INSERT INTO {ident(table)} ({names}) SELECT {names} FROM "
                    f"json_populate_recordset(NULL::{ident(table)}, %s::json) "
                    "ON CONFLICT DO NOTHING", (rows,))
    return max(cur.rowcount, 0)


def _restore_sqlite(cur: Any, table: str, columns: list[str],
                    documents: list[dict[str, Any]]) -> int:
    known = metadata.tables[table]
    names = ", ".join(ident(c) for c in columns)
    marks = ", ".join("?" * len(columns))
    inserted = 0
    for document in documents:
        values = sqlite_values(known, document, columns, sqlite_time)
        if table == "rejected_messages":
            where = dict(zip(columns, values, strict=True))
            cur.execute("SELECT 1 FROM rejected_messages WHERE received_at = ? AND raw = ? "
                        "AND reason = ?", (where["received_at"], where["raw"], where["reason"]))
            if cur.fetchone():
                continue
        cur.execute(f"INSERT OR IGNORE INTO {ident(table)} ({names}) VALUES ({marks})", values)
        inserted += max(cur.rowcount, 0)
    return inserted


def _by_start(part: Partition) -> datetime:
    return part.lower or datetime.min.replace(tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _summary(report: RunReport) -> str:
    if report.skipped:
        return f"skipped: {report.skipped}"
    parts = [f"{report.rows_removed} rows removed before {iso_utc(report.cutoff)}",
             f"in {report.duration_seconds:.2f} s"]
    if report.partitions_dropped:
        parts.append(f"{len(report.partitions_dropped)} partitions dropped")
    if report.partitions_created:
        parts.append(f"{len(report.partitions_created)} partitions made")
    if report.archive_files:
        parts.append(f"archived to {len(report.archive_files)} files")
    if report.error:
        parts.append(f"FAILED: {report.error}")
    return ", ".join(parts)


# -- the command line -------------------------------------------------------------------------
class _Bar:
    """A progress line on stderr when it is a terminal (\\r), plain lines otherwise."""

    def __init__(self, total: int, stream: Any = sys.stderr) -> None:
        self.total = max(total, 0)
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self._last = 0.0

    def __call__(self, label: str, done: int) -> None:
        now = time.monotonic()
        if self.tty:
            if now - self._last < 0.1 and done < self.total:
                return
            self._last = now
            share = min(1.0, done / self.total) if self.total else 1.0
            filled = int(share * 30)
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {share:6.1%} "
                              f"{done:,}/{self.total:,} rows  {label[:40]:<40}")
            self.stream.flush()
        elif now - self._last >= 5.0:
            self._last = now
            self.stream.write(f"{done:,}/{self.total:,} rows ({label})\n")

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _print_plan(plan: Plan, out: Any) -> None:
    out.write(f"cutoff {iso_utc(plan.cutoff)} (layout: {plan.layout})\n")
    for table, days in plan.days.items():
        out.write(f"{table}: {sum(days.values()):,} rows\n")
        for day, count in days.items():
            out.write(f"  {day}  {count:>10,}\n")
    if plan.drop:
        out.write(f"partitions to drop whole: {', '.join(plan.drop)}\n")
    if plan.trim:
        out.write(f"partitions trimmed by batched deletes: {', '.join(plan.trim)}\n")
    if plan.create:
        out.write(f"partitions to make ahead: {', '.join(plan.create)}\n")
    for note in plan.skipped:
        out.write(f"skipped {note}\n")
    out.write(f"total: {plan.total:,} rows would be removed\n")


def main(argv: list[str] | None = None) -> int:
    from queries.engine import make_engine
    from queries.schema import create_schema
    from settings import SettingsError, load_settings

    parser = argparse.ArgumentParser(prog="python -m retention", description=(
        "Retention of the error store: what is older than RETENTION_DAYS goes."))
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--dry-run", action="store_true",
                        help="show what would go now, counts per day; change nothing")
    action.add_argument("--now", action="store_true", help="run retention now")
    action.add_argument("--restore", nargs="+", metavar="FILE",
                        help="load archive files back (rows already stored are skipped)")
    action.add_argument("--migrate", action="store_true",
                        help="PostgreSQL: make an unpartitioned error_logs partitioned by day")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"bad setting: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(settings.sqlalchemy_url)
    try:
        create_schema(engine)
        retention = Retention(engine, RetentionPolicy.from_settings(settings))
        if args.dry_run:
            _print_plan(retention.plan(), sys.stdout)
            return 0
        if args.now:
            bar = _Bar(retention.plan().total)
            report = retention.run(progress=bar)
            bar.close()
            print(_summary(report))
            for note in report.notes:
                print(f"note: {note}")
            return 0 if report.ok else 1
        if args.restore:
            totals = retention.restore(args.restore)
            for table, counts in totals.items():
                print(f"{table}: {counts['read']:,} read, {counts['inserted']:,} restored, "
                      f"{counts['read'] - counts['inserted']:,} already there")
            print(f"note: rows older than {settings.retention_days} days go again at the next "
                  "retention run; raise RETENTION_DAYS to keep them")
            return 0
        bar = _Bar(0)
        print(retention.migrate(progress=bar))
        bar.close()
        return 0
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
