"""The spool's layout on disk, shared by its writer (the reader process) and its reader.

`SPOOL_DIR` holds `seg-000000000001.log`, ... (records: u32 length, f64 received epoch
seconds, payload), `checkpoint` (JSON: the segment and offset committed up to), `reader.state`
(see reader_state.py) and `writer.lock` (held by whichever process writes the segments).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

HEADER = struct.Struct("<Id")
SEGMENT_BYTES = 8 * 1024 * 1024
WRITER_LOCK = "writer.lock"


class SpoolBusy(RuntimeError):
    """Another live process writes this SPOOL_DIR: two ingests cannot share one spool."""


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """A place in the journal: everything before it has been read (or committed)."""

    segment: int
    offset: int


def segment_path(folder: Path, number: int) -> Path:
    return folder / f"seg-{number:012d}.log"


def segment_number(path: Path) -> int:
    return int(path.stem[4:])


def whole_records(data: bytes, offset: int = 0) -> tuple[int, int]:
    """(records, end): how many whole records `data` holds from `offset`, and where the last
    one ends; a record cut short at the end is not counted."""
    count = 0
    size = len(data)
    while offset + HEADER.size <= size:
        end = offset + HEADER.size + HEADER.unpack_from(data, offset)[0]
        if end > size:
            break
        offset = end
        count += 1
    return count, offset
