"""The schema on PostgreSQL: what CONTRACT.md §2 promises, and the hand-run SQL file."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from queries.schema import create_schema
from queries.store import ErrorStore
from tests.conftest import fresh_schema
from tests.factories import event

ROOT = Path(__file__).resolve().parent.parent


def _indexes(engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return dict(conn.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'error_logs'")).all())


def _column_types(engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {c["name"]: str(c["type"]) for c in inspect(engine).get_columns("error_logs")}


def test_postgres_schema_has_the_contracts_types_and_indexes(pg_engine):  # type: ignore[no-untyped-def]
    types = _column_types(pg_engine)
    assert types["id"] == "UUID" and types["context"] == "JSONB"
    assert types["timestamp"] == "TIMESTAMP" or "TIME ZONE" in types["timestamp"]
    indexes = _indexes(pg_engine)
    for column in ("timestamp", "severity", "category", "symbol", "error_type"):
        assert any(f"({column})" in d or f'("{column}")' in d for d in indexes.values()), column
    partial = indexes["idx_error_logs_recent_serious"]
    assert "WHERE" in partial and "critical" in partial and "error" in partial
    assert any("UNIQUE" in d and "error_id" in d for d in indexes.values())


def test_the_sql_script_makes_the_same_schema_and_the_store_writes_to_it(pg_engine):  # type: ignore[no-untyped-def]
    expected_types, expected_indexes = _column_types(pg_engine), set(_indexes(pg_engine))
    with pg_engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
        conn.exec_driver_sql((ROOT / "scripts" / "create_error_logs_table.sql").read_text())
    assert _column_types(pg_engine) == expected_types
    assert set(_indexes(pg_engine)) == expected_indexes
    create_schema(pg_engine)  # starting the monitor on a hand-made schema changes nothing
    assert set(_indexes(pg_engine)) == expected_indexes
    store = ErrorStore(pg_engine)
    assert store.write_batch([event(error_id="by-script")]).inserted == 1
    store.close()
    fresh_schema(pg_engine)
