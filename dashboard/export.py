"""CSV export of a search: rows are written as they come from the database, never all held.

Producer text is untrusted, and a spreadsheet runs a cell that starts with `=`, `+`, `-`,
`@` (or a tab or carriage return) as a formula. Such cells get a leading `'`, as OWASP
advises; everything else is written as it was stored.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from queries.records import iso_utc
from queries.search import EXPORT_COLUMNS

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FLUSH_ROWS = 500


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _cells(row: dict[str, Any]) -> list[Any]:
    cells: list[Any] = []
    for name in EXPORT_COLUMNS:
        value = row.get(name)
        if name == "timestamp":
            value = iso_utc(value)
        elif name == "context":
            value = json.dumps(value if value is not None else {}, ensure_ascii=False,
                               sort_keys=True, default=str)
        cells.append(safe_cell(value) if value is not None else "")
    return cells


def csv_chunks(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The header, then the rows, as CSV text in chunks of FLUSH_ROWS rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    pending = 1
    for row in rows:
        writer.writerow(_cells(row))
        pending += 1
        if pending >= FLUSH_ROWS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    if pending or buffer.tell():
        yield buffer.getvalue()
