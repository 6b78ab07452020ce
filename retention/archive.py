"""Archives of what retention removes: gzip JSON Lines, one file per table and day.

`RETENTION_ARCHIVE_DIR/errors-2024-10-30.jsonl.gz` holds the error_logs rows of 2024-10-30
(UTC), one JSON object a line with every column (`context` as an object, times as ISO-8601
UTC). Dead letters go to `rejected-<day>`, groups to `groups-<day>`, alerts to `alerts-<day>`.

Safety: rows are written (a gzip member per batch), flushed and fsynced before the caller
deletes them; if the delete does not commit, what was written for it is cut off again
(`undo`). Each run writes its own file per day: when `errors-2024-10-30.jsonl.gz` exists
from an earlier run, the next is `errors-2024-10-30.2.jsonl.gz`, so a file is never appended
to after a crash. A crash in the middle of a write can leave a torn last member, whose rows
were never deleted (the delete commits after the fsync); `read_archive` stops there.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, DateTime, Table, Uuid
from sqlalchemy.types import JSON

from queries.records import as_utc
from queries.schema import UtcDateTime

log = logging.getLogger(__name__)

# Table -> file name prefix. Other tables use their own name.
PREFIXES = {
    "error_logs": "errors",
    "rejected_messages": "rejected",
    "error_groups": "groups",
    "error_group_symbols": "group-symbols",
    "alerts": "alerts",
}
TABLES = {prefix: table for table, prefix in PREFIXES.items()}
# Level 3 compresses ~2.5x faster than gzip's default 6, for files ~10% larger: archiving must
# not make retention slow (measured in bench/retention.py).
COMPRESSLEVEL = 3
_NAME = re.compile(r"^(?P<prefix>[a-z_-]+)-(?P<day>\d{4}-\d{2}-\d{2})(?:\.(?P<part>\d+))?"
                   r"\.jsonl\.gz$")


class ArchiveError(RuntimeError):
    """The archive could not be written safely; nothing it was meant to hold may be deleted."""


@dataclass
class Mark:
    """What one `write` added: (file, size before, file made by this write)."""

    pieces: list[tuple[Path, int, bool]] = field(default_factory=list)


class ArchiveWriter:
    """Writes one run's archive files; `write` returns only once the rows are on disk."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._files: dict[tuple[str, str], Path] = {}
        self.rows_by_file: dict[Path, int] = {}

    def check(self) -> None:
        """Fail early, before anything is deleted, when the folder cannot take files."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            probe = self.folder / f".probe-{uuid.uuid4().hex}"
            with open(probe, "wb") as handle:
                handle.write(b"ok")
                handle.flush()
                os.fsync(handle.fileno())
            probe.unlink()
        except OSError as exc:
            raise ArchiveError(f"cannot write archives to {self.folder}: {exc}") from exc

    def _path(self, table: str, day: str) -> Path:
        key = (table, day)
        if key not in self._files:
            prefix = PREFIXES.get(table, table)
            path = self.folder / f"{prefix}-{day}.jsonl.gz"
            part = 1
            while path.exists():  # archived by an earlier run: this run writes a new part
                part += 1
                path = self.folder / f"{prefix}-{day}.{part}.jsonl.gz"
            self._files[key] = path
        return self._files[key]

    def write(self, table: str, rows: Iterable[tuple[str, str]]) -> Mark:
        """Append `(day 'YYYY-MM-DD', JSON text)` rows, fsynced; raises ArchiveError."""
        by_day: dict[str, list[str]] = {}
        for day, line in rows:
            by_day.setdefault(day, []).append(line)
        mark = Mark()
        try:
            for day, lines in sorted(by_day.items()):
                path = self._path(table, day)
                created = not path.exists()
                size = path.stat().st_size if not created else 0
                mark.pieces.append((path, size, created))
                with open(path, "ab") as raw:
                    # One gzip member per batch: a reader sees the members as one stream.
                    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=COMPRESSLEVEL,
                                       mtime=0) as gz:
                        gz.write(("\n".join(lines) + "\n").encode("utf-8"))
                    raw.flush()
                    os.fsync(raw.fileno())
                if created:
                    _fsync_folder(self.folder)
                self.rows_by_file[path] = self.rows_by_file.get(path, 0) + len(lines)
        except OSError as exc:
            self.undo(mark)
            raise ArchiveError(f"could not archive {table} rows to {self.folder}: {exc}") from exc
        return mark

    def write_stream(self, table: str, day: str,
                     produce: Callable[[Any], None]) -> tuple[Mark, int]:
        """Append the JSON lines `produce(file)` writes (e.g. a COPY), all of `day`, fsynced.

        Returns the mark and the number of lines; raises ArchiveError (the write is undone).
        """
        path = self._path(table, day)
        created = not path.exists()
        mark = Mark([(path, 0 if created else path.stat().st_size, created)])
        try:
            with open(path, "ab") as raw:
                with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=COMPRESSLEVEL,
                                   mtime=0) as gz:
                    counted = _LineCounter(gz)
                    produce(counted)
                raw.flush()
                os.fsync(raw.fileno())
            if created:
                _fsync_folder(self.folder)
        except OSError as exc:
            self.undo(mark)
            raise ArchiveError(f"could not archive {table} rows to {self.folder}: {exc}") from exc
        except Exception:
            self.undo(mark)
            raise
        if counted.lines:
            self.rows_by_file[path] = self.rows_by_file.get(path, 0) + counted.lines
        elif created:  # nothing to keep: no empty file
            self.undo(mark)
        return mark, counted.lines

    def undo(self, *marks: Mark) -> None:
        """Cut the files back to before the marked writes (their rows were not deleted)."""
        for mark in reversed(marks):
            for path, size, created in reversed(mark.pieces):
                try:
                    if created:
                        path.unlink(missing_ok=True)
                        self.rows_by_file.pop(path, None)
                    elif path.exists():
                        with open(path, "r+b") as handle:
                            handle.truncate(size)
                            os.fsync(handle.fileno())
                except OSError:
                    log.exception("could not cut %s back to %d bytes", path, size)
            mark.pieces.clear()

    @property
    def files(self) -> list[str]:
        return sorted(str(p) for p in self.rows_by_file)


class _LineCounter:
    """A binary file wrapper that counts the lines written through it."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.lines = 0

    def write(self, data: bytes | str) -> int:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.lines += data.count(b"\n")
        return self.target.write(data)


def _fsync_folder(folder: Path) -> None:
    """A new file's name is durable only once its folder is synced."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def table_of(path: str | Path) -> str:
    """The table an archive file belongs to, from its name (`errors-2024-10-30.jsonl.gz`)."""
    match = _NAME.match(Path(path).name)
    if match is None:
        raise ValueError(f"{path}: not a retention archive (expected e.g. "
                         "errors-2024-10-30.jsonl.gz)")
    prefix = match.group("prefix")
    return TABLES.get(prefix, prefix)


def read_archive(path: str | Path) -> Iterator[dict[str, Any]]:
    """The rows of an archive file; a torn end (a crash while writing) is logged and skipped."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        try:
            for line in handle:
                if line.strip():
                    yield json.loads(line)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            log.warning("%s ends with a torn write (%s); its rows were never deleted", path, exc)


# -- SQLite rows <-> archive JSON ---------------------------------------------------------------
# PostgreSQL makes the JSON itself (row_to_json); on SQLite the columns are typed by the Table.

def _as_utc(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    return value


def _is_time(column: Any) -> bool:
    return isinstance(column.type, DateTime | UtcDateTime)


def sqlite_row_json(table: Table | None, columns: list[str], row: tuple[Any, ...]) -> str:
    """One SQLite row as the archive's JSON, shaped like PostgreSQL's row_to_json."""
    document: dict[str, Any] = {}
    for name, value in zip(columns, row, strict=True):
        column = table.columns.get(name) if table is not None else None
        if value is not None and column is not None:
            if _is_time(column):
                value = _as_utc(value)
            elif isinstance(column.type, Uuid):
                value = str(uuid.UUID(str(value)))
            elif isinstance(column.type, JSON) and isinstance(value, str):
                value = json.loads(value)
            elif isinstance(column.type, Boolean):
                value = bool(value)
        document[name] = value
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=str)


def sqlite_values(table: Table, document: dict[str, Any], columns: list[str],
                  to_sqlite_time: Any) -> list[Any]:
    """An archive row's values for an SQLite INSERT of `columns`."""
    values = []
    for name in columns:
        value = document.get(name)
        column = table.columns[name]
        if value is not None:
            if _is_time(column):
                value = to_sqlite_time(datetime.fromisoformat(value))
            elif isinstance(column.type, Uuid):
                value = uuid.UUID(str(value)).hex
            elif isinstance(column.type, JSON):
                value = json.dumps(value, ensure_ascii=False)
            elif isinstance(column.type, Boolean):
                value = int(bool(value))
        values.append(value)
    return values
