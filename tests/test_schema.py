"""The schema on PostgreSQL: what CONTRACT.md §2 promises, and the hand-run SQL file."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from queries.count_tables import drop_count_tables
from queries.schema import create_schema
from queries.store import ErrorStore
from tests.conftest import fresh_schema
from tests.factories import event

ROOT = Path(__file__).resolve().parent.parent


# Tables whose layout the script and the code must agree on.
_COMPARED = ("error_logs", "error_ids", "maintenance_runs", "rejected_messages")


def _indexes(engine, table: str = "error_logs") -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"), {"t": table}).all())


def _column_types(engine, table: str = "error_logs") -> dict[str, str]:
    return {c["name"]: str(c["type"]) for c in inspect(engine).get_columns(table)}


def _layout(engine) -> dict[str, object]:
    """Columns and index names of the compared tables, and how error_logs is partitioned."""
    with engine.connect() as conn:
        partitioning = conn.execute(text(
            "SELECT pg_get_partkeydef('error_logs'::regclass)")).scalar()
        default = conn.execute(text(
            "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c "
            "ON c.oid = p.partdefid WHERE p.partrelid = 'error_logs'::regclass")).scalar()
    return {"partitioning": partitioning, "default": default,
            **{f"{t} columns": _column_types(engine, t) for t in _COMPARED},
            **{f"{t} indexes": set(_indexes(engine, t)) for t in _COMPARED}}


def test_postgres_schema_has_the_contracts_types_and_indexes(pg_engine):
    types = _column_types(pg_engine)
    assert types["id"] == "UUID" and types["context"] == "JSONB"
    assert types["timestamp"] == "TIMESTAMP" or "TIME ZONE" in types["timestamp"]
    indexes = _indexes(pg_engine)
    # The contract's index on each column: one that leads with it (symbol and error_type lead
    # an index with the time, which serves a lookup of the name as well).
    for column in ("timestamp", "severity", "category", "symbol", "error_type"):
        assert any(f"({column})" in d or f'("{column}")' in d or f"({column}, " in d
                   for d in indexes.values()), column
    partial = indexes["idx_error_logs_recent_serious"]
    assert "WHERE" in partial and "critical" in partial and "error" in partial
    # Partitioned by day: the key must be in the primary key, and error_id's uniqueness (one
    # row per error_id) is kept by error_ids' primary key, which the store inserts into first.
    assert _layout(pg_engine)["partitioning"] == "RANGE (\"timestamp\")"
    assert any("UNIQUE" in d and "(id, \"timestamp\")" in d for d in indexes.values())
    assert any("UNIQUE" in d and "(error_id)" in d
               for d in _indexes(pg_engine, "error_ids").values())


def test_the_sql_script_makes_the_same_schema_and_the_store_writes_to_it(pg_engine):
    expected = _layout(pg_engine)
    with pg_engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
        conn.exec_driver_sql((ROOT / "scripts" / "create_error_logs_table.sql").read_text())
    assert _layout(pg_engine) == expected
    create_schema(pg_engine)  # starting the monitor on a hand-made schema changes nothing
    assert _layout(pg_engine) == expected
    store = ErrorStore(pg_engine)
    assert store.write_batch([event(error_id="by-script")]).inserted == 1
    store.close()
    fresh_schema(pg_engine)


def _make_older_table(engine) -> None:
    """error_logs as an earlier version made it: without received_at and is_test (and
    without the count tables and their triggers, which came later still)."""
    with engine.begin() as conn:
        drop_count_tables(conn)
        conn.execute(text("DROP INDEX IF EXISTS idx_error_logs_received_at"))
        conn.execute(text("ALTER TABLE error_logs DROP COLUMN received_at"))
        conn.execute(text("ALTER TABLE error_logs DROP COLUMN is_test"))
        conn.execute(text(
            "INSERT INTO error_logs (id, error_id, error_message, severity, category, source, "
            "context, \"timestamp\", created_at) VALUES ('5f0c2b9e-1d7a-4c1e-9d35-2b1f7f0e9a44', "
            "'old-1', 'old', 'error', 'pattern', 'TickStockPL', '{}', "
            "'2024-10-30 12:00:00+00', '2024-10-30 12:00:05+00')"))


def test_an_older_error_logs_gets_received_at_from_created_at_and_is_test(engine):
    _make_older_table(engine)
    create_schema(engine)
    create_schema(engine)  # idempotent: a second start finds nothing to do
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT received_at, created_at, is_test FROM error_logs WHERE error_id = 'old-1'")
        ).one()
    assert str(row.received_at)[:19] == str(row.created_at)[:19]
    assert not row.is_test
    store = ErrorStore(engine)
    assert store.write_batch([event(is_test=True)]).inserted == 1
    store.close()
