"""Which stored rows count: the one rule every count, health and chart of errors applies.

Test traffic (`is_test`: category `test`, or `context.test` true) is stored and shown as
test, but stays out of counts, statistics, health, trends and group strips unless a caller
asks for it. Windows such as "the last 5 minutes" are on the time received (`received_at`),
never on the producer's clock, which may be hours off (CONTRACT.md §1).

Kept apart so that a later store of pre-counted rollups (issue 12) has one place to follow.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.sql.elements import ColumnElement

from queries.schema import error_logs

# The time that "recent", "the last N minutes" and the rollups' buckets are measured on.
RECEIVED = error_logs.c.received_at


def counted(include_test: bool = False) -> list[ColumnElement[bool]]:
    """WHERE conditions of the rows that count: all but test traffic, unless included."""
    return [] if include_test else [error_logs.c.is_test.is_(False)]


def received_since(since: datetime, include_test: bool = False) -> list[ColumnElement[bool]]:
    """The counted rows received at or after `since`."""
    return [RECEIVED >= since, *counted(include_test)]
