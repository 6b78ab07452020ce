"""REST routes for error groups (CONTRACT.md §4): list, one group, and triage; validation is
groups/commands.py's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.engine import Engine

from dashboard.params import MAX_HOURS, choice_param, int_param
from groups import commands
from groups.catalog import STATES
from groups.hook import GroupNotFound
from groups.reads import SORTS, group_detail, list_groups
from queries.validation import BadParameter


def parse_state_change(body: Any, now: datetime) -> commands.StateRequest:
    """A POST body `{"state": ..., "until": ISO time, "count": N}` as a checked request."""
    if not isinstance(body, dict):
        raise BadParameter("the body must be a JSON object like {\"state\": \"resolved\"}")
    return commands.state_request(body.get("state"), now, until=body.get("until"),
                                  count=body.get("count"))


def create_groups_blueprint(engine: Engine,
                            clock: Callable[[], datetime] | None = None) -> Blueprint:
    api = Blueprint("groups_api", __name__, url_prefix="/api/groups")
    now = clock or (lambda: datetime.now(UTC))

    @api.errorhandler(GroupNotFound)
    def not_found(exc: GroupNotFound) -> tuple[Response, int]:
        return jsonify({"error": f"no group with fingerprint {str(exc)[:64]!r}"}), 404

    @api.get("")
    def groups() -> Response:
        q = request.args.get("q") or None
        if q is not None and len(q) > 200:
            raise BadParameter("q must be at most 200 characters")
        return jsonify(list_groups(
            engine, state=choice_param("state", STATES, None),
            hours=int_param("hours", 0, 0, MAX_HOURS) or None, q=q,
            sort=choice_param("sort", list(SORTS), "last_seen") or "last_seen",
            limit=int_param("limit", 100, 1, 1000), now=now()))

    @api.get("/<fingerprint>")
    def one_group(fingerprint: str) -> Response:
        found = group_detail(engine, fingerprint, now=now())
        if found is None:
            raise GroupNotFound(fingerprint)
        return jsonify(found)

    def change(fingerprints: list[str], body: Any) -> Response:
        state = parse_state_change(body, now())
        commands.change_states(engine, fingerprints, state, now())
        return jsonify({"fingerprints": fingerprints, "state": state.state})

    @api.post("/<fingerprint>/state")
    def group_state(fingerprint: str) -> Response:
        return change([fingerprint], request.get_json(silent=True))

    @api.post("/state")
    def bulk_state() -> Response:
        body = request.get_json(silent=True)
        fingerprints = commands.fingerprint_list(
            body.get("fingerprints") if isinstance(body, dict) else None)
        return change(fingerprints, body)

    return api
