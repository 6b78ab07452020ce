"""Counts over any window from the count tables: closed buckets plus the raw edges.

A window [start, end) is covered by the coarsest whole buckets that fit (days, then hours,
then minutes at its two ends), and what is left at each end, less than one of the finest
bucket, is counted from the rows themselves through the index on the time column. The count
tables are exact at all times (queries/count_tables.py: kept by triggers in the writing
statement's transaction), so the sum is exactly `COUNT(*)` over the window, and its cost
grows with the number of buckets the window spans, not with the rows in it.

Times are handled in integer microseconds since the epoch, so bucket edges are exact.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from queries.count_tables import DIM_GRAINS, GROUP_GRAINS, MATRIX_GRAINS
from queries.counted import RECEIVED, counted
from queries.dialects import epoch_bucket
from queries.schema import error_logs

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = 1_000_000


def _micros(moment: datetime) -> int:
    return (moment.astimezone(UTC) - EPOCH) // timedelta(microseconds=1)


def _moment(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True)
class Cover:
    """How a window is counted: whole buckets (grain seconds, first, stop or None for
    "and every later one") and raw ranges of time (end None: open)."""

    buckets: tuple[tuple[int, int, int | None], ...]
    raw: tuple[tuple[datetime, datetime | None], ...]


def cover(start: datetime, end: datetime | None, grains: Sequence[int]) -> Cover:
    """The coarsest whole buckets inside [start, end), finer ones towards the edges, and
    the raw remainders (each shorter than the finest grain). `grains` ascending, each
    dividing the next."""
    buckets: list[tuple[int, int, int | None]] = []
    raw: list[tuple[int, int | None]] = []

    def fill(lo: int, hi: int | None, level: int) -> None:
        if hi is not None and lo >= hi:
            return
        if level < 0:
            raw.append((lo, hi))
            return
        size = grains[level] * _US
        first = -(-lo // size)  # ceil
        stop = None if hi is None else hi // size
        if stop is None or first < stop:
            buckets.append((grains[level], first, stop))
            fill(lo, first * size, level - 1)
            if stop is not None:
                fill(stop * size, hi, level - 1)
        else:
            fill(lo, hi, level - 1)

    fill(_micros(start), None if end is None else _micros(end), len(grains) - 1)
    # Adjacent raw pieces (a window shorter than a bucket) are one range.
    merged: list[tuple[int, int | None]] = []
    for lo, hi in sorted(raw, key=lambda r: r[0]):
        if merged and merged[-1][1] == lo:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return Cover(tuple(buckets),
                 tuple((_moment(lo), None if hi is None else _moment(hi)) for lo, hi in merged))


def _bucket_condition(ranges: Iterable[tuple[int, int, int | None]],
                      prefix: str = "r") -> tuple[str, dict[str, int]]:
    parts, params = [], {}
    for i, (grain, first, stop) in enumerate(ranges):
        params[f"{prefix}g{i}"], params[f"{prefix}a{i}"] = grain, first
        part = f"(grain = :{prefix}g{i} AND bucket >= :{prefix}a{i}"
        if stop is not None:
            params[f"{prefix}b{i}"] = stop
            part += f" AND bucket < :{prefix}b{i}"
        parts.append(part + ")")
    return " OR ".join(parts), params


def _raw_condition(column: Any, ranges: Iterable[tuple[datetime, datetime | None]]
                   ) -> ColumnElement[bool]:
    parts = [column >= lo if hi is None else and_(column >= lo, column < hi)
             for lo, hi in ranges]
    return and_(or_(*parts), *counted())


def _key_sql(key_seconds: int | None) -> str:
    # The start (epoch seconds) of the output bucket a count-table bucket falls in; every
    # grain used is at most key_seconds and divides it, so no bucket straddles two.
    if key_seconds is None:
        return "0"
    return f"(bucket * grain / {int(key_seconds)}) * {int(key_seconds)}"


def _fetch_all(conn: Connection, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows of a count-table query through the driver's cursor: a month by hour is a few
    thousand rows, and SQLAlchemy's per-row work cost more than the query. `sql` takes
    `:name` parameters (sqlite3's own style; psycopg2's is made from it), and ` {C}` where
    text is grouped: COLLATE "C" on PostgreSQL, whose planner sorts 30k names by the
    database's locale otherwise (20 ms of a 45 ms read); SQLite compares bytes anyway."""
    if conn.dialect.name == "postgresql":
        sql = re.sub(r":(\w+)", r"%(\1)s", sql).replace(" {C}", ' COLLATE "C"')
    else:
        sql = sql.replace(" {C}", "")
    cur = conn.connection.cursor()
    try:
        cur.execute(sql, params)
        return cur.fetchall()
    finally:
        cur.close()


# -- severity x category -------------------------------------------------------------------
def matrix_counts(conn: Connection, start: datetime, end: datetime | None,
                  key_seconds: int | None = None,
                  severities: Sequence[str] | None = None) -> dict[tuple[int, str, str], int]:
    """Counted rows received in [start, end) by (bucket start, severity, category).

    `key_seconds`: the output buckets (60, 3600, 86400; key = their start in epoch
    seconds); None: one total, key 0. `severities`: only these (health)."""
    grains = [g for g in MATRIX_GRAINS if key_seconds is None or g <= key_seconds]
    plan = cover(start, end, grains)
    out: dict[tuple[int, str, str], int] = {}
    sev_filter, sev_params = "", {}
    if severities is not None:
        sev_filter = " AND severity IN (" + ", ".join(
            f":sev{i}" for i in range(len(severities))) + ")"
        sev_params = {f"sev{i}": s for i, s in enumerate(severities)}
    if plan.buckets:
        where, params = _bucket_condition(plan.buckets)
        key = _key_sql(key_seconds)
        rows = conn.execute(text(
            f"SELECT {key} AS k, severity, category, sum(n) FROM error_counts "
            f"WHERE ({where}){sev_filter} GROUP BY 1, 2, 3"), {**params, **sev_params})
        for k, severity, category, n in rows:
            if n:
                out[(int(k), severity, category)] = int(n)
    if plan.raw:
        conditions = [_raw_condition(RECEIVED, plan.raw)]
        if severities is not None:
            conditions.append(error_logs.c.severity.in_(list(severities)))
        keys = [error_logs.c.severity, error_logs.c.category]
        if key_seconds:
            keys.insert(0, epoch_bucket(conn, RECEIVED, key_seconds).label("k"))
        for row in conn.execute(select(*keys, func.count()).where(*conditions)
                                .group_by(*keys)):
            k = int(row[0]) * key_seconds if key_seconds else 0
            severity, category, n = row[-3], row[-2], int(row[-1])
            out[(k, severity, category)] = out.get((k, severity, category), 0) + n
    return out


# -- symbol, component, error type --------------------------------------------------------
def dimension_counts(conn: Connection, start: datetime, end: datetime | None,
                     dims: Sequence[str]) -> dict[str, dict[str, int]]:
    """Counts by value of each of `dims` over [start, end), shown severities only ('' is
    "no value"); the same as GROUP BY over the rows."""
    plan = cover(start, end, DIM_GRAINS)
    out: dict[str, dict[str, int]] = {d: {} for d in dims}
    if plan.buckets:
        where, params = _bucket_condition(plan.buckets)
        names = ", ".join(f":dim{i}" for i in range(len(dims)))
        params.update({f"dim{i}": d for i, d in enumerate(dims)})
        for dim, value, n in conn.execute(text(
                f"SELECT dim, value, sum(n) FROM error_dim_counts WHERE ({where}) "
                f"AND dim IN ({names}) GROUP BY 1, 2"), params):
            if n:
                out[dim][value] = int(n)
    if plan.raw:
        condition = and_(_raw_condition(RECEIVED, plan.raw),
                         error_logs.c.severity.in_(("warning", "error", "critical")))
        for dim in dims:
            column = error_logs.c[dim]
            tally = out[dim]
            for value, n in conn.execute(select(column, func.count()).where(condition)
                                         .group_by(column)):
                key = value or ""
                tally[key] = tally.get(key, 0) + int(n)
    return out


# -- the Trends page: both at once ----------------------------------------------------------
def trend_counts(conn: Connection | Engine, start: datetime, end: datetime | None,
                 key_seconds: int,
                 dims: Sequence[str]) -> tuple[dict[tuple[int, str, str], int],
                                               dict[str, dict[str, int]]]:
    """`matrix_counts(..., key_seconds)` and `dimension_counts(...)` of one window with one
    read of the raw edges: on a table partitioned by day, planning a query over every
    partition costs more than reading a few thousand edge rows, so the edges of both
    (the names' ten-minute edges hold the matrix's one-minute ones) come in one query.

    Given an Engine, the three reads run at once on their own connections (the database
    works while Python waits); given a Connection, one after the other on it."""
    mplan = cover(start, end, [g for g in MATRIX_GRAINS if g <= key_seconds])
    dplan = cover(start, end, DIM_GRAINS)
    parts: tuple[Callable[[Connection], Any], ...] = (
        lambda c: _trend_matrix(c, mplan, key_seconds),
        lambda c: _trend_dims(c, dplan, dims),
        lambda c: _trend_raw(c, mplan, dplan, key_seconds, dims))
    if isinstance(conn, Engine):
        engine = conn

        def run(part: Callable[[Connection], Any]) -> Any:
            with engine.connect() as own:
                return part(own)

        with ThreadPoolExecutor(max_workers=len(parts),
                                thread_name_prefix="trend-read") as pool:
            cells, tallies, (raw_cells, raw_tallies) = pool.map(run, parts)
    else:
        cells, tallies, (raw_cells, raw_tallies) = (part(conn) for part in parts)
    for cell, n in raw_cells.items():
        cells[cell] = cells.get(cell, 0) + n
    for dim, tally in raw_tallies.items():
        into = tallies[dim]
        for value, n in tally.items():
            into[value] = into.get(value, 0) + n
    return cells, tallies


def _trend_matrix(conn: Connection, mplan: Cover,
                  key_seconds: int) -> dict[tuple[int, str, str], int]:
    cells: dict[tuple[int, str, str], int] = {}
    if mplan.buckets:
        where, params = _bucket_condition(mplan.buckets)
        for k, severity, category, n in _fetch_all(
                conn, f"SELECT {_key_sql(key_seconds)} AS k, severity {{C}} AS severity, "
                f"category {{C}} AS category, CAST(sum(n) AS BIGINT) FROM error_counts "
                f"WHERE ({where}) GROUP BY 1, 2, 3",
                params):
            if n:
                cells[(k, severity, category)] = n
    return cells


def _trend_dims(conn: Connection, dplan: Cover,
                dims: Sequence[str]) -> dict[str, dict[str, int]]:
    tallies: dict[str, dict[str, int]] = {d: {} for d in dims}
    if dplan.buckets:
        where, params = _bucket_condition(dplan.buckets)
        names = ", ".join(f":dim{i}" for i in range(len(dims)))
        params.update({f"dim{i}": d for i, d in enumerate(dims)})
        for dim, value, n in _fetch_all(
                conn, f"SELECT dim {{C}} AS dim, value {{C}} AS value, CAST(sum(n) AS BIGINT) "
                f"FROM error_dim_counts WHERE ({where}) AND dim IN ({names}) GROUP BY 1, 2",
                params):
            if n:
                tallies[dim][value] = n
    return tallies


def _trend_raw(conn: Connection, mplan: Cover, dplan: Cover, key_seconds: int,
               dims: Sequence[str]) -> tuple[dict[tuple[int, str, str], int],
                                             dict[str, dict[str, int]]]:
    cells: dict[tuple[int, str, str], int] = {}
    tallies: dict[str, dict[str, int]] = {d: {} for d in dims}
    fetch = list(dplan.raw) + [r for r in mplan.raw
                               if not any(_inside(r, d) for d in dplan.raw)]
    if not fetch:
        return cells, tallies
    c = error_logs.c
    shown = {"warning", "error", "critical"}
    matrix_raw = list(mplan.raw)
    dim_raw = list(dplan.raw)
    size = key_seconds * _US
    for row in conn.execute(select(c.received_at, c.severity, c.category,
                                   *(c[d] for d in dims))
                            .where(_raw_condition(RECEIVED, fetch))):
        at = row[0]
        if any(lo <= at and (hi is None or at < hi) for lo, hi in matrix_raw):
            cell = (_micros(at) // size * key_seconds, row[1], row[2])
            cells[cell] = cells.get(cell, 0) + 1
        if row[1] in shown and any(lo <= at and (hi is None or at < hi)
                                   for lo, hi in dim_raw):
            for i, dim in enumerate(dims):
                value = row[3 + i] or ""
                tallies[dim][value] = tallies[dim].get(value, 0) + 1
    return cells, tallies


def _inside(inner: tuple[datetime, datetime | None],
            outer: tuple[datetime, datetime | None]) -> bool:
    lo, hi = inner
    olo, ohi = outer
    return olo <= lo and (ohi is None or (hi is not None and hi <= ohi))


# -- error groups -------------------------------------------------------------------------
def group_slot_counts(conn: Connection, fingerprints: Sequence[str], start: datetime,
                      slots: int, slot_seconds: int = 3600) -> dict[str, list[int]]:
    """Counted rows of each group by slot of `slot_seconds` from `start`, on "timestamp"
    (the group strips' time): slot k is [start + k*slot, start + (k+1)*slot)."""
    result = {fp: [0] * slots for fp in fingerprints}
    if not fingerprints or slots <= 0:
        return result
    step = timedelta(seconds=slot_seconds)
    bucket_ranges: list[tuple[int, int, int | None]] = []
    raw: list[tuple[datetime, datetime | None]] = []
    for k in range(slots):
        plan = cover(start + k * step, start + (k + 1) * step, GROUP_GRAINS)
        bucket_ranges.extend(plan.buckets)
        raw.extend(plan.raw)
    # Slots on whole hours give one bucket each, end to end: as one range per grain the
    # query is one index range, not an OR of a hundred (which PostgreSQL answers by reading
    # the whole table: 250 ms at 1M rows).
    merged: list[tuple[int, int, int | None]] = []
    for grain, first, stop in sorted(bucket_ranges, key=lambda r: (r[0], r[1])):
        if merged and merged[-1][0] == grain and merged[-1][2] == first:
            merged[-1] = (grain, merged[-1][1], stop)
        else:
            merged.append((grain, first, stop))
    bucket_ranges = merged
    fps = {f"fp{i}": fp for i, fp in enumerate(fingerprints)}
    names = ", ".join(f":{name}" for name in fps)
    start_s = _micros(start) // _US
    start_frac = _micros(start) % _US
    if bucket_ranges:
        where, params = _bucket_condition(bucket_ranges)
        rows = conn.execute(text(
            f"SELECT fingerprint, grain, bucket, n FROM error_group_counts WHERE ({where}) "
            f"AND fingerprint IN ({names})"), {**params, **fps})
        for fp, grain, bucket, n in rows:
            # The bucket lies wholly inside one slot: the slot of its start.
            offset = (int(bucket) * int(grain) - start_s) * _US - start_frac
            slot = offset // (slot_seconds * _US)
            if 0 <= slot < slots and n:
                result[fp][slot] += int(n)
    if raw:
        for fp, stamp in conn.execute(
                select(error_logs.c.fingerprint, error_logs.c.timestamp)
                .where(error_logs.c.fingerprint.in_(list(fingerprints)),
                       _raw_condition(error_logs.c.timestamp, raw))):
            slot = (_micros(stamp) - _micros(start)) // (slot_seconds * _US)
            if 0 <= slot < slots:
                result[fp][slot] += 1
    return result
