"""`ingest.normalise.normalise()` against CONTRACT.md §1: the three message shapes, the samples,
and one named test per normalisation rule, then property tests that nothing ever raises.

Pure functions only: no database, no Redis.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.normalise import Limits, NotAnError, normalise, normalise_channel_event
from queries.records import (
    CATEGORIES,
    COLUMN_LIMITS,
    DEAD_LETTER_RAW_LIMIT,
    SEVERITIES,
    ErrorEvent,
    Rejection,
)

RECEIVED = datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
SAMPLES = Path("/work/shared/samples/messages.jsonl")
KIB = 1024
DEFAULT_LIMITS = Limits()
TEXT_COLUMNS = ("error_type", "source", "component", "operation", "symbol")


# ---------------------------------------------------------------------------------------------
# helpers


def _encode(document: Any) -> bytes:
    return json.dumps(document).encode("utf-8")


def event_of(document: Any, limits: Limits = DEFAULT_LIMITS, received: datetime = RECEIVED
             ) -> ErrorEvent:
    """Normalise a document (or raw bytes/str) and insist that it became an event."""
    raw = document if isinstance(document, (bytes, str)) else _encode(document)
    result = normalise(raw, received, limits)
    assert isinstance(result, ErrorEvent), f"expected an event, got {result!r}"
    assert_valid_event(result, limits)
    return result


def rejection_of(raw: bytes | str, limits: Limits = DEFAULT_LIMITS) -> Rejection:
    result = normalise(raw, RECEIVED, limits)
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    assert_valid_rejection(result)
    return result


def _walk_json(value: Any) -> None:
    """Everything in a context must be storable as JSONB: no NUL, no lone surrogate, finite.

    Iterative, so that a deeply nested context fails on its content, not on this walk."""
    stack: list[tuple[Any, str]] = [(value, "context")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            assert "\x00" not in item, f"NUL in {path}"
            item.encode("utf-8")  # raises on a lone surrogate
        elif isinstance(item, dict):
            for key, child in item.items():
                assert isinstance(key, str), f"non-text key {key!r} in {path}"
                stack.append((key, f"{path} key {key!r}"))
                stack.append((child, f"{path}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
        elif isinstance(item, float):
            assert math.isfinite(item), f"non-finite number in {path}"
        else:
            assert item is None or isinstance(item, (bool, int)), f"{type(item)} in {path}"


def _check_text(name: str, value: str | None) -> None:
    if value is None:
        return
    assert isinstance(value, str), f"{name} is {type(value)}"
    assert "\x00" not in value, f"NUL in {name}"
    value.encode("utf-8")  # no lone surrogates


def assert_valid_event(event: ErrorEvent, limits: Limits = DEFAULT_LIMITS) -> None:
    """The invariants every stored event keeps, whatever came in."""
    assert isinstance(event.error_id, str) and event.error_id
    for name in ("error_id", *TEXT_COLUMNS):
        value = getattr(event, name)
        _check_text(name, value)
        if value is not None:
            assert len(value) <= COLUMN_LIMITS[name], f"{name} is {len(value)} characters"
    assert event.source  # never empty: defaults to TickStockPL
    for name in ("error_message", "error_traceback"):
        value = getattr(event, name)
        _check_text(name, value)
        if value is not None:
            assert len(value.encode("utf-8")) <= limits.max_text_bytes
    assert isinstance(event.error_message, str)
    assert event.severity in SEVERITIES
    assert event.category in CATEGORIES
    assert isinstance(event.context, dict)
    _walk_json(event.context)
    json.dumps(event.context, allow_nan=False)
    assert event.timestamp.tzinfo is not None
    assert event.received_at == RECEIVED or event.received_at.tzinfo is not None


def assert_valid_rejection(rejection: Rejection) -> None:
    assert rejection.reason
    assert "\x00" not in rejection.raw
    assert len(rejection.raw.encode("utf-8")) <= DEAD_LETTER_RAW_LIMIT
    assert rejection.received_at == RECEIVED


def producer_message(**fields: Any) -> dict[str, Any]:
    """The first shape of CONTRACT.md §1; keyword arguments override or add fields."""
    document: dict[str, Any] = {
        "error_id": "PatternDetector_detect_doji_1730300000.123",
        "error_type": "PatternDetectionError",
        "error_message": "Pattern detection failed for Doji: Insufficient data",
        "error_traceback": "Traceback (most recent call last): ...",
        "severity": "error",
        "category": "pattern",
        "context": {
            "component": "PatternDetector", "operation": "detect_doji",
            "symbol": "AAPL", "timeframe": "daily", "metadata": {},
            "timestamp": "2024-10-30T12:00:00",
        },
        "timestamp": "2024-10-30T12:00:00",
    }
    document.update(fields)
    return document


def without(document: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in keys}


def shared_message(**fields: Any) -> dict[str, Any]:
    """The shared `ErrorMessage` shape."""
    document: dict[str, Any] = {
        "error_id": "5f0c2b9e-1d7a-4c1e-9d35-2b1f7f0e9a44",
        "source": "TickStockPL",
        "severity": "error",
        "category": "redis",
        "message": "Redis publish failed: connection reset",
        "component": "EventPublisher",
        "traceback": "Traceback (most recent call last): ...",
        "context": {"symbol": "AAPL", "attempt": 3},
        "timestamp": "2025-09-25T14:03:11.482913",
    }
    document.update(fields)
    return document


def envelope(event: str = "critical_error", **payload_fields: Any) -> dict[str, Any]:
    """The job runners' event envelope."""
    payload: dict[str, Any] = {
        "severity": "critical", "component": "data_import", "error_code": "API_RATE_LIMIT",
        "message": "API rate limit hit", "context": {"symbol": "AAPL", "retry_after": 60},
        "recovery_action": "automatic_retry",
    }
    payload.update(payload_fields)
    return {"event": event, "timestamp": "2025-01-26T21:20:00Z", "source": "daily_import_job",
            "version": "1.0", "payload": payload}


# ---------------------------------------------------------------------------------------------
# the three shapes


def test_producer_shape_maps_every_field() -> None:
    event = event_of(producer_message())
    assert event.error_id == "PatternDetector_detect_doji_1730300000.123"
    assert event.error_type == "PatternDetectionError"
    assert event.error_message == "Pattern detection failed for Doji: Insufficient data"
    assert event.error_traceback == "Traceback (most recent call last): ..."
    assert event.severity == "error"
    assert event.category == "pattern"
    assert event.source == "TickStockPL"
    assert event.component == "PatternDetector"
    assert event.operation == "detect_doji"
    assert event.symbol == "AAPL"
    assert event.context == {
        "component": "PatternDetector", "operation": "detect_doji", "symbol": "AAPL",
        "timeframe": "daily", "metadata": {}, "timestamp": "2024-10-30T12:00:00",
    }
    assert event.timestamp == datetime(2024, 10, 30, 12, 0, tzinfo=UTC)
    assert event.received_at == RECEIVED


def test_shared_shape_message_and_traceback_become_error_message_and_traceback() -> None:
    event = event_of(shared_message())
    assert event.error_message == "Redis publish failed: connection reset"
    assert event.error_traceback == "Traceback (most recent call last): ..."
    assert event.error_id == "5f0c2b9e-1d7a-4c1e-9d35-2b1f7f0e9a44"
    assert event.severity == "error"
    assert event.category == "redis"
    assert event.symbol == "AAPL"
    assert event.context == {"symbol": "AAPL", "attempt": 3}
    assert event.timestamp == datetime(2025, 9, 25, 14, 3, 11, 482913, tzinfo=UTC)


def test_shared_shape_top_level_component_is_the_component() -> None:
    assert event_of(shared_message()).component == "EventPublisher"


def test_shared_shape_source_is_kept() -> None:
    assert event_of(shared_message(source="TickStockAppV2")).source == "TickStockAppV2"


def test_missing_source_defaults_to_tickstockpl() -> None:
    assert event_of(without(shared_message(), "source")).source == "TickStockPL"
    assert event_of(shared_message(source=None)).source == "TickStockPL"
    assert event_of(shared_message(source="  ")).source == "TickStockPL"


def test_missing_error_type_stays_empty() -> None:
    assert event_of(shared_message()).error_type is None
    assert event_of(producer_message(error_type="")).error_type is None


def test_error_message_wins_over_message_when_both_are_present() -> None:
    event = event_of(producer_message(message="the other one", traceback="other tb"))
    assert event.error_message == "Pattern detection failed for Doji: Insufficient data"
    assert event.error_traceback == "Traceback (most recent call last): ..."


def test_message_is_taken_when_error_message_is_empty_or_null() -> None:
    assert event_of(shared_message(error_message=None)).error_message.startswith("Redis")
    assert event_of(shared_message(error_message="")).error_message.startswith("Redis")


def test_minimal_message_is_normal() -> None:
    event = event_of({"severity": "warning", "message": "slow query", "category": "database",
                      "component": "Db", "context": {"ms": 900}})
    assert (event.severity, event.category, event.component) == ("warning", "database", "Db")
    assert event.error_message == "slow query"
    assert event.error_traceback is None
    assert event.error_type is None
    assert event.source == "TickStockPL"
    assert event.error_id.startswith("derived-")
    assert event.timestamp == RECEIVED
    assert event.context == {"ms": 900}


def test_empty_object_is_stored_with_every_default() -> None:
    event = event_of({})
    assert event.severity == "error"
    assert event.category == "unknown"
    assert event.error_message == ""
    assert event.context == {}
    assert event.timestamp == RECEIVED
    assert event.error_id.startswith("derived-")


def test_envelope_fields_are_read_from_the_payload() -> None:
    event = event_of(envelope())
    assert event.severity == "critical"
    assert event.component == "data_import"
    assert event.error_message == "API rate limit hit"
    assert event.symbol == "AAPL"
    assert event.source == "daily_import_job"
    assert event.timestamp == datetime(2025, 1, 26, 21, 20, tzinfo=UTC)
    # An envelope carries no category: its error code says it (ERROR_CODE_CATEGORIES).
    assert event.category == "network"
    assert "raw_category" not in event.context


def test_envelope_error_code_is_the_error_type() -> None:
    assert event_of(envelope()).error_type == "API_RATE_LIMIT"


def test_envelope_error_type_wins_over_error_code() -> None:
    assert event_of(envelope(error_type="RateLimitError")).error_type == "RateLimitError"


def test_envelope_payload_error_message_is_accepted() -> None:
    document = envelope()
    del document["payload"]["message"]
    document["payload"]["error_message"] = "quota exhausted"
    assert event_of(document).error_message == "quota exhausted"


def test_envelope_critical_error_without_severity_is_critical() -> None:
    document = envelope()
    del document["payload"]["severity"]
    assert event_of(document).severity == "critical"
    assert event_of(envelope(severity=None)).severity == "critical"
    assert event_of(envelope(severity="")).severity == "critical"


def test_envelope_critical_error_keeps_an_explicit_severity() -> None:
    assert event_of(envelope(severity="warning")).severity == "warning"


@pytest.mark.parametrize("name", ["error", "processing_error"])
def test_envelope_other_events_without_severity_are_error(name: str) -> None:
    document = envelope(name)
    del document["payload"]["severity"]
    event = event_of(document)
    assert event.severity == "error"
    assert event.context["event"] == name


def test_envelope_event_version_and_extra_payload_fields_are_kept_in_context() -> None:
    event = event_of(envelope())
    assert event.context == {"symbol": "AAPL", "retry_after": 60,
                             "recovery_action": "automatic_retry",
                             "event": "critical_error", "version": "1.0"}


def test_envelope_payload_fields_win_over_envelope_fields() -> None:
    event = event_of(envelope(timestamp="2025-01-27T00:00:00Z", source="runner-7",
                              error_id="job-42"))
    assert event.timestamp == datetime(2025, 1, 27, tzinfo=UTC)
    assert event.source == "runner-7"
    assert event.error_id == "job-42"


def test_envelope_error_id_is_read_from_the_envelope_when_the_payload_has_none() -> None:
    document = envelope()
    document["error_id"] = "envelope-id-1"
    assert event_of(document).error_id == "envelope-id-1"


def test_envelope_payload_context_that_is_not_an_object_is_wrapped() -> None:
    event = event_of(envelope(context="rate limited"))
    assert event.context["value"] == "rate limited"
    assert event.context["event"] == "critical_error"


def test_flat_message_with_a_payload_field_is_not_read_as_an_envelope() -> None:
    """A producer message that happens to carry a `payload` object keeps its own fields."""
    event = event_of(producer_message(payload={"bars": 3, "severity": "debug"}))
    assert event.error_message == "Pattern detection failed for Doji: Insufficient data"
    assert event.severity == "error"
    assert event.category == "pattern"
    assert event.error_id == "PatternDetector_detect_doji_1730300000.123"


def test_envelope_with_an_unlisted_event_name_is_still_read_from_its_payload() -> None:
    event = event_of(envelope("job_failed"))
    assert event.error_message == "API rate limit hit"
    assert event.context["event"] == "job_failed"


def _sample_lines() -> list[str]:
    return [line for line in SAMPLES.read_text("utf-8").splitlines() if line.strip()]


@pytest.mark.skipif(not SAMPLES.exists(), reason="shared samples not present")
def test_samples_file_is_not_empty() -> None:
    assert len(_sample_lines()) >= 9


@pytest.mark.skipif(not SAMPLES.exists(), reason="shared samples not present")
@pytest.mark.parametrize("index", range(len(_sample_lines()) if SAMPLES.exists() else 0))
def test_sample_message_normalises_with_its_own_severity_and_category(index: int) -> None:
    line = _sample_lines()[index]
    document = json.loads(line)
    fields = document["payload"] if isinstance(document.get("payload"), dict) else document
    event = event_of(line.encode("utf-8"))
    assert event.severity == str(fields.get("severity") or "error").lower()
    assert event.category == str(fields.get("category") or "unknown").lower()
    assert "raw_severity" not in event.context
    assert "raw_category" not in event.context
    if fields.get("error_id"):
        assert event.error_id == fields["error_id"]
    assert event.error_message


@pytest.mark.skipif(not SAMPLES.exists(), reason="shared samples not present")
def test_samples_have_distinct_error_ids() -> None:
    ids = [event_of(line.encode()).error_id for line in _sample_lines()]
    assert len(set(ids)) == len(ids)


# ---------------------------------------------------------------------------------------------
# decoding and rejection


def test_invalid_utf8_is_decoded_with_replacement_characters() -> None:
    raw = b'{"severity": "error", "error_message": "bad \xff\xfe bytes \xc3"}'
    event = event_of(raw)
    assert event.error_message == "bad \ufffd\ufffd bytes \ufffd"


def test_invalid_utf8_in_a_key_is_replaced_too() -> None:
    event = event_of(b'{"context": {"k\xff": "v"}}')
    assert event.context == {"k\ufffd": "v"}


def test_invalid_utf8_that_is_not_json_is_rejected_with_replacement_characters() -> None:
    rejection = rejection_of(b"\xff\xfe not json")
    assert rejection.raw.startswith("\ufffd\ufffd")
    assert rejection.raw_bytes == len(b"\xff\xfe not json")


@pytest.mark.parametrize("raw", [b"", b"   ", b"hello", b"{", b'{"a": 1', b"{'a': 1}",
                                 b'{"a": 1} {"b": 2}', b'{"a": 1,}', b"<html></html>"])
def test_not_json_is_rejected_with_a_reason(raw: bytes) -> None:
    rejection = rejection_of(raw)
    assert "JSON" in rejection.reason
    assert rejection.raw == raw.decode()
    assert rejection.raw_bytes == len(raw)
    assert rejection.error_id is None


@pytest.mark.parametrize(("raw", "kind"), [
    (b"[1, 2, 3]", "array"), (b"[]", "array"), (b'[{"severity": "error"}]', "array"),
    (b"42", "int"), (b"4.5", "float"), (b'"just text"', "str"), (b"null", "NoneType"),
    (b"true", "bool"),
])
def test_json_that_is_not_an_object_is_rejected_with_a_reason(raw: bytes, kind: str) -> None:
    rejection = rejection_of(raw)
    assert "not an object" in rejection.reason
    assert kind in rejection.reason
    assert rejection.raw == raw.decode()


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_and_are_rejected(constant: str) -> None:
    rejection = rejection_of(f'{{"severity": "error", "context": {{"x": {constant}}}}}'.encode())
    assert "JSON" in rejection.reason


def test_number_too_large_for_a_double_is_never_stored_as_infinity() -> None:
    event = event_of(b'{"error_message": "m", "context": {"x": 1e400, "y": -1e400}}')
    assert event.error_message == "m"
    assert set(event.context) == {"x", "y"}  # kept, but as something JSONB can hold


def test_oversize_message_is_rejected_and_dead_letter_keeps_the_first_64_kib() -> None:
    document = producer_message(error_message="x" * (1024 * KIB))
    raw = _encode(document)
    rejection = rejection_of(raw)
    assert "larger than" in rejection.reason
    assert rejection.raw_bytes == len(raw)
    assert rejection.raw == raw[:DEAD_LETTER_RAW_LIMIT].decode()
    assert DEAD_LETTER_RAW_LIMIT == 64 * KIB


def test_oversize_limit_follows_max_message_bytes() -> None:
    raw = _encode(producer_message(error_message="y" * 2000))
    assert isinstance(normalise(raw, RECEIVED, Limits(max_message_bytes=len(raw))), ErrorEvent)
    rejection = rejection_of(raw, Limits(max_message_bytes=len(raw) - 1))
    assert str(len(raw)) in rejection.reason
    assert rejection.raw == raw.decode()


def test_oversize_dead_letter_counts_utf8_bytes_not_characters() -> None:
    """40 000 three-byte characters are 120 000 bytes: the dead letter keeps 64 KiB of them."""
    raw = ('{"error_message": "' + "€" * 40_000 + '"}').encode()
    rejection = rejection_of(raw, Limits(max_message_bytes=100_000))
    kept = rejection.raw.encode("utf-8")
    assert DEAD_LETTER_RAW_LIMIT - 3 < len(kept) <= DEAD_LETTER_RAW_LIMIT
    assert raw.startswith(kept)


def test_oversize_dead_letter_does_not_split_a_character() -> None:
    raw = ("😀" * (300 * KIB)).encode()
    rejection = rejection_of(raw)
    assert rejection.raw == "😀" * (DEAD_LETTER_RAW_LIMIT // 4)


def test_not_json_dead_letter_is_cut_to_64_kib() -> None:
    raw = b"not json " + b"z" * (200 * KIB)
    rejection = rejection_of(raw)
    assert rejection.raw.encode() == raw[:DEAD_LETTER_RAW_LIMIT]


def test_text_input_is_accepted_as_well_as_bytes() -> None:
    event = event_of(json.dumps(producer_message(), ensure_ascii=False))
    assert event.error_id == "PatternDetector_detect_doji_1730300000.123"


def test_integers_beyond_64_bits_are_kept_exactly() -> None:
    big = 2**64 + 1
    huge = -(10**30) - 7
    event = event_of(producer_message(context={"big": big, "huge": huge, "ok": 2**63 - 1},
                                      error_type=big))
    assert event.context["big"] == big
    assert event.context["huge"] == huge
    assert isinstance(event.context["big"], int)
    assert event.context["ok"] == 2**63 - 1
    assert event.error_type == str(big)


def test_integer_error_ids_beyond_64_bits_stay_distinct() -> None:
    first = event_of({"error_id": 2**64 + 1, "error_message": "m"})
    second = event_of({"error_id": 2**64 + 2, "error_message": "m"})
    assert first.error_id == str(2**64 + 1)
    assert second.error_id == str(2**64 + 2)


def test_integer_of_hundreds_of_digits_is_accepted() -> None:
    number = 10**400 + 1
    event = event_of(f'{{"error_message": "m", "context": {{"n": {number}}}}}'.encode())
    assert event.context["n"] == number


def test_lone_surrogate_escape_is_replaced() -> None:
    event = event_of(b'{"error_message": "half \\ud83d of an emoji", "component": "\\udc00x"}')
    assert event.error_message == "half \ufffd of an emoji"
    assert event.component == "\ufffdx"


def test_lone_surrogate_in_a_context_key_is_replaced() -> None:
    event = event_of(b'{"context": {"\\udfff": {"\\ud800k": "\\udbff"}}}')
    _walk_json(event.context)
    assert len(event.context) == 1


def test_surrogate_pair_escape_is_kept_as_one_character() -> None:
    event = event_of(b'{"error_message": "smile \\ud83d\\ude00"}')
    assert event.error_message == "smile 😀"


def test_lone_surrogate_in_text_input_never_reaches_the_dead_letter() -> None:
    rejection = rejection_of("not json \ud800")
    rejection.raw.encode("utf-8")


def _nested(depth: int, leaf: str = "1") -> str:
    return '{"a": ' * depth + leaf + "}" * depth


@pytest.mark.parametrize("depth", [50, 190, 260, 600, 990, 1030, 5000, 100_000])
@pytest.mark.parametrize("leaf", ['"x"', '"\\u0000"', str(2**70), '"\\ud800"'])
def test_deeply_nested_json_is_rejected_or_accepted_but_never_raises(depth: int,
                                                                      leaf: str) -> None:
    raw = ('{"error_id": "deep", "context": ' + _nested(depth, leaf) + "}").encode()
    result = normalise(raw, RECEIVED, Limits())
    if isinstance(result, Rejection):
        assert_valid_rejection(result)
        assert "deep" in result.reason
    else:
        assert_valid_event(result)
        json.dumps(result.context)


@pytest.mark.parametrize("depth", [300, 1030, 100_000])
def test_deeply_nested_arrays_never_raise(depth: int) -> None:
    raw = ('{"context": ' + "[" * depth + "]" * depth + "}").encode()
    result = normalise(raw, RECEIVED, Limits())
    assert isinstance(result, (ErrorEvent, Rejection))


def test_deeply_nested_message_without_error_id_never_raises() -> None:
    raw = ('{"error_message": ' + _nested(800) + "}").encode()
    assert isinstance(normalise(raw, RECEIVED, Limits()), (ErrorEvent, Rejection))


def test_moderately_nested_context_is_accepted() -> None:
    event = event_of(('{"error_id": "nest", "context": ' + _nested(40) + "}").encode())
    assert "a" in event.context


# ---------------------------------------------------------------------------------------------
# severity


def test_missing_severity_becomes_error() -> None:
    event = event_of(without(producer_message(), "severity"))
    assert event.severity == "error"
    assert "raw_severity" not in event.context


@pytest.mark.parametrize("value", [None, ""])
def test_null_or_empty_severity_becomes_error(value: Any) -> None:
    event = event_of(producer_message(severity=value))
    assert event.severity == "error"
    assert "raw_severity" not in event.context


@pytest.mark.parametrize(("value", "expected"), [
    ("ERROR", "error"), ("Warning", "warning"), ("CRITICAL", "critical"), ("Info", "info"),
    ("DEBUG", "debug"), ("  error  ", "error"), ("wArNiNg\n", "warning"),
])
def test_severity_case_and_surrounding_space_are_folded(value: str, expected: str) -> None:
    event = event_of(producer_message(severity=value))
    assert event.severity == expected
    assert "raw_severity" not in event.context


@pytest.mark.parametrize(("value", "expected"), [
    ("WARN", "warning"), ("warn", "warning"), ("fatal", "critical"), ("FATAL", "critical"),
    ("err", "error"), ("ERR", "error"), ("crit", "critical"), ("information", "info"),
    ("trace", "debug"), ("exception", "error"), ("emergency", "critical"),
])
def test_common_severity_aliases_are_folded(value: str, expected: str) -> None:
    event = event_of(producer_message(severity=value))
    assert event.severity == expected
    assert "raw_severity" not in event.context


@pytest.mark.parametrize("value", ["catastrophic", "P1", "sev-2", "  ", "errorr", "high"])
def test_unknown_severity_becomes_error_and_is_kept_in_raw_severity(value: str) -> None:
    event = event_of(producer_message(severity=value))
    assert event.severity == "error"
    assert event.context["raw_severity"] == value
    assert event.context["component"] == "PatternDetector"  # the rest of the context stays


@pytest.mark.parametrize("value", [["error"], {"level": "error"}, 3.5, True, False, 35, -1])
def test_severity_of_a_wrong_type_becomes_error_and_is_kept(value: Any) -> None:
    event = event_of(producer_message(severity=value))
    assert event.severity == "error"
    assert event.context["raw_severity"] == value


@pytest.mark.parametrize(("value", "expected"), [
    (10, "debug"), (20, "info"), (30, "warning"), (40, "error"), (50, "critical"),
])
def test_numeric_logging_levels_are_severities(value: int, expected: str) -> None:
    event = event_of(producer_message(severity=value))
    assert event.severity == expected
    assert "raw_severity" not in event.context


def test_unknown_severity_with_non_object_context_is_kept_next_to_value() -> None:
    event = event_of(producer_message(severity="loud", context="ctx"))
    assert event.context == {"value": "ctx", "raw_severity": "loud"}


# ---------------------------------------------------------------------------------------------
# category


def test_missing_category_becomes_unknown() -> None:
    event = event_of(without(producer_message(), "category"))
    assert event.category == "unknown"
    assert "raw_category" not in event.context


@pytest.mark.parametrize("value", [None, ""])
def test_null_or_empty_category_becomes_unknown(value: Any) -> None:
    event = event_of(producer_message(category=value))
    assert event.category == "unknown"
    assert "raw_category" not in event.context


@pytest.mark.parametrize("value", ["patterns", "market-data", "Polygon", "misc", " "])
def test_category_not_in_the_list_becomes_unknown_and_is_kept_in_raw_category(value: str
                                                                              ) -> None:
    event = event_of(producer_message(category=value))
    assert event.category == "unknown"
    assert event.context["raw_category"] == value


@pytest.mark.parametrize("value", [5, ["pattern"], {"name": "pattern"}, True])
def test_category_of_a_wrong_type_becomes_unknown_and_is_kept(value: Any) -> None:
    event = event_of(producer_message(category=value))
    assert event.category == "unknown"
    assert event.context["raw_category"] == value


@pytest.mark.parametrize("value", CATEGORIES)
def test_every_listed_category_is_accepted(value: str) -> None:
    event = event_of(producer_message(category=value))
    assert event.category == value
    assert "raw_category" not in event.context


@pytest.mark.parametrize(("value", "expected"), [
    ("PATTERN", "pattern"), ("Database", "database"), (" Redis ", "redis"),
    ("WebSocket", "websocket"), ("UNKNOWN", "unknown"),
])
def test_category_case_is_folded(value: str, expected: str) -> None:
    event = event_of(producer_message(category=value))
    assert event.category == expected
    assert "raw_category" not in event.context


# ---------------------------------------------------------------------------------------------
# error_id


def test_missing_error_id_gets_a_stable_id_derived_from_the_content() -> None:
    document = without(producer_message(), "error_id")
    first = event_of(document)
    again = event_of(document, received=RECEIVED + timedelta(minutes=5))
    assert first.error_id.startswith("derived-")
    assert first.error_id == again.error_id


@pytest.mark.parametrize("value", ["", "   ", None, "\u0000"])
def test_empty_error_id_gets_a_derived_id(value: Any) -> None:
    event = event_of(producer_message(error_id=value))
    assert event.error_id.startswith("derived-")
    assert event.error_id == event_of(producer_message(error_id=value)).error_id


def test_derived_id_does_not_depend_on_key_order_or_spacing() -> None:
    document = without(producer_message(), "error_id")
    reordered = dict(reversed(list(document.items())))
    spaced = json.dumps(document, indent=4).encode()
    ids = {event_of(document).error_id, event_of(reordered).error_id, event_of(spaced).error_id}
    assert len(ids) == 1


@pytest.mark.parametrize("change", [
    {"error_message": "Pattern detection failed for Hammer"},
    {"timestamp": "2024-10-30T12:00:01"},
    {"severity": "warning"},
    {"context": {"symbol": "MSFT"}},
])
def test_derived_id_differs_when_the_content_differs(change: dict[str, Any]) -> None:
    document = without(producer_message(), "error_id")
    assert event_of(document).error_id != event_of({**document, **change}).error_id


def test_error_id_is_kept_as_sent() -> None:
    assert event_of(producer_message(error_id="abc-123")).error_id == "abc-123"


@pytest.mark.parametrize(("value", "expected"), [(12345, "12345"), (1.5, "1.5")])
def test_numeric_error_id_becomes_text(value: Any, expected: str) -> None:
    assert event_of(producer_message(error_id=value)).error_id == expected


@pytest.mark.parametrize("value", [["a", "b"], {"id": 1}, True])
def test_error_id_of_a_wrong_type_becomes_text(value: Any) -> None:
    event = event_of(producer_message(error_id=value))
    assert event.error_id and not event.error_id.startswith("derived-")


def test_over_long_error_id_is_cut_to_its_column_and_stays_unique() -> None:
    prefix = "x" * 300
    first = event_of(producer_message(error_id=prefix + "1"))
    second = event_of(producer_message(error_id=prefix + "2"))
    assert len(first.error_id) == COLUMN_LIMITS["error_id"]
    assert len(second.error_id) == COLUMN_LIMITS["error_id"]
    assert first.error_id != second.error_id
    assert first.error_id == event_of(producer_message(error_id=prefix + "1")).error_id
    assert first.context["full_error_id"] == prefix + "1"


def test_error_id_exactly_at_its_column_width_is_not_changed() -> None:
    value = "i" * COLUMN_LIMITS["error_id"]
    event = event_of(producer_message(error_id=value))
    assert event.error_id == value
    assert "full_error_id" not in event.context


def test_huge_error_id_is_cut_without_a_full_copy_in_context() -> None:
    event = event_of(producer_message(error_id="q" * 10_000))
    assert len(event.error_id) == COLUMN_LIMITS["error_id"]
    assert "full_error_id" not in event.context


# ---------------------------------------------------------------------------------------------
# timestamp


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-10-30T14:00:00+02:00", datetime(2024, 10, 30, 12, 0, tzinfo=UTC)),
    ("2024-10-30T07:30:00-04:30", datetime(2024, 10, 30, 12, 0, tzinfo=UTC)),
    ("2024-10-30T12:00:00+00:00", datetime(2024, 10, 30, 12, 0, tzinfo=UTC)),
])
def test_iso_timestamp_with_a_zone_is_converted_to_utc(value: str, expected: datetime) -> None:
    event = event_of(producer_message(timestamp=value))
    assert event.timestamp == expected
    assert event.timestamp.utcoffset() == timedelta(0)
    assert "raw_timestamp" not in event.context


def test_iso_timestamp_with_z_is_utc() -> None:
    event = event_of(producer_message(timestamp="2024-10-30T12:00:00.250Z"))
    assert event.timestamp == datetime(2024, 10, 30, 12, 0, 0, 250000, tzinfo=UTC)


def test_iso_timestamp_without_a_zone_is_utc() -> None:
    event = event_of(producer_message(timestamp="2024-10-30T12:00:00.123456"))
    assert event.timestamp == datetime(2024, 10, 30, 12, 0, 0, 123456, tzinfo=UTC)
    assert event.timestamp.tzinfo is not None


def test_iso_timestamp_with_a_space_separator_is_parsed() -> None:
    event = event_of(producer_message(timestamp="2024-10-30 12:00:00"))
    assert event.timestamp == datetime(2024, 10, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("value", [1730289600, 1730289600.0, "1730289600", " 1730289600 "])
def test_epoch_seconds_are_parsed(value: Any) -> None:
    event = event_of(producer_message(timestamp=value))
    assert event.timestamp == datetime(2024, 10, 30, 12, 0, tzinfo=UTC)
    assert "raw_timestamp" not in event.context


def test_epoch_seconds_with_a_fraction_keep_the_fraction() -> None:
    event = event_of(producer_message(timestamp=1730289600.5))
    assert event.timestamp == datetime(2024, 10, 30, 12, 0, 0, 500000, tzinfo=UTC)
    assert event_of(producer_message(timestamp="1730289600.5")).timestamp == event.timestamp


@pytest.mark.parametrize("value", [1730289600123, "1730289600123", 1730289600123.0])
def test_epoch_milliseconds_are_parsed(value: Any) -> None:
    event = event_of(producer_message(timestamp=value))
    assert abs(event.timestamp - datetime(2024, 10, 30, 12, 0, 0, 123000, tzinfo=UTC)) \
        < timedelta(milliseconds=1)


def test_missing_timestamp_is_the_time_received() -> None:
    event = event_of(without(producer_message(), "timestamp"))
    assert event.timestamp == RECEIVED
    assert "raw_timestamp" not in event.context


def test_null_timestamp_is_the_time_received() -> None:
    event = event_of(producer_message(timestamp=None))
    assert event.timestamp == RECEIVED
    assert "raw_timestamp" not in event.context


@pytest.mark.parametrize("value", [
    "yesterday", "", "   ", "2024-13-45T99:99:99", "12:00", "nan", "inf", "-inf", "1e400",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", 1e300, -1e300, 10**30,
    2**70, 10**400, True, False, [2024, 10, 30], {"ts": 1}, "2024-10-30T12:00:00+25:00",
])
def test_unparseable_timestamp_is_the_time_received_and_kept_in_raw_timestamp(value: Any
                                                                              ) -> None:
    event = event_of(producer_message(timestamp=value))
    assert event.timestamp == RECEIVED
    assert event.context["raw_timestamp"] == value


def test_timestamp_in_context_is_not_the_message_timestamp() -> None:
    event = event_of(without(producer_message(), "timestamp"))
    assert event.timestamp == RECEIVED
    assert event.context["timestamp"] == "2024-10-30T12:00:00"


# ---------------------------------------------------------------------------------------------
# context


def test_missing_context_becomes_an_empty_object() -> None:
    event = event_of(without(producer_message(), "context"))
    assert event.context == {}
    assert event.component is None
    assert event.operation is None
    assert event.symbol is None


def test_null_context_becomes_an_empty_object() -> None:
    assert event_of(producer_message(context=None)).context == {}


@pytest.mark.parametrize("value", ["some text", 5, 2.5, [1, "two"], True, False, ""])
def test_context_that_is_not_an_object_is_wrapped_in_value(value: Any) -> None:
    assert event_of(producer_message(context=value)).context == {"value": value}


def test_context_object_is_kept_whole() -> None:
    context = {"a": [1, {"b": None}], "c": {"d": 1.5}, "e": True}
    assert event_of(producer_message(context=context)).context == context


# ---------------------------------------------------------------------------------------------
# component, operation, symbol


def test_component_operation_symbol_are_read_from_context() -> None:
    event = event_of({"context": {"component": "C", "operation": "op", "symbol": "msft"}})
    assert (event.component, event.operation, event.symbol) == ("C", "op", "MSFT")


def test_top_level_component_operation_symbol_are_accepted() -> None:
    event = event_of({"component": "C", "operation": "op", "symbol": "TSLA", "context": {}})
    assert (event.component, event.operation, event.symbol) == ("C", "op", "TSLA")


def test_top_level_fields_fill_in_when_context_lacks_them() -> None:
    event = event_of({"operation": "top-op", "context": {"component": "ctx-comp"}})
    assert (event.component, event.operation) == ("ctx-comp", "top-op")


def test_context_wins_over_top_level_fields_of_the_same_name() -> None:
    event = event_of({"component": "top", "context": {"component": "ctx"}})
    assert event.component == "ctx"


def test_empty_context_value_falls_back_to_the_top_level_field() -> None:
    event = event_of({"symbol": "NVDA", "context": {"symbol": None}})
    assert event.symbol == "NVDA"
    event = event_of({"symbol": "NVDA", "context": {"symbol": ""}})
    assert event.symbol == "NVDA"


def test_symbol_is_upper_cased() -> None:
    assert event_of({"context": {"symbol": " brk.b "}}).symbol == "BRK.B"


def test_blank_component_is_null() -> None:
    assert event_of({"component": "   "}).component is None


# ---------------------------------------------------------------------------------------------
# text longer than its column


@pytest.mark.parametrize("column", TEXT_COLUMNS)
def test_text_longer_than_its_column_is_cut_and_the_full_value_kept_in_context(column: str
                                                                                ) -> None:
    limit = COLUMN_LIMITS[column]
    value = "A" * (limit + 50)
    event = event_of({column: value, "context": {}})
    assert getattr(event, column) == value[:limit]
    assert event.context[f"full_{column}"] == value


@pytest.mark.parametrize("column", TEXT_COLUMNS)
def test_text_exactly_at_its_column_width_is_kept_whole(column: str) -> None:
    value = "B" * COLUMN_LIMITS[column]
    event = event_of({column: value})
    assert getattr(event, column) == value
    assert f"full_{column}" not in event.context


@pytest.mark.parametrize("column", TEXT_COLUMNS)
def test_very_long_column_text_is_cut_without_a_full_copy(column: str) -> None:
    event = event_of({column: "C" * 100_000})
    assert len(getattr(event, column)) == COLUMN_LIMITS[column]
    assert f"full_{column}" not in event.context


def test_column_limits_count_characters_not_bytes() -> None:
    value = "€" * COLUMN_LIMITS["component"]
    assert event_of({"component": value}).component == value


def test_upper_casing_a_symbol_never_makes_it_longer_than_its_column() -> None:
    """'ß'.upper() is 'SS': the symbol must still fit its column after upper-casing."""
    event = event_of({"symbol": "ß" * COLUMN_LIMITS["symbol"]})
    assert event.symbol is not None
    assert len(event.symbol) <= COLUMN_LIMITS["symbol"]
    assert set(event.symbol) == {"S"}
    event = event_of({"symbol": "ﬃ" * 40})
    assert len(event.symbol) <= COLUMN_LIMITS["symbol"]


def test_error_message_is_cut_at_max_text_bytes() -> None:
    event = event_of({"error_message": "m" * 70_000})
    assert event.error_message == "m" * (64 * KIB)


def test_error_traceback_is_cut_at_max_text_bytes() -> None:
    event = event_of({"error_traceback": "t" * 70_000})
    assert event.error_traceback == "t" * (64 * KIB)


def test_text_cut_follows_the_max_text_bytes_setting() -> None:
    limits = Limits(max_text_bytes=10)
    event = event_of({"message": "0123456789abc", "traceback": "0123456789"}, limits)
    assert event.error_message == "0123456789"
    assert event.error_traceback == "0123456789"


@pytest.mark.parametrize(("char", "size"), [("é", 2), ("€", 3), ("😀", 4)])
def test_text_cut_counts_utf8_bytes_and_never_splits_a_character(char: str, size: int) -> None:
    limits = Limits(max_text_bytes=1001)
    event = event_of({"error_message": char * 1000, "error_traceback": "x" + char * 1000},
                     limits)
    assert event.error_message == char * (1001 // size)
    assert len(event.error_traceback.encode()) <= 1001
    assert event.error_traceback == "x" + char * (1000 // size)


def test_message_within_max_text_bytes_is_kept_whole() -> None:
    value = "€" * 1000
    assert event_of({"error_message": value}, Limits(max_text_bytes=3000)).error_message == value


# ---------------------------------------------------------------------------------------------
# NUL characters


def test_nul_characters_are_removed_from_text_fields() -> None:
    event = event_of({
        "error_id": "id\u0000-1", "error_type": "Type\u0000Error", "error_message": "a\u0000b",
        "error_traceback": "\u0000tb\u0000", "source": "P\u0000L", "component": "C\u0000",
        "operation": "o\u0000p", "symbol": "aa\u0000pl",
    })
    assert event.error_id == "id-1"
    assert event.error_type == "TypeError"
    assert event.error_message == "ab"
    assert event.error_traceback == "tb"
    assert event.source == "PL"
    assert event.component == "C"
    assert event.operation == "op"
    assert event.symbol == "AAPL"


def test_nul_characters_are_removed_inside_context_keys_and_values() -> None:
    event = event_of({"context": {"k\u0000ey": "v\u0000al",
                                  "nested": {"li\u0000st": ["\u0000", {"\u0000": "x\u0000"}]}}})
    assert event.context == {"key": "val", "nested": {"list": ["", {"": "x"}]}}


def test_nul_characters_are_removed_before_severity_and_category_are_folded() -> None:
    event = event_of({"severity": "warn\u0000ing", "category": "data\u0000base"})
    assert (event.severity, event.category) == ("warning", "database")


def test_nul_characters_are_removed_from_raw_values_kept_in_context() -> None:
    event = event_of({"severity": "lo\u0000ud", "category": "x\u0000", "timestamp": "\u0000t"})
    assert event.context == {"raw_severity": "loud", "raw_category": "x", "raw_timestamp": "t"}


def test_nul_characters_in_a_non_object_context_are_removed() -> None:
    assert event_of({"context": "a\u0000b"}).context == {"value": "ab"}


def test_nul_in_a_field_name_is_removed() -> None:
    event = event_of({"error_\u0000message": "found", "sever\u0000ity": "critical"})
    assert event.error_message == "found"
    assert event.severity == "critical"


def test_raw_nul_bytes_around_the_json_are_removed() -> None:
    event = event_of(_encode(producer_message()) + b"\x00\x00")
    assert event.error_id == "PatternDetector_detect_doji_1730300000.123"
    event = event_of(b'\x00{"error_message": "z"}')
    assert event.error_message == "z"


def test_raw_nul_bytes_are_removed_from_the_dead_letter() -> None:
    rejection = rejection_of(b"not\x00 json\x00")
    assert rejection.raw == "not json"


def test_nul_escape_with_a_big_integer_or_a_surrogate_is_removed_too() -> None:
    event = event_of(f'{{"error_message": "a\\u0000b\\ud800", "context": {{"n": {2**80}}}}}'
                     .encode())
    assert event.error_message.startswith("ab")
    assert event.context == {"n": 2**80}


# ---------------------------------------------------------------------------------------------
# wrong types


@pytest.mark.parametrize(("value", "expected"), [
    (42, "42"), (-1.25, "-1.25"), (True, "true"), (False, "false"),
    (["a", "b"], "a, b"), ([1, 2.5], "1, 2.5"), ({"k": "v"}, '{"k":"v"}'), (2**70, str(2**70)),
])
@pytest.mark.parametrize("field", ["error_type", "source", "component", "operation"])
def test_wrong_types_where_text_is_expected_become_text(field: str, value: Any,
                                                        expected: str) -> None:
    event = event_of({field: value})
    assert getattr(event, field) == expected


@pytest.mark.parametrize("value", [42, 1.5, True, ["line 1", "line 2"], {"k": [1, None]}, 2**70,
                                   [], {}, [None, {"a": 1}]])
@pytest.mark.parametrize("field", ["error_message", "message", "error_traceback", "traceback",
                                   "symbol"])
def test_any_json_value_in_a_text_field_never_crashes(field: str, value: Any) -> None:
    event = event_of({field: value})
    column = {"message": "error_message", "traceback": "error_traceback"}.get(field, field)
    text = getattr(event, column)
    assert text is None or isinstance(text, str)


def test_numeric_error_message_becomes_text() -> None:
    assert event_of({"error_message": 404}).error_message == "404"
    assert event_of({"error_message": 0}).error_message == "0"


def test_null_error_message_is_empty_text_and_null_traceback_is_null() -> None:
    event = event_of({"error_message": None, "error_traceback": None})
    assert event.error_message == ""
    assert event.error_traceback is None


def test_traceback_sent_as_a_list_of_lines_becomes_text() -> None:
    event = event_of({"traceback": ["Traceback (most recent call last):", "ValueError: x"]})
    assert "ValueError: x" in event.error_traceback


def test_object_error_message_becomes_json_text() -> None:
    event = event_of({"error_message": {"code": 7, "detail": ["a"]}})
    assert json.loads(event.error_message) == {"code": 7, "detail": ["a"]}


def test_numeric_symbol_becomes_text() -> None:
    assert event_of({"context": {"symbol": 7203}}).symbol == "7203"


def test_wrong_types_everywhere_at_once_never_crash() -> None:
    event = event_of({
        "error_id": [1, [2]], "error_type": {"a": {}}, "error_message": [[]],
        "error_traceback": 1.5e300, "severity": [], "category": {}, "source": [None],
        "component": False, "operation": 0, "symbol": [1.5], "context": [[["x"]]],
        "timestamp": {"t": [1]}, "message": 3, "traceback": None,
    })
    assert event.severity == "error"
    assert event.category == "unknown"
    assert event.context["value"] == [[["x"]]]


# ---------------------------------------------------------------------------------------------
# property tests: nothing raises, every event keeps the invariants

FIELD_NAMES = ("error_id", "error_type", "error_message", "error_traceback", "severity",
               "category", "context", "timestamp", "source", "component", "operation",
               "symbol", "message", "traceback", "payload", "event", "error_code", "version")

any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
any_text = st.text(any_char, max_size=30)
long_text = st.text(st.sampled_from("aZß€😀 \x00ﬃ\ud800"), min_size=60, max_size=300)
keys = st.one_of(st.sampled_from(FIELD_NAMES), any_text)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False), any_text, long_text,
    st.sampled_from(["error", "WARN", "fatal", "err", "pattern", "REDIS", "critical_error",
                     "2024-10-30T12:00:00Z", "2024-10-30T12:00:00", "1730289600",
                     "0001-01-01T00:00:00+01:00", "", " ", "\u0000"]),
    st.sampled_from([10, 20, 30, 40, 50, 1730289600, 1730289600123, 10**30]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(keys, children, max_size=5)),
    max_leaves=25,
)
documents = st.dictionaries(keys, json_values, max_size=12)
envelopes = st.builds(
    lambda event, payload, extra: {**extra, "event": event, "payload": payload},
    st.one_of(st.sampled_from(["error", "critical_error", "processing_error"]), json_values),
    documents, documents,
)
limits_strategy = st.builds(Limits, max_message_bytes=st.integers(0, 5000),
                            max_text_bytes=st.integers(0, 300))

PROPERTY_SETTINGS = settings(max_examples=400, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])
# Generating nested JSON is the slow part: fewer examples for those (a 4000-example run of
# each found nothing more).
JSON_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=150)


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=3000), limits=limits_strategy)
def test_arbitrary_bytes_never_raise(raw: bytes, limits: Limits) -> None:
    result = normalise(raw, RECEIVED, limits)
    if isinstance(result, ErrorEvent):
        assert_valid_event(result, limits)
    else:
        assert isinstance(result, Rejection)
        assert_valid_rejection(result)


@PROPERTY_SETTINGS
@given(raw=st.text(any_char, max_size=500))
def test_arbitrary_text_never_raises(raw: str) -> None:
    result = normalise(raw, RECEIVED, Limits())
    if isinstance(result, ErrorEvent):
        assert_valid_event(result)
    else:
        assert_valid_rejection(result)


@JSON_SETTINGS
@given(document=st.one_of(documents, envelopes), ascii_only=st.booleans(),
       max_text=st.integers(0, 400))
def test_arbitrary_json_objects_become_valid_events(document: dict[str, Any], ascii_only: bool,
                                                    max_text: int) -> None:
    limits = Limits(max_text_bytes=max_text)
    text = json.dumps(document, ensure_ascii=ascii_only)
    raw: bytes | str = text.encode("utf-8", "surrogatepass") if ascii_only else text
    result = normalise(raw, RECEIVED, limits)
    assert isinstance(result, ErrorEvent), result
    assert_valid_event(result, limits)


@JSON_SETTINGS
@given(document=documents)
def test_arbitrary_json_objects_normalise_the_same_way_twice(document: dict[str, Any]) -> None:
    raw = json.dumps(document).encode()
    first = normalise(raw, RECEIVED, Limits())
    second = normalise(raw, RECEIVED + timedelta(hours=1), Limits())
    assert isinstance(first, ErrorEvent) and isinstance(second, ErrorEvent)
    if first.error_id.startswith("derived-") and first.timestamp == RECEIVED:
        # Neither an id nor a timestamp of its own: the time received is part of the id, so
        # each recurrence is its own row (CONTRACT.md §1).
        assert first.error_id != second.error_id
    else:
        assert first.error_id == second.error_id
    assert first.context == second.context


@JSON_SETTINGS
@given(document=documents, cut=st.integers(1, 200), junk=st.binary(min_size=1, max_size=5))
def test_truncated_or_corrupted_json_never_raises(document: dict[str, Any], cut: int,
                                                  junk: bytes) -> None:
    raw = json.dumps(document).encode()
    for broken in (raw[:-cut], junk + raw, raw[:cut] + junk + raw[cut:]):
        result = normalise(broken, RECEIVED, Limits())
        if isinstance(result, ErrorEvent):
            assert_valid_event(result)
        else:
            assert_valid_rejection(result)


# ---------------------------------------------------------------------------------------------
# issue 15: what the TickStock systems really send


def test_minimal_message_recurrence_gets_a_new_id_each_time_received() -> None:
    minimal = {"severity": "error", "message": "feed stalled", "category": "network",
               "component": "Feed", "context": {}}
    first = event_of(minimal)
    later = event_of(minimal, received=RECEIVED + timedelta(hours=3))
    assert first.error_id.startswith("derived-") and later.error_id.startswith("derived-")
    assert first.error_id != later.error_id
    assert first.fingerprint == later.fingerprint


@pytest.mark.parametrize("field", ["traceback", "error_traceback"])
@pytest.mark.parametrize("value", ["NoneType: None\n", "NoneType: None", "  NoneType: None \n"])
def test_none_type_none_is_no_traceback_and_kept_in_context(field: str, value: str) -> None:
    event = event_of(producer_message(**{"error_traceback": None, field: value}))
    assert event.error_traceback is None
    assert event.context[f"raw_{field}"] == value


def test_a_real_traceback_beside_a_fake_one_is_kept() -> None:
    event = event_of({"error_traceback": "NoneType: None\n", "traceback": "Traceback (x)"})
    assert event.error_traceback == "Traceback (x)"


def test_unknown_top_level_fields_go_into_context_and_type_fills_error_type() -> None:
    event = event_of({"type": "application_error", "message": "boom", "severity": "error",
                      "timestamp": 1730300000, "extra": {"k": 1}})
    assert event.error_type == "application_error"
    assert event.context["type"] == "application_error"
    assert event.context["extra"] == {"k": 1}


def test_a_top_level_field_clashing_with_context_is_kept_beside_it() -> None:
    event = event_of({"message": "x", "attempt": 3, "context": {"attempt": 1}})
    assert event.context["attempt"] == 1 and event.context["top_level_attempt"] == 3


def test_error_type_wins_over_type() -> None:
    assert event_of({"type": "application_error", "error_type": "KeyError"}).error_type == \
        "KeyError"


@pytest.mark.parametrize("document", [
    {"severity": "critical", "message": "test", "category": "test", "component": "TestScript"},
    {"severity": "critical", "message": "test", "category": "pattern", "context": {"test": True}},
    {"severity": "critical", "message": "test", "context": {"test": "true"}},
])
def test_test_traffic_is_marked_as_test(document: dict[str, Any]) -> None:
    assert event_of(document).is_test


def test_real_traffic_is_not_test() -> None:
    assert not event_of(producer_message()).is_test
    assert not event_of({"message": "x", "context": {"test": False}}).is_test


@pytest.mark.parametrize(("code", "category"), [
    ("RATE_LIMIT_EXCEEDED", "network"), ("API_RATE_LIMIT", "network"),
    ("REQUEST_TIMEOUT", "network"), ("CONNECTION_REFUSED", "network"),
    ("DATABASE_ERROR", "database"), ("DB_WRITE_FAILED", "database"),
    ("SOMETHING_ELSE", "unknown"),
])
def test_envelope_category_comes_from_its_error_code(code: str, category: str) -> None:
    event = event_of(envelope(error_code=code))
    assert event.category == category
    assert "raw_category" not in event.context


def test_an_explicit_category_wins_over_the_error_code() -> None:
    assert event_of(envelope(error_code="API_RATE_LIMIT", category="database")).category == \
        "database"


def test_the_error_code_table_comes_from_the_limits() -> None:
    limits = Limits(error_code_categories=(("RATE", "performance"),))
    assert event_of(envelope(error_code="API_RATE_LIMIT"), limits).category == "performance"


def test_the_channel_is_kept_in_context_when_given() -> None:
    result = normalise(_encode(producer_message()), RECEIVED, Limits(), channel="tickstock:x")
    assert isinstance(result, ErrorEvent) and result.context["channel"] == "tickstock:x"
    assert "channel" not in event_of(producer_message()).context


def alert_event(level: str = "critical", **alert: Any) -> dict[str, Any]:
    return {"event_type": "ALERT_TRIGGERED", "timestamp": "2025-09-25T14:03:11Z",
            "alert": {"level": level, "component": "DataFeed",
                      "message": "no bars for 5 minutes", "threshold": 300, **alert}}


def test_an_alert_triggered_event_is_an_error() -> None:
    result = normalise_channel_event(_encode(alert_event()), RECEIVED, Limits(),
                                     "tickstock:monitoring")
    assert isinstance(result, ErrorEvent)
    assert (result.severity, result.component, result.error_message) == (
        "critical", "DataFeed", "no bars for 5 minutes")
    assert result.context["threshold"] == 300
    assert result.context["event_type"] == "ALERT_TRIGGERED"
    assert result.context["channel"] == "tickstock:monitoring"
    assert result.timestamp == datetime(2025, 9, 25, 14, 3, 11, tzinfo=UTC)


@pytest.mark.parametrize("level", ["warning", "error", "critical"])
def test_alerts_from_warning_up_are_errors(level: str) -> None:
    result = normalise_channel_event(_encode(alert_event(level)), RECEIVED, Limits(), "m")
    assert isinstance(result, ErrorEvent) and result.severity == level


@pytest.mark.parametrize("level", ["info", "debug"])
def test_alerts_below_warning_are_not_errors(level: str) -> None:
    result = normalise_channel_event(_encode(alert_event(level)), RECEIVED, Limits(), "m")
    assert isinstance(result, NotAnError) and level in result.reason


def test_other_events_of_a_shared_channel_are_not_errors() -> None:
    for document in ({"event": "pattern_detected", "payload": {"symbol": "AAPL"}},
                     {"event_type": "heartbeat"}, {}):
        result = normalise_channel_event(_encode(document), RECEIVED, Limits(), "p")
        assert isinstance(result, NotAnError), document


def test_a_processing_error_of_a_shared_channel_is_an_error() -> None:
    document = envelope(event="processing_error", severity="error", error_code="DB_TIMEOUT")
    result = normalise_channel_event(_encode(document), RECEIVED, Limits(), "tickstock.p")
    assert isinstance(result, ErrorEvent)
    assert result.context["event"] == "processing_error"


def test_garbage_on_a_shared_channel_is_still_a_dead_letter() -> None:
    assert isinstance(normalise_channel_event(b"{nope", RECEIVED, Limits(), "p"), Rejection)
