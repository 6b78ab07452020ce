"""The tables, for PostgreSQL (production) and SQLite (the embedded default) alike.

`scripts/create_error_logs_table.sql` is the same schema for creating it by hand; keep both
in step.
"""

from __future__ import annotations

import uuid

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine

from queries.records import COLUMN_LIMITS

metadata = MetaData()

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
    Column("timestamp", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("idx_error_logs_timestamp", "timestamp"),
    Index("idx_error_logs_severity", "severity"),
    Index("idx_error_logs_category", "category"),
    Index("idx_error_logs_symbol", "symbol"),
    Index("idx_error_logs_error_type", "error_type"),
    Index("idx_error_logs_fingerprint", "fingerprint", "timestamp"),
    Index("idx_error_logs_recent_serious", "timestamp",
          postgresql_where=text("severity IN ('critical', 'error')"),
          sqlite_where=text("severity IN ('critical', 'error')")),
)

rejected_messages = Table(
    "rejected_messages",
    metadata,
    Column("id", _BIG_ID, primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
    Column("error_id", String(COLUMN_LIMITS["error_id"])),
    Column("raw_bytes", Integer, nullable=False, server_default="0"),
    Column("raw", Text, nullable=False),
    Index("idx_rejected_messages_received_at", "received_at"),
)

# Error groups (one line per problem): kept current by the batch writer, in the batch's
# transaction (queries/groups.py).
error_groups = Table(
    "error_groups",
    metadata,
    Column("fingerprint", String(40), primary_key=True),
    Column("title", Text, nullable=False),
    Column("error_type", String(COLUMN_LIMITS["error_type"])),
    Column("category", String(32), nullable=False),
    Column("component", String(COLUMN_LIMITS["component"])),
    Column("operation", String(COLUMN_LIMITS["operation"])),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("event_count", BigInteger, nullable=False),
    Column("worst_severity", String(16), nullable=False),
    Column("symbol_count", Integer, nullable=False, server_default="0"),
    # unresolved | resolved | ignored | regressed
    Column("state", String(16), nullable=False, server_default="unresolved"),
    Column("state_changed_at", DateTime(timezone=True)),
    Column("ignore_until", DateTime(timezone=True)),
    Column("ignore_until_count", BigInteger),
    Column("resolved_at", DateTime(timezone=True)),
    Column("regressed_at", DateTime(timezone=True)),
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
    Column("last_seen", DateTime(timezone=True), nullable=False),
)

# Columns the batch writer fills, in the order of its rows.
INSERT_COLUMNS = (
    "error_id", "error_type", "error_message", "error_traceback", "severity", "category",
    "source", "component", "operation", "symbol", "context", "timestamp", "fingerprint",
)


def create_schema(engine: Engine) -> None:
    """Create the tables and indexes that are missing; existing ones are left as they are."""
    if engine.dialect.name == "postgresql":
        # gen_random_uuid() is built in from PostgreSQL 13, so COPY can leave `id` out.
        with engine.begin() as conn:
            metadata.create_all(conn)
            conn.execute(text(
                "ALTER TABLE error_logs ALTER COLUMN id SET DEFAULT gen_random_uuid()"))
    else:
        metadata.create_all(engine)
