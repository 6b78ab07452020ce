"""Query parameters of the REST routes, read once and checked: each bad one raises
`BadParameter` with the words the 400 answers (dashboard/errors.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import request

from queries.records import as_utc
from queries.validation import BadParameter

MAX_HOURS = 24 * 366


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
    return as_utc(moment)


def choice_param(name: str, choices: tuple[str, ...] | list[str], default: str | None
                 ) -> str | None:
    """One of `choices`, or `default` when absent."""
    raw = (request.args.get(name) or "").strip()
    if raw == "":
        return default
    if raw not in choices:
        raise BadParameter(f"{name} must be one of {', '.join(choices)}, got {raw[:50]!r}")
    return raw


def test_param() -> bool:
    """`test=true`: include test traffic, which lists and counts leave out by default."""
    return choice_param("test", ("true", "false"), "false") == "true"
