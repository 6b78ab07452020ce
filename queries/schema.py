"""The tables, for PostgreSQL (production) and SQLite (the embedded default) alike.

`scripts/create_error_logs_table.sql` is the same schema for creating it by hand; keep both
in step.

On PostgreSQL `error_logs` is partitioned by day on "timestamp" (RANGE), so retention drops
whole days instead of deleting rows (retention/partitions.py makes the days ahead). A
partitioned table cannot hold UNIQUE(error_id) (a unique key must include the partition key),
so the small unpartitioned `error_ids` table keeps "the same error_id again is stored once":
the store inserts there first, ON CONFLICT DO NOTHING, and writes only the ids that were new.
A DEFAULT partition takes rows of days that have no partition (old events, clocks in the
future), so no row is ever refused for its date. SQLite has one plain table with the unique
key. A PostgreSQL `error_logs` made by an older version (unpartitioned) keeps working as it
is; `python -m retention --migrate` converts it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.schema import CreateColumn, CreateIndex, CreateTable

from queries import count_tables
from queries.planner_stats import pg_statistics_ddl
from queries.records import COLUMN_LIMITS, as_utc

metadata = MetaData()


class UtcDateTime(TypeDecorator[datetime]):
    """Every time column: written in UTC, read back as an aware UTC datetime on both stores
    (SQLite keeps naive text and hands back naive datetimes; a naive time is taken as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = as_utc(value)
        # SQLite's DateTime writes the fields as they are: they must already be UTC.
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

_JSON = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments a plain INTEGER PRIMARY KEY.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")

error_logs = Table(
    "error_logs",
    metadata,
    # PostgreSQL fills `id` itself (see create_schema); elsewhere the writer or this default does.
    Column("id", Uuid, primary_key=True, default=uuid.uuid4),
    Column("error_id", String(COLUMN_LIMITS["error_id"]), nullable=False, unique=True),
    Column("error_type", String(COLUMN_LIMITS["error_type"])),
    Column("error_message", Text, nullable=False, server_default=""),
    Column("error_traceback", Text),
    Column("severity", String(16), nullable=False),
    Column("category", String(32), nullable=False),
    Column("source", String(COLUMN_LIMITS["source"]), nullable=False, server_default="TickStockPL"),
    Column("component", String(COLUMN_LIMITS["component"])),
    Column("operation", String(COLUMN_LIMITS["operation"])),
    Column("symbol", String(COLUMN_LIMITS["symbol"])),
    Column("context", _JSON, nullable=False),
    Column("fingerprint", String(40)),
    Column("timestamp", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, server_default=func.now()),
    # When the monitor received it: the producer's clock may be off by hours (local time
    # labelled Z), so health, recency and "last N minutes" windows use this, not "timestamp".
    # The default is for rows written by hand; the writer always sends the time received.
    Column("received_at", UtcDateTime(), nullable=False, server_default=func.now()),
    # Test traffic: stored and shown, but out of counts, health and alerts (queries/counted.py).
    Column("is_test", Boolean, nullable=False, server_default=text("false")),
    Index("idx_error_logs_timestamp", "timestamp"),
    Index("idx_error_logs_received_at", "received_at"),
    Index("idx_error_logs_severity", "severity"),
    # A severity and category pair newest first: PostgreSQL's statistics tell it the pair is
    # rare (queries/planner_stats.py), but it still read both columns' indexes in every
    # partition to find none (55-68 ms at 10M rows); SQLite keeps no such statistics and
    # read every error of the category (300 ms at 1M). This seeks the pair on both.
    Index("idx_error_logs_category_severity_ts", "category", "severity", "timestamp"),
    # With the time: a search for a symbol (or a type) walks that name's rows newest first and
    # stops at a page, instead of the planner walking every row of the window in time order
    # when it cannot tell that the name's rows match nothing else asked (`symbol:X
    # severity:error`: 54 ms at 10M rows on the plain symbol index, 5 ms on this one).
    Index("idx_error_logs_symbol_ts", "symbol", "timestamp"),
    Index("idx_error_logs_error_type_ts", "error_type", "timestamp"),
    Index("idx_error_logs_fingerprint", "fingerprint", "timestamp"),
    Index("idx_error_logs_recent_serious", "timestamp",
          postgresql_where=text("severity IN ('critical', 'error')"),
          sqlite_where=text("severity IN ('critical', 'error')")),
)

rejected_messages = Table(
    "rejected_messages",
    metadata,
    Column("id", _BIG_ID, primary_key=True, autoincrement=True),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("reason", Text, nullable=False),
    Column("error_id", String(COLUMN_LIMITS["error_id"])),
    Column("raw_bytes", Integer, nullable=False, server_default="0"),
    Column("raw", Text, nullable=False),
    Index("idx_rejected_messages_received_at", "received_at"),
)

# Error groups (one line per problem): kept current by the batch writer, in the batch's
# transaction (groups/hook.py).
error_groups = Table(
    "error_groups",
    metadata,
    Column("fingerprint", String(40), primary_key=True),
    Column("title", Text, nullable=False),
    Column("error_type", String(COLUMN_LIMITS["error_type"])),
    Column("category", String(32), nullable=False),
    Column("component", String(COLUMN_LIMITS["component"])),
    Column("operation", String(COLUMN_LIMITS["operation"])),
    Column("first_seen", UtcDateTime(), nullable=False),
    Column("last_seen", UtcDateTime(), nullable=False),
    Column("event_count", BigInteger, nullable=False),
    Column("worst_severity", String(16), nullable=False),
    Column("symbol_count", Integer, nullable=False, server_default="0"),
    # unresolved | resolved | ignored | regressed
    Column("state", String(16), nullable=False, server_default="unresolved"),
    Column("state_changed_at", UtcDateTime()),
    Column("ignore_until", UtcDateTime()),
    Column("ignore_until_count", BigInteger),
    Column("resolved_at", UtcDateTime()),
    Column("regressed_at", UtcDateTime()),
    Index("idx_error_groups_last_seen", "last_seen"),
    Index("idx_error_groups_state", "state"),
)

# The distinct symbols each group has hit, with their counts.
error_group_symbols = Table(
    "error_group_symbols",
    metadata,
    Column("fingerprint", String(40), primary_key=True),
    Column("symbol", String(COLUMN_LIMITS["symbol"]), primary_key=True),
    Column("event_count", BigInteger, nullable=False),
    Column("last_seen", UtcDateTime(), nullable=False),
)

# Alerts (alerts/rules.py): one row per firing, kept after it resolves as history.
alerts = Table(
    "alerts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("rule", String(40), nullable=False),
    Column("alert_key", String(300), nullable=False),
    Column("state", String(16), nullable=False),  # firing | resolved
    Column("started_at", UtcDateTime(), nullable=False),
    Column("ended_at", UtcDateTime()),
    Column("last_event_at", UtcDateTime()),
    Column("event_count", BigInteger, nullable=False, server_default="0"),
    Column("summary", Text, nullable=False, server_default=""),
    Column("sample", _JSON),
    # The last notification sent (firing, reminder, regressed, resolved) and when.
    Column("last_notice", String(16)),
    Column("notified_at", UtcDateTime()),
    Column("notices", Integer, nullable=False, server_default="0"),
    # Why notifications are held back now: "silenced:<id>", "inhibited", or empty.
    Column("suppressed", String(64)),
    Index("idx_alerts_state", "state"),
    Index("idx_alerts_started_at", "started_at"),
)

silences = Table(
    "alert_silences",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("rule", String(40), nullable=False),
    Column("alert_key", String(300)),
    Column("until", UtcDateTime(), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("created_by", String(200), nullable=False, server_default=""),
    Column("created_at", UtcDateTime(), nullable=False),
)

# Processing runs of TickStockPL (jobs/): one row per run_id, its phases as JSON.
job_runs = Table(
    "job_runs",
    metadata,
    Column("run_id", String(200), primary_key=True),
    Column("state", String(16), nullable=False),  # running | completed | failed
    Column("started_at", UtcDateTime()),  # its processing_started, when seen
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("last_event_at", UtcDateTime(), nullable=False),
    Column("ended_at", UtcDateTime()),
    Column("duration_seconds", Float),
    Column("failure", Text),
    Column("source", String(COLUMN_LIMITS["source"])),
    Column("phases", _JSON, nullable=False),
    Column("last_event", _JSON),
    Index("idx_job_runs_last_event_at", "last_event_at"),
    Index("idx_job_runs_state", "state"),
)

# Import jobs of TickStockAppV2, followed through their Redis status keys (jobs/).
import_jobs = Table(
    "import_jobs",
    metadata,
    Column("job_id", String(200), primary_key=True),
    Column("job_type", String(100)),
    # submitted | running | completed | failed | lost (its key expired before an end state)
    Column("status", String(16), nullable=False),
    Column("progress", Float),
    Column("message", Text),
    Column("submitted_at", UtcDateTime()),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("progress_changed_at", UtcDateTime(), nullable=False),
    Column("ended_at", UtcDateTime()),
    Column("raw", _JSON),
    Index("idx_import_jobs_first_seen_at", "first_seen_at"),
    Index("idx_import_jobs_status", "status"),
)

# Errors that name a run or a job (by run_id / job_id in their message or context).
job_error_links = Table(
    "job_error_links",
    metadata,
    Column("kind", String(8), primary_key=True),  # run | job
    Column("ref_id", String(200), primary_key=True),
    Column("error_id", String(COLUMN_LIMITS["error_id"]), primary_key=True),
    Column("linked_at", UtcDateTime(), nullable=False),
)

# PostgreSQL only: the first copy of each stored error_id, with its timestamp so that
# retention can prune it with the row.
error_ids = Table(
    "error_ids",
    metadata,
    Column("error_id", String(COLUMN_LIMITS["error_id"]), primary_key=True),
    Column("timestamp", UtcDateTime(), nullable=False),
    Index("idx_error_ids_timestamp", "timestamp"),
    info={"postgresql_only": True},
)

# One row per maintenance run (retention), so "when did it last run" survives restarts.
maintenance_runs = Table(
    "maintenance_runs",
    metadata,
    Column("id", _BIG_ID, primary_key=True, autoincrement=True),
    Column("job", String(64), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime()),
    Column("ok", Boolean, nullable=False, server_default=text("false")),
    Column("rows_removed", BigInteger, nullable=False, server_default="0"),
    Column("detail", Text, nullable=False, server_default=""),
    Index("idx_maintenance_runs_job_started_at", "job", "started_at"),
)

# One row per singleton job and period (a day): the process that inserts it runs the job,
# the others stand by, so several ingest processes run each day's retention once.
job_claims = Table(
    "job_claims",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("period", String(32), primary_key=True),
    Column("claimed_by", String(200), nullable=False),
    Column("claimed_at", UtcDateTime(), nullable=False),
)

# Webhook notices to deliver (alerts/outbox.py): written in the transaction that records the
# alert's change, delivered and marked by the alert leader's sender. `id` is the notice's
# Idempotency-Key: the alert's id and its notice number, the same on every retry.
alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("alert_id", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("payload", Text, nullable=False),
    Column("state", String(16), nullable=False),  # pending | sent | failed (given up)
    Column("created_at", UtcDateTime(), nullable=False),
    Column("next_try_at", UtcDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("sent_at", UtcDateTime()),
    Column("last_error", String(300)),
    Index("idx_alert_outbox_state_next_try_at", "state", "next_try_at"),
)

# Where the alert leader stands in the deployment's event stream (alerts/shared.py): the
# last entry it evaluated, saved with the alert changes it caused, so the next leader goes on
# from exactly there; and who leads.
alert_feed = Table(
    "alert_feed",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("last_id", String(40), nullable=False),
    Column("leader", String(200), nullable=False, server_default=""),
    Column("leader_since", UtcDateTime()),
    Column("updated_at", UtcDateTime(), nullable=False),
)


# Counts of the counted rows in closed time buckets, kept exact by triggers on error_logs
# (queries/count_tables.py); every count the product shows reads them (queries/counts.py).
error_counts = Table(
    "error_counts",
    metadata,
    Column("grain", Integer, primary_key=True),
    Column("bucket", BigInteger, primary_key=True),  # epoch seconds // grain, UTC
    Column("severity", String(16), primary_key=True),
    Column("category", String(32), primary_key=True),
    Column("n", BigInteger, nullable=False),
    sqlite_with_rowid=False,  # one B-tree: an upsert is one lookup
)

error_dim_counts = Table(
    "error_dim_counts",
    metadata,
    Column("grain", Integer, primary_key=True),
    Column("bucket", BigInteger, primary_key=True),
    Column("dim", String(16), primary_key=True),
    # '' for no value (NULL cannot be part of a key); the reads treat it as "no name".
    Column("value", String(max(COLUMN_LIMITS["symbol"], COLUMN_LIMITS["component"],
                               COLUMN_LIMITS["error_type"])), primary_key=True),
    Column("n", BigInteger, nullable=False),
    sqlite_with_rowid=False,  # one B-tree: an upsert is one lookup
)

error_group_counts = Table(
    "error_group_counts",
    metadata,
    Column("grain", Integer, primary_key=True),
    Column("bucket", BigInteger, primary_key=True),  # on "timestamp"
    Column("fingerprint", String(40), primary_key=True),
    Column("n", BigInteger, nullable=False),
    sqlite_with_rowid=False,  # one B-tree: an upsert is one lookup
)

COUNT_TABLES = (error_counts, error_dim_counts, error_group_counts)

# Columns the batch writer fills, in the order of its rows.
INSERT_COLUMNS = (
    "error_id", "error_type", "error_message", "error_traceback", "severity", "category",
    "source", "component", "operation", "symbol", "context", "timestamp", "fingerprint",
    "received_at", "is_test",
)


DEFAULT_PARTITION = "error_logs_default"
# The advisory lock key create_schema holds on PostgreSQL (any constant of this project's).
_SCHEMA_LOCK = 7_311_013
# Indexes of error_logs that an index above took the place of: dropped at start-up, as they
# would only cost the writer.
REPLACED_INDEXES = ("idx_error_logs_symbol", "idx_error_logs_error_type",
                    "idx_error_logs_category")


def error_logs_table_ddl(table: str) -> list[str]:
    """What each table of error_logs carries (error_logs, a partition, a day table), made
    when missing: the count triggers and the planner's statistics (PostgreSQL)."""
    return count_tables.pg_trigger_ddl(table) + pg_statistics_ddl(table)


def _drop_replaced_indexes(conn) -> None:
    for name in REPLACED_INDEXES:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")


def postgres_error_logs_ddl() -> list[str]:
    """`error_logs` on PostgreSQL, partitioned by day: the statements, made from the Table above.

    Made from `error_logs` so that a column or index added there follows here. The primary key
    of a partitioned table must hold the partition key, hence (id, "timestamp"); `id` stays a
    UUID the server makes (gen_random_uuid(), built in from PostgreSQL 13, so COPY can leave it
    out); error_id uniqueness lives in `error_ids`. The indexes are partitioned indexes: each
    partition gets its own, and one on error_id serves the lookups by id.
    """
    dialect = postgresql.dialect()
    columns = []
    for column in error_logs.columns:
        spec = str(CreateColumn(column).compile(dialect=dialect))
        columns.append(spec + " DEFAULT gen_random_uuid()" if column.name == "id" else spec)
    statements = [
        "CREATE TABLE IF NOT EXISTS error_logs (\n    " + ",\n    ".join(columns)
        + ',\n    CONSTRAINT error_logs_pkey PRIMARY KEY (id, "timestamp")\n'
        + ') PARTITION BY RANGE ("timestamp")',
        f"CREATE TABLE IF NOT EXISTS {DEFAULT_PARTITION} PARTITION OF error_logs DEFAULT",
    ]
    for index in sorted(error_logs.indexes, key=lambda i: str(i.name)):
        statements.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)))
    statements.append(
        "CREATE INDEX IF NOT EXISTS idx_error_logs_error_id ON error_logs (error_id)")
    return statements


def error_logs_layout(conn) -> str:
    """`partitioned`, `plain` (an older unpartitioned table) or `missing`, on PostgreSQL.

    `conn` is a DBAPI connection or cursor-maker (psycopg2) or an SQLAlchemy Connection.
    """
    query = ("SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
             "WHERE c.relname = 'error_logs' AND n.nspname = current_schema()")
    if hasattr(conn, "exec_driver_sql"):
        kind = conn.exec_driver_sql(query).scalar()
    else:
        cur = conn.cursor()
        cur.execute(query)
        row = cur.fetchone()
        cur.close()
        kind = row[0] if row else None
    return {"p": "partitioned", "r": "plain", None: "missing"}.get(kind, "plain")


# Columns added to error_logs after its first version, with how an older table gets them
# (PostgreSQL; SQLite below): rows of before the upgrade were received when they were stored.
_UPGRADES_PG = {
    "received_at": (
        "ALTER TABLE error_logs ADD COLUMN IF NOT EXISTS received_at TIMESTAMP WITH TIME ZONE",
        "UPDATE error_logs SET received_at = created_at WHERE received_at IS NULL",
        "ALTER TABLE error_logs ALTER COLUMN received_at SET DEFAULT now(), "
        "ALTER COLUMN received_at SET NOT NULL",
        "CREATE INDEX IF NOT EXISTS idx_error_logs_received_at ON error_logs (received_at)",
    ),
    "is_test": (
        "ALTER TABLE error_logs ADD COLUMN IF NOT EXISTS is_test BOOLEAN NOT NULL DEFAULT false",
    ),
}
# SQLite cannot add a NOT NULL column without a constant default: received_at stays nullable
# in an upgraded file, and is filled at once.
_UPGRADES_SQLITE = {
    "received_at": (
        "ALTER TABLE error_logs ADD COLUMN received_at DATETIME",
        "UPDATE error_logs SET received_at = created_at WHERE received_at IS NULL",
        "CREATE INDEX IF NOT EXISTS idx_error_logs_received_at ON error_logs (received_at)",
    ),
    "is_test": ("ALTER TABLE error_logs ADD COLUMN is_test BOOLEAN NOT NULL DEFAULT 0",),
}
# Several processes (ingest, gunicorn workers) may start at once: one upgrades, the others
# wait on this lock and then find nothing left to do.
_UPGRADE_LOCK = 715_015


def _existing_columns(conn) -> set[str]:
    if conn.dialect.name == "postgresql":
        rows = conn.exec_driver_sql(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'error_logs'").all()
        return {row[0] for row in rows}
    return {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(error_logs)").all()}


def upgrade_error_logs(conn) -> list[str]:
    """Add the columns an older error_logs lacks (in the caller's transaction); the names.

    Idempotent: a table that has them is not touched (no lock taken beyond a catalogue read).
    """
    existing = _existing_columns(conn)
    if not existing:
        return []  # no table yet: it is made whole
    upgrades = _UPGRADES_PG if conn.dialect.name == "postgresql" else _UPGRADES_SQLITE
    missing = [name for name in upgrades if name not in existing]
    if not missing:
        return []
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_UPGRADE_LOCK})")
        existing = _existing_columns(conn)
        missing = [name for name in upgrades if name not in existing]
    for name in missing:
        for statement in upgrades[name]:
            conn.exec_driver_sql(statement)
    return missing


def create_schema(engine: Engine) -> None:
    """Create the tables and indexes that are missing; existing ones are left as they are,
    but for the columns added since (`upgrade_error_logs`) and error_logs' indexes that
    newer ones replaced (REPLACED_INDEXES, dropped).

    On PostgreSQL a missing `error_logs` is made partitioned (with its DEFAULT partition; the
    retention job adds the daily partitions); an existing unpartitioned one is kept.
    """
    if engine.dialect.name == "postgresql":
        others = [t for t in metadata.sorted_tables if t.name != "error_logs"]
        with engine.begin() as conn:
            # Processes starting together (the ingest and web workers) would race between
            # "is it there?" and CREATE: one at a time, the lock ends with the transaction.
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
            layout = error_logs_layout(conn)
            # Before the DDL below: its indexes may name the new columns.
            upgrade_error_logs(conn)
            if layout == "plain":
                # gen_random_uuid() is built in from PostgreSQL 13, so COPY can leave `id` out.
                conn.exec_driver_sql(
                    "ALTER TABLE error_logs ALTER COLUMN id SET DEFAULT gen_random_uuid()")
            else:
                for statement in postgres_error_logs_ddl():
                    conn.exec_driver_sql(statement)
                _drop_replaced_indexes(conn)
            fresh = conn.exec_driver_sql(
                "SELECT to_regclass('error_counts') IS NULL").scalar()
            metadata.create_all(conn, tables=others)
            _install_counts_pg(conn, bool(fresh))
    else:
        with engine.begin() as conn:
            upgrade_error_logs(conn)
        tables = [t for t in metadata.sorted_tables
                  if not t.info.get("postgresql_only") and t not in COUNT_TABLES]
        try:
            metadata.create_all(engine, tables=tables)
        except OperationalError as exc:
            # Another process created a table between the check and the CREATE: what is
            # left is checked again, once.
            if "already exists" not in str(exc):
                raise
            metadata.create_all(engine, tables=tables)
        with engine.begin() as conn:
            # create_all leaves an existing table's indexes as they were: an older file gets
            # the indexes added since, and loses the ones they replaced.
            for index in error_logs.indexes:
                conn.exec_driver_sql(str(CreateIndex(index, if_not_exists=True)
                                         .compile(dialect=engine.dialect)))
            _drop_replaced_indexes(conn)
        _install_counts_sqlite(engine)


def _install_counts_pg(conn, fresh: bool) -> None:
    """The count tables' functions and triggers; filled from error_logs when just made.

    Held under the schema lock by the caller. When the tables are new, error_logs is locked
    against writes (SHARE ROW EXCLUSIVE, reads go on) from before the triggers exist until
    the backfill commits: every row is counted once, by the backfill or by a trigger."""
    if fresh:
        conn.exec_driver_sql("LOCK TABLE error_logs IN SHARE ROW EXCLUSIVE MODE")
    for statement in count_tables.pg_function_ddl():
        conn.exec_driver_sql(statement)
    cur = conn.connection.cursor()
    tables = count_tables.pg_count_tables_of_error_logs(cur)
    cur.close()
    for table in tables:
        for statement in error_logs_table_ddl(table):
            conn.exec_driver_sql(statement)
    if fresh:
        for statement in count_tables.backfill_sql("postgresql"):
            conn.exec_driver_sql(statement)


def _install_counts_sqlite(engine: Engine) -> None:
    """As on PostgreSQL, in one BEGIN IMMEDIATE (the file's write lock): tables, triggers,
    and the backfill when the tables are new. Another process starting at the same time
    waits, then finds the tables and leaves the counts alone."""
    raw = engine.raw_connection()
    try:
        dbapi = raw.driver_connection
        previous = dbapi.isolation_level
        dbapi.isolation_level = None  # we say BEGIN and COMMIT ourselves
        cur = dbapi.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            fresh = cur.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                "AND name = 'error_counts'").fetchone()[0] == 0
            for table in COUNT_TABLES:
                cur.execute(str(CreateTable(table, if_not_exists=True)
                                .compile(dialect=engine.dialect)))
            for statement in count_tables.sqlite_trigger_ddl():
                cur.execute(statement)
            if fresh:
                for statement in count_tables.backfill_sql("sqlite"):
                    cur.execute(statement)
            cur.execute("COMMIT")
        except Exception:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()
            dbapi.isolation_level = previous
    finally:
        raw.close()
