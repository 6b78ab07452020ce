"""What the count reads cost at 1M and at 10M rows: the cost should follow the buckets of a
window, not the rows in it.

    python bench/read_counts.py [--rows 1000000,10000000] [--days 30] [--repeat 60]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres] [--keep]

For each size, a fresh PostgreSQL database (`tsem_bench_counts_<rows>`) made by
create_schema (partitioned by day, the daily partitions made first as the retention job
makes them) is loaded with rows spread evenly over the last --days: one INSERT ... SELECT
over generate_series per day with the count tables dropped, then the count tables made from
the rows by create_schema (the backfill an upgrade runs; 3x quicker than the statement
triggers for a bulk load), received_at = timestamp, and the counts checked against
COUNT(*). Then the API routes are
called through Flask's test client on the real blueprint (routing, SQL, JSON): statistics
for 24 h and 720 h, health, trends for 168 h and 720 h, recent. Reference figures measured
in the same run: a `SELECT 1` round trip and a one-row INSERT (through the triggers).

Prints p50/p95 per route per size, the 10M/1M ratio of p95, and each p95 over the
reference. Budget: each p95 < 50 ms, the largest size within 1.5x of the smallest.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask

from dashboard.api import create_api_blueprint
from dashboard.errors import install_error_handlers
from queries.count_tables import drop_count_tables, pg_add_table_rows
from queries.dialects import db_time
from queries.engine import make_engine
from queries.schema import create_schema
from retention.partitions import ensure_days

BUDGET_MS = 50.0
RATIO = 1.5

# (category, component, operation, error_type, message): the twelve kinds of error loaded.
SCENARIOS = (
    ("pattern", "PatternDetector", "detect_doji", "PatternDetectionError", "Doji failed"),
    ("indicator", "IndicatorCalculator", "calculate_rsi", "IndicatorError", "RSI short"),
    ("database", "DatabaseWriter", "write_ohlcv", "OperationalError", "timeout"),
    ("network", "HistoricalLoader", "load_bars", "PolygonAPIError", "429 from Polygon"),
    ("validation", "BarValidator", "validate", "DataValidationError", "high < low"),
    ("performance", "BatchRunner", "run", "SlowOperationWarning", "import slow"),
    ("configuration", "ConfigLoader", "load", "ConfigurationError", "key not set"),
    ("security", "ApiGateway", "authenticate", "AuthenticationError", "bad token"),
    ("integration", "AppBridge", "forward", "IntegrationError", "no ack"),
    ("websocket", "StreamClient", "receive", "WebSocketError", "closed 1006"),
    ("redis", "EventPublisher", "publish", "RedisError", "connection reset"),
    ("unknown", "Worker", "run", "RuntimeError", "unexpected"),
)

# One day of rows: the scenarios in turn (row g is SCENARIOS[g * 7 % 12]), 500 symbols,
# 1% critical, 39% error, 60% warning.
LOAD_DAY_SQL = """
INSERT INTO error_logs (error_id, error_type, error_message, severity, category, source,
                        component, operation, symbol, context, "timestamp", received_at,
                        fingerprint)
SELECT 'bench_' || %(day)s || '_' || g, t.error_type, t.message || ' for SYM' || (g %% 500),
       CASE WHEN (g::bigint * 7919) %% 100 < 1 THEN 'critical'
            WHEN (g::bigint * 7919) %% 100 < 40 THEN 'error' ELSE 'warning' END,
       t.category, 'TickStockPL', t.component, t.operation, 'SYM' || (g %% 500), '{}'::jsonb,
       ts, ts, md5(t.error_type || (g %% 40))
FROM generate_series(1, %(rows)s) AS g
CROSS JOIN LATERAL (SELECT %(start)s::timestamptz
                    + (g::float8 / %(rows)s) * interval '1 day' AS ts) AS at
JOIN (VALUES
{scenarios}
) AS t(k, category, component, operation, error_type, message) ON t.k = (g * 7) %% 12
WHERE at.ts < %(end)s
""".replace("{scenarios}", ",\n".join(
    f"  ({k}, " + ", ".join(f"'{v}'" for v in row) + ")" for k, row in enumerate(SCENARIOS)))

ROUTES = (
    ("statistics?hours=24", "/api/errors/statistics?hours=24"),
    ("statistics?hours=720", "/api/errors/statistics?hours=720"),
    ("health", "/api/errors/health"),
    ("trends?hours=168", "/api/errors/trends?hours=168"),
    ("trends?hours=720", "/api/errors/trends?hours=720"),
    ("recent?limit=100", "/api/errors/recent?limit=100"),
)


@dataclass
class _Listening:
    subscribed: bool = True
    store_ok: bool = True
    not_listening_since: datetime | None = None
    last_message_at: datetime | None = None
    blind_reason: str | None = None


class _BenchLive:
    """The live view the API asks for health: a monitor that is listening (the bench
    measures the store's reads, not the ingest)."""

    ring: Any = None

    def listening_state(self) -> _Listening:
        return _Listening(last_message_at=datetime.now(UTC))

    def monitor_summary(self) -> dict[str, Any]:
        return {}

    def status(self) -> Any:
        raise NotImplementedError


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def sample(action: Callable[[], Any], repeat: int) -> tuple[float, float]:
    action()  # the first call warms the plan cache and the pool
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), percentile(times, 0.95)


def db_name(rows: int) -> str:
    return f"tsem_bench_counts_{rows}"


def db_url(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop(admin_url: str, name: str) -> None:
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def load(admin_url: str, rows: int, days: int, name: str | None = None) -> tuple[str, float]:
    """Make database `name` (default db_name(rows)) afresh and load it; (URL, seconds until
    it was ready to measure: rows, VACUUM ANALYZE and count tables)."""
    name = name or db_name(rows)
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    url = db_url(admin_url, name)
    engine = make_engine(url)
    create_schema(engine)
    end = datetime.now(UTC) - timedelta(minutes=1)
    first = end - timedelta(days=days)
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SET TimeZone = 'UTC'")
        conn.commit()
        ensure_days(conn, [first.date() + timedelta(days=i) for i in range(days + 2)])
        began = time.perf_counter()
        # The rows go in without the count triggers, and create_schema then makes the count
        # tables afresh from them (its backfill: one aggregate per table, the way an upgrade
        # fills them): through the statement triggers a day of rows cost about 3x as much.
        with engine.begin() as sa_conn:
            drop_count_tables(sa_conn)
        per_day = rows // days
        with conn.cursor() as cur:
            for day in range(days):
                cur.execute(LOAD_DAY_SQL, {"day": day, "rows": per_day, "end": end,
                                           "start": first + timedelta(days=day)})
                conn.commit()
                if (day + 1) % 10 == 0:
                    print(f"  loading: day {day + 1}/{days} "
                          f"({time.perf_counter() - began:.0f} s)", flush=True)
        inserted = time.perf_counter() - began
        conn.autocommit = True
        with conn.cursor() as cur:
            # Before the backfill: its scans would otherwise set every row's hint bits, the
            # VACUUM's work, at a higher price.
            cur.execute("VACUUM ANALYZE error_logs")
        vacuumed = time.perf_counter() - began
        create_schema(engine)
        loaded = time.perf_counter() - began
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM error_logs")
            stored = cur.fetchone()[0]
            cur.execute("SELECT sum(n) FROM error_counts WHERE grain = 86400")
            counted = cur.fetchone()[0]
        print(f"  {stored:,} rows over {days} days ready in {loaded:.0f} s: rows inserted in "
              f"{inserted:.0f} s, VACUUM ANALYZE {vacuumed - inserted:.0f} s, count tables "
              f"made from the rows in {loaded - vacuumed:.0f} s; they hold {counted:,}")
        if stored != counted:
            raise SystemExit(f"the count tables hold {counted}, error_logs {stored}")
    finally:
        conn.close()
        engine.dispose()
    return url, loaded


def time_routes(client: Any, routes: Sequence[tuple[str, str]],
                repeat: int) -> dict[str, tuple[float, float]]:
    """(p50, p95) ms of each (label, path) GET through a Flask test client; anything but a
    200 stops the bench with what the route said."""
    return {label: sample(lambda path=path: get_ok(client, path), repeat)
            for label, path in routes}


def get_ok(client: Any, path: str) -> Any:
    """GET through a Flask test client; anything but a 200 stops the bench with what the
    route said."""
    response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code} {response.data[:300]!r}")
    return response


def measure(url: str, repeat: int) -> dict[str, tuple[float, float]]:
    engine = make_engine(url)
    server = Flask("bench")
    install_error_handlers(server)
    server.register_blueprint(create_api_blueprint(engine, _BenchLive()))
    figures = time_routes(server.test_client(), ROUTES, repeat)
    print(f"  counting one day out (as DETACH does): {detach_one_day(engine)}")
    figures.update(references(engine, repeat))
    engine.dispose()
    return figures


def references(engine: Any, repeat: int) -> dict[str, tuple[float, float]]:
    """(p50, p95) of a `SELECT 1` round trip and of a one-row INSERT + commit through the
    count path (PostgreSQL's statement triggers, SQLite's row triggers)."""
    dialect = engine.dialect.name
    columns = ("error_id, error_message, severity, category, context, \"timestamp\", "
               "received_at")
    if dialect == "postgresql":
        statement = (f"INSERT INTO error_logs ({columns}) "
                     "VALUES (%s, 'x', 'warning', 'unknown', '{}', %s, %s)")
    else:  # SQLite fills no id of its own (the batch writer makes it, as here)
        statement = (f"INSERT INTO error_logs (id, {columns}) "
                     "VALUES (?, ?, 'x', 'warning', 'unknown', '{}', ?, ?)")
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()

        def select_one() -> None:
            cur.execute("SELECT 1")
            cur.fetchall()

        counter = iter(range(10**9))

        def insert_one() -> None:
            now = db_time(datetime.now(UTC), dialect)
            key = f"ref_{time.time_ns()}_{next(counter)}"
            values = (key, now, now) if dialect == "postgresql" else (uuid4().hex, key, now, now)
            cur.execute(statement, values)
            raw.commit()

        figures = {"ref: SELECT 1": sample(select_one, repeat),
                   "ref: one-row INSERT + commit": sample(insert_one, repeat)}
        cur.close()
    finally:
        raw.close()
    return figures


def detach_one_day(engine: Any) -> str:
    """What retention's DETACH of one day adds (the ingest waits meanwhile): counting the
    day's rows out, in a transaction rolled back."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'error_logs'::regclass AND c.relname <> "
                    "'error_logs_default' ORDER BY c.relname LIMIT 1 OFFSET 2")
        day = cur.fetchone()[0]
        cur.execute(f'SELECT count(*) FROM "{day}"')
        day_rows = cur.fetchone()[0]
        began = time.perf_counter()
        for statement in pg_add_table_rows(day, -1):
            cur.execute(statement)
        elapsed = (time.perf_counter() - began) * 1000
        raw.rollback()
        cur.close()
    finally:
        raw.close()
    return f"{day}, {day_rows:,} rows, {elapsed:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,10000000")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=60)
    parser.add_argument("--pg-admin-url",
                        default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--reuse", action="store_true",
                        help="measure databases kept by an earlier --keep run (no loading)")
    args = parser.parse_args()
    sizes = [int(x) for x in args.rows.split(",")]
    results: dict[int, dict[str, tuple[float, float]]] = {}
    for rows in sizes:
        print(f"{rows:,} rows:")
        if args.reuse:
            url = db_url(args.pg_admin_url, db_name(rows))
        else:
            url, _ = load(args.pg_admin_url, rows, args.days)
        results[rows] = measure(url, args.repeat)
        for label, (p50, p95) in results[rows].items():  # at once: a later size may fail
            print(f"    {label:<30} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms", flush=True)
        if not args.keep and not args.reuse:
            drop(args.pg_admin_url, db_name(rows))
    small, large = sizes[0], sizes[-1]
    head = f"{'route':<30}" + "".join(f"{f'{n / 1e6:g}M p50':>10}{f'{n / 1e6:g}M p95':>10}"
                                      for n in sizes)
    print("\n" + head + f"{'p95 ratio':>11}{'p95/SELECT 1':>14}  verdict")
    failed = 0
    for label in results[small]:
        line = f"{label:<30}"
        for n in sizes:
            p50, p95 = results[n][label]
            line += f"{p50:10.2f}{p95:10.2f}"
        ratio = results[large][label][1] / max(results[small][label][1], 1e-9)
        over_ref = results[large][label][1] / results[large]["ref: SELECT 1"][1]
        verdict = ""
        if not label.startswith("ref:"):
            ok = results[large][label][1] < BUDGET_MS and all(
                results[n][label][1] < BUDGET_MS for n in sizes) and ratio <= RATIO
            verdict = "ok" if ok else "OVER"
            failed += not ok
        print(line + f"{ratio:10.2f}x{over_ref:13.1f}x  {verdict}")
    print(f"\n(ms; budget: p95 < {BUDGET_MS:.0f} ms and {large / 1e6:g}M within {RATIO}x of "
          f"{small / 1e6:g}M)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
