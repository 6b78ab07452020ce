"""Archives back into the store (`python -m retention --restore FILE...`): rows already
stored are skipped, error_logs rows go through error_ids like the store's own writes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from queries.dialects import sqlite_time
from queries.schema import metadata
from retention.archive import read_archive, sqlite_values, table_of
from retention.partitions import ident
from retention.policy import Progress


def restore_archives(engine: Engine, paths: Iterable[str | Path],
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
                counts["inserted"] += _restore_chunk(engine, table, chunk)
                counts["read"] += len(chunk)
                chunk = []
                if progress is not None:
                    progress(f"{Path(path).name}", counts["read"])
        if chunk:
            counts["inserted"] += _restore_chunk(engine, table, chunk)
            counts["read"] += len(chunk)
            if progress is not None:
                progress(f"{Path(path).name}", counts["read"])
    return totals


def _restore_chunk(engine: Engine, table: str, documents: list[dict[str, Any]]) -> int:
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        existing = table_columns(cur, engine.dialect.name, table)
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
        if engine.dialect.name == "postgresql":
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


def table_columns(cur: Any, dialect: str, table: str) -> set[str]:
    """The columns `table` has in this database (empty when it does not exist)."""
    if dialect == "postgresql":
        cur.execute("SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = %s", (table,))
        return {row[0] for row in cur.fetchall()}
    cur.execute(f"PRAGMA table_info({ident(table)})")
    return {row[1] for row in cur.fetchall()}


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
