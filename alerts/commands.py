"""What people do to alerts, validated once: the REST API and the Alerts page both call these.

A new or ended silence reaches the ingest's alert engine within a few seconds (the alert
keeper reloads silences every 3 s), whichever process or web worker made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from alerts import store
from alerts.catalog import RULES
from queries.validation import BadParameter, iso_time, whole_number

MAX_SILENCE = timedelta(days=90)
MAX_KEY = 300
MAX_REASON = 1000
MAX_CREATOR = 200


@dataclass(frozen=True)
class SilenceRequest:
    """A silence that passed validation: `key` None holds back every key of the rule."""

    rule: str
    key: str | None
    until: datetime
    reason: str = ""
    created_by: str = ""


def silence_request(rule: Any, key: Any, now: datetime, until: Any = None,
                    minutes: Any = None, reason: Any = "", created_by: Any = ""
                    ) -> SilenceRequest:
    """Check a silence's fields; `until` (aware, or ISO-8601 text) or `minutes` says when
    it ends."""
    if rule not in RULES:
        raise BadParameter(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    if key is not None and (not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY):
        raise BadParameter(f"key must be a non-empty string of at most {MAX_KEY} characters")
    if until in ("", None):
        until = None
    elif not isinstance(until, datetime):
        until = iso_time(until, "until")
    if until is None:
        if minutes in (None, ""):
            raise BadParameter("give until (an ISO-8601 time) or minutes")
        minutes = whole_number(minutes, "minutes", 1)
        until = now + timedelta(minutes=min(minutes, int(MAX_SILENCE.total_seconds() // 60)))
    if until <= now:
        raise BadParameter("until must be in the future")
    if until - now > MAX_SILENCE:
        raise BadParameter("a silence lasts at most 90 days")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise BadParameter(f"reason must be a string of at most {MAX_REASON} characters")
    if not isinstance(created_by, str) or len(created_by) > MAX_CREATOR:
        raise BadParameter(f"createdBy must be a string of at most {MAX_CREATOR} characters")
    return SilenceRequest(rule, key, until, reason, created_by)


def add_silence(engine: Engine, request: SilenceRequest, now: datetime) -> dict[str, Any]:
    """Store the silence; its JSON as `GET /api/alerts/silences` lists it."""
    return store.add_silence(engine, request.rule, request.key, request.until, request.reason,
                             request.created_by, now=now)


def end_silence(engine: Engine, silence_id: str) -> bool:
    """End a silence now; False when there was none by that id (already ended)."""
    return store.delete_silence(engine, silence_id[:64])
