"""One retention run at a time on a SQLite database, across threads and processes (the
app's job and a `python -m retention --now` by hand): an flock on a file beside the database.
PostgreSQL uses an advisory lock instead (retention/run.py)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path


class SqliteRunLock:
    def __init__(self, database: str | None) -> None:
        if database and database != ":memory:":
            self.path = Path(database).with_name(Path(database).name + ".retention.lock")
        else:
            # An in-memory database lives in one process: a lock per name in the temp folder.
            name = hashlib.sha256((database or "").encode()).hexdigest()[:16]
            folder = Path(tempfile.gettempdir())
            self.path = folder / f"tickstock-retention-{os.getpid()}-{name}.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        """True when this run may go on; False while another holds the lock."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
