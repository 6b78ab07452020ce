"""Which messages group together, and which must not."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groups.fingerprint import _mask_line, fingerprint, mask
from groups.hook import group_title
from tests.factories import event

SAME = [
    ("failed for AAPL after 3 retries", "failed for MSFT after 5 retries"),
    ("RSI needs 14 periods, got 9", "RSI needs 14 periods, got 11"),
    ("timeout after 30.5 s", "timeout after 2 s"),
    ("order 0x7f3a9c not found", "order 0x11ff not found"),
    ("job 5f0c2b9e-1d7a-4c1e-9d35-2b1f7f0e9a44 failed",
     "job 0b5a7a3e-2d7a-4c1e-9d35-aaaaaaaaaaaa failed"),
    ("request deadbeef42 failed", "request 0123abcd99 failed"),
    ("bad value 'abc' in column 'open'", "bad value 'xyz' in column 'close'"),
    ('missing key "volume"', 'missing key "high"'),
    ("bar at 2024-10-30T12:00:00Z is late", "bar at 2025-01-02 09:31:00 is late"),
    ("high < low for bar at 09:31", "high < low for bar at 15:59"),
    ("connection to server at 10.0.0.5 failed", "connection to server at 10.0.0.17 failed"),
    ("Polygon returned 429 for symbol=TSLA", "Polygon returned 429 for symbol=NVDA"),
    ("first line\nTraceback detail 1", "first line\nother detail"),
]
DIFFERENT = [
    ("Pattern detection failed for Doji", "Pattern detection failed for Hammer"),
    ("connection refused", "connection reset"),
    ("RSI needs more data", "MACD needs more data"),
    ("insufficient data", "invalid data"),
]


@pytest.mark.parametrize("first, second", SAME)
def test_messages_that_differ_only_in_variable_parts_group_together(first, second):
    assert fingerprint(event(error_message=first, symbol=None)) == \
        fingerprint(event(error_message=second, symbol=None)), (mask(first), mask(second))


@pytest.mark.parametrize("first, second", DIFFERENT)
def test_different_problems_do_not_group(first, second):
    assert fingerprint(event(error_message=first)) != fingerprint(event(error_message=second))


def test_the_events_own_symbol_is_masked_wherever_it_appears():
    a = event(error_message="AAPL bars missing", symbol="AAPL")
    b = event(error_message="MSFT bars missing", symbol="MSFT")
    assert fingerprint(a) == fingerprint(b)


@pytest.mark.parametrize("field, other", [
    ("error_type", "OtherError"), ("category", "network"), ("component", "Other"),
    ("operation", "other_op")])
def test_type_category_component_and_operation_split_groups(field, other):
    assert fingerprint(event()) != fingerprint(event(**{field: other}))


def test_an_explicit_fingerprint_wins():
    a = event(error_message="one thing", context={"fingerprint": "import-job-42"})
    b = event(error_message="something else", category="network",
              context={"fingerprint": "import-job-42"})
    c = event(error_message="one thing", context={"fingerprint": "import-job-43"})
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)
    assert fingerprint(a) != fingerprint(event(error_message="one thing"))


def test_an_explicit_list_can_extend_the_default():
    base = {"fingerprint": ["{{ default }}", "daily"]}
    a = event(error_message="failed for AAPL after 3 retries", symbol=None, context=base)
    b = event(error_message="failed for MSFT after 9 retries", symbol=None, context=base)
    c = event(error_message="failed for MSFT after 9 retries", symbol=None,
              context={"fingerprint": ["{{ default }}", "minute"]})
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)


def test_title_is_type_and_first_line():
    assert group_title(event(error_type="PolygonAPIError", error_message="429\nmore")) == \
        "PolygonAPIError: 429"
    assert group_title(event(error_type=None, category="network", error_message="")) == \
        "network: (no message)"


def test_normalised_events_carry_their_group_and_a_top_level_fingerprint_wins():
    from datetime import UTC, datetime

    import orjson

    from ingest.normalise import normalise

    now = datetime.now(UTC)
    a = normalise(orjson.dumps({"message": "failed for AAPL after 3 retries"}), now)
    b = normalise(orjson.dumps({"message": "failed for MSFT after 7 retries"}), now)
    c = normalise(orjson.dumps({"message": "anything", "fingerprint": ["nightly-import"]}), now)
    d = normalise(orjson.dumps({"message": "else", "fingerprint": ["nightly-import"]}), now)
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 40
    assert c.fingerprint == d.fingerprint != a.fingerprint
    assert c.context["fingerprint"] == ["nightly-import"]


_DIGIT_HEAVY = st.text(alphabet="0123456789abcfxAZ :-.,'TLS_", max_size=40)


@settings(max_examples=600, deadline=None)
@given(line=st.one_of(_DIGIT_HEAVY, st.text(max_size=60)),
       symbol=st.one_of(st.none(), st.sampled_from(["AAPL", "BRK.B", "ES2", "X10", "A"])))
def test_masking_by_template_gives_what_masking_the_line_itself_gives(line, symbol):
    """mask() remembers one masked form per template of digits; it must never differ from
    the rules run on the line itself (a digit inside a word, "0x", a symbol with digits)."""
    first_line = line.strip().splitlines()[0] if line.strip() else ""
    assert mask(line, symbol) == _mask_line(first_line, symbol)


@pytest.mark.parametrize("first, second", [
    ("contract ES2 expired", "contract ES3 expired"),  # digits inside a word are kept
    ("order 0x12 missing", "order 1x12 missing"),
])
def test_digits_the_rules_keep_still_tell_messages_apart(first, second):
    assert mask(first) != mask(second)
