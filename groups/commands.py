"""What people do to error groups, validated once: resolve, ignore (for good, until a time,
until N more events) and reopen. The REST API and the Groups page both call these, all or
nothing for a batch of groups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from groups.catalog import SETTABLE_STATES
from groups.hook import GroupNotFound
from queries.schema import error_groups
from queries.validation import BadParameter, iso_time, whole_number

MAX_BULK = 500
MAX_IGNORE_COUNT = 10**9


@dataclass(frozen=True)
class StateRequest:
    """A triage step that passed validation; `until` and `count` go with `ignored` only."""

    state: str
    until: datetime | None = None
    count: int | None = None


def state_request(state: Any, now: datetime, until: Any = None, count: Any = None
                  ) -> StateRequest:
    """Check a state change; `until` is an aware time or ISO-8601 text, `count` a number."""
    if state not in SETTABLE_STATES:
        raise BadParameter(f"state must be one of {', '.join(SETTABLE_STATES)}, got {state!r}")
    if until in (None, ""):
        until = None
    else:
        if state != "ignored":
            raise BadParameter("until goes with state ignored only")
        if not isinstance(until, datetime):
            until = iso_time(until, "until")
        if until <= now:
            raise BadParameter("until must be in the future")
    if count in (None, ""):
        count = None
    else:
        if state != "ignored":
            raise BadParameter("count goes with state ignored only")
        count = whole_number(count, "count", 1, MAX_IGNORE_COUNT,
                             wanted=f"a whole number from 1 to {MAX_IGNORE_COUNT}")
    return StateRequest(state, until, count)


def fingerprint_list(fingerprints: Any) -> list[str]:
    """The groups of a bulk change: a non-empty list of at most MAX_BULK strings."""
    if not isinstance(fingerprints, list) or not fingerprints or \
            not all(isinstance(f, str) for f in fingerprints):
        raise BadParameter("fingerprints must be a non-empty list of strings")
    if len(fingerprints) > MAX_BULK:
        raise BadParameter(f"at most {MAX_BULK} fingerprints at once")
    return fingerprints


def change_states(engine: Engine, fingerprints: Sequence[str], request: StateRequest,
                  now: datetime) -> None:
    """Apply `request` to every group in one transaction; GroupNotFound (nothing changed)
    when one of them does not exist."""
    with engine.begin() as conn:
        for fingerprint in fingerprints:
            _set_state(conn, fingerprint, request, now)


def _set_state(conn: Connection, fingerprint: str, request: StateRequest, now: datetime) -> None:
    # FOR UPDATE (PostgreSQL; SQLite locks the whole file anyway): a batch writer adding
    # events at the same moment must not count past an "ignore until N more" it cannot see.
    count = conn.execute(select(error_groups.c.event_count)
                         .where(error_groups.c.fingerprint == fingerprint)
                         .with_for_update()).scalar()
    if count is None:
        raise GroupNotFound(fingerprint)
    ignored = request.state == "ignored"
    conn.execute(update(error_groups).where(error_groups.c.fingerprint == fingerprint).values(
        state=request.state, state_changed_at=now,
        ignore_until=request.until if ignored else None,
        ignore_until_count=count + request.count if ignored and request.count else None,
        resolved_at=now if request.state == "resolved" else None))
