"""Publish test errors to ERROR_CHANNEL, as TickStockPL would (CONTRACT.md §5).

    python -m ingest.simulate                      # one of each severity, then each category
    python -m ingest.simulate --count 1000 --rate 200
    python -m ingest.simulate --severity critical --category database
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
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import redis

from jobs.simulate import JOBS, RUNS, simulate_job, simulate_run
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ingest.simulate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, help="publish N messages instead of the default "
                        "sequence")
    parser.add_argument("--rate", type=float, default=10.0,
                        help="messages per second with --count (0: as fast as possible)")
    parser.add_argument("--severity", choices=SEVERITIES, help="fix the severity")
    parser.add_argument("--category", choices=CATEGORIES, help="fix the category")
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
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    if args.run or args.job:
        return _jobs_and_runs(client, settings, args)
    if args.count is None:
        messages: Iterator[dict[str, Any]] = default_sequence(rng)
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
            reached = client.publish(settings.error_channel, orjson.dumps(message))
            sent += 1
            unheard += reached == 0
            if not args.quiet:
                print(f"{index:>6} {message['severity']:<8} {message['category']:<13} "
                      f"{message['error_id']}  -> {reached} subscriber(s)")
            if interval:
                time.sleep(max(0.0, started + index * interval - time.monotonic()))
    except redis.RedisError as exc:
        print(f"cannot publish to {settings.error_channel}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    elapsed = time.monotonic() - started
    print(f"published {sent} message(s) to {settings.error_channel} in {elapsed:.2f} s; "
          f"{unheard} reached no subscriber")
    return 0 if sent else 1


def _jobs_and_runs(client: redis.Redis, settings: Any, args: argparse.Namespace) -> int:
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
