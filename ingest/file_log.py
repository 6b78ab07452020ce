"""The rotating log file: one line per received message, at the message's severity."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from queries.records import ErrorEvent, Rejection

LOGGER_NAME = "tickstock.error_monitor"
LINE_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
_LEVELS = {
    "debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
    "error": logging.ERROR, "critical": logging.CRITICAL,
}


def open_error_log(path: str, max_bytes: int, backup_count: int) -> logging.Logger:
    """The `tickstock.error_monitor` logger writing to a rotating file (folders are created).

    It does not propagate: a flood of producer errors belongs in its file, not the console.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(LOGGER_NAME)
    close_error_log(logger)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LINE_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


def close_error_log(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def _one_line(text: str) -> str:
    # One message, one line: a traceback-like message must not forge further log lines.
    return text.replace("\r", "\\r").replace("\n", "\\n")


def log_line(event: ErrorEvent) -> str:
    """`[category] ErrorType: message (Symbol: AAPL)` as CONTRACT.md §3 shows."""
    line = f"[{event.category}] {event.error_type or '—'}: {_one_line(event.error_message)}"
    if event.symbol:
        line += f" (Symbol: {event.symbol})"
    return line


def write_event(logger: logging.Logger, event: ErrorEvent) -> None:
    logger.log(_LEVELS[event.severity], "%s", log_line(event))


def write_rejection(logger: logging.Logger, rejection: Rejection) -> None:
    logger.error("[rejected] %s: %s", rejection.reason, _one_line(rejection.raw[:500]))
