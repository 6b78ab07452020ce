"""Counts over time: the Overview's window counts and the Trends page's charts.

Every figure comes from the count tables (queries/count_tables.py, kept exact by triggers)
through queries/counts.py: whole buckets (days, hours, minutes) plus the raw rows of the
window's two edges, each shorter than a minute (ten minutes for the top names). So a month
costs about as much as an hour, and a row stored a moment ago, late or back-dated, counts at
once: there is no cache to go stale. Counts are by the time received, and leave test
traffic out (queries/counted.py).

Plain data out: dicts, and pandas DataFrames for the charts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from queries.counts import matrix_counts, trend_counts
from queries.reads import SHOWN_SEVERITIES
from queries.records import CATEGORIES, SEVERITIES, iso_utc

BUCKET_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
MAX_BUCKETS = 1500
TOP_N = 10
DIMENSIONS = ("symbol", "component", "error_type")

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


def _matrices(cells: dict[tuple[int, str, str], int]) -> dict[int, np.ndarray]:
    """(bucket start, severity, category) -> n as severity x category matrices by start
    (numpy: a month by hour is a few thousand cells)."""
    if not cells:
        return {}
    size = len(cells)
    starts = np.fromiter((k[0] for k in cells), np.int64, size)
    sev = np.fromiter((_SEV_INDEX.get(k[1], -1) for k in cells), np.int64, size)
    cat = np.fromiter((_CAT_INDEX.get(k[2], _UNKNOWN_CAT) for k in cells), np.int64, size)
    counts = np.fromiter(cells.values(), np.int64, size)
    keep = sev >= 0  # a severity the model does not know is not charted
    unique, slot = np.unique(starts[keep], return_inverse=True)
    cube = np.zeros((len(unique), len(SEVERITIES), len(CATEGORIES)), np.int64)
    np.add.at(cube, (slot, sev[keep], cat[keep]), counts[keep])
    return {int(start): cube[i] for i, start in enumerate(unique)}


class HourlyRollup:
    """The counts behind the Overview's cards and the Trends page, read from the count
    tables. The name and methods are those of the in-memory hourly cache it replaces
    (app.py, the pages and the API hold one); it keeps no state but the engine and clock,
    so several browsers and processes share nothing and see the same exact figures."""

    def __init__(self, engine: Engine, clock: Clock = _now) -> None:
        self.engine = engine
        self.clock = clock

    def severity_counts(self, start: datetime, end: datetime | None = None) -> dict[str, int]:
        """Counts of the shown severities over [start, end) (end: now), and `total`."""
        now = self.clock()
        end = min(end or now, now)
        result = dict.fromkeys(SHOWN_SEVERITIES, 0)
        if start < end:
            with self.engine.connect() as conn:
                # Up to now is "all received since start": the open buckets' counts are
                # read whole rather than the rows of their first part.
                cells = matrix_counts(conn, start, None if end >= now else end,
                                      severities=SHOWN_SEVERITIES)
            for (_, severity, _), n in cells.items():
                result[severity] += n
        result["total"] = sum(result.values())
        return result

    def pieces(self, start: datetime, end: datetime | None, seconds: int
               ) -> tuple[dict[int, np.ndarray], dict[str, list[tuple[str, int]]]]:
        """Severity x category matrices by bucket of `seconds` (keyed by its start in epoch
        seconds), and each dimension's tallies busiest first, over [start, end) (end None:
        all received since start)."""
        cells, tallies = trend_counts(self.engine, start, end, seconds, DIMENSIONS)
        matrices = _matrices(cells)
        ranked = {d: sorted(tallies[d].items(), key=lambda kv: (-kv[1], kv[0]))
                  for d in DIMENSIONS}
        return matrices, ranked


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
            # Plain lists, not iterrows(): a Series per row cost ~25 ms for 169 hours.
            columns = [str(c) for c in frame.columns]
            values = frame.to_numpy(dtype=np.int64).tolist()
            return [{"time": iso_utc(moment.to_pydatetime()), **dict(zip(columns, row,
                                                                          strict=True))}
                    for moment, row in zip(frame.index, values, strict=True)]

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


def _frames(matrices: dict[int, np.ndarray], bucket: str, start: datetime,
            end: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-bucket frames by severity and by category, every bucket of the range present;
    `matrices` are keyed by their start in epoch seconds."""
    first = int(start.timestamp() // BUCKET_SECONDS[bucket])
    last = int((end.timestamp() - 1e-6) // BUCKET_SECONDS[bucket])
    index = pd.date_range(datetime.fromtimestamp(first * BUCKET_SECONDS[bucket], UTC),
                          periods=max(last - first + 1, 0), freq=_FREQ[bucket])
    if matrices:
        keys = np.fromiter(matrices.keys(), np.int64, len(matrices))
        cube = np.stack(list(matrices.values()))  # pieces x severity x category
        buckets = keys // BUCKET_SECONDS[bucket] - first
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
    # Columns built typed: .astype() on a fresh frame cost ~8 ms a call.
    return pd.DataFrame({"name": pd.Series([name for name, _ in named], dtype=object),
                         "count": np.array([count for _, count in named], dtype=np.int64)})


def build_trend(rollup: HourlyRollup, start: datetime, end: datetime | None,
                bucket: str | None = None) -> Trend:
    """The Trends page's data over [start, end): counts per bucket, and the top names.
    `end` None: up to now, where the still-open buckets are read whole from the count
    tables, not as the rows received since their start (a flood's last ten minutes).

    Exact at every call (the count tables are kept in the writers' transactions)."""
    open_end = end is None
    start, end = start.astimezone(UTC), (end or rollup.clock()).astimezone(UTC)
    if start >= end:
        raise ValueError("the start of the range must be before its end")
    chosen, note = fit_bucket(bucket, end - start)
    matrices, ranked = rollup.pieces(start, None if open_end else end, BUCKET_SECONDS[chosen])
    by_severity, by_category = _frames(matrices, chosen, start, end)
    total = int(by_severity.to_numpy().sum())
    return Trend(start, end, chosen, by_severity, by_category,
                 {d: _top(ranked[d]) for d in DIMENSIONS}, total, note)
