"""Who evaluates the alerts of a deployment: the one process holding the alert leader lock.

- PostgreSQL: a session advisory lock, held by a connection of its own. The lock lives as
  long as that session: a process killed with -9 loses it as soon as the server sees the
  socket close (at once on one host, within TCP keepalive otherwise), and the next try of
  another process gets it.
- SQLite (one machine): an flock on a file beside the database, released by the kernel when
  the holder dies.
- One process only (pub/sub, or an in-memory database): always the leader.
"""

from __future__ import annotations

import fcntl
import logging
import os
import zlib
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

# The project's advisory lock class for the alert leader (queries/schema.py holds 7_311_013).
LEADER_LOCK = 7_311_016


class Leadership(Protocol):
    @property
    def held(self) -> bool: ...

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True while this process holds it."""
        ...

    def still_held(self) -> bool:
        """Whether the lock is still ours (its connection may have died)."""
        ...

    def release(self) -> None: ...


class AlwaysLeader:
    held = True

    def try_acquire(self) -> bool:
        return True

    def still_held(self) -> bool:
        return True

    def release(self) -> None:
        pass


def _signed32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


class PostgresLeadership:
    """`pg_try_advisory_lock(LEADER_LOCK, <hash of the name>)` on a dedicated connection in
    autocommit (never idle in a transaction)."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.key = _signed32(zlib.crc32(name.encode()))
        self._conn: Connection | None = None
        self.held = False

    def try_acquire(self) -> bool:
        if self.held:
            return self.still_held()
        try:
            if self._conn is None:
                self._conn = self.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT")
            got = self._conn.exec_driver_sql(
                f"SELECT pg_try_advisory_lock({LEADER_LOCK}, {self.key})").scalar()
        except SQLAlchemyError as exc:
            log.warning("cannot try the alert leader lock: %s", str(exc).splitlines()[0])
            self._drop()
            return False
        self.held = bool(got)
        return self.held

    def still_held(self) -> bool:
        if not self.held or self._conn is None:
            return False
        try:
            self._conn.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:
            # The session is gone, and the lock with it: another process may lead already.
            log.warning("alert leader lock lost with its connection: %s",
                        str(exc).splitlines()[0])
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._conn is not None and self.held:
            try:
                self._conn.exec_driver_sql(
                    f"SELECT pg_advisory_unlock({LEADER_LOCK}, {self.key})")
            except SQLAlchemyError:
                pass  # closing the session below releases it anyway
        self._drop()

    def _drop(self) -> None:
        self.held = False
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except SQLAlchemyError:
                pass
            self._conn = None


class FileLeadership:
    """An exclusive, non-blocking flock on `path` (SQLite: beside the database file)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[bytes] | None = None
        self.held = False

    def try_acquire(self) -> bool:
        if self.held:
            return True
        handle = open(self.path, "ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file, self.held = handle, True
        return True

    def still_held(self) -> bool:
        return self.held

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        self.held = False


def leadership_for(engine: Engine, name: str, shared: bool) -> Leadership:
    """The lock that fits the store, for the deployment `name` (its alert stream: every
    process of it names the same); `shared` False (one process) is always the leader."""
    if not shared:
        return AlwaysLeader()
    if engine.dialect.name == "postgresql":
        return PostgresLeadership(engine, name)
    database = engine.url.database
    if database and database != ":memory:":
        return FileLeadership(os.path.abspath(database) + ".alert-leader")
    return AlwaysLeader()
