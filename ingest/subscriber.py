"""The main process's handle on the pub/sub reader process (`python -m ingest.reader`).

The reader runs in a process of its own so that no thread of ours can starve it of the GIL
while Redis fills its output buffer (see reader.py). This handle starts it, stops it in
order (it journals everything published before the stop, then exits), starts it again if
it dies, and shows its state, read from the struct the two processes share
(reader_state.py), under the names the status views have always used.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from redis.backoff import ExponentialWithJitterBackoff

from ingest.reader_state import ReaderState, moment
from ingest.spool import Spool

log = logging.getLogger(__name__)

_ROOT = Path(__file__).resolve().parent.parent
# A reader that lived this long before dying was healthy: restart it without waiting long.
_HEALTHY_RUN_SECONDS = 10.0


class Subscriber:
    """Reads `channel` into `spool` from another process; counts what it saw."""

    name = "ingest-reader"

    def __init__(self, redis_url: str, channel: str, spool: Spool,
                 health_check_interval: int = 10, log_format: str = "text",
                 secrets: tuple[str, ...] = ()) -> None:
        self.redis_url = redis_url
        self.channel = channel
        self.spool = spool
        self.health_check_interval = health_check_interval
        self.log_format = log_format
        self.secrets = secrets
        self.restarts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._created = datetime.now(UTC)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the reader process (the spool must be open) and watch over it."""
        self._stopping.clear()
        with self._lock:
            self._process = self._spawn()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True,
                                            name="ingest-reader-supervisor")
        self._supervisor.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        config = {"redis_url": self.redis_url, "channel": self.channel,
                  **self.spool.writer_config(),
                  "health_check_interval": self.health_check_interval,
                  "log_format": self.log_format, "secrets": list(self.secrets)}
        # cwd is the project, so `-m ingest.reader` finds this package wherever we run from.
        process = subprocess.Popen([sys.executable, "-m", "ingest.reader"], cwd=_ROOT,
                                   stdin=subprocess.PIPE, close_fds=True)
        assert process.stdin is not None
        # On stdin, not argv: the URL may hold a password, and argv is public.
        process.stdin.write(json.dumps(config).encode("utf-8") + b"\n")
        process.stdin.flush()
        self._started_at = time.monotonic()
        return process

    def _supervise(self) -> None:
        backoff = ExponentialWithJitterBackoff(cap=2.0, base=0.1)
        attempt = 0
        while True:
            process = self._process
            assert process is not None
            code = process.wait()
            if self._stopping.is_set():
                return
            _close_stdin(process)
            if self.state is not None:
                # The reader is gone, so this is the only writer of its fields now.
                self.state.mark_lost(f"the reader process exited with status {code}")
            lived = time.monotonic() - self._started_at
            attempt = 1 if lived > _HEALTHY_RUN_SECONDS else attempt + 1
            delay = backoff.compute(attempt)
            log.error("the reader process exited with status %s after %.1f s; restarting it "
                      "in %.1f s", code, lived, delay)
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._process = self._spawn()
                self.restarts += 1

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the reader to journal what was published before now and exit; wait for it."""
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is None:
            return
        try:
            assert process.stdin is not None
            process.stdin.write(b"stop\n")
            process.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # already gone
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("the reader process did not stop within %.0f s; killing it", timeout)
            process.kill()
            process.wait()
            if self.state is not None:
                self.state.mark_stopped()
        _close_stdin(process)
        if self._supervisor is not None:
            self._supervisor.join(timeout)

    def is_alive(self) -> bool:
        process = self._process
        return process is not None and process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # -- state, as the status views read it ----------------------------------------------
    @property
    def state(self) -> ReaderState | None:
        return self.spool.state

    @property
    def subscribed(self) -> bool:
        state = self.state
        return bool(state is not None and state.subscribed and self.is_alive())

    @property
    def subscribed_since(self) -> datetime | None:
        state = self.state
        return moment(state.subscribed_since) if state is not None and self.subscribed else None

    @property
    def not_listening_since(self) -> datetime | None:
        state = self.state
        if state is None:
            return self._created
        return moment(state.not_listening_since)

    @property
    def last_error(self) -> str | None:
        state = self.state
        return state.error_text() if state is not None else None

    @property
    def reconnects(self) -> int:
        state = self.state
        return state.reconnects if state is not None else 0

    @property
    def gaps(self) -> list[tuple[datetime, datetime | None, str]]:
        state = self.state
        return state.gap_list() if state is not None else []

    @property
    def received(self) -> int:
        """Payloads read from the channel: journaled, or refused by a full spool."""
        return self.spool.appended + self.spool.refused

    @property
    def local_address(self) -> str | None:
        """host:port of the reader's connection, as Redis's CLIENT LIST names it."""
        state = self.state
        return (state.local_address.decode() or None) if state is not None else None

    def last_message_time(self) -> datetime | None:
        state = self.state
        return moment(state.last_message) if state is not None else None


def _close_stdin(process: subprocess.Popen[bytes]) -> None:
    try:
        if process.stdin is not None:
            process.stdin.close()
    except OSError:
        pass
