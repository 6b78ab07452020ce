"""The REST API (CONTRACT.md §4): a Flask blueprint on Dash's server.

Every bad parameter gets a 400 whose `error` says what is wrong; no route answers a 500 with
a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, jsonify, request
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from dashboard.live import LiveView
from queries.health import health_status
from queries.reads import error_statistics, get_error, recent_errors

log = logging.getLogger(__name__)

MAX_HOURS = 24 * 366


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


def create_api_blueprint(engine: Engine, live: LiveView) -> Blueprint:
    api = Blueprint("api", __name__, url_prefix="/api")

    def answer(produce: Callable[[], Any]) -> Any:
        try:
            return jsonify(produce())
        except BadParameter as exc:
            return jsonify({"error": str(exc)}), 400
        except SQLAlchemyError as exc:
            log.warning("API read failed: %s", exc)
            return jsonify({"error": "the error store cannot be read right now"}), 503

    @api.get("/errors/recent")
    def recent():  # type: ignore[no-untyped-def]
        return answer(lambda: recent_errors(engine, int_param("limit", 100, 1, 1000)))

    @api.get("/errors/statistics")
    def statistics():  # type: ignore[no-untyped-def]
        return answer(lambda: error_statistics(engine, int_param("hours", 24, 1, MAX_HOURS)))

    @api.get("/errors/health")
    def health():  # type: ignore[no-untyped-def]
        def produce() -> dict[str, Any]:
            state = live.listening_state()
            result = health_status(engine, state.subscribed, state.store_ok).as_json()
            result["monitor"] = live.monitor_summary()
            return result
        return answer(produce)

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
