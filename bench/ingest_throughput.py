"""Ingest throughput, end to end: PUBLISH on a channel -> rows committed in PostgreSQL.

    python bench/ingest_throughput.py [--count 100000] [--flood 50000] [--baseline-count 5000]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/0] [--timeline] [--no-grouping]

Three cases in one run, on throwaway PostgreSQL databases and channels (the databases are
dropped at the end), each app case with a fresh IngestService built from `settings.Settings`:

  app       --count realistic messages (severities, categories, symbols, components, both
            message shapes, 1% re-sent copies, 0.1% malformed) into the app's ingest:
            reader process -> spool -> pipeline -> batch writer (COPY) -> PostgreSQL;
  baseline  --baseline-count of the same messages into a naive subscriber loop: normalise,
            one INSERT ... ON CONFLICT DO NOTHING and one commit per message (psycopg2);
  flood     --flood messages of about 1.9 KB (95 MB in all) into the app's ingest: far more
            than Redis's 32 MB pub/sub output-buffer limit, so a reader that falls behind is
            cut by Redis and the messages in its buffer are gone.

One publisher process (not this one: it never holds our GIL) publishes as fast as it can, in
pipelines of PUBLISH commands. msg/s = messages accounted for (stored, duplicate, dead letter,
log-only) per second from the first PUBLISH to the commit of the last row; the stored count is
checked with SELECT count(*). lost = published - accounted for. STORE_MIN_SEVERITY is `debug`
by default, so every valid message is written. Each app case also prints the CPU each part
used per message (reader process, pipeline and writer threads, publisher, redis-server, the bench
database's PostgreSQL backends) and, with --timeline, its counters every 0.1 s.

Targets: app >= 20,000 msg/s, >= 10x the baseline, nothing lost, no reconnect in the flood.
Exit status 0 when every target is met.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg2
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.normalise import Limits, normalise
from ingest.service import IngestService
from queries.engine import make_engine
from queries.records import SEVERITY_RANK, Rejection
from queries.schema import INSERT_COLUMNS, create_schema
from settings import Settings

TARGET_RATE = 20_000
TARGET_RATIO = 10.0

# -- the messages ---------------------------------------------------------------------------

SEVERITY_WEIGHTS = {"critical": 3, "error": 55, "warning": 30, "info": 9, "debug": 3}
# (category, component, operation, error type, message with {placeholders})
SCENARIOS = (
    ("pattern", "PatternDetector", "detect_doji", "PatternDetectionError",
     "Pattern detection failed for {sym}: need {n} bars, got {m}"),
    ("pattern", "PatternDetector", "detect_engulfing", "PatternDetectionError",
     "Engulfing check on {sym} skipped: gap of {n} minutes in the series"),
    ("indicator", "IndicatorCalculator", "calculate_rsi", "IndicatorCalculationError",
     "RSI({n}) for {sym} needs {n} periods, got {m}"),
    ("indicator", "IndicatorCalculator", "calculate_macd", "ValueError",
     "MACD signal line is NaN for {sym} at bar {m}"),
    ("database", "DatabaseWriter", "write_ohlcv", "OperationalError",
     "connection to server at 10.0.0.{n} failed: timeout after {m} ms"),
    ("database", "DatabaseWriter", "upsert_symbols", "IntegrityError",
     "duplicate key value violates unique constraint for {sym}"),
    ("network", "HistoricalLoader", "load_minute_bars", "PolygonAPIError",
     "429 Too Many Requests from Polygon.io for {sym} (retry {n} of 5)"),
    ("validation", "BarValidator", "validate", "DataValidationError",
     "high < low for {sym} bar at 09:{n:02d}"),
    ("performance", "BatchRunner", "run", "SlowOperationWarning",
     "daily import took {m} s, budget 300 s"),
    ("configuration", "ConfigLoader", "load", "ConfigurationError",
     "POLYGON_API_KEY is not set"),
    ("security", "ApiGateway", "authenticate", "AuthenticationError",
     "invalid API token presented from 192.168.{n}.{m}"),
    ("integration", "TickStockAppBridge", "forward", "IntegrationError",
     "TickStockApp did not acknowledge event {m} within {n} s"),
    ("websocket", "StreamClient", "receive", "WebSocketError",
     "stream closed by peer: 1006 after {m} messages"),
    ("redis", "EventPublisher", "publish", "RedisError",
     "Redis publish failed: connection reset ({n} queued)"),
    ("unknown", "Worker", "run", "RuntimeError", "unexpected failure in job {m}"),
)
SYMBOLS = ("AAPL", "MSFT", "TSLA", "NVDA", "AMZN", "GOOGL", "META", "SPY", "QQQ", "AMD",
           "NFLX", "INTC", "ORCL", "CRM", "ADBE", "PYPL", "UBER", "SHOP", "SQ", "BABA",
           "JPM", "BAC", "WFC", "GS", "MS", "XOM", "CVX", "KO", "PEP", "WMT", "BRK.B", "IWM")
TIMEFRAMES = ("1min", "5min", "hourly", "daily")


@dataclass(frozen=True)
class MessageSpec:
    """What to publish; the same spec (and seed) gives the same bytes in any process."""

    count: int
    prefix: str
    seed: int = 7
    big: bool = False  # every message carries a long traceback (~1.9 KB a message)
    duplicate_every: int = 100  # every Nth message is a re-sent copy of an earlier one
    malformed_every: int = 1000  # every Nth message is not valid JSON (a dead letter)


@dataclass
class Expected:
    published: int = 0
    duplicates: int = 0
    malformed: int = 0
    by_severity: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITY_RANK, 0))
    total_bytes: int = 0


def _traceback(rng: random.Random, component: str, operation: str, error_type: str,
               frames: int) -> str:
    lines = ["Traceback (most recent call last):"]
    for depth in range(frames):
        function = operation if depth == frames - 1 else "step"
        lines.append(f'  File "/opt/tickstock/src/{component.lower()}/stage_{depth}.py", '
                     f"line {rng.randint(20, 900)}, in {function}")
        lines.append(f"    result = self._stage_{depth}(bars, window={rng.randint(5, 60)})")
    lines.append(f"{error_type}: see message")
    return "\n".join(lines)


def make_messages(spec: MessageSpec) -> tuple[list[bytes], Expected]:
    """The payloads, in publishing order, and what storing them should give."""
    rng = random.Random(spec.seed)
    severities = list(SEVERITY_WEIGHTS)
    weights = list(SEVERITY_WEIGHTS.values())
    base_time = datetime.now(UTC) - timedelta(minutes=5)
    payloads: list[bytes] = []
    expected = Expected()
    for i in range(spec.count):
        if spec.malformed_every and i % spec.malformed_every == spec.malformed_every - 1:
            payload = b'{"error_id": "' + f"{spec.prefix}-bad-{i}".encode() + b'", "severity": '
            expected.malformed += 1
        elif spec.duplicate_every and payloads and i % spec.duplicate_every == 0:
            payload = payloads[rng.randrange(len(payloads))]
            while not payload.endswith(b"}"):  # never re-send a malformed one
                payload = payloads[rng.randrange(len(payloads))]
            expected.duplicates += 1
        else:
            severity = rng.choices(severities, weights)[0]
            category, component, operation, error_type, text = rng.choice(SCENARIOS)
            symbol = rng.choice(SYMBOLS)
            message = text.format(sym=symbol, n=rng.randint(1, 59), m=rng.randint(1, 5000))
            moment = (base_time + timedelta(milliseconds=i)).isoformat()
            frames = 12 if spec.big else rng.choice((0, 0, 2, 4, 6))
            document: dict[str, Any] = {
                "error_id": f"{spec.prefix}-{i}-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}",
                "error_type": error_type,
                "error_message": message,
                "error_traceback": _traceback(rng, component, operation, error_type, frames)
                if frames else None,
                "severity": severity,
                "category": category,
                "context": {"component": component, "operation": operation, "symbol": symbol,
                            "timeframe": rng.choice(TIMEFRAMES),
                            "attempt": rng.randint(1, 5), "host": f"worker-{rng.randint(1, 8)}"},
                "timestamp": moment,
            }
            if i % 10 == 5:  # the event-envelope shape some producers use (CONTRACT.md §1)
                document = {"event": "error", "version": 1, "timestamp": moment,
                            "source": "TickStockPL", "payload": {
                                k: v for k, v in document.items() if k != "timestamp"}}
            payload = orjson.dumps(document)
            expected.by_severity[severity] += 1
        payloads.append(payload)
        expected.total_bytes += len(payload)
    expected.published = len(payloads)
    return payloads, expected


# -- the publisher (its own process) --------------------------------------------------------

def publisher_process(redis_url: str, channel: str, spec: MessageSpec, conn: Any,
                      chunk: int) -> None:
    """Make the payloads, say ready, wait for go, publish them all as fast as one client can."""
    payloads, expected = make_messages(spec)
    client = redis.Redis.from_url(redis_url)
    client.ping()
    conn.send(("ready", expected))
    conn.recv()
    receivers = 0
    first = time.time()
    for start in range(0, len(payloads), chunk):
        pipe = client.pipeline(transaction=False)
        for payload in payloads[start:start + chunk]:
            pipe.publish(channel, payload)
        receivers += sum(pipe.execute())
    last = time.time()
    client.close()
    conn.send(("done", first, last, receivers))


class Publisher:
    """Starts the publisher process and waits until its payloads are ready."""

    def __init__(self, redis_url: str, channel: str, spec: MessageSpec, chunk: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=publisher_process, args=(redis_url, channel, spec, child, chunk),
            name="bench-publisher", daemon=True)
        self._process.start()
        kind, self.expected = self._conn.recv()
        assert kind == "ready"
        self.first = self.last = 0.0
        self.receivers = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def go(self) -> None:
        self._conn.send("go")

    @property
    def done(self) -> bool:
        return bool(self.last) or self._conn.poll()

    def wait(self) -> None:
        if not self.last:
            _, self.first, self.last, self.receivers = self._conn.recv()
        self._process.join(10)


# -- Redis's view of the subscriber ---------------------------------------------------------

class OutputBufferSampler(threading.Thread):
    """The peak of Redis's output buffer for one client (CLIENT LIST omem), every 20 ms."""

    def __init__(self, redis_url: str, addr: str | None) -> None:
        super().__init__(name="bench-omem", daemon=True)
        self.client = redis.Redis.from_url(redis_url)
        self.addr = addr
        self.peak = 0
        self.found = False
        self._stop_event = threading.Event()

    def run(self) -> None:
        if self.addr is None:
            return
        while not self._stop_event.wait(0.02):
            for entry in self.client.client_list(_type="pubsub"):
                if entry.get("addr") == self.addr:
                    self.found = True
                    self.peak = max(self.peak, int(entry.get("omem", 0)))

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(2)
        self.client.close()


def subscriber_addr(service: IngestService) -> str | None:
    """host:port of the subscriber's socket as Redis names it, if it can be found."""
    return getattr(service.subscriber, "local_address", None)


# -- where the CPU goes (Linux /proc; figures are None elsewhere) --------------------------

_TICK = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def _proc_cpu(path: str) -> float | None:
    """utime + stime, in seconds, of the /proc `stat` file at `path`."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) * _TICK


def _machine_busy() -> tuple[float, float] | None:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


class CpuMeter:
    """CPU seconds used by each part during a case: the reader process, the main process's
    pipeline and writer threads (one GIL between them), the publisher, redis-server and the
    PostgreSQL backends of the bench database."""

    def __init__(self, service: IngestService, publisher_pid: int | None,
                 redis_client: redis.Redis) -> None:
        self.redis = redis_client
        self.threads = {"pipeline": service.pipeline, "writer": service.writer}
        self.reader_pid = getattr(service.subscriber, "pid", None)
        self.publisher_pid = publisher_pid
        self.start = self._sample()

    def _sample(self) -> dict[str, float | None]:
        sample: dict[str, float | None] = {
            "reader": _proc_cpu(f"/proc/{self.reader_pid}/stat") if self.reader_pid else None}
        sample.update({name: _proc_cpu(f"/proc/self/task/{thread.native_id}/stat")
                       for name, thread in self.threads.items()})
        sample["main process"] = _proc_cpu("/proc/self/stat")
        sample["publisher"] = (_proc_cpu(f"/proc/{self.publisher_pid}/stat")
                               if self.publisher_pid else None)
        info = self.redis.info("cpu")
        sample["redis-server"] = float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        busy = _machine_busy()
        sample["_busy"], sample["_total"] = busy if busy else (None, None)
        sample["_wall"] = time.monotonic()
        return sample

    def finish(self, db_url: str) -> dict[str, float]:
        """CPU seconds of each part since the start; `postgres` is the cumulative CPU of the
        bench database's backends (made for this case), `machine busy` a share of all CPUs."""
        end = self._sample()
        used: dict[str, float] = {}
        for name, value in end.items():
            before = self.start.get(name)
            if not name.startswith("_") and value is not None and before is not None:
                used[name] = value - before
        used["postgres"] = sum(filter(None, (_proc_cpu(f"/proc/{pid}/stat")
                                             for pid in _backend_pids(db_url))))
        if end["_busy"] is not None and self.start["_busy"] is not None:
            used["machine busy %"] = 100.0 * (end["_busy"] - self.start["_busy"]) / max(
                1.0, end["_total"] - self.start["_total"])
        used["wall"] = end["_wall"] - self.start["_wall"]
        return used


def _backend_pids(db_url: str) -> list[int]:
    name = db_url.rsplit("/", 1)[1]
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                        "AND pid <> pg_backend_pid()", (name,))
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


# -- databases ------------------------------------------------------------------------------

class Databases:
    """Throwaway PostgreSQL databases with unique names, dropped by `drop_all`."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.base = admin_url.rsplit("/", 1)[0]
        self.names: list[str] = []
        self.admin = psycopg2.connect(admin_url)
        self.admin.autocommit = True

    def create(self, label: str) -> str:
        name = f"tsem_bench_{label}_{uuid.uuid4().hex[:10]}"
        with self.admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        url = f"{self.base}/{name}"
        engine = make_engine(url)
        create_schema(engine)
        engine.dispose()
        return url

    def drop_all(self) -> None:
        with self.admin.cursor() as cur:
            for name in self.names:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        self.admin.close()


def table_count(url: str, table: str) -> int:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {table}")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def truncate_all(url: str) -> None:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            tables = [row[0] for row in cur.fetchall()]
            if tables:
                cur.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables))
        conn.commit()
    finally:
        conn.close()


# -- results --------------------------------------------------------------------------------

@dataclass
class Result:
    name: str
    published: int = 0
    payload_mb: float = 0.0
    seconds: float = 0.0
    publish_seconds: float = 0.0
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    log_only: int = 0
    rows_counted: int = 0
    dead_letters_counted: int = 0
    reconnects: int | None = None
    batches: int | None = None
    peak_omem_mb: float | None = None
    expected: Expected | None = None  # what the generator made: duplicates, malformed
    stages: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by part (CpuMeter)
    # (seconds since the first PUBLISH, received, processed, written), every 0.1 s
    timeline: list[tuple[float, int, int, int]] = field(default_factory=list)
    note: str = ""

    @property
    def handled(self) -> int:
        """Messages accounted for: stored, or counted as duplicate, dead letter or log-only."""
        return self.stored + self.duplicates + self.dead_letters + self.log_only

    @property
    def rate(self) -> float:
        """End to end: what was accounted for, per second from first PUBLISH to last commit."""
        return self.handled / self.seconds if self.seconds > 0 else 0.0

    @property
    def publish_rate(self) -> float:
        return self.published / self.publish_seconds if self.publish_seconds > 0 else 0.0

    @property
    def lost(self) -> int:
        return self.published - self.handled

    @property
    def counts_agree(self) -> bool:
        return self.rows_counted == self.stored and self.dead_letters_counted == self.dead_letters


# -- the app's ingest -----------------------------------------------------------------------

def run_app(name: str, args: argparse.Namespace, db_url: str, spec: MessageSpec) -> Result:
    """Publish `spec` into a fresh IngestService; time it to the commit of the last row."""
    truncate_all(db_url)
    channel = f"bench:{uuid.uuid4().hex}:errors"
    folder = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    settings = replace(Settings(), redis_url=args.redis_url, error_channel=channel,
                       database_url=db_url, spool_dir=str(folder / "spool"),
                       store_min_severity=args.store_min_severity)
    publisher = Publisher(args.redis_url, channel, spec, args.publish_chunk)
    expected = publisher.expected
    engine = make_engine(settings.sqlalchemy_url)
    service = (IngestService(settings, engine) if args.grouping
               else IngestService(settings, engine, grouping=False))
    result = Result(name=name, published=expected.published,
                    payload_mb=expected.total_bytes / 1e6, expected=expected)
    sampler: OutputBufferSampler | None = None
    try:
        service.start()
        deadline = time.monotonic() + 10
        while not service.subscriber.subscribed:
            if time.monotonic() > deadline:
                raise RuntimeError("the ingest did not subscribe within 10 s")
            time.sleep(0.01)
        sampler = OutputBufferSampler(args.redis_url, subscriber_addr(service))
        sampler.start()
        meter = CpuMeter(service, publisher.pid, sampler.client)
        publisher.go()
        stages = _wait_until_stored(service, expected.published, args.idle_timeout,
                                    result.timeline if args.timeline else None)
        result.cpu = meter.finish(db_url)
        publisher.wait()
        last_commit = service.writer.last_commit_at
        end = last_commit.timestamp() if last_commit else stages.get("committed", time.time())
        result.seconds = end - publisher.first
        result.publish_seconds = publisher.last - publisher.first
        result.stages = {k: v - publisher.first for k, v in stages.items()}
        result.timeline = [(t - publisher.first, *rest) for t, *rest in result.timeline]
        if publisher.receivers != expected.published:
            result.note = f"PUBLISH reached {publisher.receivers} subscribers in all"
    finally:
        if sampler is not None:
            sampler.stop()
        service.stop()
        engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)
    counters = service.counters()
    result.received = counters["received"]
    result.stored = counters["stored"]
    result.duplicates = counters["duplicate"]
    result.dead_letters = counters["dead_letters_stored"]
    result.log_only = counters["log_only"]
    result.reconnects = counters["reconnects"]
    result.batches = counters["batches"]
    if sampler is not None and sampler.found:
        result.peak_omem_mb = sampler.peak / 1e6
    result.rows_counted = table_count(db_url, "error_logs")
    result.dead_letters_counted = table_count(db_url, "rejected_messages")
    return result


def _wait_until_stored(service: IngestService, published: int, idle_timeout: float,
                       timeline: list[tuple[float, int, int, int]] | None = None,
                       ) -> dict[str, float]:
    """Poll the counters until every message is accounted for (or nothing moves for a while);
    returns when each stage had seen all of them (epoch seconds)."""
    stages: dict[str, float] = {}
    last_progress = time.monotonic()
    last_total = -1
    next_sample = 0.0
    while True:
        c = service.counters()
        now = time.time()
        if timeline is not None and now >= next_sample:
            timeline.append((now, c["received"], c["processed"],
                             c["stored"] + c["duplicate"] + c["dead_letters_stored"]))
            next_sample = now + 0.1
        done = c["stored"] + c["duplicate"] + c["dead_letters_stored"] + c["log_only"]
        if "received" not in stages and c["received"] >= published:
            stages["received"] = now
        if "processed" not in stages and c["processed"] >= published:
            stages["processed"] = now
        if done >= published and c["pending_write"] == 0:
            stages["committed"] = now
            return stages
        total = c["received"] + c["processed"] + done
        if total != last_total:
            last_total, last_progress = total, time.monotonic()
        elif time.monotonic() - last_progress > idle_timeout:
            return stages
        time.sleep(0.005)


# -- the baseline: one INSERT and one commit per message ------------------------------------

def _baseline_statements(conn: Any) -> tuple[str, str]:
    """The one-row INSERT for the table create_schema made (partitioned or plain)."""
    with conn.cursor() as cur:
        cur.execute("SELECT c.relkind FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE c.relname = 'error_logs' "
                    "AND n.nspname = current_schema()")
        kind = cur.fetchone()[0]
    cols = ", ".join(f'"{c}"' for c in INSERT_COLUMNS)
    values = ", ".join(f"%({c})s::jsonb" if c == "context" else f"%({c})s"
                       for c in INSERT_COLUMNS)
    if kind == "p":
        # Partitioned: error_id is unique in error_ids, as the app's store does it.
        insert = ("WITH new_id AS (INSERT INTO error_ids (error_id, \"timestamp\") "
                  "VALUES (%(error_id)s, %(timestamp)s) ON CONFLICT (error_id) DO NOTHING "
                  f"RETURNING error_id) INSERT INTO error_logs ({cols}) SELECT {values} "
                  "FROM new_id")
    else:
        insert = (f"INSERT INTO error_logs ({cols}) VALUES ({values}) "
                  "ON CONFLICT (error_id) DO NOTHING")
    dead = ("INSERT INTO rejected_messages (received_at, reason, error_id, raw_bytes, raw) "
            "VALUES (%s, %s, %s, %s, %s)")
    return insert, dead


def run_baseline(args: argparse.Namespace, db_url: str, spec: MessageSpec) -> Result:
    """A subscriber loop that normalises each message and INSERTs + commits it on its own."""
    channel = f"bench:{uuid.uuid4().hex}:errors"
    publisher = Publisher(args.redis_url, channel, spec, args.publish_chunk)
    expected = publisher.expected
    result = Result(name="baseline", published=expected.published,
                    payload_mb=expected.total_bytes / 1e6, expected=expected)
    conn = psycopg2.connect(db_url)
    insert, dead = _baseline_statements(conn)
    limits = Limits()
    min_rank = SEVERITY_RANK[args.store_min_severity]
    client = redis.Redis.from_url(args.redis_url)
    pubsub = client.pubsub()
    pubsub.subscribe(channel)
    while (message := pubsub.get_message(timeout=5)) is None or message["type"] != "subscribe":
        pass
    handled = 0
    end = 0.0
    idle_since = time.monotonic()
    publisher.go()
    try:
        with conn.cursor() as cur:
            while handled < expected.published:
                message = pubsub.get_message(timeout=0.5)
                if message is None:
                    if time.monotonic() - idle_since > args.idle_timeout:
                        break
                    continue
                if message["type"] != "message":
                    continue
                idle_since = time.monotonic()
                received = datetime.now(UTC)
                event = normalise(message["data"], received, limits)
                handled += 1
                if isinstance(event, Rejection):
                    cur.execute(dead, (received, event.reason, event.error_id, event.raw_bytes,
                                       event.raw.replace("\x00", "")))
                    result.dead_letters += 1
                elif SEVERITY_RANK[event.severity] < min_rank:
                    result.log_only += 1
                    continue
                else:
                    row = {c: getattr(event, c) for c in INSERT_COLUMNS}
                    row["context"] = orjson.dumps(event.context).decode()
                    cur.execute(insert, row)
                    if cur.rowcount == 1:
                        result.stored += 1
                    else:
                        result.duplicates += 1
                conn.commit()
                end = time.time()
    finally:
        publisher.wait()
        pubsub.close()
        client.close()
        conn.close()
    result.received = handled
    result.seconds = end - publisher.first
    result.publish_seconds = publisher.last - publisher.first
    result.rows_counted = table_count(db_url, "error_logs")
    result.dead_letters_counted = table_count(db_url, "rejected_messages")
    return result


# -- the report -----------------------------------------------------------------------------

def print_case(result: Result) -> None:
    stages = ", ".join(f"all {k} at +{v:.2f} s" for k, v in result.stages.items())
    omem = (f"; peak Redis output buffer {result.peak_omem_mb:.1f} MB"
            if result.peak_omem_mb is not None else "")
    print(f"  {result.name}: {result.published} published ({result.payload_mb:.1f} MB) in "
          f"{result.publish_seconds:.2f} s ({result.publish_rate:,.0f} msg/s); "
          f"last row committed at +{result.seconds:.2f} s -> {result.rate:,.0f} msg/s")
    print(f"    received {result.received}, stored {result.stored} (SELECT count(*): "
          f"{result.rows_counted}), duplicates {result.duplicates}, dead letters "
          f"{result.dead_letters} (counted {result.dead_letters_counted}), log-only "
          f"{result.log_only}, lost {result.lost}"
          + (f", reconnects {result.reconnects}, batches {result.batches}"
             if result.reconnects is not None else "") + omem)
    if stages:
        print(f"    {stages}")
    if result.cpu and result.handled:
        # Each part per message that went through it: what Redis never delivered costs the
        # reader nothing, but it did cost the publisher and Redis.
        through = {"publisher": result.published, "redis-server": result.published,
                   "reader": result.received}
        per = {k: v / max(1, through.get(k, result.handled)) * 1e6
               for k, v in result.cpu.items() if k not in ("wall", "machine busy %")}
        print("    CPU us per message: " + ", ".join(f"{k} {v:.0f}" for k, v in per.items())
              + f"; machine busy {result.cpu.get('machine busy %', 0):.0f}% of "
              f"{os.cpu_count()} CPUs over {result.cpu['wall']:.1f} s")
    if result.timeline:
        print("    timeline (s since first PUBLISH: received / processed / written):")
        final = result.timeline[-1][1:]
        for moment, received, processed, written in result.timeline:
            print(f"      {moment:6.2f}  {received:7d} {processed:7d} {written:7d}")
            if (received, processed, written) == final:
                break  # nothing moves after this
    made = result.expected
    if made is not None and result.lost == 0 and (
            result.duplicates != made.duplicates or result.dead_letters != made.malformed):
        print(f"    note: published {made.duplicates} re-sent copies and {made.malformed} "
              "malformed messages; the counts above differ")
    if result.note:
        print(f"    note: {result.note}")
    sys.stdout.flush()


def print_summary(app: Result, baseline: Result | None, flood: Result | None) -> bool:
    ratio = app.rate / baseline.rate if baseline and baseline.rate else None
    rows: list[tuple[str, str, str, str, str, str]] = []

    def row(result: Result, target: str, ok: bool) -> None:
        rows.append((result.name, f"{result.published:,}", f"{result.rate:,.0f}",
                     str(result.lost),
                     "-" if result.reconnects is None else str(result.reconnects),
                     f"{target} {'OK' if ok else 'MISSED'}"))

    ok_app = app.rate >= TARGET_RATE and app.lost == 0 and app.counts_agree
    row(app, f">= {TARGET_RATE:,} msg/s, lost 0:", ok_app)
    ok_ratio = True
    if baseline is not None:
        ok_ratio = ratio is not None and ratio >= TARGET_RATIO
        row(baseline, "(one INSERT + commit per message)", True)
    ok_flood = True
    if flood is not None:
        ok_flood = flood.lost == 0 and flood.reconnects == 0 and flood.counts_agree
        row(flood, "lost 0, reconnects 0:", ok_flood)
    headers = ("case", "published", "msg/s", "lost", "reconnects", "target")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print("\n" + line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(v.rjust(w) if 0 < i < 5 else v.ljust(w)
                        for i, (v, w) in enumerate(zip(r, widths, strict=True))))
    if ratio is not None:
        print(f"\napp / baseline: {ratio:.1f}x  (target >= {TARGET_RATIO:.0f}x: "
              f"{'OK' if ok_ratio else 'MISSED'})")
    for result in (app, baseline, flood):
        if result is not None and not result.counts_agree:
            print(f"{result.name}: SELECT count(*) disagrees with the counters "
                  f"({result.rows_counted} rows vs {result.stored} stored)")
    met = ok_app and ok_ratio and ok_flood
    print("all targets met" if met else "TARGETS MISSED")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-admin-url",
                        default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--count", type=int, default=100_000,
                        help="messages into the app's ingest (default 100000)")
    parser.add_argument("--flood", type=int, default=50_000,
                        help="messages of the flood case, 0 to skip (default 50000)")
    parser.add_argument("--baseline-count", type=int, default=5000,
                        help="messages into the one-INSERT-per-message writer, 0 to skip")
    parser.add_argument("--store-min-severity", default="debug", choices=list(SEVERITY_RANK),
                        help="STORE_MIN_SEVERITY for both writers (default debug: store all)")
    parser.add_argument("--no-grouping", dest="grouping", action="store_false",
                        help="run the app's ingest without the error-group batch hook")
    parser.add_argument("--publish-chunk", type=int, default=1000,
                        help="PUBLISH commands per pipeline (default 1000)")
    parser.add_argument("--idle-timeout", type=float, default=8.0,
                        help="give up when nothing moves for this many seconds")
    parser.add_argument("--timeline", action="store_true",
                        help="print the app's counters every 0.1 s of each case")
    parser.add_argument("-v", "--verbose", action="store_true", help="the app's INFO logs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # one line per chunk holding a malformed message is noise here
        logging.getLogger("ingest.pipeline").setLevel(logging.ERROR)

    omem_limit = redis.Redis.from_url(args.redis_url).config_get(
        "client-output-buffer-limit").get("client-output-buffer-limit", "?")
    print(f"ingest throughput: app {args.count:,}, baseline {args.baseline_count:,}, "
          f"flood {args.flood:,}; store_min_severity {args.store_min_severity}, grouping "
          f"{'on' if args.grouping else 'off'}; {multiprocessing.cpu_count()} CPUs")
    print(f"redis client-output-buffer-limit: {omem_limit}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    databases = Databases(args.pg_admin_url)
    run_id = uuid.uuid4().hex[:6]
    app = baseline = flood = None
    try:
        app_url = databases.create("app")
        app = run_app("app", args, app_url, MessageSpec(args.count, f"app-{run_id}"))
        print_case(app)
        if args.baseline_count:
            baseline = run_baseline(args, databases.create("baseline"),
                                    MessageSpec(args.baseline_count, f"app-{run_id}"))
            print_case(baseline)
        if args.flood:
            flood = run_app("flood", args, app_url,
                            MessageSpec(args.flood, f"flood-{run_id}", seed=11, big=True))
            print_case(flood)
    finally:
        databases.drop_all()
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0 if print_summary(app, baseline, flood) else 1


if __name__ == "__main__":
    sys.exit(main())
