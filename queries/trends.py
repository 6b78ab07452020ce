"""Counts over time: the Overview's window counts and the Trends page's charts.

Counting a month of errors afresh costs about a second on PostgreSQL with a million rows
(every row is read), far over a live page's budget. So `HourlyRollup` keeps the counts of
each completed UTC hour in memory: a month is then ~720 cached hours plus two partial hours
at the edges, read live through the received_at index (counts are by the time received, and
leave test traffic out: queries/counted.py). Cached hours are read again now and
then (recent ones every minute, older ones every half hour, a bounded number per call), so
rows that arrive late (a spool replayed after an outage) show up within that time.

Plain data out: dicts, and pandas DataFrames for the charts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, func, literal, or_, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from queries.counted import RECEIVED, counted
from queries.dialects import epoch_bucket, without_jit
from queries.reads import SHOWN_SEVERITIES
from queries.records import CATEGORIES, SEVERITIES, iso_utc
from queries.schema import error_logs

BUCKET_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
MAX_BUCKETS = 1500
TOP_N = 10
DIMENSIONS = ("symbol", "component", "error_type")

HOUR = 3600
# An hour is cached only this long after it ended: rows written a little late still count.
SETTLE = timedelta(minutes=2)
RECENT = timedelta(hours=6)
RECHECK_RECENT = timedelta(seconds=60)
RECHECK_OLD = timedelta(minutes=30)
# Hours re-read per call at most: keeps a tick's cost bounded (about 8k rows a call here).
MAX_RECHECK_HOURS = 6
# ...and on an explicit refresh (the Trends page's button).
REFRESH_HOURS = 48
# At most this many hours are kept; the oldest go first (about 100 days' worth).
MAX_CACHED_HOURS = 24 * 100

_SEV_INDEX = {name: i for i, name in enumerate(SEVERITIES)}
_CAT_INDEX = {name: i for i, name in enumerate(CATEGORIES)}
_UNKNOWN_CAT = _CAT_INDEX["unknown"]
_SHOWN = [_SEV_INDEX[s] for s in SHOWN_SEVERITIES]

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def choose_bucket(span: timedelta) -> str:
    """minute up to 6 hours, hour up to 8 days, day beyond: 60 to ~360 bars."""
    if span <= timedelta(hours=6):
        return "minute"
    if span <= timedelta(days=8):
        return "hour"
    return "day"


def fit_bucket(requested: str | None, span: timedelta) -> tuple[str, str | None]:
    """The bucket to use and, when the request was changed, why."""
    if requested in (None, "", "auto"):
        return choose_bucket(span), None
    if requested not in BUCKET_SECONDS:
        raise ValueError(f"bucket must be auto, minute, hour or day; got {requested[:20]!r}")
    if span / timedelta(seconds=BUCKET_SECONDS[requested]) > MAX_BUCKETS:
        chosen = choose_bucket(span)
        return chosen, f"{requested} buckets would make more than {MAX_BUCKETS:,} bars: " \
                       f"showing {chosen}s"
    return requested, None


def _start_of_hour(index: int) -> datetime:
    return datetime.fromtimestamp(index * HOUR, UTC)


def _hour_of(moment: datetime) -> int:
    return int(moment.timestamp() // HOUR)


# -- counts read from the database --------------------------------------------------------
@dataclass
class Counts:
    """Counts of one stretch of time: a severity x category matrix and per-dimension tallies."""

    matrix: np.ndarray = field(
        default_factory=lambda: np.zeros((len(SEVERITIES), len(CATEGORIES)), np.int64))
    dims: dict[str, dict[str, int]] | None = None




@contextmanager
def _reading(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        without_jit(conn)
        yield conn


Ranges = Sequence[tuple[datetime, datetime]]


def _in_ranges(ranges: Ranges) -> ColumnElement[bool]:
    """Counted rows received in the ranges (the producer's clock may be hours off)."""
    ts = RECEIVED
    parts = [and_(ts >= start, ts < end) for start, end in ranges]
    return and_(parts[0] if len(parts) == 1 else or_(*parts), *counted())


def _read_matrices(engine: Engine, ranges: Ranges, seconds: int) -> dict[int, np.ndarray]:
    bucket = epoch_bucket(engine, RECEIVED, seconds).label("b")
    out: dict[int, np.ndarray] = {}
    with _reading(engine) as conn:
        rows = conn.execute(
            select(bucket, error_logs.c.severity, error_logs.c.category, func.count())
            .where(_in_ranges(ranges))
            .group_by(bucket, error_logs.c.severity, error_logs.c.category)).all()
    for b, severity, category, count in rows:
        sev = _SEV_INDEX.get(severity)
        if sev is None:
            continue
        matrix = out.get(int(b))
        if matrix is None:
            matrix = out[int(b)] = np.zeros((len(SEVERITIES), len(CATEGORIES)), np.int64)
        matrix[sev, _CAT_INDEX.get(category, _UNKNOWN_CAT)] += count
    return out


def _read_tallies(engine: Engine, ranges: Ranges, seconds: int | None,
                  dim: str) -> dict[int, dict[str, int]]:
    """Counts by value of `dim`, per bucket of `seconds` (or, with None, as bucket 0)."""
    column = error_logs.c[dim]
    # Names are ranked over what the page shows: debug and info never are.
    where = (_in_ranges(ranges), error_logs.c.severity.in_(SHOWN_SEVERITIES))
    out: dict[int, dict[str, int]] = {}
    with _reading(engine) as conn:
        if seconds is None:
            rows = conn.execute(select(literal(0), column, func.count())
                                .where(*where).group_by(column)).all()
        else:
            bucket = epoch_bucket(engine, RECEIVED, seconds).label("b")
            rows = conn.execute(select(bucket, column, func.count())
                                .where(*where).group_by(bucket, column)).all()
    for b, value, count in rows:
        tally = out.setdefault(int(b), {})
        key = value or ""
        tally[key] = tally.get(key, 0) + count
    return out


def _read(engine: Engine, ranges: Ranges, seconds: int, with_dims: bool) -> dict[int, Counts]:
    """Counts per bucket of `seconds` over the time ranges, keyed by bucket number.

    With dimensions, the four aggregates run at once on their own connections (for the
    duration of the call only): the database works while Python waits.
    """
    if not with_dims:
        return {b: Counts(m) for b, m in _read_matrices(engine, ranges, seconds).items()}
    with ThreadPoolExecutor(max_workers=1 + len(DIMENSIONS),
                            thread_name_prefix="trends-read") as pool:
        matrices_f = pool.submit(_read_matrices, engine, ranges, seconds)
        tallies_f = {d: pool.submit(_read_tallies, engine, ranges, seconds, d)
                     for d in DIMENSIONS}
        matrices = matrices_f.result()
        tallies = {d: f.result() for d, f in tallies_f.items()}
    out: dict[int, Counts] = {}
    for b in set(matrices).union(*(t.keys() for t in tallies.values())):
        matrix = matrices.get(b)
        out[b] = Counts(matrix if matrix is not None
                        else np.zeros((len(SEVERITIES), len(CATEGORIES)), np.int64),
                        {d: tallies[d].get(b, {}) for d in DIMENSIONS})
    return out


# -- the rollup ---------------------------------------------------------------------------
class _KeyTable:
    """Values of one dimension as small integers, so tallies can be summed with numpy."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []

    def encode(self, tally: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        ids = np.empty(len(tally), np.int64)
        counts = np.empty(len(tally), np.int64)
        for i, (name, count) in enumerate(tally.items()):
            code = self.ids.get(name)
            if code is None:
                code = self.ids[name] = len(self.names)
                self.names.append(name)
            ids[i] = code
            counts[i] = count
        return ids, counts


@dataclass
class _Hour:
    matrix: np.ndarray
    matrix_read_at: datetime
    dims: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    dims_read_at: datetime | None = None


class HourlyRollup:
    """Counts per completed UTC hour, kept in memory and re-read now and then.

    Thread-safe: callbacks of several browsers share one. The database is read outside the
    lock; two callers may read the same hours at once, which is only wasted work.
    """

    def __init__(self, engine: Engine, clock: Clock = _now) -> None:
        self.engine = engine
        self.clock = clock
        self._hours: dict[int, _Hour] = {}
        self._keys = {d: _KeyTable() for d in DIMENSIONS}
        self._lock = threading.Lock()
        self.reads = 0  # hour ranges read from the database (for tests and the benchmark)

    # -- cache upkeep ----------------------------------------------------------------------
    def _cacheable_end(self, now: datetime) -> int:
        """The first hour that is not settled yet: hours before it may be cached."""
        return _hour_of(now - SETTLE)

    def _stale(self, hour: int, read_at: datetime | None, now: datetime) -> bool:
        if read_at is None:
            return True
        ended = _start_of_hour(hour + 1)
        limit = RECHECK_RECENT if now - ended < RECENT else RECHECK_OLD
        return now - read_at > limit

    def _ensure(self, first: int, stop: int, with_dims: bool, now: datetime,
                recheck: int = MAX_RECHECK_HOURS) -> None:
        """Make hours [first, stop) present; re-read a bounded number of stale ones."""
        with self._lock:
            missing, stale = [], []
            for hour in range(first, stop):
                cached = self._hours.get(hour)
                read_at = None if cached is None else (
                    cached.dims_read_at if with_dims else cached.matrix_read_at)
                if cached is None or (with_dims and cached.dims is None):
                    missing.append(hour)
                elif self._stale(hour, read_at, now):
                    stale.append(hour)
        # Re-read the newest stale hours first: that is where late rows land.
        stale = sorted(stale, reverse=True)[:recheck]
        for span in _spans(sorted(missing + stale)):
            self._load(span[0], span[-1] + 1, with_dims, now)
        with self._lock:
            if len(self._hours) > MAX_CACHED_HOURS:
                outside = sorted(h for h in self._hours if not first <= h < stop)
                for hour in outside[:len(self._hours) - MAX_CACHED_HOURS]:
                    del self._hours[hour]

    def _load(self, first: int, stop: int, with_dims: bool, now: datetime) -> None:
        counts = _read(self.engine, [(_start_of_hour(first), _start_of_hour(stop))], HOUR,
                       with_dims)
        self.reads += 1
        with self._lock:
            for hour in range(first, stop):
                got = counts.get(hour) or Counts(dims={d: {} for d in DIMENSIONS}
                                                 if with_dims else None)
                cached = self._hours.get(hour)
                if cached is None:
                    cached = self._hours[hour] = _Hour(got.matrix, now)
                else:
                    cached.matrix, cached.matrix_read_at = got.matrix, now
                if with_dims:
                    dims = got.dims or {d: {} for d in DIMENSIONS}
                    cached.dims = {d: self._keys[d].encode(dims[d]) for d in DIMENSIONS}
                    cached.dims_read_at = now

    def expire(self, start: datetime, end: datetime) -> None:
        """Mark the cached hours of [start, end) due, so that reads re-read them (newest
        first, a bounded number a call): what a "Refresh" asks for."""
        long_ago = datetime.min.replace(tzinfo=UTC)
        with self._lock:
            for hour in range(_hour_of(start), _hour_of(end) + 1):
                cached = self._hours.get(hour)
                if cached is not None:
                    cached.matrix_read_at = long_ago
                    if cached.dims_read_at is not None:
                        cached.dims_read_at = long_ago

    def warm(self, days: int = 30) -> None:
        """Read the last `days` of completed hours now, dimensions too.

        Worth calling once at start-up, off the request path: a cold month costs seconds
        (every row is read), a warm one milliseconds.
        """
        now = self.clock()
        stop = self._cacheable_end(now)
        self._ensure(stop - days * 24, stop, True, now)

    # -- reading ---------------------------------------------------------------------------
    def _pieces(self, start: datetime, end: datetime, with_dims: bool, now: datetime,
                recheck: int = MAX_RECHECK_HOURS) -> tuple[list[int], dict[int, Counts]]:
        """Cached whole hours inside [start, end), and live counts of the rest by hour."""
        first = _hour_of(start) + (0 if start.timestamp() % HOUR == 0 else 1)
        stop = min(_hour_of(end), self._cacheable_end(now))
        live: dict[int, Counts] = {}
        if first >= stop:  # nothing cacheable inside: read it all live
            live.update(_read(self.engine, [(start, end)], HOUR, with_dims))
            return [], live
        self._ensure(first, stop, with_dims, now, recheck)
        # Both edges in one read: the partial hour at the start and what is not settled yet.
        edges = [(a, b) for a, b in ((start, _start_of_hour(first)), (_start_of_hour(stop), end))
                 if a < b]
        if edges:
            live.update(_read(self.engine, edges, HOUR, with_dims))
        return list(range(first, stop)), live

    def severity_counts(self, start: datetime, end: datetime | None = None) -> dict[str, int]:
        """Counts of the shown severities over [start, end) (end: now), and `total`."""
        now = self.clock()
        end = min(end or now, now)
        hours, live = self._pieces(start, end, False, now)
        with self._lock:
            matrices = [self._hours[h].matrix for h in hours if h in self._hours]
        matrices += [c.matrix for c in live.values()]
        by_sev = (np.sum(matrices, axis=0).sum(axis=1) if matrices
                  else np.zeros(len(SEVERITIES), np.int64))
        result = {s: int(by_sev[_SEV_INDEX[s]]) for s in SHOWN_SEVERITIES}
        result["total"] = sum(result.values())
        return result

    def by_hour(self, start: datetime, end: datetime, recheck: int = MAX_RECHECK_HOURS
                ) -> tuple[dict[int, np.ndarray], dict[str, list[tuple[str, int]]]]:
        """Severity x category matrices by hour, and each dimension's tallies, over the range."""
        now = self.clock()
        hours, live = self._pieces(start, end, True, now, recheck)
        stacks: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {
            d: ([], []) for d in DIMENSIONS}
        matrices: dict[int, np.ndarray] = {}
        with self._lock:
            for hour in hours:
                cached = self._hours.get(hour)
                if cached is None or cached.dims is None:
                    continue
                matrices[hour] = cached.matrix
                for d in DIMENSIONS:
                    stacks[d][0].append(cached.dims[d][0])
                    stacks[d][1].append(cached.dims[d][1])
            names = {d: list(self._keys[d].names) for d in DIMENSIONS}
        tallies: dict[str, list[tuple[str, int]]] = {}
        for d in DIMENSIONS:
            ids = np.concatenate(stacks[d][0]) if stacks[d][0] else np.empty(0, np.int64)
            counts = np.concatenate(stacks[d][1]) if stacks[d][1] else np.empty(0, np.int64)
            summed = np.bincount(ids, weights=counts, minlength=len(names[d])).astype(np.int64)
            merged = {names[d][i]: int(summed[i]) for i in np.flatnonzero(summed)}
            for counts_ in live.values():
                for name, count in (counts_.dims or {}).get(d, {}).items():
                    merged[name] = merged.get(name, 0) + count
            tallies[d] = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))
        for hour, counts_ in live.items():
            matrices[hour] = matrices[hour] + counts_.matrix if hour in matrices \
                else counts_.matrix
        return matrices, tallies


def _spans(hours: Iterable[int]) -> list[list[int]]:
    """Consecutive runs: [1, 2, 3, 7, 8] -> [[1, 2, 3], [7, 8]]."""
    spans: list[list[int]] = []
    for hour in hours:
        if spans and hour == spans[-1][-1] + 1:
            spans[-1].append(hour)
        else:
            spans.append([hour])
    return spans


# -- the Trends page's data -----------------------------------------------------------------
@dataclass
class Trend:
    start: datetime
    end: datetime
    bucket: str
    by_severity: pd.DataFrame  # index: bucket start (UTC); columns: warning, error, critical
    by_category: pd.DataFrame  # index: bucket start (UTC); columns: categories seen, busiest first
    top: dict[str, pd.DataFrame]  # "symbol" | "component" | "error_type" -> name, count
    total: int
    note: str | None = None

    @property
    def empty(self) -> bool:
        return self.total == 0

    def as_json(self) -> dict[str, Any]:
        def series(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [{"time": iso_utc(moment.to_pydatetime()),
                     **{str(c): int(v) for c, v in row.items()}}
                    for moment, row in frame.iterrows()]

        def ranking(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [{"name": n, "count": int(c)} for n, c in zip(frame["name"], frame["count"],
                                                                  strict=True)]

        return {
            "from": iso_utc(self.start),
            "to": iso_utc(self.end),
            "bucket": self.bucket,
            "total": self.total,
            "bySeverity": series(self.by_severity),
            "byCategory": series(self.by_category),
            "topSymbols": ranking(self.top["symbol"]),
            "topComponents": ranking(self.top["component"]),
            "topTypes": ranking(self.top["error_type"]),
            "note": self.note,
        }


_FREQ = {"minute": "min", "hour": "h", "day": "D"}


def _frames(matrices: dict[int, np.ndarray], seconds: int, bucket: str, start: datetime,
            end: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-bucket frames by severity and by category, every bucket of the range present."""
    first = int(start.timestamp() // BUCKET_SECONDS[bucket])
    last = int((end.timestamp() - 1e-6) // BUCKET_SECONDS[bucket])
    index = pd.date_range(datetime.fromtimestamp(first * BUCKET_SECONDS[bucket], UTC),
                          periods=max(last - first + 1, 0), freq=_FREQ[bucket])
    if matrices:
        keys = np.fromiter(matrices.keys(), np.int64, len(matrices))
        cube = np.stack(list(matrices.values()))  # pieces x severity x category
        # Pieces are `seconds` long; fold them into the chart's (equal or longer) buckets.
        buckets = (keys * seconds) // BUCKET_SECONDS[bucket] - first
        keep = (buckets >= 0) & (buckets < len(index))
        folded = np.zeros((len(index), len(SEVERITIES), len(CATEGORIES)), np.int64)
        np.add.at(folded, buckets[keep], cube[keep])
    else:
        folded = np.zeros((len(index), len(SEVERITIES), len(CATEGORIES)), np.int64)
    by_severity = pd.DataFrame(folded.sum(axis=2)[:, _SHOWN], index=index,
                               columns=list(SHOWN_SEVERITIES))
    by_cat_all = pd.DataFrame(folded[:, _SHOWN, :].sum(axis=1), index=index,
                              columns=list(CATEGORIES))
    totals = by_cat_all.sum()
    by_category = by_cat_all[[c for c in totals.sort_values(ascending=False, kind="stable").index
                              if totals[c] > 0]]
    return by_severity, by_category


def _top(tally: list[tuple[str, int]], n: int = TOP_N) -> pd.DataFrame:
    named = [(name, count) for name, count in tally if name][:n]
    return pd.DataFrame(named, columns=["name", "count"]).astype({"count": "int64"})


def build_trend(rollup: HourlyRollup, start: datetime, end: datetime,
                bucket: str | None = None, refresh: bool = False) -> Trend:
    """The Trends page's data over [start, end): counts per bucket, and the top names.

    Minute buckets (ranges of a few hours) are read straight from the database; hour and
    day buckets come from the rollup. `refresh` re-reads the newest cached hours first.
    """
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if start >= end:
        raise ValueError("the start of the range must be before its end")
    if refresh:
        rollup.expire(start, end)
    chosen, note = fit_bucket(bucket, end - start)
    if chosen == "minute":
        # A few hours: read straight from the database; the names need no per-minute split.
        matrices = _read_matrices(rollup.engine, [(start, end)], 60)
        ranked = {}
        for d in DIMENSIONS:
            tally = _read_tallies(rollup.engine, [(start, end)], None, d).get(0, {})
            ranked[d] = sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))
        seconds = 60
    else:
        matrices, ranked = rollup.by_hour(
            start, end, REFRESH_HOURS if refresh else MAX_RECHECK_HOURS)
        seconds = HOUR
    by_severity, by_category = _frames(matrices, seconds, chosen, start, end)
    total = int(by_severity.to_numpy().sum())
    return Trend(start, end, chosen, by_severity, by_category,
                 {d: _top(ranked[d]) for d in DIMENSIONS}, total, note)
