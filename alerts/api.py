"""REST routes for alerts and silences (CONTRACT.md §4)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from alerts.names import RULES
from alerts.store import add_silence, delete_silence, list_alerts, list_silences
from dashboard.api import BadParameter, int_param

MAX_SILENCE = timedelta(days=90)


def parse_silence(body: Any, now: datetime) -> dict[str, Any]:
    """Validate a new silence: rule, optional key, `until` (ISO) or `minutes`, reason, who."""
    if not isinstance(body, dict):
        raise BadParameter("the body must be a JSON object like "
                           '{"rule": "error_rate", "minutes": 60, "reason": "..."}')
    rule = body.get("rule")
    if rule not in RULES:
        raise BadParameter(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    key = body.get("key")
    if key is not None and (not isinstance(key, str) or not key.strip() or len(key) > 300):
        raise BadParameter("key must be a non-empty string of at most 300 characters")
    if body.get("until") not in (None, ""):
        try:
            until = datetime.fromisoformat(str(body["until"]).replace("Z", "+00:00"))
        except ValueError:
            raise BadParameter(f"until must be an ISO-8601 time, got {body['until']!r}") from None
        until = until.replace(tzinfo=UTC) if until.tzinfo is None else until.astimezone(UTC)
    elif body.get("minutes") not in (None, ""):
        minutes = body["minutes"]
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
            raise BadParameter(f"minutes must be a whole number of at least 1, got {minutes!r}")
        until = now + timedelta(minutes=min(minutes, int(MAX_SILENCE.total_seconds() // 60)))
    else:
        raise BadParameter("give until (an ISO-8601 time) or minutes")
    if until <= now:
        raise BadParameter("until must be in the future")
    if until - now > MAX_SILENCE:
        raise BadParameter("a silence lasts at most 90 days")
    reason = body.get("reason", "")
    who = body.get("createdBy") or (
        request.authorization.username if request.authorization else "") or ""
    if not isinstance(reason, str) or len(reason) > 1000:
        raise BadParameter("reason must be a string of at most 1000 characters")
    if not isinstance(who, str) or len(who) > 200:
        raise BadParameter("createdBy must be a string of at most 200 characters")
    return {"rule": rule, "key": key, "until": until, "reason": reason, "created_by": who}


def create_alerts_blueprint(engine: Engine,
                            clock: Callable[[], datetime] | None = None) -> Blueprint:
    api = Blueprint("alerts_api", __name__, url_prefix="/api/alerts")
    now = clock or (lambda: datetime.now(UTC))

    def guarded(produce: Callable[[], Any]) -> Any:
        try:
            return produce()
        except BadParameter as exc:
            return jsonify({"error": str(exc)}), 400
        except SQLAlchemyError:
            return jsonify({"error": "the error store cannot be read right now"}), 503

    @api.get("")
    def alerts():  # type: ignore[no-untyped-def]
        def produce() -> Any:
            state = request.args.get("state") or "firing"
            if state not in ("firing", "resolved", "all"):
                raise BadParameter(
                    f"state must be one of firing, resolved, all, got {state[:50]!r}")
            return jsonify(list_alerts(engine, state, int_param("limit", 200, 1, 1000)))
        return guarded(produce)

    @api.get("/silences")
    def silences():  # type: ignore[no-untyped-def]
        def produce() -> Any:
            raw = (request.args.get("expired") or "false").lower()
            if raw not in ("true", "false"):
                raise BadParameter(f"expired must be true or false, got {raw[:20]!r}")
            return jsonify(list_silences(engine, now(), active_only=raw == "false"))
        return guarded(produce)

    @api.post("/silences")
    def new_silence():  # type: ignore[no-untyped-def]
        def produce() -> Any:
            fields = parse_silence(request.get_json(silent=True), now())
            return jsonify(add_silence(engine, now=now(), **fields)), 201
        return guarded(produce)

    @api.delete("/silences/<silence_id>")
    def end_silence(silence_id: str):  # type: ignore[no-untyped-def]
        def produce() -> Any:
            if not delete_silence(engine, silence_id[:64]):
                return jsonify({"error": f"no silence with id {silence_id[:64]!r}"}), 404
            return "", 204
        return guarded(produce)

    return api
