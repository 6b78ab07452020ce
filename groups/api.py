"""REST routes for error groups (CONTRACT.md §4): list, one group, and triage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashboard.api import MAX_HOURS, BadParameter, int_param
from groups.hook import SETTABLE_STATES, STATES, GroupNotFound, set_state
from groups.reads import SORTS, group_detail, list_groups

MAX_BULK = 500


def _choice(name: str, allowed: tuple[str, ...] | list[str], default: str | None) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if raw not in allowed:
        raise BadParameter(f"{name} must be one of {', '.join(allowed)}, got {raw[:50]!r}")
    return raw


def parse_state_change(body: Any, now: datetime) -> tuple[str, datetime | None, int | None]:
    """Validate `{"state": ..., "until": ISO time, "count": N}`; BadParameter says what is wrong."""
    if not isinstance(body, dict):
        raise BadParameter("the body must be a JSON object like {\"state\": \"resolved\"}")
    state = body.get("state")
    if state not in SETTABLE_STATES:
        raise BadParameter(f"state must be one of {', '.join(SETTABLE_STATES)}, got {state!r}")
    until = count = None
    if body.get("until") not in (None, ""):
        if state != "ignored":
            raise BadParameter("until goes with state ignored only")
        try:
            until = datetime.fromisoformat(str(body["until"]).replace("Z", "+00:00"))
        except ValueError:
            raise BadParameter(f"until must be an ISO-8601 time, got {body['until']!r}") from None
        until = until.replace(tzinfo=UTC) if until.tzinfo is None else until.astimezone(UTC)
        if until <= now:
            raise BadParameter("until must be in the future")
    if body.get("count") not in (None, ""):
        if state != "ignored":
            raise BadParameter("count goes with state ignored only")
        count = body["count"]
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10**9:
            raise BadParameter(f"count must be a whole number from 1 to 1000000000, got {count!r}")
    return state, until, count


def create_groups_blueprint(engine: Engine,
                            clock: Callable[[], datetime] | None = None) -> Blueprint:
    api = Blueprint("groups_api", __name__, url_prefix="/api/groups")
    now = clock or (lambda: datetime.now(UTC))

    def guarded(produce: Callable[[], Any]) -> Any:
        try:
            return produce()
        except BadParameter as exc:
            return jsonify({"error": str(exc)}), 400
        except GroupNotFound as exc:
            return jsonify({"error": f"no group with fingerprint {str(exc)[:64]!r}"}), 404
        except SQLAlchemyError:
            return jsonify({"error": "the error store cannot be read right now"}), 503

    @api.get("")
    def groups():  # type: ignore[no-untyped-def]
        def produce() -> Any:
            q = request.args.get("q") or None
            if q is not None and len(q) > 200:
                raise BadParameter("q must be at most 200 characters")
            return jsonify(list_groups(
                engine, state=_choice("state", STATES, None),
                hours=int_param("hours", 0, 0, MAX_HOURS) or None, q=q,
                sort=_choice("sort", list(SORTS), "last_seen") or "last_seen",
                limit=int_param("limit", 100, 1, 1000), now=now()))
        return guarded(produce)

    @api.get("/<fingerprint>")
    def one_group(fingerprint: str):  # type: ignore[no-untyped-def]
        def produce() -> Any:
            found = group_detail(engine, fingerprint, now=now())
            if found is None:
                raise GroupNotFound(fingerprint)
            return jsonify(found)
        return guarded(produce)

    def change(fingerprints: list[str], body: Any) -> Any:
        state, until, count = parse_state_change(body, now())
        with engine.begin() as conn:
            raw = conn.connection.dbapi_connection
            for fingerprint in fingerprints:
                set_state(raw, engine.dialect.name, fingerprint, state, now(), until, count)
        return jsonify({"fingerprints": fingerprints, "state": state})

    @api.post("/<fingerprint>/state")
    def group_state(fingerprint: str):  # type: ignore[no-untyped-def]
        return guarded(lambda: change([fingerprint], request.get_json(silent=True)))

    @api.post("/state")
    def bulk_state():  # type: ignore[no-untyped-def]
        def produce() -> Any:
            body = request.get_json(silent=True)
            fingerprints = body.get("fingerprints") if isinstance(body, dict) else None
            if not isinstance(fingerprints, list) or not fingerprints or \
                    not all(isinstance(f, str) for f in fingerprints):
                raise BadParameter("fingerprints must be a non-empty list of strings")
            if len(fingerprints) > MAX_BULK:
                raise BadParameter(f"at most {MAX_BULK} fingerprints at once")
            return change(fingerprints, body)
        return guarded(produce)

    return api
