"""The REST API (CONTRACT.md §4): a Flask blueprint on Dash's server.

Routes raise `BadParameter` (a 400 that says what is wrong) and let store errors propagate
(a 503); dashboard/errors.py answers both, so no route answers a 500 with a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

from flask import Blueprint, Response, jsonify, request, stream_with_context
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashboard.export import csv_chunks
from dashboard.params import MAX_HOURS, choice_param, int_param, test_param, time_param
from live.view import LiveView
from queries.health import health_status
from queries.reads import error_statistics, get_error, recent_errors
from queries.search import (
    MAX_PAGE_SIZE,
    SearchQuery,
    iter_matching,
    parse_query,
    search_errors,
)
from queries.trends import HourlyRollup, build_trend
from queries.validation import BadParameter

log = logging.getLogger(__name__)

MAX_TREND_HOURS = 24 * 90
MAX_EXPORT_ROWS = 1_000_000


def search_param() -> SearchQuery:
    """`q`, `from` and `to` as one search; a SearchError (a BadParameter) says what is wrong."""
    return parse_query(request.args.get("q")).between(time_param("from"), time_param("to"))


def create_api_blueprint(engine: Engine, live: LiveView,
                         rollup: HourlyRollup | None = None) -> Blueprint:
    api = Blueprint("api", __name__, url_prefix="/api")
    rollup = rollup or HourlyRollup(engine)

    @api.get("/errors/recent")
    def recent() -> Response:
        return jsonify(recent_errors(engine, int_param("limit", 100, 1, 1000),
                                     include_test=test_param()))

    @api.get("/errors/statistics")
    def statistics() -> Response:
        return jsonify(error_statistics(engine, int_param("hours", 24, 1, MAX_HOURS)))

    @api.get("/errors/health")
    def health() -> Response:
        state = live.listening_state()
        result = health_status(engine, state.subscribed, state.store_ok,
                               blind_reason=state.blind_reason).as_json()
        result["monitor"] = live.monitor_summary()
        return jsonify(result)

    # Static routes win over the <path:error_id> converter below (werkzeug ranks them so),
    # whatever the order they are declared in; tests/test_dashboard_api.py checks it.
    @api.get("/errors/search")
    def search() -> Response:
        query = search_param()
        page = int_param("page", 1, 1, 1_000_000)
        page_size = int_param("page_size", 50, 1, MAX_PAGE_SIZE)
        cursor = (request.args.get("cursor") or "").strip() or None
        return jsonify(search_errors(engine, query, page, page_size, cursor).as_json())

    @api.get("/errors/trends")
    def trends() -> Response:
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
        return jsonify(build_trend(rollup, start, None if end >= now else end,
                                   bucket).as_json())

    @api.get("/errors/export.csv")
    def export_csv() -> Response:
        query = search_param()
        limit = int_param("limit", MAX_EXPORT_ROWS, 1, MAX_EXPORT_ROWS)
        rows = iter_matching(engine, query, limit)
        # Open the query before answering, so an unreachable store is a 503, not a
        # cut-off download.
        first = next(rows, None)
        everything: Iterator[dict[str, Any]] = chain([first], rows) if first else iter(())
        name = f"tickstock-errors-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"
        return Response(
            stream_with_context(_logged(csv_chunks(everything))),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"',
                     "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    @api.get("/errors/<path:error_id>")
    def one_error(error_id: str) -> Response | tuple[Response, int]:
        found = get_error(engine, error_id)
        if found is None:
            return jsonify({"error": f"no error with id {error_id[:200]!r}"}), 404
        return jsonify(found)

    # Dash answers every unknown path with its page; under /api a client wants a JSON 404.
    @api.get("/<path:rest>")
    def unknown(rest: str) -> tuple[Response, int]:
        return jsonify({"error": f"no API route /api/{rest[:200]}"}), 404

    return api


def _logged(chunks: Iterator[str]) -> Iterator[str]:
    """A download that fails halfway cannot change its status any more: say so in the log."""
    try:
        yield from chunks
    except SQLAlchemyError as exc:
        log.warning("export stopped part way: %s", exc)
