"""The count tables: closed time buckets of the counted rows, kept exact by the database.

Every count the product shows is a sum over these buckets plus a raw count of the window's
edges (less than one of the finest bucket at each end: see queries/counts.py). The tables are
kept by triggers on `error_logs`, in the transaction of the statement that changes the rows,
so they are exact at all times for every writer: the batch writer, a restore, retention's
deletes, a row written by hand. Only counted rows go in (not test traffic: queries/counted.py).

- `error_counts`: (grain, bucket, severity, category) -> n, on `received_at` (what every
  window of the counts and trends is measured on), grains of a minute, an hour and a day.
- `error_dim_counts`: (grain, bucket, dim, value) -> n for dim in symbol, component,
  error_type, on `received_at`, shown severities only (the trends rank what the page shows),
  grains of ten minutes, an hour and a day (per minute it would be as big as the rows).
- `error_group_counts`: (grain, bucket, fingerprint) -> n on "timestamp" (the group strips
  are on the producer's time), grains of a minute and an hour.

PostgreSQL: statement-level AFTER INSERT/DELETE/UPDATE triggers with transition tables (one
aggregate per statement, not per row). They are on `error_logs` and on each of its
partitions: a statement on the partitioned table fires its own statement triggers only, one
naming a partition (retention's trims, ATTACH's move from DEFAULT) fires the partition's.
DETACH and DROP fire nothing, so retention/partitions.py takes a partition's rows out of the
counts in the DETACH's transaction (and puts them back when it attaches a table again).
TRUNCATE is not counted: nothing in the monitor truncates error_logs.
SQLite has row triggers only; each counted row costs a few upserts into small tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from queries.records import ErrorEvent, as_utc

MATRIX_GRAINS = (60, 3600, 86400)
DIM_GRAINS = (600, 3600, 86400)
GROUP_GRAINS = (60, 3600)
DIMENSIONS = ("symbol", "component", "error_type")
SHOWN = ("warning", "error", "critical")

_SHOWN_SQL = "(" + ", ".join(f"'{s}'" for s in SHOWN) + ")"


def _grains(grains: tuple[int, ...]) -> str:
    return ", ".join(f"({g})" for g in grains)


# -- PostgreSQL ---------------------------------------------------------------------------
def _pg_epoch(column: str) -> str:
    # date_part gives double precision: several times cheaper than extract()'s numeric, and
    # exact enough (a microsecond at today's epoch is far above a double's resolution).
    return f"date_part('epoch', r.{column})"


def _pg_apply(rows: str) -> list[str]:
    """Statements adding the signed rows of `rows` (a SELECT of error_logs columns and `s`,
    +1 or -1) to the count tables. The rows are aggregated once at the finest grain and the
    coarser grains made from that (small) result. Keys are sorted so that concurrent
    writers take the buckets' row locks in one order (no deadlock between two batches)."""
    received = _pg_epoch("received_at")
    stamp = _pg_epoch('"timestamp"')
    m0, d0, g0 = MATRIX_GRAINS[0], DIM_GRAINS[0], GROUP_GRAINS[0]
    dims = ", ".join(f"('{d}', f.{d})" for d in DIMENSIONS)
    return [
        f"WITH f AS (SELECT floor({received} / {m0})::bigint AS b, r.severity, r.category, "
        f"sum(r.s) AS n FROM ({rows}) r WHERE NOT r.is_test GROUP BY 1, 2, 3) "
        "INSERT INTO error_counts AS c (grain, bucket, severity, category, n) "
        f"SELECT g.grain, f.b * {m0} / g.grain, f.severity, f.category, sum(f.n) "
        f"FROM f CROSS JOIN (VALUES {_grains(MATRIX_GRAINS)}) g(grain) "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 "
        "ON CONFLICT (grain, bucket, severity, category) DO UPDATE SET n = c.n + excluded.n",
        f"WITH f AS (SELECT floor({received} / {d0})::bigint AS b, "
        + ", ".join(f"coalesce(r.{d}, '') AS {d}" for d in DIMENSIONS)
        + f", sum(r.s) AS n FROM ({rows}) r "
        f"WHERE NOT r.is_test AND r.severity IN {_SHOWN_SQL} GROUP BY 1, 2, 3, 4) "
        "INSERT INTO error_dim_counts AS c (grain, bucket, dim, value, n) "
        f"SELECT g.grain, f.b * {d0} / g.grain, x.dim, x.value, sum(f.n) "
        f"FROM f CROSS JOIN LATERAL (VALUES {dims}) x(dim, value) "
        f"CROSS JOIN (VALUES {_grains(DIM_GRAINS)}) g(grain) "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 "
        "ON CONFLICT (grain, bucket, dim, value) DO UPDATE SET n = c.n + excluded.n",
        f"WITH f AS (SELECT floor({stamp} / {g0})::bigint AS b, r.fingerprint, "
        f"sum(r.s) AS n FROM ({rows}) r WHERE NOT r.is_test AND r.fingerprint IS NOT NULL "
        "GROUP BY 1, 2) "
        "INSERT INTO error_group_counts AS c (grain, bucket, fingerprint, n) "
        f"SELECT g.grain, f.b * {g0} / g.grain, f.fingerprint, sum(f.n) "
        f"FROM f CROSS JOIN (VALUES {_grains(GROUP_GRAINS)}) g(grain) "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 "
        "ON CONFLICT (grain, bucket, fingerprint) DO UPDATE SET n = c.n + excluded.n",
    ]


def _pg_prune(rows: str) -> list[str]:
    """Drop the buckets a delete brought to zero, so old buckets do not pile up as zeros."""
    received = _pg_epoch("received_at")
    stamp = _pg_epoch('"timestamp"')
    out = []
    for table, column, grains in (("error_counts", received, MATRIX_GRAINS),
                                  ("error_dim_counts", received, DIM_GRAINS),
                                  ("error_group_counts", stamp, GROUP_GRAINS)):
        out.append(
            f"DELETE FROM {table} c USING (SELECT DISTINCT g.grain, "
            f"floor({column} / g.grain)::bigint AS bucket FROM ({rows}) r "
            f"CROSS JOIN (VALUES {_grains(grains)}) g(grain)) k "
            "WHERE c.grain = k.grain AND c.bucket = k.bucket AND c.n = 0")
    return out


_PG_ROWS = {
    "insert": "SELECT *, 1 AS s FROM new_rows",
    "delete": "SELECT *, -1 AS s FROM old_rows",
    "update": "SELECT *, 1 AS s FROM new_rows UNION ALL SELECT *, -1 AS s FROM old_rows",
}
_PG_REFERENCING = {
    "insert": "REFERENCING NEW TABLE AS new_rows",
    "delete": "REFERENCING OLD TABLE AS old_rows",
    "update": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
}


def pg_function_ddl() -> list[str]:
    """The trigger functions (CREATE OR REPLACE: safe to run at every start)."""
    out = []
    for op, rows in _PG_ROWS.items():
        body = _pg_apply(rows) + (_pg_prune(rows) if op != "insert" else [])
        out.append(
            f"CREATE OR REPLACE FUNCTION error_counts_on_{op}() RETURNS trigger "
            "LANGUAGE plpgsql AS $fn$ BEGIN "
            + "; ".join(body) + "; RETURN NULL; END $fn$")
    return out


def pg_trigger_ddl(table: str) -> list[str]:
    """The triggers of one table (error_logs, a partition, a day table): made when missing.

    A DO block that looks first, so a start with every trigger in place takes no lock on
    the table (CREATE TRIGGER would block the ingest's inserts for its moment)."""
    quoted = '"' + table.replace('"', '""') + '"'
    literal = table.replace("'", "''")
    out = []
    for op, referencing in _PG_REFERENCING.items():
        name = f"error_counts_{op}"
        out.append(
            "DO $do$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = "
            f"'{literal}'::regclass AND tgname = '{name}') THEN "
            f"CREATE TRIGGER {name} AFTER {op.upper()} ON {quoted} {referencing} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION error_counts_on_{op}(); END IF; END $do$")
    return out


def pg_add_table_rows(table: str, sign: int) -> list[str]:
    """Statements adding (+1) or taking out (-1) every row of `table` from the counts: for a
    partition about to be detached, or a day table about to be attached again."""
    quoted = '"' + table.replace('"', '""') + '"'
    rows = f"SELECT *, {int(sign)} AS s FROM {quoted}"
    return _pg_apply(rows) + (_pg_prune(rows) if sign < 0 else [])


def pg_count_tables_of_error_logs(cur: Any) -> list[str]:
    """error_logs and every table attached to it (partitions, DEFAULT)."""
    cur.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'error_logs'::regclass ORDER BY c.relname")
    return ["error_logs", *[row[0] for row in cur.fetchall()]]


# -- SQLite -------------------------------------------------------------------------------
def _sqlite_apply(ref: str, sign: int) -> list[str]:
    """Row-trigger statements for the row `ref` (NEW or OLD). A time SQLite cannot read
    (only a row written by hand in an odd format) is left out rather than failing the
    write: the counts must never cost a stored error."""
    received = f"CAST(strftime('%s', {ref}.received_at) AS INTEGER)"
    stamp = f"CAST(strftime('%s', {ref}.\"timestamp\") AS INTEGER)"
    dims = ", ".join(f"('{d}', coalesce({ref}.{d}, ''))" for d in DIMENSIONS)
    out = [
        "INSERT INTO error_counts (grain, bucket, severity, category, n) "
        f"SELECT g.column1, {received} / g.column1, {ref}.severity, {ref}.category, {sign} "
        f"FROM (VALUES {_grains(MATRIX_GRAINS)}) AS g WHERE NOT {ref}.is_test "
        f"AND {received} IS NOT NULL "
        "ON CONFLICT (grain, bucket, severity, category) DO UPDATE SET n = n + excluded.n;",
        "INSERT INTO error_dim_counts (grain, bucket, dim, value, n) "
        f"SELECT g.column1, {received} / g.column1, d.column1, d.column2, {sign} "
        f"FROM (VALUES {_grains(DIM_GRAINS)}) AS g, (VALUES {dims}) AS d "
        f"WHERE NOT {ref}.is_test AND {ref}.severity IN {_SHOWN_SQL} "
        f"AND {received} IS NOT NULL "
        "ON CONFLICT (grain, bucket, dim, value) DO UPDATE SET n = n + excluded.n;",
        "INSERT INTO error_group_counts (grain, bucket, fingerprint, n) "
        f"SELECT g.column1, {stamp} / g.column1, {ref}.fingerprint, {sign} "
        f"FROM (VALUES {_grains(GROUP_GRAINS)}) AS g "
        f"WHERE NOT {ref}.is_test AND {ref}.fingerprint IS NOT NULL "
        f"AND {stamp} IS NOT NULL "
        "ON CONFLICT (grain, bucket, fingerprint) DO UPDATE SET n = n + excluded.n;",
    ]
    if sign < 0:
        for table, column, grains in (("error_counts", received, MATRIX_GRAINS),
                                      ("error_dim_counts", received, DIM_GRAINS),
                                      ("error_group_counts", stamp, GROUP_GRAINS)):
            keys = " OR ".join(f"(grain = {g} AND bucket = {column} / {g})" for g in grains)
            out.append(f"DELETE FROM {table} WHERE n = 0 AND ({keys});")
    return out


# SQLite row triggers cost ~14 upserts a row (a sixth of the writer's speed), so the batch
# writer counts its own batches in Python instead, in the batch's transaction: it writes a
# row here first, which the INSERT trigger sees and stands aside for, and deletes it before
# the commit. No other connection can write meanwhile (SQLite has one writer at a time) nor
# ever sees the row, so every other insert (a restore, a row by hand) is still counted by
# the trigger.
SQLITE_PAUSE_DDL = "CREATE TABLE IF NOT EXISTS error_counts_paused (id INTEGER PRIMARY KEY)"


def sqlite_trigger_ddl() -> list[str]:
    """Row triggers (SQLite has no statement triggers): dropped and made again at every
    start, inside the caller's BEGIN IMMEDIATE, so a changed definition takes effect."""
    body = {
        "insert": _sqlite_apply("NEW", 1),
        "delete": _sqlite_apply("OLD", -1),
        "update": _sqlite_apply("OLD", -1) + _sqlite_apply("NEW", 1),
    }
    out = [SQLITE_PAUSE_DDL]
    for op, statements in body.items():
        when = " WHEN NOT EXISTS (SELECT 1 FROM error_counts_paused)" if op == "insert" else ""
        out.append(f"DROP TRIGGER IF EXISTS error_counts_{op}")
        out.append(f"CREATE TRIGGER error_counts_{op} AFTER {op.upper()} ON error_logs "
                   f"FOR EACH ROW{when} BEGIN " + " ".join(statements) + " END")
    return out


def _epoch_seconds(moment: datetime) -> int:
    """Whole seconds since the epoch, as SQLite's strftime('%s') reads the stored text."""
    if moment.tzinfo is None:
        moment = as_utc(moment)
    # timestamp() of an aware time, floored: whole seconds as the text holds them.
    return int(moment.timestamp() // 1)


def sqlite_count_batch(cur: Any, events: Sequence[ErrorEvent]) -> None:
    """Add the batch writer's new rows to the count tables (SQLite, in its transaction):
    the same keys as the triggers, aggregated here, a few upserts a batch."""
    matrix: Counter[tuple[int, int, str, str]] = Counter()
    dims: Counter[tuple[int, int, str, str]] = Counter()
    group: Counter[tuple[int, int, str]] = Counter()
    # Count at the finest grain first, then fold into the coarser ones: a batch has far
    # fewer distinct keys than rows.
    m0, d0, g0 = MATRIX_GRAINS[0], DIM_GRAINS[0], GROUP_GRAINS[0]
    fine_m: Counter[tuple[int, str, str]] = Counter()
    fine_d: Counter[tuple[int, str | None, str | None, str | None]] = Counter()
    fine_g: Counter[tuple[int, str]] = Counter()
    for e in events:
        if e.is_test:
            continue
        received = _epoch_seconds(e.received_at)
        fine_m[(received // m0, e.severity, e.category)] += 1
        if e.severity in SHOWN:
            fine_d[(received // d0, e.symbol, e.component, e.error_type)] += 1
        if e.fingerprint is not None:
            fine_g[(_epoch_seconds(e.timestamp) // g0, e.fingerprint)] += 1
    for (b, severity, category), n in fine_m.items():
        for grain in MATRIX_GRAINS:
            matrix[(grain, b * m0 // grain, severity, category)] += n
    for (b, *values), n in fine_d.items():
        for grain in DIM_GRAINS:
            bucket = b * d0 // grain
            for dim, value in zip(DIMENSIONS, values, strict=True):
                dims[(grain, bucket, dim, value or "")] += n
    for (b, fingerprint), n in fine_g.items():
        for grain in GROUP_GRAINS:
            group[(grain, b * g0 // grain, fingerprint)] += n
    for table, keys, counts in (("error_counts", "grain, bucket, severity, category", matrix),
                                ("error_dim_counts", "grain, bucket, dim, value", dims),
                                ("error_group_counts", "grain, bucket, fingerprint", group)):
        if counts:
            marks = ", ".join("?" * (keys.count(",") + 2))
            cur.executemany(
                f"INSERT INTO {table} ({keys}, n) VALUES ({marks}) "
                f"ON CONFLICT ({keys}) DO UPDATE SET n = n + excluded.n",
                [(*key, n) for key, n in sorted(counts.items())])


# -- backfill -----------------------------------------------------------------------------
def backfill_sql(dialect: str) -> list[str]:
    """Fill empty count tables from error_logs: the finest grain from the rows, the coarser
    ones from it (a second pass over the rows per grain would cost minutes at 10M)."""
    if dialect == "postgresql":
        def epoch(column: str, grain: int) -> str:
            return f"floor(date_part('epoch', {column}) / {grain})::bigint"
    else:
        def epoch(column: str, grain: int) -> str:
            return f"CAST(strftime('%s', {column}) AS INTEGER) / {grain}"
    not_test = "NOT is_test"
    # As the SQLite triggers: a time SQLite cannot read is left out.
    readable = "" if dialect == "postgresql" else " AND strftime('%s', received_at) IS NOT NULL"
    stamp_readable = "" if dialect == "postgresql" else \
        " AND strftime('%s', \"timestamp\") IS NOT NULL"
    m0, d0, g0 = MATRIX_GRAINS[0], DIM_GRAINS[0], GROUP_GRAINS[0]
    out = [
        "INSERT INTO error_counts (grain, bucket, severity, category, n) "
        f"SELECT {m0}, {epoch('received_at', m0)}, severity, category, count(*) "
        f"FROM error_logs WHERE {not_test}{readable} GROUP BY 2, 3, 4",
    ]
    for dim in DIMENSIONS:
        out.append(
            "INSERT INTO error_dim_counts (grain, bucket, dim, value, n) "
            f"SELECT {d0}, {epoch('received_at', d0)}, '{dim}', coalesce({dim}, ''), count(*) "
            f"FROM error_logs WHERE {not_test}{readable} AND severity IN {_SHOWN_SQL} "
            "GROUP BY 2, 4")
    out.append(
        "INSERT INTO error_group_counts (grain, bucket, fingerprint, n) "
        f"SELECT {g0}, {epoch(chr(34) + 'timestamp' + chr(34), g0)}, fingerprint, count(*) "
        f"FROM error_logs WHERE {not_test}{stamp_readable} AND fingerprint IS NOT NULL "
        "GROUP BY 2, 3")
    for table, keys, grains in (("error_counts", "severity, category", MATRIX_GRAINS),
                                ("error_dim_counts", "dim, value", DIM_GRAINS),
                                ("error_group_counts", "fingerprint", GROUP_GRAINS)):
        for grain in grains[1:]:
            ratio = grain // grains[0]
            # bucket // ratio: integer division on both stores (buckets are never negative
            # here; PostgreSQL's bigint / bigint truncates like SQLite's).
            out.append(
                f"INSERT INTO {table} (grain, bucket, {keys}, n) "
                f"SELECT {grain}, bucket / {ratio}, {keys}, sum(n) FROM {table} "
                f"WHERE grain = {grains[0]} GROUP BY 2, {keys}")
    # Statistics now, not when autovacuum comes by: the reads' plans need them at once.
    out.append("ANALYZE error_counts, error_dim_counts, error_group_counts"
               if dialect == "postgresql" else "ANALYZE")
    return out


def drop_count_tables(conn: Any) -> None:
    """Drop the count tables and their triggers (an SQLAlchemy Connection, in its
    transaction): the next `create_schema` makes them again and fills them from error_logs.
    The way to rebuild the counts by hand, and how tests make a store of an older version."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("DROP TABLE IF EXISTS error_counts, error_dim_counts, "
                             "error_group_counts")
        # CASCADE: the triggers on error_logs and on each partition go with the functions.
        conn.exec_driver_sql("DROP FUNCTION IF EXISTS error_counts_on_insert, "
                             "error_counts_on_delete, error_counts_on_update CASCADE")
        return
    for op in ("insert", "delete", "update"):
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS error_counts_{op}")
    for table in ("error_counts", "error_dim_counts", "error_group_counts"):
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
