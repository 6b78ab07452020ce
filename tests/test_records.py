"""`new_event` is a faster `ErrorEvent(...)`: the same object in every respect."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from queries.records import ErrorEvent, new_event


def test_new_event_equals_the_dataclass_built_one():
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    values = ("id-1", "ValueError", "boom", None, "error", "pattern", "TickStockPL", "C", None,
              "AAPL", {"k": [1, 2]}, moment, moment, "f" * 40)
    fast, slow = new_event(*values), ErrorEvent(*values)
    assert fast == slow and repr(fast) == repr(slow) and type(fast) is ErrorEvent
    assert dataclasses.astuple(fast) == (*values, False)  # is_test defaults to False
    marked = (*values, True)
    assert new_event(*marked) == ErrorEvent(*marked) and new_event(*marked).is_test
    assert new_event(*values[:-1]) == ErrorEvent(*values[:-1])  # fingerprint defaults to None
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.severity = "info"
