"""The monitor process's own log lines: plain text or one JSON object a line (`LOG_FORMAT`),
and never a secret in them.

Used by both composition roots (`app.py` and `python -m ingest`). Not to be confused with
`file_log.py`, the rotating file of received *messages*.

Secrets are masked twice over: URLs are logged through `redact_url`, and every formatted line
(message, arguments and traceback) has the configured secret values replaced by `***`, so a
library that prints a URL in an exception text (a webhook's path, say) cannot leak it.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import signal
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from settings import Settings

MASK = "***"
# Shorter fragments would mask ordinary words; a secret that short is not much of a secret.
_MIN_FRAGMENT = 6


def redact_url(url: str) -> str:
    """`scheme://user:***@host/...`: a URL without its password, for logs and pages."""
    if "@" not in url or "//" not in url:
        return url
    scheme, rest = url.split("//", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}//{user + ':' + MASK if ':' in creds else user}@{host}"


def secret_fragments(settings: Settings) -> tuple[str, ...]:
    """The strings that must never be shown: passwords, the token, the webhook URL (whole,
    and its path and query, which is where webhook services put their secret)."""
    found: set[str] = {settings.admin_password, settings.admin_password_hash, settings.api_token}
    for url in (settings.redis_url, settings.database_url):
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            found.add(password)
    webhook = settings.alert_webhook_url
    if webhook:
        found.add(webhook)
        try:
            parts = urlsplit(webhook)
        except ValueError:
            parts = None
        if parts is not None:
            if parts.password:
                found.add(parts.password)
            path = parts.path + ("?" + parts.query if parts.query else "")
            if len(path.strip("/")) >= _MIN_FRAGMENT:
                found.add(path)
    # Longest first, so a URL is masked whole before its path is.
    return tuple(sorted((s for s in found if len(s) >= _MIN_FRAGMENT), key=len, reverse=True))


def mask(text: str, fragments: Iterable[str]) -> str:
    for fragment in fragments:
        if fragment in text:
            text = text.replace(fragment, MASK)
    return text


def mask_tree(value: Any, fragments: tuple[str, ...]) -> Any:
    """`value` (JSON-like: dicts, lists, text) with every secret fragment masked."""
    if not fragments:
        return value
    if isinstance(value, str):
        return mask(value, fragments)
    if isinstance(value, dict):
        masked = copy.copy(value)  # keeps a dict subclass (its defaults) as it is
        for key, item in value.items():
            masked[key] = mask_tree(item, fragments)
        return masked
    if isinstance(value, list | tuple):
        return [mask_tree(item, fragments) for item in value]
    return value


class MaskingFormatter(logging.Formatter):
    """The classic one-line format, secrets masked."""

    def __init__(self, fragments: tuple[str, ...] = (), fmt: str | None = None) -> None:
        super().__init__(fmt or "%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.fragments = fragments

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record), self.fragments)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, process, thread, and the
    traceback as text under `exc` when there is one; secrets masked."""

    def __init__(self, fragments: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.fragments = fragments

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process or os.getpid(),
            "thread": record.threadName,
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return mask(json.dumps(line, ensure_ascii=False, default=str), self.fragments)


class MaskedFormatter(logging.Formatter):
    """Another formatter's lines (gunicorn's own, say), secrets masked."""

    def __init__(self, inner: logging.Formatter, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.inner = inner
        self.fragments = fragments

    def format(self, record: logging.LogRecord) -> str:
        return mask(self.inner.format(record), self.fragments)


def make_formatter(settings: Settings) -> logging.Formatter:
    fragments = secret_fragments(settings)
    if settings.log_format == "json":
        return JsonFormatter(fragments)
    return MaskingFormatter(fragments)


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    """Send this process's log records to stderr in `LOG_FORMAT`, secrets masked.

    Replaces the root logger's handlers, so calling it twice is harmless; handlers that
    others added to named loggers (gunicorn's own, the error log file) are left alone.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(make_formatter(settings))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def _raise_keyboard_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """SIGTERM (systemd, docker stop) gets the same clean stop as Ctrl-C: the main thread's
    KeyboardInterrupt, so the `finally` that flushes what was received runs."""
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
