"""What an event on the processing channels is: a run event, an error for the ingest, noise,
or of unknown shape (dead-lettered).

TickStockPL's envelope is `{event, timestamp, source, version, payload{run_id, ...}}`; every
field may be missing, so the event's name may also come from the channel
(`tickstock:import:progress` is an `import_progress`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from settings import SEVERITY_ORDER

RUN, ERROR, IGNORE, UNKNOWN = "run", "error", "ignore", "unknown"
_RUN_EVENT = re.compile(r"^([a-z][a-z0-9_]*?)_(started|progress|completed|failed)$")
_PHASE_CHANNEL = re.compile(r"^tickstock:([a-z0-9_]+):(started|progress|completed|failed)$")
_ERROR_EVENTS = frozenset({"processing_error"})
_ALERT_EVENT = "alert_triggered"
_LEVEL_ALIASES = {"warn": "warning", "err": "error", "fatal": "critical", "crit": "critical"}
RUN_PHASE = "processing"  # processing_started / _completed: the run itself


@dataclass(frozen=True)
class Classified:
    kind: str  # run | error | ignore | unknown
    document: dict[str, Any] | None = None
    phase: str | None = None  # for run events: processing, import, cache, ...
    step: str | None = None  # started | progress | completed | failed
    reason: str | None = None  # for unknown ones: why


def is_run_channel(channel: str) -> bool:
    """The channels of runs and their phases; `tickstock:monitoring` carries alerts only."""
    return not channel.endswith(":monitoring")


def classify(raw: bytes | str, channel: str) -> Classified:
    """Sort one event from `channel`; never raises."""
    run_channel = is_run_channel(channel)
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Classified(UNKNOWN if run_channel else IGNORE, reason="not JSON")
    if not isinstance(document, dict):
        return Classified(UNKNOWN if run_channel else IGNORE, reason="JSON that is not an object")
    name = document.get("event") or document.get("type") or document.get("event_type")
    name = name.strip().lower() if isinstance(name, str) else ""
    if name in _ERROR_EVENTS:
        return Classified(ERROR, document)
    if name == _ALERT_EVENT:
        return Classified(ERROR if _serious_alert(document) else IGNORE, document)
    if not run_channel:
        return Classified(IGNORE, document)
    match = _RUN_EVENT.match(name)
    if match is None and not name:
        match = _PHASE_CHANNEL.match(channel)
    if match is None:
        if name:
            return Classified(IGNORE, document)  # a known envelope we do not follow
        return Classified(UNKNOWN, document, reason="no event name")
    return Classified(RUN, document, phase=match.group(1), step=match.group(2))


def payload_of(document: dict[str, Any]) -> dict[str, Any]:
    """The envelope's payload, or the document itself when it is flat."""
    payload = document.get("payload")
    return payload if isinstance(payload, dict) else document


def _serious_alert(document: dict[str, Any]) -> bool:
    """An ALERT_TRIGGERED of level warning or above (a missing level counts as warning)."""
    places = [document, payload_of(document), document.get("data"), document.get("alert")]
    for place in places:
        if isinstance(place, dict):
            for name in ("level", "severity"):
                level = place.get(name)
                if isinstance(level, str) and level.strip():
                    level = _LEVEL_ALIASES.get(level.strip().lower(), level.strip().lower())
                    if level in SEVERITY_ORDER:
                        return SEVERITY_ORDER.index(level) >= SEVERITY_ORDER.index("warning")
                    return True  # an unknown level: better seen than lost
    return True
