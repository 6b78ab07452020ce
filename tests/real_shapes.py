"""The corpus: messages exactly as the TickStock systems serialise them, each with what the
operator must see once it is stored (issue 15). `tests/test_real_shapes.py` sends every one
through the running app (Redis -> ingest -> PostgreSQL -> REST API).

Times are made when a case is built, as the producers make them: `now` is the sender's
moment in UTC; `expect` lists the fields of `GET /api/errors/<id>` that must come out so
(`context_has`: keys that must be in its context; `skew_hours`: the clock skew shown).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Case:
    name: str
    message: dict[str, Any]
    expect: dict[str, Any]
    context_has: tuple[str, ...] = ()
    skew_hours: float | None = None
    notes: list[str] = field(default_factory=list)


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def cases() -> list[Case]:
    now = datetime.now(UTC)
    naive = now.replace(tzinfo=None)
    return [
        Case("shared pydantic ErrorMessage.model_dump_json()",
             {"error_id": str(uuid.uuid4()), "source": "TickStockPL", "severity": "error",
              "category": "redis", "message": "Redis publish failed: connection reset",
              "component": "EventPublisher", "traceback": None,
              "context": {"symbol": "AAPL", "attempt": 3}, "timestamp": naive.isoformat()},
             {"severity": "error", "category": "redis", "component": "EventPublisher",
              "message": "Redis publish failed: connection reset", "traceback": None,
              "type": None, "source": "TickStockPL", "test": False}),
        Case("ErrorPublisher: json.dumps, utcnow().isoformat() + 'Z', format_exc() default",
             {"error_id": _id("PatternDetector_detect_doji"),
              "error_type": "PatternDetectionError",
              "error_message": "Pattern detection failed for Doji: Insufficient data",
              "error_traceback": "NoneType: None\n", "severity": "error", "category": "pattern",
              "context": {"component": "PatternDetector", "operation": "detect_doji",
                          "symbol": "AAPL", "timeframe": "daily"},
              "timestamp": naive.isoformat() + "Z"},
             {"traceback": None, "type": "PatternDetectionError", "symbol": "AAPL",
              "operation": "detect_doji"},
             context_has=("raw_error_traceback",)),
        Case("ErrorPublisher's traceback under the shared field name, without the newline",
             {"error_id": _id("tb"), "message": "x", "traceback": "NoneType: None",
              "severity": "warning", "category": "validation"},
             {"traceback": None, "severity": "warning"}, context_has=("raw_traceback",)),
        Case("older flat shape with fields of its own",
             {"error_id": _id("flat"), "error_type": "IndicatorCalculationError",
              "error_message": "RSI needs 14 periods", "severity": "warning",
              "category": "indicator", "component": "IndicatorCalculator", "symbol": "msft",
              "job_id": "job-17", "timestamp": now.isoformat()},
             {"component": "IndicatorCalculator", "symbol": "MSFT"}, context_has=("job_id",)),
        Case("critical_error envelope with an error code and no category",
             {"event": "critical_error", "timestamp": now.isoformat().replace("+00:00", "Z"),
              "source": "daily_import_job", "version": "1.0", "error_id": _id("env"),
              "payload": {"component": "data_import", "error_code": "API_RATE_LIMIT",
                          "message": "API rate limit hit", "context": {"symbol": "AAPL"},
                          "recovery_action": "automatic_retry"}},
             {"severity": "critical", "category": "network", "type": "API_RATE_LIMIT",
              "source": "daily_import_job"},
             context_has=("event", "version", "recovery_action")),
        Case("processing_error envelope with a database code",
             {"event": "processing_error", "timestamp": now.isoformat(), "error_id": _id("pe"),
              "source": "pattern_job", "payload": {"severity": "error",
                                                   "error_code": "DATABASE_WRITE_FAILED",
                                                   "error_message": "insert failed"}},
             {"category": "database", "type": "DATABASE_WRITE_FAILED", "message": "insert failed"}),
        Case("error envelope with a timeout code",
             {"event": "error", "timestamp": now.isoformat(), "error_id": _id("ee"),
              "payload": {"severity": "error", "error_code": "REQUEST_TIMEOUT",
                          "message": "Polygon timed out"}},
             {"category": "network", "type": "REQUEST_TIMEOUT"}),
        Case("{type: application_error, ..., timestamp: <epoch>}",
             {"type": "application_error", "error_id": _id("app"), "severity": "error",
              "component": "TickStockApp", "message": "Unhandled error in /api/patterns",
              "timestamp": time.time()},
             {"type": "application_error", "component": "TickStockApp", "category": "unknown"},
             context_has=("type",)),
        Case("ALERT_TRIGGERED on the errors channel (flat path): the alert kept",
             {"event_type": "ALERT_TRIGGERED", "timestamp": now.isoformat(),
              "error_id": _id("alert"),
              "alert": {"level": "critical", "component": "DataFeed",
                        "message": "no bars for 5 minutes", "threshold": 1}},
             {"severity": "critical", "component": "DataFeed",
              "message": "no bars for 5 minutes"}, context_has=("event_type", "threshold")),
        Case("test sender on a host six hours behind UTC: local time labelled Z",
             {"error_id": _id("skewed"), "error_type": "DatabaseError",
              "error_message": "connection pool exhausted", "severity": "critical",
              "category": "database", "context": {"component": "DatabaseWriter"},
              "timestamp": (naive - timedelta(hours=6)).isoformat() + "Z"},
             {"severity": "critical", "test": False}, skew_hours=-6),
        Case("TickStockPL's documented test script: a critical of category test",
             {"error_id": _id("test"), "error_type": "TestError",
              "error_message": "Test critical error from TickStockPL", "severity": "critical",
              "category": "test", "context": {"component": "TestScript"},
              "timestamp": now.isoformat()},
             {"severity": "critical", "test": True, "category": "unknown"},
             context_has=("raw_category",)),
        Case("a test flagged in its context",
             {"error_id": _id("ctxtest"), "error_message": "smoke test", "severity": "error",
              "category": "pattern", "context": {"test": True}, "timestamp": now.isoformat()},
             {"test": True, "category": "pattern"}),
    ]


def minimal_message() -> dict[str, Any]:
    """The minimal shape: neither error_id nor timestamp; each recurrence is its own row."""
    return {"severity": "error", "message": "Polygon websocket dropped", "category": "websocket",
            "component": "StreamClient", "context": {"symbol": "SPY"}}
