"""Extended planner statistics on error_logs and each of its partitions (PostgreSQL).

Severity and category go together (criticals come from a few categories, warnings from
others), but the planner multiplies their frequencies as if they did not. For a search such
as `severity:critical category:database` that matches nothing, it expected hundreds of rows,
walked the timestamp index newest first hoping to fill a page soon, and read every row of
the window: 190 ms at 1M rows over 30 days, growing with the rows. With an MCV list of the
pairs it knows the pair is rare and takes the indexes that lead with the pair.

Statistics live on each table the planner scans, so every partition gets its own, made with
its count triggers when missing (queries.schema.error_logs_table_ddl), and the table
ANALYZEd then: autovacuum would never come back to a past day's partition to fill them (a
new day's is empty, so that costs nothing; an upgrade pays it once, about 0.2 s per day of
333k rows).
"""

from __future__ import annotations


def pg_statistics_ddl(table: str) -> list[str]:
    """CREATE STATISTICS of severity x category for `table` and ANALYZE it, when missing; a
    DO block that looks first, so a start with them in place takes no lock on the table."""
    name = f"{table[:55]}_sev_cat"
    quoted_table = '"' + table.replace('"', '""') + '"'
    quoted_name = '"' + name.replace('"', '""') + '"'
    literal = name.replace("'", "''")
    return [
        "DO $do$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_statistic_ext WHERE stxname = "
        f"'{literal}' AND stxnamespace = current_schema()::regnamespace) THEN "
        f"CREATE STATISTICS {quoted_name} (mcv, dependencies) ON severity, category "
        f"FROM {quoted_table}; ANALYZE {quoted_table}; END IF; END $do$"]
