"""Search over the stored errors: the query language, the paged query, and the export rows.

The language, as typed in the Errors page and passed as `q` to the API:

    timeout                    free text: the message or the type contains it (any case)
    "connection reset"         a phrase, as one free-text term
    severity:critical          key:value terms: severity, category, symbol, component, type,
    category:pattern,network     operation, source; a comma gives alternatives,
    -category:network            a leading `-` excludes
    test:true                  test traffic too (left out by default); test:only for it alone

Terms are AND-ed. An unknown key (`http://x`, `note:this`) is plain free text, so a message
with a colon in it can still be found.

Paging is keyset-first: a page carries `nextCursor`, and the next page starts strictly after
it, which costs the same at row 50 and at row 5,000,000. Numbered pages (OFFSET) are allowed
up to MAX_OFFSET rows deep. Counts stop at COUNT_CAP ("10,000+"): an exact count of a broad
query over millions of rows would cost more than the page itself.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, literal, not_, or_, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.sql.elements import ColumnElement

from queries.counted import counted
from queries.dialects import set_statement_timeout
from queries.reads import error_summary
from queries.records import CATEGORIES, SEVERITIES, as_utc
from queries.schema import error_logs
from queries.validation import BadParameter

log = logging.getLogger(__name__)

COUNT_CAP = 10_000
MAX_OFFSET = 10_000
MAX_PAGE_SIZE = 500
# A page that needs longer than this is stopped (PostgreSQL), and said so, rather than
# holding a connection while the user has long given up.
PAGE_TIMEOUT_MS = 10_000
# The capped count is a nicety next to the page: it gets less time, and "unknown" on timeout.
COUNT_TIMEOUT_MS = 150

KEY_COLUMNS = {
    "severity": error_logs.c.severity,
    "category": error_logs.c.category,
    "symbol": error_logs.c.symbol,
    "component": error_logs.c.component,
    "type": error_logs.c.error_type,
    "operation": error_logs.c.operation,
    "source": error_logs.c.source,
}

_TOKEN = re.compile(r"""
      (?P<neg>-)?(?P<key>[A-Za-z_]+):(?:"(?P<qval>[^"]*)"|(?P<val>[^\s"]*))
    | "(?P<phrase>[^"]*)"
    | (?P<word>\S+)
""", re.VERBOSE)

_LIKE_ESCAPE = "/"


class SearchError(BadParameter):
    """A search the monitor cannot run as asked; the text says what to change."""


class SearchTimeout(RuntimeError):
    """The page query ran past PAGE_TIMEOUT_MS and was stopped."""


@dataclass(frozen=True)
class KeyTerm:
    key: str
    values: tuple[str, ...]
    negated: bool = False


@dataclass(frozen=True)
class SearchQuery:
    """A parsed search: free-text terms and key:value terms, AND-ed."""

    words: tuple[str, ...] = ()
    keys: tuple[KeyTerm, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    # `test:true` includes test traffic, `test:only` shows nothing else; default: left out.
    test: str = "false"

    def between(self, start: datetime | None, end: datetime | None) -> SearchQuery:
        """The same terms over [start, end); naive times are taken as UTC."""
        start = _aware(start)
        end = _aware(end)
        if start is not None and end is not None and start >= end:
            raise SearchError("the start of the time range must be before its end")
        return SearchQuery(self.words, self.keys, start, end, self.test)


@dataclass
class SearchPage:
    items: list[dict[str, Any]]
    page: int
    page_size: int
    total: int | None
    total_exact: bool
    has_more: bool
    next_cursor: str | None
    notes: list[str] = field(default_factory=list)

    def total_text(self) -> str:
        if self.total is None:
            return "many"
        return f"{self.total:,}" if self.total_exact else f"{self.total:,}+"

    def as_json(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "page": self.page,
            "pageSize": self.page_size,
            "total": self.total,
            "totalExact": self.total_exact,
            "totalText": self.total_text(),
            "hasMore": self.has_more,
            "nextCursor": self.next_cursor,
        }


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


# Keys whose values come from a fixed list, matched in lower case.
_CLOSED_VALUES = {"severity": SEVERITIES, "category": CATEGORIES}


def _key_values(key: str, raw: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in raw.split(",") if v.strip())
    if not values:
        raise SearchError(f"{key}: needs a value, e.g. {key}:{_EXAMPLES[key]}")
    allowed = _CLOSED_VALUES.get(key)
    if allowed is not None:
        values = tuple(v.lower() for v in values)
        bad = [v for v in values if v not in allowed]
        if bad:
            raise SearchError(f"{key} must be one of {', '.join(allowed)}; "
                              f"got {bad[0][:40]!r}")
    elif key == "symbol":
        # Symbols are upper case by convention; accept the value as typed and in upper case.
        values = tuple(dict.fromkeys(v for value in values for v in (value, value.upper())))
    return values


_EXAMPLES = {"severity": "critical", "category": "pattern", "symbol": "AAPL",
             "component": "PatternDetector", "type": "PatternDetectionError",
             "operation": "detect_doji", "source": "TickStockPL"}


def parse_query(text_: str | None) -> SearchQuery:
    """Parse the search language above; raises SearchError saying what is wrong."""
    text_ = (text_ or "").strip()
    if len(text_) > 1000:
        raise SearchError("the search is longer than 1,000 characters")
    words: list[str] = []
    keys: list[KeyTerm] = []
    test = "false"
    for match in _TOKEN.finditer(text_):
        key = (match.group("key") or "").lower()
        if key == "test" and not match.group("neg"):
            test = (match.group("qval") or match.group("val") or "").strip().lower()
            if test not in _TEST_VALUES:
                raise SearchError(f"test must be one of {', '.join(_TEST_VALUES)}; "
                                  f"got {test[:40]!r}")
        elif key in KEY_COLUMNS:
            raw = match.group("qval") if match.group("qval") is not None else match.group("val")
            keys.append(KeyTerm(key, _key_values(key, raw or ""), bool(match.group("neg"))))
        elif match.group("phrase") is not None:
            if match.group("phrase").strip():
                words.append(match.group("phrase"))
        else:
            words.append(match.group(0))
    return SearchQuery(tuple(words), tuple(keys), test=test)


_TEST_VALUES = ("true", "false", "only")


def _like_pattern(word: str) -> str:
    escaped = (word.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2)
               .replace("%", _LIKE_ESCAPE + "%").replace("_", _LIKE_ESCAPE + "_"))
    return f"%{escaped}%"


def conditions(query: SearchQuery) -> list[ColumnElement[bool]]:
    """The WHERE conditions of `query`, each served by an index where one exists."""
    where: list[ColumnElement[bool]] = []
    if query.test == "only":
        where.append(error_logs.c.is_test.is_(True))
    else:
        where.extend(counted(include_test=query.test == "true"))
    if query.start is not None:
        where.append(error_logs.c.timestamp >= query.start)
    if query.end is not None:
        where.append(error_logs.c.timestamp < query.end)
    for term in query.keys:
        column = KEY_COLUMNS[term.key]
        test = column.in_(term.values)
        # NOT IN leaves out NULLs too; "-symbol:AAPL" should keep errors without a symbol.
        where.append(or_(column.is_(None), not_(test)) if term.negated else test)
    for word in query.words:
        pattern = _like_pattern(word)
        where.append(or_(error_logs.c.error_message.ilike(pattern, escape=_LIKE_ESCAPE),
                         error_logs.c.error_type.ilike(pattern, escape=_LIKE_ESCAPE)))
    return where


# -- cursors ------------------------------------------------------------------------------
def encode_cursor(timestamp: datetime, error_id: str) -> str:
    raw = f"{as_utc(timestamp).isoformat()}|{error_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(token: str) -> tuple[datetime, str]:
    """The (timestamp, error_id) a page ended at; SearchError if the token is not ours."""
    try:
        padded = token + "=" * (-len(token) % 4)
        moment, error_id = base64.urlsafe_b64decode(padded.encode("ascii")).decode().split("|", 1)
        return as_utc(datetime.fromisoformat(moment)), error_id
    except (ValueError, UnicodeError):
        raise SearchError("cursor is not one this monitor handed out") from None


def _after_cursor(token: str) -> ColumnElement[bool]:
    moment, error_id = decode_cursor(token)
    ts = error_logs.c.timestamp
    # Written so that PostgreSQL can range-scan the timestamp index (a row comparison could not).
    return and_(ts <= moment, or_(ts < moment, error_logs.c.error_id < error_id))


# -- the paged query ------------------------------------------------------------------------
_LIST_COLUMNS = (
    error_logs.c.error_id, error_logs.c.error_type, error_logs.c.error_message,
    error_logs.c.severity, error_logs.c.category, error_logs.c.symbol,
    error_logs.c.component, error_logs.c.operation, error_logs.c.timestamp,
    error_logs.c.is_test,
)


def _item(row: Any) -> dict[str, Any]:
    """The API's summary of an error, with its operation (the search shows it)."""
    item = {**error_summary(row), "operation": row.operation}
    if row.is_test:
        item["test"] = True
    return item


def _is_timeout(exc: OperationalError) -> bool:
    return getattr(exc.orig, "pgcode", None) == "57014"  # query_canceled


def search_errors(engine: Engine, query: SearchQuery, page: int = 1, page_size: int = 50,
                  cursor: str | None = None, with_total: bool = True) -> SearchPage:
    """One page of the errors matching `query`, newest first.

    With `cursor` (a `next_cursor` of the previous page) the page starts after it and `page`
    is only echoed; without, `page` is taken as an offset, at most MAX_OFFSET rows deep.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise SearchError(f"page_size must be from 1 to {MAX_PAGE_SIZE}")
    if page < 1:
        raise SearchError("page must be at least 1")
    offset = 0 if cursor else (page - 1) * page_size
    if offset > MAX_OFFSET:
        raise SearchError(f"page {page} is deeper than {MAX_OFFSET:,} rows; follow nextCursor "
                          "from the previous page, or narrow the time range")
    where = conditions(query)
    paged = list(where)
    if cursor:
        paged.append(_after_cursor(cursor))
    statement = (select(*_LIST_COLUMNS).where(*paged)
                 .order_by(error_logs.c.timestamp.desc(), error_logs.c.error_id.desc())
                 .limit(page_size + 1).offset(offset))
    try:
        with engine.connect() as conn:
            set_statement_timeout(conn, PAGE_TIMEOUT_MS)
            rows = conn.execute(statement).all()
    except OperationalError as exc:
        if _is_timeout(exc):
            raise SearchTimeout(
                f"the search took longer than {PAGE_TIMEOUT_MS // 1000} s; narrow the time "
                "range or add key:value terms") from exc
        raise
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    next_cursor = (encode_cursor(rows[-1].timestamp, rows[-1].error_id)
                   if has_more and rows else None)
    result = SearchPage([_item(r) for r in rows], page, page_size, None, False, has_more,
                        next_cursor)
    if not has_more and not cursor:
        result.total, result.total_exact = offset + len(rows), True
    elif with_total:
        result.total, result.total_exact = count_capped(engine, where)
    return result


def count_capped(engine: Engine, where: list[ColumnElement[bool]],
                 cap: int = COUNT_CAP) -> tuple[int | None, bool]:
    """(count, exact): counting stops at `cap`; (None, False) when even that took too long."""
    limited = select(literal(1)).select_from(error_logs).where(*where).limit(cap + 1).subquery()
    try:
        with engine.connect() as conn:
            set_statement_timeout(conn, COUNT_TIMEOUT_MS)
            count = conn.execute(select(func.count()).select_from(limited)).scalar_one()
    except OperationalError as exc:
        if _is_timeout(exc):
            return None, False
        raise
    return (cap, False) if count > cap else (count, True)


# -- export -------------------------------------------------------------------------------
EXPORT_COLUMNS = ("timestamp", "error_id", "severity", "category", "error_type", "component",
                  "operation", "symbol", "source", "error_message", "error_traceback", "context")


def iter_matching(engine: Engine, query: SearchQuery, limit: int) -> Iterator[dict[str, Any]]:
    """Every error matching `query`, newest first, up to `limit`, streamed from the server.

    On PostgreSQL this is a server-side cursor: memory stays flat however many rows match.
    """
    statement = (select(*(error_logs.c[name] for name in EXPORT_COLUMNS))
                 .where(*conditions(query))
                 .order_by(error_logs.c.timestamp.desc(), error_logs.c.error_id.desc())
                 .limit(limit))
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=2000).execute(statement)
        for row in result:
            item = dict(row._mapping)
            item["timestamp"] = as_utc(item["timestamp"])
            yield item


# -- optional: trigram indexes for free text ------------------------------------------------
TRIGRAM_INDEXES = (
    "CREATE INDEX IF NOT EXISTS idx_error_logs_message_trgm "
    "ON error_logs USING gin (error_message gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS idx_error_logs_error_type_trgm "
    "ON error_logs USING gin (error_type gin_trgm_ops)",
)


def create_trigram_indexes(engine: Engine) -> bool:
    """Make free-text search use indexes (PostgreSQL with pg_trgm); False where it cannot.

    Not part of create_schema on purpose: measured here, these two GIN indexes cut the
    store's write rate about in half (15-19k to 6-8k rows/s into a million-row table), which
    would break the ingest's 20,000 msg/s target. Without them a rare word over a month of
    rows is a scan (about a second per million rows); with them, milliseconds. A deployment
    that searches more than it ingests can call this once (or run the SQL by hand).
    """
    if engine.dialect.name != "postgresql":
        return False
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
            for statement in TRIGRAM_INDEXES:
                conn.execute(text(statement))
    except DBAPIError:  # no pg_trgm on the server, or no privilege to create it
        return False
    return True


def ensure_trigram_indexes(engine: Engine, wanted: bool) -> None:
    """SEARCH_TRIGRAM_INDEX at start-up: make the indexes when asked, and say so when it
    cannot (SQLite, no pg_trgm on the server, no right to create the extension)."""
    if not wanted:
        return
    if create_trigram_indexes(engine):
        log.info("free-text search uses pg_trgm indexes (SEARCH_TRIGRAM_INDEX=true)")
    else:
        log.warning("SEARCH_TRIGRAM_INDEX=true but the trigram indexes could not be made "
                    "(PostgreSQL with the pg_trgm extension and the right to create it are "
                    "needed); free-text search scans the rows instead")
