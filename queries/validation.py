"""What every command and route says when an input cannot be used.

`BadParameter`'s text is what the user reads: the API answers it as a 400's `error` (one
Flask error handler, dashboard/errors.py), a page shows it in its form.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from queries.records import as_utc


class BadParameter(ValueError):
    """An input a command or route cannot use; its text says what is wrong."""


def iso_time(raw: Any, name: str) -> datetime:
    """An ISO-8601 time (a `Z` or no zone means UTC) as an aware UTC datetime."""
    try:
        return as_utc(datetime.fromisoformat(str(raw).replace("Z", "+00:00")))
    except ValueError:
        raise BadParameter(f"{name} must be an ISO-8601 time, got {raw!r}") from None


def whole_number(value: Any, name: str, low: int, high: int | None = None,
                 wanted: str | None = None) -> int:
    """`value` if it is an int (not a bool) within [low, high]; `wanted` words the error."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or \
            (high is not None and value > high):
        what = wanted or (f"a whole number from {low} to {high}" if high is not None
                          else f"a whole number of at least {low}")
        raise BadParameter(f"{name} must be {what}, got {value!r}")
    return value
