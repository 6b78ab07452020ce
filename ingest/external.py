"""Errors from outside the error channel: the processing channels' `processing_error` and
`ALERT_TRIGGERED` events (read by jobs/reader.py), handed to the ingest with their channel.

They are journaled in a small spool of their own (`SPOOL_DIR/external`), written by this
process: the main spool's single writer is the reader process, and a second writer there
would break its lock and its counters. The pipeline reads both; each record here is a
one-line JSON header (channel, and the reason when it is a dead letter) then the raw bytes.
The batch writer reports commits as `ExternalPosition`, so each spool gets its own
checkpoint. The counters add this spool's to the main one's, so the Monitor page's accounting
and the conservation check include these events.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import NamedTuple

import orjson

from ingest.normalise import Limits, normalise
from ingest.spool_format import Position
from queries.records import DEAD_LETTER_RAW_LIMIT, ErrorEvent, Rejection

FOLDER = "external"


class ExternalPosition(NamedTuple):
    """A position in the external spool, told apart from the main spool's by its type."""

    position: Position


def encode(raw: bytes, channel: str, reason: str | None = None) -> bytes:
    header = {"channel": channel} if reason is None else {"channel": channel, "reason": reason}
    return orjson.dumps(header) + b"\n" + raw


def decode(record: bytes) -> tuple[str, str | None, bytes]:
    """(channel, dead-letter reason or None, raw payload) of one external record."""
    head, _, raw = record.partition(b"\n")
    try:
        header = orjson.loads(head)
        return str(header.get("channel") or ""), header.get("reason"), raw
    except (orjson.JSONDecodeError, AttributeError):
        return "", "unreadable external spool record", record


def normalise_from_channel(raw: bytes, channel: str, received_at: datetime,
                           limits: Limits) -> ErrorEvent | Rejection:
    """One event from `channel` as an error (or a dead letter), its channel in context; the
    category, when the event has none, from its error code (ingest/normalise.py)."""
    result = normalise(raw, received_at, limits, channel=channel)
    if isinstance(result, Rejection):
        return replace(result, reason=f"{result.reason} (channel {channel})")
    return result


def normalise_record(record: bytes, received_at: datetime,
                     limits: Limits) -> ErrorEvent | Rejection:
    """An external spool record as the pipeline takes it: an error, or a dead letter."""
    channel, reason, raw = decode(record)
    if reason is not None:
        text = raw[:DEAD_LETTER_RAW_LIMIT].decode("utf-8", errors="replace").replace("\x00", "")
        return Rejection(raw=text, reason=f"{reason} (channel {channel})",
                         received_at=received_at, raw_bytes=len(raw))
    return normalise_from_channel(raw, channel, received_at, limits)
