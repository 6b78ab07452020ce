"""REST routes for alerts and silences (CONTRACT.md §4); validation is alerts/commands.py's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.engine import Engine

from alerts import commands
from alerts.store import list_alerts, list_silences
from dashboard.params import choice_param, int_param
from queries.validation import BadParameter


def parse_silence(body: Any, now: datetime, who: str = "") -> commands.SilenceRequest:
    """A POST body `{rule, key?, until | minutes, reason?, createdBy?}` as a checked request."""
    if not isinstance(body, dict):
        raise BadParameter("the body must be a JSON object like "
                           '{"rule": "error_rate", "minutes": 60, "reason": "..."}')
    return commands.silence_request(
        body.get("rule"), body.get("key"), now, until=body.get("until"),
        minutes=body.get("minutes"),
        reason=body.get("reason", ""), created_by=body.get("createdBy") or who)


def create_alerts_blueprint(engine: Engine,
                            clock: Callable[[], datetime] | None = None) -> Blueprint:
    api = Blueprint("alerts_api", __name__, url_prefix="/api/alerts")
    now = clock or (lambda: datetime.now(UTC))

    @api.get("")
    def alerts() -> Response:
        state = choice_param("state", ("firing", "resolved", "all"), "firing") or "firing"
        return jsonify(list_alerts(engine, state, int_param("limit", 200, 1, 1000)))

    @api.get("/silences")
    def silences() -> Response:
        raw = (request.args.get("expired") or "false").lower()
        if raw not in ("true", "false"):
            raise BadParameter(f"expired must be true or false, got {raw[:20]!r}")
        return jsonify(list_silences(engine, now(), active_only=raw == "false"))

    @api.post("/silences")
    def new_silence() -> tuple[Response, int]:
        who = request.authorization.username if request.authorization else ""
        silence = parse_silence(request.get_json(silent=True), now(), who or "")
        return jsonify(commands.add_silence(engine, silence, now())), 201

    @api.delete("/silences/<silence_id>")
    def end_silence(silence_id: str) -> tuple[Response | str, int]:
        if not commands.end_silence(engine, silence_id):
            return jsonify({"error": f"no silence with id {silence_id[:64]!r}"}), 404
        return "", 204

    return api
