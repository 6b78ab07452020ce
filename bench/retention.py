"""Retention at scale: the job removes 10 expired days of 40 while the ingest keeps writing.

    python bench/retention.py [--rows 1000000] [--days 40] [--rate 2000] [--layout partitioned]
        [--archive] [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/0]

On a throwaway PostgreSQL database (dropped at the end): --rows rows spread evenly over the
last --days days (INSERT ... SELECT generate_series, with their error_ids), in daily
partitions as a monitor that has run that long has them (--layout plain: the unpartitioned
table of older versions, cleaned by batched deletes). Then the app's IngestService reads a
private channel on which another process publishes --rate msg/s, and after a warm-up the
retention job (RETENTION_DAYS=30) runs in this process, next to the ingest, as in the app.

Printed: the job's duration and what it removed, its longest DDL transaction (the longest the
ingest could have waited on a table lock), messages published/stored/lost, and the delay from
PUBLISH to the commit of the row (max and p99, overall and while the job ran).
Targets: job < 5 s, nothing lost, max delay <= 1 s. Exit status 0 when every target is met.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import shutil
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg2
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.service import IngestService
from queries.engine import make_engine
from queries.schema import create_schema
from queries.store import BatchResult
from retention.partitions import ensure_days
from retention.policy import RetentionPolicy
from retention.run import Retention
from settings import Settings

TARGET_JOB_SECONDS = 5.0
TARGET_MAX_DELAY = 1.0

_LOAD = """
INSERT INTO error_logs (error_id, error_type, error_message, error_traceback, severity,
                        category, source, component, operation, symbol, context, fingerprint,
                        "timestamp")
SELECT 'bench-' || g, 'PatternDetectionError',
       'Pattern detection failed for Doji: Insufficient data (' || (g %% 977) || ')',
       'Traceback (most recent call last):\n  File "detector.py", line ' || (g %% 400),
       (ARRAY['warning', 'error', 'error', 'critical'])[1 + g %% 4],
       (ARRAY['pattern', 'indicator', 'database', 'network', 'redis'])[1 + g %% 5],
       'TickStockPL', 'PatternDetector', 'detect_doji',
       (ARRAY['AAPL', 'MSFT', 'NVDA', 'TSLA', 'AMZN', 'GOOG'])[1 + g %% 6],
       jsonb_build_object('symbol', 'AAPL', 'timeframe', 'daily', 'n', g),
       md5((g %% 300)::text),
       %(now)s - (g * %(span)s::interval / %(rows)s)
FROM generate_series(1, %(rows)s) AS g
"""


def publish(url: str, channel: str, rate: int, started: Any, stop: Any, count: Any) -> None:
    """Another process: PUBLISH `rate` msg/s until `stop`, each carrying its send time."""
    client = redis.Redis.from_url(url)
    per_tick, tick = max(1, rate // 100), 0.01
    sent = 0
    begin = time.time()
    started.set()
    while not stop.is_set():
        due = begin + (sent / rate)
        pause = due - time.time()
        if pause > 0:
            time.sleep(min(pause, tick))
            continue
        pipe = client.pipeline(transaction=False)
        for _ in range(per_tick):
            pipe.publish(channel, orjson.dumps({
                "error_id": f"live-{sent}", "severity": "error", "category": "pattern",
                "message": "live error during retention", "component": "PatternDetector",
                "context": {"sent": time.time(), "symbol": "AAPL"}}))
            sent += 1
        pipe.execute()
        count.value = sent
    client.close()


class Delays:
    """PUBLISH -> commit delay of every stored message, from the writer's side."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (commit time, delay)
        self.lock = threading.Lock()

    def on_batch(self, result: BatchResult) -> None:
        """The writer's batch listener: called once each batch is committed."""
        now = time.time()
        with self.lock:
            for event in result.new_events:
                sent = event.context.get("sent")
                if isinstance(sent, float):
                    self.samples.append((now, now - sent))

    def stats(self, start: float = 0.0, end: float = float("inf")) -> tuple[float, float, int]:
        with self.lock:
            delays = sorted(d for t, d in self.samples if start <= t <= end)
        if not delays:
            return 0.0, 0.0, 0
        p99 = delays[max(0, int(len(delays) * 0.99) - 1)]
        return delays[-1], p99, len(delays)


def _load(url: str, rows: int, days: int, layout: str, now: datetime) -> float:
    engine = make_engine(url)
    started = time.perf_counter()
    if layout == "plain":
        with engine.begin() as conn:  # the schema of older versions: one unpartitioned table
            conn.exec_driver_sql(_PLAIN_DDL)
    create_schema(engine)
    if layout == "partitioned":
        conn = engine.raw_connection()
        conn.cursor().execute("SET TimeZone = 'UTC'")
        today = now.date()
        ensure_days(conn, [today - timedelta(days=n) for n in range(days + 1, -8, -1)])
        conn.close()
    raw = psycopg2.connect(url)
    with raw, raw.cursor() as cur:
        cur.execute(_LOAD, {"now": now, "span": f"{days} days", "rows": rows})
        cur.execute('INSERT INTO error_ids (error_id, "timestamp") '
                    'SELECT error_id, "timestamp" FROM error_logs')
    raw.autocommit = True
    with raw.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    raw.close()
    engine.dispose()
    return time.perf_counter() - started


_PLAIN_DDL = """
CREATE TABLE error_logs (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(), error_id VARCHAR(255) NOT NULL UNIQUE,
    error_type VARCHAR(255), error_message TEXT NOT NULL DEFAULT '', error_traceback TEXT,
    severity VARCHAR(16) NOT NULL, category VARCHAR(32) NOT NULL,
    source VARCHAR(100) NOT NULL DEFAULT 'TickStockPL', component VARCHAR(255),
    operation VARCHAR(255), symbol VARCHAR(64), context JSONB NOT NULL,
    fingerprint VARCHAR(40), "timestamp" TIMESTAMP WITH TIME ZONE NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now());
CREATE INDEX idx_error_logs_timestamp ON error_logs ("timestamp");
CREATE INDEX idx_error_logs_severity ON error_logs (severity);
CREATE INDEX idx_error_logs_category ON error_logs (category);
CREATE INDEX idx_error_logs_symbol ON error_logs (symbol);
CREATE INDEX idx_error_logs_error_type ON error_logs (error_type);
CREATE INDEX idx_error_logs_fingerprint ON error_logs (fingerprint, "timestamp");
CREATE INDEX idx_error_logs_recent_serious ON error_logs ("timestamp")
    WHERE severity IN ('critical', 'error');
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--tail", type=float, default=3.0)
    parser.add_argument("--layout", choices=("partitioned", "plain"), default="partitioned")
    parser.add_argument("--archive", action="store_true", help="archive before deleting")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    name = f"tsem_bench_retention_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(args.pg_admin_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    url = f"{args.pg_admin_url.rsplit('/', 1)[0]}/{name}"
    folder = Path(tempfile.mkdtemp(prefix="tsem-bench-retention-"))
    channel = f"bench:{uuid.uuid4().hex}:errors"
    now = datetime.now(UTC)
    try:
        print(f"loading {args.rows:,} rows over {args.days} days ({args.layout}) ...", flush=True)
        load_seconds = _load(url, args.rows, args.days, args.layout, now)
        print(f"  loaded in {load_seconds:.1f} s")

        settings = Settings(redis_url=args.redis_url, error_channel=channel, database_url=url,
                            spool_dir=str(folder / "spool"), retention_days=30,
                            retention_archive_dir=str(folder / "archive") if args.archive else "")
        engine = make_engine(url)
        ingest = IngestService(settings, engine)
        delays = Delays()
        ingest.writer.batch_listeners.append(delays.on_batch)
        ingest.start()
        deadline = time.monotonic() + 10
        while not ingest.subscriber.subscribed and time.monotonic() < deadline:
            time.sleep(0.05)

        retention = Retention(engine, RetentionPolicy.from_settings(settings))
        plan = retention.plan()
        expired = sum(plan.days["error_logs"].values())
        context = multiprocessing.get_context("spawn")
        started, stop, count = context.Event(), context.Event(), context.Value("q", 0)
        publisher = context.Process(target=publish, args=(
            args.redis_url, channel, args.rate, started, stop, count), daemon=True)
        publisher.start()
        started.wait(30)
        time.sleep(args.warmup)
        job_start = time.time()
        report = retention.run()
        job_end = time.time()
        time.sleep(args.tail)
        stop.set()
        publisher.join(10)
        published = count.value
        time.sleep(1.0)
        received = ingest.counters()["received"]
        deadline = time.monotonic() + 60
        while ingest.counters()["stored"] + ingest.counters()["duplicate"] < received \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        ingest.stop()
        counters = ingest.counters()
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(DISTINCT error_id) FROM error_logs "
                        "WHERE error_id LIKE 'live-%'")
            stored_live = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM error_logs")
            left = cur.fetchone()[0]
        engine.dispose()
        lost = published - stored_live
        max_all, p99_all, n_all = delays.stats()
        max_job, p99_job, n_job = delays.stats(job_start, job_end + 0.5)
        rate = n_all / max(1e-9, (delays.samples[-1][0] - delays.samples[0][0])) \
            if delays.samples else 0.0

        print(f"\nretention job ({args.layout}{', archived' if args.archive else ''}):")
        print(f"  duration               {report.duration_seconds:8.2f} s   (target < "
              f"{TARGET_JOB_SECONDS:.0f} s)  ok={report.ok} {report.error or ''}")
        print(f"  rows removed           {report.removed.get('error_logs', 0):>10,}   "
              f"(expected {expired:,}; error_ids pruned {report.removed.get('error_ids', 0):,})")
        print(f"  partitions dropped     {len(report.partitions_dropped):>10}   trimmed "
              f"{len(report.partitions_trimmed)}, made {len(report.partitions_created)}")
        print(f"  longest DDL (lock)     {report.longest_lock_seconds * 1000:8.1f} ms")
        print("  phases                 " + ", ".join(
            f"{step} {seconds:.2f} s" for step, seconds in report.phases.items()))
        if args.archive:
            size = sum(p.stat().st_size for p in (folder / "archive").glob("*.gz"))
            print(f"  archive                {len(report.archive_files):>10} files, "
                  f"{size / 1e6:.1f} MB")
        print(f"  rows left              {left:>10,}")
        for note in report.notes:  # e.g. a day deleted in batches because its lock stayed busy
            print(f"  note                   {note}")
        print(f"ingest at {args.rate:,} msg/s (measured {rate:,.0f} msg/s stored):")
        print(f"  published / stored     {published:>10,} / {stored_live:,}   lost {lost}  "
              f"(received {counters['received']:,}, dropped {counters['dropped']}, "
              f"refused {counters['refused']})")
        print(f"  delay publish->commit  max {max_all * 1000:7.1f} ms, p99 "
              f"{p99_all * 1000:6.1f} ms over {n_all:,} messages")
        print(f"  ... while the job ran  max {max_job * 1000:7.1f} ms, p99 "
              f"{p99_job * 1000:6.1f} ms over {n_job:,} messages")
        max_before, p99_before, _ = delays.stats(0.0, job_start)
        max_after, p99_after, _ = delays.stats(job_end + 0.5)
        print(f"  ... before / after it  max {max_before * 1000:7.1f} / "
              f"{max_after * 1000:.1f} ms, p99 {p99_before * 1000:.1f} / "
              f"{p99_after * 1000:.1f} ms")
        met = (report.ok and report.duration_seconds < TARGET_JOB_SECONDS and lost == 0
               and counters["refused"] == 0 and max_all <= TARGET_MAX_DELAY)
        print("targets met" if met else "TARGETS MISSED")
        return 0 if met else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


if __name__ == "__main__":
    sys.exit(main())
