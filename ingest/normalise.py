"""Turn one raw pub/sub payload into an `ErrorEvent` or a `Rejection` (CONTRACT.md §1).

The producer is another team's code: every input either becomes a normalised event or a
rejection with a reason, and nothing here may raise on bad input.

Two entry points:
- `normalise(raw, received_at, limits, channel=None)`: a message of `tickstock:errors`; always
  an `ErrorEvent` or a `Rejection`.
- `normalise_channel_event(raw, received_at, limits, channel)`: a message of a channel that
  carries other traffic too (the processing channels, `tickstock:monitoring`); the same, or
  `NotAnError` for a message that is no error (ignore it: no dead letter, nothing stored).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from groups.fingerprint import compute_fingerprint
from queries.records import (
    CATEGORIES,
    COLUMN_LIMITS,
    DEAD_LETTER_RAW_LIMIT,
    SEVERITY_RANK,
    ErrorEvent,
    Rejection,
    as_utc,
    new_event,
)
from settings import DEFAULT_ERROR_CODE_CATEGORIES, parse_error_code_categories

_CATEGORY_SET = frozenset(CATEGORIES)
_WARNING_RANK = SEVERITY_RANK["warning"]

SEVERITY_ALIASES = {
    "debug": "debug", "trace": "debug", "dbg": "debug", "verbose": "debug",
    "info": "info", "information": "info", "informational": "info", "notice": "info",
    "warning": "warning", "warn": "warning", "wrn": "warning",
    "error": "error", "err": "error", "exception": "error", "failure": "error",
    "critical": "critical", "crit": "critical", "fatal": "critical", "emergency": "critical",
    "emerg": "critical", "alert": "critical", "severe": "critical",
}
# Python logging's numeric levels, which some producers send instead of names.
_LEVEL_NUMBERS = {10: "debug", 20: "info", 30: "warning", 40: "error", 50: "critical"}

ENVELOPE_EVENTS = frozenset({"error", "critical_error", "processing_error"})
# The monitoring channel's alert event: {event_type, alert{level, component, message, ...}}.
ALERT_EVENT = "ALERT_TRIGGERED"
# Top-level fields the flat shapes name; any other top-level field is kept in `context`.
_FLAT_FIELDS = frozenset({
    "error_id", "error_type", "error_message", "error_traceback", "severity", "category",
    "source", "component", "operation", "symbol", "context", "timestamp", "message",
    "traceback", "fingerprint",
})
# An envelope's own fields: `payload` is read, `event` and `version` go to context as named.
_ENVELOPE_FIELDS = frozenset({"event", "payload", "version", "timestamp", "source", "error_id"})
_ALERT_FIELDS = frozenset({"event_type", "alert", "timestamp", "source", "error_id"})
# What `traceback.format_exc()` returns outside an `except` block: no traceback at all.
_NO_TRACEBACK = "NoneType: None"
# Payload fields that become columns; any other payload field is kept in `context`.
_PAYLOAD_COLUMNS = frozenset({
    "error_id", "error_code", "error_type", "message", "error_message", "traceback",
    "error_traceback", "severity", "category", "component", "operation", "symbol",
    "context", "timestamp", "source",
})
_FULL_VALUE_LIMIT = 4096
# Deeper JSON is refused: orjson, which the store serialises `context` with, stops at 254
# levels, and walking much deeper values recursively would exhaust Python's recursion limit.
MAX_NESTING = 200
_SURROGATES = re.compile("[\ud800-\udfff]")
_DEFAULT_SOURCE = "TickStockPL"
_NO_VALUE = object()


@dataclass(frozen=True, slots=True)
class Limits:
    """What normalisation is configured with (settings: MAX_MESSAGE_BYTES, MAX_TEXT_BYTES,
    ERROR_CODE_CATEGORIES as (part of a code, category) pairs, first match wins)."""

    max_message_bytes: int = 1024 * 1024
    max_text_bytes: int = 64 * 1024
    error_code_categories: tuple[tuple[str, str], ...] = parse_error_code_categories(
        DEFAULT_ERROR_CODE_CATEGORIES)


@dataclass(frozen=True, slots=True)
class NotAnError:
    """A well-formed message of a shared channel that is no error (a pattern event, an alert
    below `warning`): the caller ignores it, without a dead letter."""

    reason: str


def _dead_letter(raw: str, reason: str, received_at: datetime, size: int,
                 error_id: str | None = None) -> Rejection:
    # The limit is in UTF-8 bytes: count them, not characters.
    text = _clean_text(_cut_utf8(raw, DEAD_LETTER_RAW_LIMIT))
    return Rejection(raw=text, reason=reason, received_at=received_at, error_id=error_id,
                     raw_bytes=size)


def _cut_utf8(text: str, max_bytes: int) -> str:
    """Cut `text` to at most `max_bytes` of UTF-8 without splitting a character."""
    if len(text) * 4 <= max_bytes:
        return text
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", "ignore")


def _decode(raw: bytes | str) -> tuple[str, int]:
    if isinstance(raw, str):
        return raw, len(raw.encode("utf-8", "replace"))
    try:
        return raw.decode("utf-8"), len(raw)
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace"), len(raw)


def _parse(text: str) -> tuple[Any, str | None, bool]:
    """Parse JSON: (value, problem, whether the value still needs `_scrub`).

    orjson first (fast), the standard library for what orjson refuses or gets wrong: orjson
    rejects lone surrogates and numbers beyond a double's range, and turns integers beyond
    64 bits into floats; all are valid JSON, and `json` reads them exactly (it also reads
    NaN/Infinity, which are not JSON and are refused here). Such an integer can only come
    back as a float of magnitude 2**63 or more, so the value is checked, not the text.
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    except RecursionError:
        return None, _TOO_DEEP, False
    else:
        shape = _shape(value)
        if shape is None:
            return value, None, "\\u0000" in text
        if shape == _TOO_DEEP:
            return None, _TOO_DEEP, False

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        value = json.loads(text, parse_constant=refuse_constant)
    except RecursionError:
        return None, _TOO_DEEP, False
    except ValueError as exc:
        return None, f"not valid JSON: {exc}", False
    if _shape(value) == _TOO_DEEP:
        return None, _TOO_DEEP, False
    return value, None, True


_TOO_DEEP = f"JSON nested too deeply (more than {MAX_NESTING} levels)"
_MAYBE_INEXACT = "a float that may be an integer orjson could not hold"
_EXACT_LIMIT = float(2**63)


def _shape(value: Any, limit: int = MAX_NESTING) -> str | None:
    """`_TOO_DEEP` when lists and objects nest deeper than `limit`, `_MAYBE_INEXACT` when a
    float is large enough to be an integer beyond 64 bits, else None. No recursion."""
    found = None
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is dict:
            children: Any = item.values()
        elif kind is list:
            children = item
        else:
            if kind is float and not -_EXACT_LIMIT < item < _EXACT_LIMIT:
                found = _MAYBE_INEXACT
            continue
        if depth > limit:
            return _TOO_DEEP
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is float and not -_EXACT_LIMIT < child < _EXACT_LIMIT:
                found = _MAYBE_INEXACT
    return found


def _clean_text(value: str) -> str:
    """Text without NULs or lone surrogates (U+FFFD instead), which PostgreSQL cannot hold."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = _SURROGATES.sub("\ufffd", value)
    return value


def _scrub(value: Any) -> Any:
    """Remove NULs and lone surrogates, which PostgreSQL text and JSONB cannot hold."""
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        return {_scrub(str(k)): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _as_text(value: Any) -> str | None:
    """Text for a text column: numbers and booleans as written, lists and objects as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value)
    return _dumps(value)


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:  # integers beyond 64 bits
        return json.dumps(value, ensure_ascii=False)


def _fit(name: str, value: str | None, context: dict[str, Any]) -> str | None:
    """Cut a column value to its width, keeping the full value in context when short enough."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    limit = COLUMN_LIMITS[name]
    if len(value) <= limit:
        return value
    if len(value) <= _FULL_VALUE_LIMIT:
        context[f"full_{name}"] = value
    return value[:limit]


def _fold_severity(raw: Any, context: dict[str, Any]) -> str:
    if raw is None or raw == "":
        return "error"
    if isinstance(raw, int) and not isinstance(raw, bool) and raw in _LEVEL_NUMBERS:
        return _LEVEL_NUMBERS[raw]
    if isinstance(raw, str):
        folded = SEVERITY_ALIASES.get(raw.strip().lower())
        if folded is not None:
            return folded
    context["raw_severity"] = raw
    return "error"


def _fold_category(raw: Any, context: dict[str, Any]) -> str:
    if raw is None or raw == "":
        return "unknown"
    if isinstance(raw, str):
        folded = raw.strip().lower()
        if folded in _CATEGORY_SET:
            return folded
    context["raw_category"] = raw
    return "unknown"


def parse_timestamp(raw: Any) -> datetime | None:
    """ISO-8601 (no zone means UTC) or epoch seconds (milliseconds when implausibly large)."""
    if raw is None or isinstance(raw, bool):
        return None
    try:
        if isinstance(raw, str):
            text = raw.strip()
            if not text:
                return None
            try:
                # "YYYY-..." is never a number (a float's "-" follows an "e"): skip float().
                if text[4:5] == "-" and text[:4].isdigit():
                    raise ValueError
                number = float(text)
            except ValueError:
                try:
                    moment = datetime.fromisoformat(
                        text.replace(" ", "T", 1) if " " in text[:11] else text)
                except ValueError:
                    return None
                return as_utc(moment)
            return _from_epoch(number)
        if isinstance(raw, (int, float)):
            return _from_epoch(float(raw))
    except (OverflowError, ValueError):
        # An integer too large for a float, or a zoned time at the edge of the calendar
        # (0001-01-01T00:00+01:00) whose UTC value falls outside it.
        return None
    return None


def _from_epoch(number: float) -> datetime | None:
    if not math.isfinite(number):
        return None
    if abs(number) >= 1e11:  # epoch milliseconds (1e11 s would be the year 5138)
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def derive_error_id(document: dict[str, Any], received_at: datetime | None = None) -> str:
    """A stable id from the message's content, so that a re-sent copy is still one row.

    With `received_at` (the message has no timestamp of its own) the time received is part
    of the id, `derived-<digest>@<time received>`: without it the same error an hour later
    would be "the same id again" and vanish. Ids of that form are made unique within one
    time received by the pipeline (`recurrence_id`), as one read from Redis stamps many.
    """
    try:
        canonical = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        canonical = json.dumps(document, sort_keys=True, ensure_ascii=False).encode(
            "utf-8", "replace")
    digest = "derived-" + hashlib.sha256(canonical).hexdigest()[:32]
    if received_at is None:
        return digest
    return digest + "@" + received_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def is_recurrence_id(error_id: str) -> bool:
    """Whether `error_id` was derived with the time received (see `derive_error_id`)."""
    return error_id[:8] == "derived-" and "@" in error_id


def recurrence_id(error_id: str, occurrence: int) -> str:
    """The id of the `occurrence`-th (from 2) identical message received at the same time."""
    return f"{error_id}.{occurrence}"


def _error_id(raw: Any, document: dict[str, Any], context: dict[str, Any],
              received_at: datetime | None) -> str:
    text = _as_text(raw)
    text = text.strip() if text else ""
    if not text:
        return derive_error_id(document, received_at)
    limit = COLUMN_LIMITS["error_id"]
    if len(text) <= limit:
        return text
    # Cutting an id could merge two errors into one row; a digest of the whole keeps them apart.
    if len(text) <= _FULL_VALUE_LIMIT:
        context["full_error_id"] = text
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return f"{text[: limit - 17]}~{digest}"


def _is_envelope(document: dict[str, Any]) -> bool:
    """An object `payload` makes an envelope when the event names one, or when the message
    carries no error text of its own; a producer message with a `payload` field stays flat."""
    if not isinstance(document.get("payload"), dict):
        return False
    event = document.get("event")
    if isinstance(event, str) and event in ENVELOPE_EVENTS:
        return True
    return all(document.get(key) in (None, "") for key in ("error_message", "message"))


def _flatten_envelope(document: dict[str, Any]) -> dict[str, Any]:
    """Read an event envelope's fields from its payload; keep the envelope in context."""
    payload = document["payload"]
    flat: dict[str, Any] = {k: v for k, v in payload.items() if k in _PAYLOAD_COLUMNS}
    context = payload.get("context")
    context = dict(context) if isinstance(context, dict) else (
        {} if context is None else {"value": context})
    for key, value in payload.items():
        if key not in _PAYLOAD_COLUMNS:
            context.setdefault(key, value)
    event = document.get("event")
    for key in ("event", "version"):
        if key in document:
            context.setdefault(key, document[key])
    _keep_unnamed(document, _ENVELOPE_FIELDS, context)
    flat["context"] = context
    if "error_type" not in flat and "error_code" in payload:
        flat["error_type"] = payload["error_code"]
    if flat.get("severity") in (None, "") and event == "critical_error":
        flat["severity"] = "critical"
    for key in ("timestamp", "source", "error_id"):
        if flat.get(key) in (None, "") and key in document:
            flat[key] = document[key]
    return flat


def _is_alert(document: dict[str, Any]) -> bool:
    return document.get("event_type") == ALERT_EVENT and isinstance(document.get("alert"), dict)


def _flatten_alert(document: dict[str, Any]) -> dict[str, Any]:
    """A monitoring alert as an error: `alert.level` is the severity, the rest of the alert
    and the envelope's other fields are kept in context."""
    alert = document["alert"]
    context = alert.get("context")
    context = dict(context) if isinstance(context, dict) else (
        {} if context is None else {"value": context})
    flat: dict[str, Any] = {"severity": alert.get("level", alert.get("severity"))}
    for key in ("component", "operation", "symbol", "category", "message", "error_message",
                "traceback", "error_traceback", "error_code", "fingerprint"):
        if key in alert:
            flat[key] = alert[key]
    flat["error_type"] = _first_present(alert.get("error_type"), alert.get("alert_type"),
                                        alert.get("type"), alert.get("error_code"))
    for key in ("timestamp", "source", "error_id"):
        flat[key] = _first_present(document.get(key), alert.get(key))
    taken = set(flat) | {"level", "context", "alert_type", "type"}
    for key, value in alert.items():
        if key not in taken:
            context.setdefault(key, value)
    context.setdefault("event_type", ALERT_EVENT)
    _keep_unnamed(document, _ALERT_FIELDS, context)
    flat["context"] = context
    return flat


def _keep_unnamed(document: dict[str, Any], named: frozenset[str], context: dict[str, Any]
                  ) -> None:
    """Top-level fields the shape does not name go into `context`: never dropped. A context
    key of the same name keeps its value; the top-level one is kept beside it."""
    unnamed = document.keys() - named
    if not unnamed:
        return
    for key in sorted(unnamed):
        value = document[key]
        if key not in context:
            context[key] = value
        elif context[key] != value:
            context.setdefault(f"top_level_{key}", value)


def _first_present(*candidates: Any) -> Any:
    for value in candidates:
        if value is not _NO_VALUE and value is not None and value != "":
            return value
    return None


def _traceback(fields: dict[str, Any], context: dict[str, Any]) -> Any:
    """The first real traceback field; `NoneType: None` (format_exc() outside an `except`)
    is none, its raw value kept in context."""
    for name in ("error_traceback", "traceback"):
        value = fields.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, str) and value.strip() == _NO_TRACEBACK:
            context.setdefault(f"raw_{name}", value)
            continue
        return value
    return None


def _is_test(raw_category: Any, context: dict[str, Any]) -> bool:
    """Test traffic: category `test`, or `context.test` true (TickStockPL's test script)."""
    if isinstance(raw_category, str) and raw_category.strip().lower() == "test":
        return True
    flag = context.get("test")
    return flag is True or (isinstance(flag, str) and flag.strip().lower() in ("true", "1", "yes"))


def category_of_code(code: Any, table: tuple[tuple[str, str], ...]) -> str | None:
    """The category an error code says (`API_RATE_LIMIT` -> network), from the settings'
    table of (part of a code, category), first match wins; None when nothing matches."""
    if not isinstance(code, str) or not code:
        return None
    code = code.upper()
    for part, category in table:
        if part in code:
            return category
    return None


def _error_kind(document: dict[str, Any]) -> str | None:
    """Why a message of a shared channel is an error (None: it is not one)."""
    if _is_envelope(document) and document.get("event") in ENVELOPE_EVENTS:
        return str(document["event"])
    if _is_alert(document):
        return ALERT_EVENT
    for key in ("event", "event_type", "type"):
        value = document.get(key)
        if isinstance(value, str) and value.lower().endswith("error"):
            return value
    return None


def normalise(raw: bytes | str, received_at: datetime, limits: Limits = Limits(),
              channel: str | None = None) -> ErrorEvent | Rejection:
    """Normalise one payload as CONTRACT.md §1 says; never raises on bad input.

    `channel`, when given, is kept in `context.channel` (the producer's own value of that
    key, if different, in `context.raw_channel`).
    """
    result = _normalise(raw, received_at, limits, channel, errors_only=False)
    assert not isinstance(result, NotAnError)
    return result


def normalise_channel_event(raw: bytes | str, received_at: datetime, limits: Limits,
                            channel: str) -> ErrorEvent | Rejection | NotAnError:
    """Normalise a message of a channel that carries more than errors; never raises.

    - `ErrorEvent`: an error (an `error` / `critical_error` / `processing_error` envelope, an
      `ALERT_TRIGGERED` event of level warning, error or critical, or a message whose
      `event`, `event_type` or `type` ends in "error"), normalised as `normalise` does, with
      `context.channel` set; its category, when the message has none, comes from its error
      code (Limits.error_code_categories).
    - `Rejection`: not JSON, not an object, too large: a dead letter, as on the error channel.
    - `NotAnError`: any other object (a pattern or status event, an alert below warning):
      ignore it; it is neither stored nor dead-lettered.
    """
    return _normalise(raw, received_at, limits, channel, errors_only=True)


def _normalise(raw: bytes | str, received_at: datetime, limits: Limits, channel: str | None,
               errors_only: bool) -> ErrorEvent | Rejection | NotAnError:
    text, size = _decode(raw)
    if size > limits.max_message_bytes:
        return _dead_letter(text, f"message of {size} bytes is larger than the limit of "
                            f"{limits.max_message_bytes} bytes", received_at, size)
    # A NUL is never valid JSON, and PostgreSQL cannot hold one: raw NULs go before parsing.
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        document, problem, needs_scrub = _parse(text)
    except RecursionError:
        problem = _TOO_DEEP
    if problem is not None:
        return _dead_letter(text, problem, received_at, size)
    if not isinstance(document, dict):
        kind = "an array" if isinstance(document, list) else type(document).__name__
        return _dead_letter(text, f"JSON is {kind}, not an object", received_at, size)
    try:
        if needs_scrub:
            document = _scrub(document)
        if errors_only and _error_kind(document) is None:
            return NotAnError("no error event: neither an error envelope, an "
                              f"{ALERT_EVENT} nor a type ending in 'error'")
        event = _build(document, received_at, limits, channel)
        if errors_only and SEVERITY_RANK[event.severity] < _WARNING_RANK:
            return NotAnError(f"{event.severity} is below warning: not an error")
        return event
    except Exception as exc:  # noqa: BLE001 - a rule we did not foresee must not stop the ingest
        return _dead_letter(text, f"could not normalise: {type(exc).__name__}: {exc}",
                            received_at, size)


def _build(document: dict[str, Any], received_at: datetime, limits: Limits,
           channel: str | None = None) -> ErrorEvent:
    if _is_envelope(document):
        fields = _flatten_envelope(document)
    elif _is_alert(document):
        fields = _flatten_alert(document)
    else:
        fields = document
    raw_context = fields.get("context", _NO_VALUE)
    if raw_context is _NO_VALUE or raw_context is None:
        context: dict[str, Any] = {}
    elif isinstance(raw_context, dict):
        context = dict(raw_context)
    else:
        context = {"value": raw_context}
    if fields is document:
        _keep_unnamed(document, _FLAT_FIELDS, context)

    get = fields.get
    severity = _fold_severity(get("severity"), context)
    raw_category = get("category")
    if raw_category is None or raw_category == "":
        # Envelopes and alerts carry no category; their error code says it.
        raw_category = category_of_code(get("error_code"), limits.error_code_categories)
    category = _fold_category(raw_category, context)
    is_test = _is_test(raw_category, context)

    timestamp_raw = get("timestamp")
    timestamp = parse_timestamp(timestamp_raw)
    own_time = timestamp is not None
    if timestamp is None:
        timestamp = received_at
        if timestamp_raw is not None:
            context["raw_timestamp"] = timestamp_raw

    message = _as_text(_first_present(get("error_message", _NO_VALUE), get("message", _NO_VALUE)))
    traceback = _as_text(_traceback(fields, context))
    message = _cut_utf8(message, limits.max_text_bytes) if message else ""
    traceback = _cut_utf8(traceback, limits.max_text_bytes) if traceback else None

    component = _fit("component", _as_text(_first_present(
        context.get("component"), get("component"))), context)
    operation = _fit("operation", _as_text(_first_present(
        context.get("operation"), get("operation"))), context)
    # Upper-case before fitting: "ß".upper() is "SS", so the other order could overflow.
    symbol = _as_text(_first_present(context.get("symbol"), get("symbol")))
    symbol = _fit("symbol", symbol.upper() if symbol else None, context)
    # `type` (the shared `{type: "application_error", ...}` messages) fills a missing type.
    error_type = _fit("error_type", _as_text(_first_present(
        get("error_type"), document.get("type") if fields is document else None)), context)
    source = _fit("source", _as_text(get("source")), context) or _DEFAULT_SOURCE

    explicit = get("fingerprint")
    if explicit is not None and "fingerprint" not in context:
        context["fingerprint"] = explicit
    if channel is not None:
        sent = context.get("channel")
        if sent is not None and sent != channel:
            context.setdefault("raw_channel", sent)
        context["channel"] = channel
    # Without a timestamp of its own, a message's id includes the time received: each
    # recurrence of the same error is its own row (CONTRACT.md §1, `error_id` missing).
    error_id = _error_id(get("error_id"), document, context,
                         None if own_time else received_at)
    return new_event(  # ErrorEvent(...), faster
        error_id, error_type, message, traceback, severity, category, source, component,
        operation, symbol, context, timestamp, received_at,
        compute_fingerprint(error_type, category, component, operation, message, symbol,
                            context.get("fingerprint")), is_test)
