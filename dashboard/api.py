"""The REST API (CONTRACT.md §4): a Flask blueprint on Dash's server.

Every bad parameter gets a 400 whose `error` says what is wrong; no route answers a 500 with
a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request, stream_with_context
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from dashboard.export import csv_chunks
from live.view import LiveView
from queries.health import health_status
from queries.reads import error_statistics, get_error, recent_errors
from queries.search import (
    MAX_PAGE_SIZE,
    SearchError,
    SearchQuery,
    SearchTimeout,
    iter_matching,
    parse_query,
    search_errors,
)
from queries.trends import HourlyRollup, build_trend

log = logging.getLogger(__name__)

MAX_HOURS = 24 * 366
MAX_TREND_HOURS = 24 * 90
MAX_EXPORT_ROWS = 1_000_000


class BadParameter(ValueError):
    """A query parameter the API cannot use; its text is the 400's `error`."""


def int_param(name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high], or BadParameter saying what is wrong."""
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadParameter(f"{name} must be a whole number from {low} to {high}, "
                           f"got {raw[:50]!r}") from None
    if not low <= value <= high:
        raise BadParameter(f"{name} must be from {low} to {high}, got {value}")
    return value


def time_param(name: str) -> datetime | None:
    """An ISO-8601 time (no zone means UTC) or epoch seconds, or None when absent."""
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    try:
        if text.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(text), UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise BadParameter(f"{name} must be an ISO-8601 time such as 2025-01-26T21:20:00Z, "
                           f"or epoch seconds; got {raw[:50]!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def choice_param(name: str, choices: tuple[str, ...], default: str) -> str:
    raw = (request.args.get(name) or "").strip()
    if raw == "":
        return default
    if raw not in choices:
        raise BadParameter(f"{name} must be one of {', '.join(choices)}, got {raw[:50]!r}")
    return raw


def test_param() -> bool:
    """`test=true`: include test traffic, which lists and counts leave out by default."""
    return choice_param("test", ("true", "false"), "false") == "true"


def search_param() -> SearchQuery:
    """`q`, `from` and `to` as one search; BadParameter says what is wrong."""
    try:
        return parse_query(request.args.get("q")).between(time_param("from"),
                                                          time_param("to"))
    except SearchError as exc:
        raise BadParameter(str(exc)) from None


def create_api_blueprint(engine: Engine, live: LiveView,
                         rollup: HourlyRollup | None = None) -> Blueprint:
    api = Blueprint("api", __name__, url_prefix="/api")
    rollup = rollup or HourlyRollup(engine)

    def answer(produce: Callable[[], Any]) -> Any:
        try:
            return jsonify(produce())
        except (BadParameter, SearchError) as exc:
            return jsonify({"error": str(exc)}), 400
        except SearchTimeout as exc:
            return jsonify({"error": str(exc)}), 503
        except SQLAlchemyError as exc:
            log.warning("API read failed: %s", exc)
            return jsonify({"error": "the error store cannot be read right now"}), 503

    @api.get("/errors/recent")
    def recent():  # type: ignore[no-untyped-def]
        return answer(lambda: recent_errors(engine, int_param("limit", 100, 1, 1000),
                                            include_test=test_param()))

    @api.get("/errors/statistics")
    def statistics():  # type: ignore[no-untyped-def]
        return answer(lambda: error_statistics(engine, int_param("hours", 24, 1, MAX_HOURS)))

    @api.get("/errors/health")
    def health():  # type: ignore[no-untyped-def]
        def produce() -> dict[str, Any]:
            state = live.listening_state()
            result = health_status(engine, state.subscribed, state.store_ok,
                                   blind_reason=getattr(state, "blind_reason", None)).as_json()
            result["monitor"] = live.monitor_summary()
            return result
        return answer(produce)

    # Static routes win over the <path:error_id> converter below (werkzeug ranks them so),
    # whatever the order they are declared in; tests/test_dashboard_api.py checks it.
    @api.get("/errors/search")
    def search():  # type: ignore[no-untyped-def]
        def produce() -> dict[str, Any]:
            query = search_param()
            page = int_param("page", 1, 1, 1_000_000)
            page_size = int_param("page_size", 50, 1, MAX_PAGE_SIZE)
            cursor = (request.args.get("cursor") or "").strip() or None
            return search_errors(engine, query, page, page_size, cursor).as_json()
        return answer(produce)

    @api.get("/errors/trends")
    def trends():  # type: ignore[no-untyped-def]
        def produce() -> dict[str, Any]:
            start, end = time_param("from"), time_param("to")
            now = datetime.now(UTC)
            if start is None:
                hours = int_param("hours", 24, 1, MAX_TREND_HOURS)
                end = min(end or now, now)
                start = end - timedelta(hours=hours)
            else:
                end = min(end or now, now)
                if start >= end:
                    raise BadParameter("from must be before to (and before now)")
                if end - start > timedelta(hours=MAX_TREND_HOURS):
                    raise BadParameter(f"the range may be at most {MAX_TREND_HOURS} hours")
            bucket = choice_param("bucket", ("auto", "minute", "hour", "day"), "auto")
            return build_trend(rollup, start, end, bucket).as_json()
        return answer(produce)

    @api.get("/errors/export.csv")
    def export_csv():  # type: ignore[no-untyped-def]
        try:
            query = search_param()
            limit = int_param("limit", MAX_EXPORT_ROWS, 1, MAX_EXPORT_ROWS)
            rows = iter_matching(engine, query, limit)
            # Open the query before answering, so an unreachable store is a 503, not a
            # cut-off download.
            first = next(rows, None)
        except BadParameter as exc:
            return jsonify({"error": str(exc)}), 400
        except SQLAlchemyError as exc:
            log.warning("export failed: %s", exc)
            return jsonify({"error": "the error store cannot be read right now"}), 503
        everything: Iterator[dict[str, Any]] = chain([first], rows) if first else iter(())
        name = f"tickstock-errors-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"
        return Response(
            stream_with_context(_logged(csv_chunks(everything))),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"',
                     "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    @api.get("/errors/<path:error_id>")
    def one_error(error_id: str):  # type: ignore[no-untyped-def]
        try:
            found = get_error(engine, error_id)
        except SQLAlchemyError as exc:
            log.warning("API read failed: %s", exc)
            return jsonify({"error": "the error store cannot be read right now"}), 503
        if found is None:
            return jsonify({"error": f"no error with id {error_id[:200]!r}"}), 404
        return jsonify(found)

    # Dash answers every unknown path with its page; under /api a client wants a JSON 404.
    @api.get("/<path:rest>")
    def unknown(rest: str):  # type: ignore[no-untyped-def]
        return jsonify({"error": f"no API route /api/{rest[:200]}"}), 404

    return api


def _logged(chunks: Iterator[str]) -> Iterator[str]:
    """A download that fails halfway cannot change its status any more: say so in the log."""
    try:
        yield from chunks
    except SQLAlchemyError as exc:
        log.warning("export stopped part way: %s", exc)


def install_error_pages(server: Flask) -> None:
    """JSON errors under /api, and no traceback anywhere."""

    @server.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        if request.path.startswith("/api/"):
            return jsonify({"error": exc.description or exc.name}), exc.code
        return exc

    @server.errorhandler(Exception)
    def unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        log.exception("unhandled error on %s", request.path)
        if request.path.startswith("/api/"):
            return jsonify({"error": "internal error; see the monitor's log"}), 500
        return "Internal error; see the monitor's log.", 500, {"Content-Type": "text/plain"}
