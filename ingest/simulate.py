"""Publish test errors to ERROR_CHANNEL, as TickStockPL would (CONTRACT.md §5).

    python -m ingest.simulate                      # one of each severity, then each category
    python -m ingest.simulate --count 1000 --rate 200
    python -m ingest.simulate --severity critical --category database
    python -m ingest.simulate --shapes             # one message of every shape TickStock sends
    python -m ingest.simulate --shape test-script  # just one of them (see SHAPES)
    python -m ingest.simulate --shape alert --channel tickstock:monitoring
    python -m ingest.simulate --run healthy        # also: stalled, failed (jobs/simulate.py)
    python -m ingest.simulate --job unpicked       # also: failed

Every publish prints how many subscribers it reached: 0 means nobody is listening.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import redis

from jobs.simulate import JOBS, RUNS, simulate_job, simulate_run
from live import redis_client
from queries.records import CATEGORIES, SEVERITIES
from settings import SettingsError, load_settings

SYMBOLS = ("AAPL", "MSFT", "TSLA", "NVDA", "AMZN", "GOOGL", "META", "SPY", "QQQ", "AMD")
# (category, component, operation, error type, message) as the pipeline's parts report them.
SCENARIOS = {
    "pattern": ("PatternDetector", "detect_doji", "PatternDetectionError",
                "Pattern detection failed for Doji: Insufficient data"),
    "indicator": ("IndicatorCalculator", "calculate_rsi", "IndicatorCalculationError",
                  "RSI needs 14 periods, got 9"),
    "database": ("DatabaseWriter", "write_ohlcv", "OperationalError",
                 "connection to server failed: timeout"),
    "network": ("HistoricalLoader", "load_minute_bars", "PolygonAPIError",
                "429 Too Many Requests from Polygon.io"),
    "validation": ("BarValidator", "validate", "DataValidationError",
                   "high < low for bar at 09:31"),
    "performance": ("BatchRunner", "run", "SlowOperationWarning",
                    "daily import took 412 s, budget 300 s"),
    "configuration": ("ConfigLoader", "load", "ConfigurationError",
                      "POLYGON_API_KEY is not set"),
    "security": ("ApiGateway", "authenticate", "AuthenticationError",
                 "invalid API token presented"),
    "integration": ("TickStockAppBridge", "forward", "IntegrationError",
                    "TickStockApp did not acknowledge event"),
    "websocket": ("StreamClient", "receive", "WebSocketError", "stream closed by peer: 1006"),
    "redis": ("EventPublisher", "publish", "RedisError", "Redis publish failed: connection reset"),
    "unknown": ("Worker", "run", "RuntimeError", "unexpected failure"),
}


def make_message(severity: str, category: str, rng: random.Random) -> dict[str, Any]:
    component, operation, error_type, text = SCENARIOS[category]
    now = datetime.now(UTC)
    symbol = rng.choice(SYMBOLS)
    return {
        "error_id": f"sim_{component}_{operation}_{uuid.uuid4().hex[:16]}",
        "error_type": error_type,
        "error_message": f"{text} (simulated)",
        "error_traceback": (
            "Traceback (most recent call last):\n"
            f'  File "{component.lower()}.py", line {rng.randint(20, 400)}, in {operation}\n'
            f"{error_type}: {text}"),
        "severity": severity,
        "category": category,
        "context": {"component": component, "operation": operation, "symbol": symbol,
                    "timeframe": "daily", "metadata": {"simulated": True},
                    "timestamp": now.isoformat()},
        "timestamp": now.isoformat(),
    }


# -- the shapes the TickStock systems really send (issue 15) ----------------------------------
def _naive_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def shared_model(rng: random.Random) -> dict[str, Any]:
    """The shared pydantic `ErrorMessage.model_dump_json()`: naive UTC time, null traceback."""
    return {"error_id": str(uuid.uuid4()), "source": "TickStockPL", "severity": "error",
            "category": "redis", "message": "Redis publish failed: connection reset",
            "component": "EventPublisher", "traceback": None,
            "context": {"symbol": rng.choice(SYMBOLS), "attempt": 3},
            "timestamp": _naive_utc().isoformat()}


def error_publisher(rng: random.Random) -> dict[str, Any]:
    """TickStockPL's `ErrorPublisher`: json.dumps, utcnow().isoformat() + "Z", and the
    traceback.format_exc() default, which is "NoneType: None\n" outside an except block."""
    return {"error_id": f"PatternDetector_detect_doji_{time.time():.3f}",
            "error_type": "PatternDetectionError",
            "error_message": "Pattern detection failed for Doji: Insufficient data",
            "error_traceback": "NoneType: None\n", "severity": "error", "category": "pattern",
            "context": {"component": "PatternDetector", "operation": "detect_doji",
                        "symbol": rng.choice(SYMBOLS), "timeframe": "daily"},
            "timestamp": _naive_utc().isoformat() + "Z"}


def older_flat(rng: random.Random) -> dict[str, Any]:
    """The older flat shape: component and symbol at the top level, a field of its own."""
    return {"error_type": "IndicatorCalculationError", "error_message": "RSI needs 14 periods",
            "severity": "warning", "category": "indicator", "component": "IndicatorCalculator",
            "symbol": rng.choice(SYMBOLS), "job_id": f"job-{rng.randint(1, 999)}",
            "timestamp": datetime.now(UTC).isoformat()}


def envelope(event: str) -> Callable[[random.Random], dict[str, Any]]:
    """The job runners' `critical_error` / `error` / `processing_error` envelopes."""
    def build(rng: random.Random) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "component": "data_import", "error_code": "API_RATE_LIMIT",
            "message": "API rate limit hit", "recovery_action": "automatic_retry",
            "context": {"symbol": rng.choice(SYMBOLS), "retry_after": 60}}
        if event != "critical_error":
            payload["severity"] = "error"
        return {"event": event, "timestamp": datetime.now(UTC).isoformat().replace(
            "+00:00", "Z"), "source": "daily_import_job", "version": "1.0", "payload": payload}
    return build


def minimal(rng: random.Random) -> dict[str, Any]:
    """No error_id, no timestamp: each recurrence must still be its own row."""
    return {"severity": "error", "message": "Polygon websocket dropped", "category": "websocket",
            "component": "StreamClient", "context": {"symbol": rng.choice(SYMBOLS)}}


def application_error(rng: random.Random) -> dict[str, Any]:
    return {"type": "application_error", "severity": "error", "component": "TickStockApp",
            "message": "Unhandled error in /api/patterns", "timestamp": time.time()}


def skewed_clock(rng: random.Random) -> dict[str, Any]:
    """The test sender on a host six hours behind UTC: local time labelled Z."""
    local = _naive_utc() - timedelta(hours=6)
    return {"error_id": f"skewed_{uuid.uuid4().hex[:12]}", "error_type": "DatabaseError",
            "error_message": "connection pool exhausted", "severity": "critical",
            "category": "database", "context": {"component": "DatabaseWriter"},
            "timestamp": local.isoformat() + "Z"}


def test_script(rng: random.Random) -> dict[str, Any]:
    """TickStockPL's documented test script: a critical with category `test`."""
    return {"error_id": f"test_{uuid.uuid4().hex[:12]}", "error_type": "TestError",
            "error_message": "Test critical error from TickStockPL", "severity": "critical",
            "category": "test", "context": {"component": "TestScript", "test": True},
            "timestamp": datetime.now(UTC).isoformat()}


def monitoring_alert(rng: random.Random) -> dict[str, Any]:
    """`ALERT_TRIGGERED` as `tickstock:monitoring` carries it (send with --channel)."""
    return {"event_type": "ALERT_TRIGGERED", "timestamp": time.time(),
            "alert": {"level": "critical", "component": "DataFeed", "metric": "bars_per_minute",
                      "message": "no bars received for 5 minutes", "threshold": 1, "value": 0}}


SHAPES: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "contract": lambda rng: make_message("error", "pattern", rng),
    "shared-model": shared_model,
    "error-publisher": error_publisher,
    "older-flat": older_flat,
    "critical-error-envelope": envelope("critical_error"),
    "error-envelope": envelope("error"),
    "processing-error-envelope": envelope("processing_error"),
    "minimal": minimal,
    "application-error": application_error,
    "skewed-clock": skewed_clock,
    "test-script": test_script,
    "alert": monitoring_alert,
}


def default_sequence(rng: random.Random) -> Iterator[dict[str, Any]]:
    """One of each severity, then one error of each category."""
    for severity in SEVERITIES:
        yield make_message(severity, "pattern", rng)
    for category in CATEGORIES:
        yield make_message("error", category, rng)


def stream(count: int, severity: str | None, category: str | None,
           rng: random.Random) -> Iterator[dict[str, Any]]:
    shown = ("warning", "error", "error", "error", "critical")
    for _ in range(count):
        yield make_message(severity or rng.choice(shown), category or rng.choice(CATEGORIES),
                           rng)


def describe(message: dict[str, Any]) -> str:
    """One line about a message of any shape, for the publish log."""
    inner = message.get("payload") or message.get("alert") or message
    severity = inner.get("severity") or inner.get("level") or "?"
    kind = message.get("event") or message.get("event_type") or inner.get("category") or "?"
    return f"{severity:<8} {kind:<13} {message.get('error_id') or '(no error_id)'}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ingest.simulate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, help="publish N messages instead of the default "
                        "sequence")
    parser.add_argument("--rate", type=float, default=10.0,
                        help="messages per second with --count (0: as fast as possible)")
    parser.add_argument("--severity", choices=SEVERITIES, help="fix the severity")
    parser.add_argument("--category", choices=CATEGORIES, help="fix the category")
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append",
                        help="send messages of this shape (repeatable; with --count, N of it)")
    parser.add_argument("--shapes", action="store_true", help="one message of every shape")
    parser.add_argument("--channel", help="publish here instead of ERROR_CHANNEL")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument("--seed", type=int, help="random seed, for repeatable runs")
    parser.add_argument("--run", choices=RUNS, help="publish a processing run instead: "
                        "healthy, stalled (stops half-way) or failed (success 80%%)")
    parser.add_argument("--job", choices=JOBS, help="publish an import job instead: failed "
                        "(followed to failed) or unpicked (nobody picks it up)")
    parser.add_argument("--step", type=float, default=1.0,
                        help="seconds between the events of --run and --job")
    args = parser.parse_args(argv)
    if args.count is not None and args.count < 1:
        parser.error("--count must be at least 1")
    if args.rate < 0:
        parser.error("--rate must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"bad setting: {exc}", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    try:
        # A RedisCluster with REDIS_CLUSTER=true, and then SPUBLISH on the shard channel.
        client = redis_client.connect(settings.redis_url, socket_connect_timeout=5)
    except redis.RedisError as exc:
        print(f"cannot reach Redis: {exc}", file=sys.stderr)
        return 1
    if args.run or args.job:
        return _jobs_and_runs(client, settings, args)
    channel = args.channel or settings.error_channel
    shapes = sorted(SHAPES) if args.shapes else args.shape
    if shapes:
        messages: Iterator[dict[str, Any]] = (
            SHAPES[name](rng) for _ in range(args.count or 1) for name in shapes)
        interval = 1.0 / args.rate if args.count and args.rate else 0.0
    elif args.count is None:
        messages = default_sequence(rng)
        if args.severity or args.category:
            messages = (m | {k: v for k, v in (("severity", args.severity),
                                               ("category", args.category)) if v}
                        for m in messages)
        interval = 0.0
    else:
        messages = stream(args.count, args.severity, args.category, rng)
        interval = 1.0 / args.rate if args.rate else 0.0
    sent = unheard = 0
    started = time.monotonic()
    try:
        for index, message in zip(itertools.count(1), messages, strict=False):
            reached = redis_client.publish(client, channel, orjson.dumps(message))
            sent += 1
            unheard += reached == 0
            if not args.quiet:
                print(f"{index:>6} {describe(message)}  -> {reached} subscriber(s)")
            if interval:
                time.sleep(max(0.0, started + index * interval - time.monotonic()))
    except redis.RedisError as exc:
        print(f"cannot publish to {channel}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    elapsed = time.monotonic() - started
    print(f"published {sent} message(s) to {channel} in {elapsed:.2f} s; "
          f"{unheard} reached no subscriber")
    return 0 if sent else 1


def _jobs_and_runs(client: redis_client.Client, settings: Any, args: argparse.Namespace) -> int:
    try:
        if args.job:
            simulate_job(client, settings, args.job, args.step, print)
        if args.run:
            simulate_run(client, settings, args.run, args.step, print)
    except redis.RedisError as exc:
        print(f"cannot publish: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
