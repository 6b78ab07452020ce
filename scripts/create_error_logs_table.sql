-- TickStock Error Monitor: the store's schema on PostgreSQL (13 or newer), for creating it by
-- hand: psql "$DATABASE_URL" -f scripts/create_error_logs_table.sql
-- The monitor creates the same tables itself on start (queries/schema.py); keep both in step.
-- For a database that already has an unpartitioned error_logs (made by an older version of
-- this file), see README "Retention": python -m retention --migrate.

-- Errors, partitioned by day on "timestamp" so that retention drops whole days. The daily
-- partitions (error_logs_p20241030 for 2024-10-30 UTC, ...) are made by the monitor's
-- retention job, RETENTION_PARTITIONS_AHEAD days ahead; until then, and for any day that has
-- no partition (old events, clocks in the future), rows go to the DEFAULT partition.
-- The primary key of a partitioned table must hold the partition key: (id, "timestamp").
CREATE TABLE IF NOT EXISTS error_logs (
    id              UUID NOT NULL DEFAULT gen_random_uuid(),
    error_id        VARCHAR(255) NOT NULL,
    error_type      VARCHAR(255),
    error_message   TEXT NOT NULL DEFAULT '',
    error_traceback TEXT,
    severity        VARCHAR(16) NOT NULL,
    category        VARCHAR(32) NOT NULL,
    source          VARCHAR(100) NOT NULL DEFAULT 'TickStockPL',
    component       VARCHAR(255),
    operation       VARCHAR(255),
    symbol          VARCHAR(64),
    context         JSONB NOT NULL,
    fingerprint     VARCHAR(40),
    "timestamp"     TIMESTAMP WITH TIME ZONE NOT NULL,
    created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
    -- When the monitor received it (the producer's clock may be off); health and recency use it.
    received_at     TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
    -- Test traffic (category test, context.test true): out of counts, health and alerts.
    is_test         BOOLEAN NOT NULL DEFAULT false,
    CONSTRAINT error_logs_pkey PRIMARY KEY (id, "timestamp")
) PARTITION BY RANGE ("timestamp");

CREATE TABLE IF NOT EXISTS error_logs_default PARTITION OF error_logs DEFAULT;

CREATE INDEX IF NOT EXISTS idx_error_logs_timestamp  ON error_logs ("timestamp");
CREATE INDEX IF NOT EXISTS idx_error_logs_received_at ON error_logs (received_at);
CREATE INDEX IF NOT EXISTS idx_error_logs_severity   ON error_logs (severity);
-- A severity and category pair newest first (a rare pair is a seek, not a read of both).
CREATE INDEX IF NOT EXISTS idx_error_logs_category_severity_ts
    ON error_logs (category, severity, "timestamp");
-- A symbol's (a type's) errors newest first: a search for one reads its rows, not the window's.
CREATE INDEX IF NOT EXISTS idx_error_logs_symbol_ts     ON error_logs (symbol, "timestamp");
CREATE INDEX IF NOT EXISTS idx_error_logs_error_type_ts ON error_logs (error_type, "timestamp");
CREATE INDEX IF NOT EXISTS idx_error_logs_error_id   ON error_logs (error_id);
-- An error group's events, newest first.
CREATE INDEX IF NOT EXISTS idx_error_logs_fingerprint ON error_logs (fingerprint, "timestamp");
-- The health check and the alert rules look at recent serious errors only.
CREATE INDEX IF NOT EXISTS idx_error_logs_recent_serious ON error_logs ("timestamp")
    WHERE severity IN ('critical', 'error');

-- "The same error_id again is stored once": a partitioned table cannot hold UNIQUE(error_id),
-- so the first copy of each id is recorded here (the store inserts here first, ON CONFLICT DO
-- NOTHING, and writes to error_logs only the ids that were new). Retention prunes it with
-- the rows, by "timestamp".
CREATE TABLE IF NOT EXISTS error_ids (
    error_id    VARCHAR(255) NOT NULL,
    "timestamp" TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (error_id)
);
CREATE INDEX IF NOT EXISTS idx_error_ids_timestamp ON error_ids ("timestamp");

-- When maintenance (retention) ran, so that a restart knows whether a run is due.
CREATE TABLE IF NOT EXISTS maintenance_runs (
    id           BIGSERIAL NOT NULL,
    job          VARCHAR(64) NOT NULL,
    started_at   TIMESTAMP WITH TIME ZONE NOT NULL,
    finished_at  TIMESTAMP WITH TIME ZONE,
    ok           BOOLEAN NOT NULL DEFAULT false,
    rows_removed BIGINT NOT NULL DEFAULT '0',
    detail       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS idx_maintenance_runs_job_started_at
    ON maintenance_runs (job, started_at);

-- Messages that could not be stored as errors (not JSON, too large, refused by the database).
CREATE TABLE IF NOT EXISTS rejected_messages (
    id          BIGSERIAL PRIMARY KEY,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    reason      TEXT NOT NULL,
    error_id    VARCHAR(255),
    raw_bytes   INTEGER NOT NULL DEFAULT 0,
    raw         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_rejected_messages_received_at ON rejected_messages (received_at);

-- Error groups: one line per problem (groups/hook.py keeps them current).
CREATE TABLE IF NOT EXISTS error_groups (
    fingerprint        VARCHAR(40) PRIMARY KEY,
    title              TEXT NOT NULL,
    error_type         VARCHAR(255),
    category           VARCHAR(32) NOT NULL,
    component          VARCHAR(255),
    operation          VARCHAR(255),
    first_seen         TIMESTAMP WITH TIME ZONE NOT NULL,
    last_seen          TIMESTAMP WITH TIME ZONE NOT NULL,
    event_count        BIGINT NOT NULL,
    worst_severity     VARCHAR(16) NOT NULL,
    symbol_count       INTEGER NOT NULL DEFAULT 0,
    state              VARCHAR(16) NOT NULL DEFAULT 'unresolved',
    state_changed_at   TIMESTAMP WITH TIME ZONE,
    ignore_until       TIMESTAMP WITH TIME ZONE,
    ignore_until_count BIGINT,
    resolved_at        TIMESTAMP WITH TIME ZONE,
    regressed_at       TIMESTAMP WITH TIME ZONE
);
CREATE INDEX IF NOT EXISTS idx_error_groups_last_seen ON error_groups (last_seen);
CREATE INDEX IF NOT EXISTS idx_error_groups_state ON error_groups (state);

CREATE TABLE IF NOT EXISTS error_group_symbols (
    fingerprint VARCHAR(40) NOT NULL,
    symbol      VARCHAR(64) NOT NULL,
    event_count BIGINT NOT NULL,
    last_seen   TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (fingerprint, symbol)
);

-- The count tables (error_counts, error_dim_counts, error_group_counts) and the triggers
-- that keep them exact are not here: they are generated code (queries/count_tables.py),
-- and the monitor makes them at its first start on this schema, filling them once from any
-- rows already in error_logs (docs/architecture.md, "Counts").
