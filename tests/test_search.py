"""The search language and the paged search, on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import text

from queries.engine import make_engine
from queries.schema import create_schema
from queries.search import (
    KeyTerm,
    SearchError,
    SearchQuery,
    conditions,
    count_capped,
    decode_cursor,
    encode_cursor,
    ensure_trigram_indexes,
    iter_matching,
    parse_query,
    search_errors,
)
from queries.store import ErrorStore
from tests.factories import event

NOW = datetime.now(UTC).replace(microsecond=0)


def _store(engine, *events) -> None:
    store = ErrorStore(engine)
    try:
        result = store.write_batch(list(events))
        assert not result.refused
    finally:
        store.close()


# -- the language -------------------------------------------------------------------------
def test_free_words_and_phrases_are_text_terms() -> None:
    query = parse_query('timeout "connection reset"  Doji')
    assert query.words == ("timeout", "connection reset", "Doji")
    assert query.keys == ()


def test_key_value_terms_with_alternatives_and_exclusion() -> None:
    query = parse_query("severity:Critical,error -category:network component:PatternDetector")
    assert query.keys == (
        KeyTerm("severity", ("critical", "error")),
        KeyTerm("category", ("network",), negated=True),
        KeyTerm("component", ("PatternDetector",)),
    )


def test_quoted_key_value_keeps_spaces() -> None:
    assert parse_query('component:"Pattern Detector"').keys == (
        KeyTerm("component", ("Pattern Detector",)),)


def test_symbol_is_matched_as_typed_and_upper_case() -> None:
    assert parse_query("symbol:aapl").keys == (KeyTerm("symbol", ("aapl", "AAPL")),)


def test_unknown_keys_and_urls_are_plain_text() -> None:
    query = parse_query("http://polygon.io/v2 note:this")
    assert query.words == ("http://polygon.io/v2", "note:this")
    assert query.keys == ()


@pytest.mark.parametrize("text, says", [
    ("severity:urgent", "severity must be one of"),
    ("category:nonsense", "category must be one of"),
    ("symbol:", "symbol: needs a value"),
    ("x" * 1001, "longer than 1,000"),
])
def test_bad_terms_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(SearchError, match=says):
        parse_query(text)


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(SearchError, match="before its end"):
        parse_query("").between(NOW, NOW - timedelta(hours=1))


def test_cursor_round_trip_and_foreign_cursor() -> None:
    moment = NOW.replace(microsecond=123456)
    assert decode_cursor(encode_cursor(moment, "a|b")) == (moment, "a|b")
    with pytest.raises(SearchError, match="cursor"):
        decode_cursor("not-a-cursor")


# -- results ------------------------------------------------------------------------------
def test_free_text_matches_message_or_type_in_any_case(engine) -> None:
    _store(engine,
           event(error_id="m", error_message="Connection TIMEOUT after 30 s",
                 error_type="OperationalError"),
           event(error_id="t", error_message="nothing here", error_type="TimeoutError"),
           event(error_id="n", error_message="all good", error_type="ValueError"))
    page = search_errors(engine, parse_query("timeout"))
    assert sorted(i["id"] for i in page.items) == ["m", "t"]
    assert page.total == 2 and page.total_exact


def test_like_wildcards_in_the_search_are_literal(engine) -> None:
    _store(engine, event(error_id="pct", error_message="CPU at 100% for SPY_X"),
           event(error_id="other", error_message="CPU at 1000 for SPYAX"))
    assert [i["id"] for i in search_errors(engine, parse_query("100%")).items] == ["pct"]
    assert [i["id"] for i in search_errors(engine, parse_query("SPY_X")).items] == ["pct"]


def test_key_terms_filter_and_exclusion_keeps_rows_without_the_value(engine) -> None:
    _store(engine,
           event(error_id="a", severity="critical", category="database", symbol="AAPL"),
           event(error_id="b", severity="error", category="network", symbol="MSFT",
                 component="HistoricalLoader"),
           event(error_id="c", severity="warning", category="pattern", symbol=None))

    def ids(text: str) -> list[str]:
        return sorted(i["id"] for i in search_errors(engine, parse_query(text)).items)

    assert ids("severity:critical") == ["a"]
    assert ids("severity:critical,error") == ["a", "b"]
    assert ids("-category:network") == ["a", "c"]
    assert ids("symbol:aapl") == ["a"]
    assert ids("-symbol:AAPL") == ["b", "c"]
    assert ids("component:HistoricalLoader severity:error") == ["b"]
    assert ids("component:HistoricalLoader severity:critical") == []


def test_time_range_is_start_inclusive_end_exclusive(engine) -> None:
    _store(engine, *(event(error_id=f"h{h}", timestamp=NOW - timedelta(hours=h))
                     for h in range(5)))
    query = parse_query("").between(NOW - timedelta(hours=3), NOW - timedelta(hours=1))
    assert [i["id"] for i in search_errors(engine, query).items] == ["h2", "h3"]


def test_cursor_pages_walk_every_row_once_newest_first(engine) -> None:
    # 23 rows, several sharing a timestamp: the error_id breaks the tie.
    _store(engine, *(event(error_id=f"e{i:02d}", timestamp=NOW - timedelta(seconds=i // 3))
                     for i in range(23)))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = search_errors(engine, SearchQuery(), page=pages + 1, page_size=5,
                             cursor=cursor, with_total=pages == 0)
        pages += 1
        if pages == 1:
            assert page.total == 23 and page.total_exact
        seen.extend(i["id"] for i in page.items)
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert pages == 5
    assert len(seen) == len(set(seen)) == 23
    # newest first; within one second, error_id descending
    expected = sorted((f"e{i:02d}" for i in range(23)), reverse=True)
    expected.sort(key=lambda k: int(k[1:]) // 3)
    assert seen == expected


def test_numbered_pages_use_offsets_up_to_a_limit(engine) -> None:
    _store(engine, *(event(error_id=f"p{i:02d}", timestamp=NOW - timedelta(seconds=i))
                     for i in range(12)))
    page = search_errors(engine, SearchQuery(), page=3, page_size=5)
    assert [i["id"] for i in page.items] == ["p10", "p11"]
    assert page.total == 12 and not page.has_more
    with pytest.raises(SearchError, match="deeper than"):
        search_errors(engine, SearchQuery(), page=10_000, page_size=500)


def test_count_stops_at_the_cap(engine) -> None:
    _store(engine, *(event(error_id=f"c{i}") for i in range(8)))
    assert count_capped(engine, conditions(SearchQuery()), cap=5) == (5, False)
    assert count_capped(engine, conditions(SearchQuery()), cap=8) == (8, True)
    page = search_errors(engine, SearchQuery(), page_size=3)
    assert page.total_text() == "8" and page.has_more


def test_items_have_the_api_summary_shape(engine) -> None:
    _store(engine, event(error_id="shape", timestamp=NOW))
    item = search_errors(engine, SearchQuery()).items[0]
    assert set(item) >= {"id", "type", "message", "severity", "category", "symbol",
                         "component", "timestamp"}
    assert item["timestamp"].endswith("Z")


def test_iter_matching_streams_every_match_up_to_the_limit(engine) -> None:
    _store(engine, *(event(error_id=f"x{i}", severity="critical" if i % 2 else "error")
                     for i in range(10)))
    rows = list(iter_matching(engine, parse_query("severity:critical"), limit=100))
    assert len(rows) == 5 and all(r["severity"] == "critical" for r in rows)
    assert rows[0]["timestamp"].tzinfo is not None
    assert len(list(iter_matching(engine, SearchQuery(), limit=3))) == 3


def _trigram_indexes(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'error_logs' "
            "AND indexname LIKE '%trgm'")).scalars())


def test_trigram_indexes_are_made_only_when_asked(pg_engine) -> None:
    ensure_trigram_indexes(pg_engine, False)
    assert _trigram_indexes(pg_engine) == set()
    ensure_trigram_indexes(pg_engine, True)
    assert _trigram_indexes(pg_engine) == {"idx_error_logs_message_trgm",
                                           "idx_error_logs_error_type_trgm"}
    _store(pg_engine, event(error_id="rare", error_message="feed stalled for XYZZY"),
           event(error_id="common", error_message="feed stalled"))
    assert [item["id"] for item in search_errors(pg_engine, parse_query("xyzzy")).items] == [
        "rare"]


def test_trigram_setting_on_sqlite_says_it_cannot(sqlite_url, caplog) -> None:
    engine = make_engine(sqlite_url)
    create_schema(engine)
    ensure_trigram_indexes(engine, True)
    assert "could not be made" in caplog.text


def _page_sql(engine, query: SearchQuery, paged: bool = True) -> str:
    """The SQL of the search's page query (its conditions alone with `paged=False`), with
    its values written in, for EXPLAIN."""
    from sqlalchemy import select

    from queries.schema import error_logs
    statement = select(error_logs.c.error_id).where(*conditions(query))
    if paged:
        statement = (statement.order_by(error_logs.c.timestamp.desc(),
                                        error_logs.c.error_id.desc()).limit(51))
    return str(statement.compile(engine, compile_kwargs={"literal_binds": True}))


def _two_days_of(engine, rows_sql: str, **values: object) -> None:
    """Today's and yesterday's partitions, filled by `rows_sql` (an INSERT) and ANALYZEd."""
    from retention.partitions import ensure_days

    raw = engine.raw_connection()
    try:
        ensure_days(raw.driver_connection, [NOW.date() - timedelta(days=1), NOW.date()])
    finally:
        raw.close()
    with engine.begin() as conn:
        conn.execute(text(rows_sql), {"now": NOW, **values})
        conn.execute(text("ANALYZE error_logs"))


def _expected_rows(engine, query: SearchQuery) -> float:
    """The rows PostgreSQL's planner expects the search's conditions to match."""
    with engine.connect() as conn:
        plan = conn.execute(text(
            f"EXPLAIN (FORMAT JSON) {_page_sql(engine, query, paged=False)}")).scalar_one()
    return plan[0]["Plan"]["Plan Rows"]


def test_the_planner_knows_which_severity_and_category_go_together(pg_engine) -> None:
    """Criticals here come from `pattern` only. Taking the two columns as independent, the
    planner expected dozens of critical database errors per day and walked the timestamp
    index for them through every row of a month; with the pairs' statistics on each
    partition it expects next to none, and uses the columns' indexes."""
    _two_days_of(
        pg_engine,
        "INSERT INTO error_logs (error_id, severity, category, context, \"timestamp\") "
        "SELECT 'e' || g, CASE WHEN g % 50 = 0 THEN 'critical' ELSE 'warning' END, "
        "CASE WHEN g % 50 = 0 THEN 'pattern' ELSE (:cats)[1 + g % 5] END, '{}', "
        ":now - g * interval '4 seconds' FROM generate_series(1, 20000) g",
        cats=["database", "network", "pattern", "redis", "validation"])
    rare = parse_query("severity:critical category:database").between(
        NOW - timedelta(days=2), None)
    assert _expected_rows(pg_engine, rare) <= 5
    assert search_errors(pg_engine, rare).items == []

    # A store made before the statistics existed gets them, filled, at its next start.
    with pg_engine.begin() as conn:
        for name in conn.execute(text("SELECT stxname FROM pg_statistic_ext")).scalars():
            conn.execute(text(f'DROP STATISTICS "{name}"'))
        conn.execute(text("ANALYZE error_logs"))
    assert _expected_rows(pg_engine, rare) > 20  # what independence gives: 20,000 x 2% x 20%
    create_schema(pg_engine)
    assert _expected_rows(pg_engine, rare) <= 5


def _rows_read(engine, query: SearchQuery) -> int:
    """How many rows the page query of `query` read and threw away (EXPLAIN ANALYZE)."""
    with engine.connect() as conn:
        plan = conn.execute(text(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {_page_sql(engine, query)}")).scalar_one()

    def removed(node: dict) -> int:
        return (node.get("Rows Removed by Filter", 0) * node.get("Actual Loops", 1)
                + sum(removed(child) for child in node.get("Plans", ())))
    return removed(plan[0]["Plan"])


def test_a_symbol_search_reads_that_symbols_rows_only(pg_engine) -> None:
    """SYM7's 200 rows are all warnings among 20,000. `symbol:SYM7 severity:error` matches
    none: the plain symbol index left the planner walking the day's rows in time order,
    filtering every one; (symbol, timestamp) reads SYM7's rows, newest first, and no more.

    The 22 hours of rows end at 23:00 today, so all of them are in today's partition at any
    hour the test runs. Ending at the wall clock's now put, late in the day, a few hundred
    of them in yesterday's partition, which the planner rightly reads whole through the
    time index (487 rows seen once), and that is not what this test is about."""
    end = datetime.combine(NOW.date(), time(23, 0), tzinfo=UTC)
    _two_days_of(
        pg_engine,
        "INSERT INTO error_logs (error_id, severity, category, symbol, context, "
        "\"timestamp\") SELECT 'e' || g, CASE WHEN g % 100 = 7 OR g % 3 = 0 "
        "THEN 'warning' ELSE 'error' END, 'pattern', 'SYM' || (g % 100), '{}', "
        ":now - g * interval '4 seconds' FROM generate_series(1, 20000) g", now=end)
    query = parse_query("symbol:SYM7 severity:error").between(end - timedelta(hours=24), None)
    assert search_errors(pg_engine, query).items == []
    assert _rows_read(pg_engine, query) <= 200


@pytest.mark.parametrize("db_url", ["postgresql", "sqlite"], indirect=True)
def test_a_store_with_the_older_indexes_gets_the_new_ones_at_start(db_url) -> None:
    engine = make_engine(db_url)
    try:
        create_schema(engine)
        older = {"idx_error_logs_symbol": "symbol", "idx_error_logs_error_type": "error_type",
                 "idx_error_logs_category": "category"}
        newer = {"idx_error_logs_symbol_ts", "idx_error_logs_error_type_ts",
                 "idx_error_logs_category_severity_ts"}
        with engine.begin() as conn:  # the indexes as an older version made them
            for name in newer:
                conn.execute(text(f"DROP INDEX {name}"))
            for name, column in older.items():
                conn.execute(text(f"CREATE INDEX {name} ON error_logs ({column})"))
        create_schema(engine)
        from sqlalchemy import inspect
        names = {index["name"] for index in inspect(engine).get_indexes("error_logs")}
        assert newer <= names
        assert not names & set(older)
    finally:
        engine.dispose()


def test_sqlite_seeks_a_severity_and_category_pair(sqlite_url) -> None:
    """With a plain category index SQLite (no column statistics) took it for
    `severity:critical category:database` and read every database error to find none; the
    pair's index seeks them. What it would read is asked of SQLite (EXPLAIN QUERY PLAN)."""
    engine = make_engine(sqlite_url)
    try:
        create_schema(engine)
        query = parse_query("severity:critical category:database").between(
            NOW - timedelta(days=30), None)
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            plan = " ".join(row[3] for row in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {_page_sql(engine, query)}"))
        assert "idx_error_logs_category_severity_ts (category=? AND severity=?" in plan
    finally:
        engine.dispose()
