"""Group fingerprints: one problem, one line, however many symbols or retries it hits.

The fingerprint hashes the error type, category, component, operation and the message with
its variable parts masked, so "failed for AAPL after 3 retries" and "failed for MSFT after 5
retries" are one group. A message may carry its own `fingerprint` (a string, or a list whose
"{{ default }}" item stands for the computed one, as Sentry does); then that wins.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Any

from queries.records import ErrorEvent

DEFAULT_MARKER = "{{ default }}"

# Order matters: timestamps before numbers, UUIDs before hex, quoted text before the rest.
# Each rule comes with what every one of its matches must hold: strings one of which must be
# in the text, or a pattern that must be found in it (empty: always tried). A rule whose
# requirement is not met by the text as it stands cannot match, so it is skipped: skipping
# gives the same text as running every rule, faster.
_Needs = tuple[str, ...] | re.Pattern[str]
_MASKS: tuple[tuple[re.Pattern[str], str, _Needs], ...] = (
    (re.compile(r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?"),
     "<ts>", ("-",)),
    (re.compile(r"\b\d{1,2}:\d\d(?::\d\d(?:\.\d+)?)?\b"), "<time>", (":",)),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
     "<uuid>", ("-",)),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>", ("0x",)),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>",
     re.compile(r"[0-9a-fA-F]{8}")),
    (re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`"), "<q>", ("'", '"', "`")),
    # Tickers where a message names one: "for AAPL", "symbol=MSFT", "ticker: BRK.B".
    (re.compile(r"\b(for|symbol|ticker|of|on)([ =:]+)\$?[A-Z]{1,5}(?:\.[A-Z])?\b"), r"\1\2<sym>",
     ("for", "symbol", "ticker", "of", "on")),
    (re.compile(r"[-+]?\b\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?"), "<n>", re.compile(r"\d")),
)


# First lines up to this long are masked once and remembered: producers repeat messages.
_CACHED_LINE_LIMIT = 1024
# No rule above tells the digits 1-9 apart ("0" is named: "0x"), so a line with each of them
# made "1" has every match at the same place. Where its masked form keeps none of them, it is
# the masked form of the line itself: "need 12 bars, got 345" and "need 31 bars, got 907" are
# masked once, not once per number.
_FOLD_DIGITS = str.maketrans("23456789", "11111111")
_KEPT_DIGIT = re.compile("[1-9]")


def mask(message: str, symbol: str | None = None) -> str:
    """The message with its variable parts replaced by placeholders."""
    text = message.strip()
    text = text.splitlines()[0] if text else ""
    if len(text) > _CACHED_LINE_LIMIT:
        return _mask_line(text, symbol)
    if not symbol or not _KEPT_DIGIT.search(symbol):
        masked = _mask_line_cached(text.translate(_FOLD_DIGITS), symbol)
        if not _KEPT_DIGIT.search(masked):
            return masked
    return _mask_line_cached(text, symbol)


def _mask_line(text: str, symbol: str | None) -> str:
    if symbol and symbol in text:
        text = _symbol_pattern(symbol).sub("<sym>", text)
    for pattern, placeholder, needs in _MASKS:
        if not needs:
            text = pattern.sub(placeholder, text)
        elif type(needs) is tuple:
            for part in needs:
                if part in text:
                    text = pattern.sub(placeholder, text)
                    break
        elif needs.search(text):
            text = pattern.sub(placeholder, text)
    return text[:500]


@functools.lru_cache(maxsize=1024)
def _symbol_pattern(symbol: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(symbol)}(?![A-Za-z0-9])")


# A pure function of short strings: the cache changes nothing but the time taken.
_mask_line_cached = functools.lru_cache(maxsize=8192)(_mask_line)


def compute_fingerprint(error_type: str | None, category: str, component: str | None,
                        operation: str | None, message: str, symbol: str | None,
                        explicit: Any = None) -> str:
    """The group of an error with these fields; `explicit` is a message's own fingerprint."""
    default = _digest("\x1f".join((error_type or "", category, component or "",
                                    operation or "", mask(message, symbol))))
    if isinstance(explicit, list) and explicit:
        items = [default if item == DEFAULT_MARKER else _text(item) for item in explicit]
        return _digest("explicit\x1f" + "\x1f".join(items))
    if isinstance(explicit, (str, int, float)) and not isinstance(explicit, bool) \
            and str(explicit).strip():
        return _digest("explicit\x1f" + str(explicit).strip())
    return default


def fingerprint(event: ErrorEvent) -> str:
    """The event's group: its own `fingerprint` if it sent one, else the masked default."""
    return compute_fingerprint(event.error_type, event.category, event.component,
                               event.operation, event.error_message, event.symbol,
                               event.context.get("fingerprint"))


def _text(item: Any) -> str:
    return item if isinstance(item, str) else repr(item)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "replace"), usedforsecurity=False).hexdigest()
