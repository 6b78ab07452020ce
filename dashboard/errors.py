"""How the web side answers what goes wrong, in one place: routes raise, these answer.

Under /api every answer is JSON: a bad parameter is a 400 that says what is wrong, an
unreachable store a 503, an unknown route a 404; nowhere does a traceback reach the client.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from queries.search import SearchTimeout
from queries.validation import BadParameter

log = logging.getLogger(__name__)

STORE_UNREACHABLE = "the error store cannot be read right now"


def install_error_handlers(server: Flask) -> None:
    """Register the answers for every route of `server`, blueprints included."""

    @server.errorhandler(BadParameter)
    def bad_parameter(exc: BadParameter) -> tuple[Response, int]:
        return jsonify({"error": str(exc)}), 400

    @server.errorhandler(SearchTimeout)
    def search_timeout(exc: SearchTimeout) -> tuple[Response, int]:
        return jsonify({"error": str(exc)}), 503

    @server.errorhandler(SQLAlchemyError)
    def store_unreachable(exc: SQLAlchemyError) -> tuple[Response, int]:
        log.warning("read of %s failed: %s", request.path, str(exc).splitlines()[0])
        return jsonify({"error": STORE_UNREACHABLE}), 503

    @server.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> HTTPException | tuple[Response, int]:
        if request.path.startswith("/api/"):
            return jsonify({"error": exc.description or exc.name}), exc.code or 500
        return exc

    @server.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response | str, int] | tuple[str, int, dict[str, str]]:
        log.exception("unhandled error on %s", request.path)
        if request.path.startswith("/api/"):
            return jsonify({"error": "internal error; see the monitor's log"}), 500
        return "Internal error; see the monitor's log.", 500, {"Content-Type": "text/plain"}
