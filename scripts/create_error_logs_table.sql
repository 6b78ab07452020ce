-- TickStock Error Monitor: the store's schema on PostgreSQL (13 or newer), for creating it by
-- hand: psql "$DATABASE_URL" -f scripts/create_error_logs_table.sql
-- The monitor creates the same tables itself on start (queries/schema.py); keep both in step.

CREATE TABLE IF NOT EXISTS error_logs (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    error_id        VARCHAR(255) NOT NULL UNIQUE,
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
    created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_error_logs_timestamp  ON error_logs ("timestamp");
CREATE INDEX IF NOT EXISTS idx_error_logs_severity   ON error_logs (severity);
CREATE INDEX IF NOT EXISTS idx_error_logs_category   ON error_logs (category);
CREATE INDEX IF NOT EXISTS idx_error_logs_symbol     ON error_logs (symbol);
CREATE INDEX IF NOT EXISTS idx_error_logs_error_type ON error_logs (error_type);
-- An error group's events, newest first.
CREATE INDEX IF NOT EXISTS idx_error_logs_fingerprint ON error_logs (fingerprint, "timestamp");
-- The health check and the alert rules look at recent serious errors only.
CREATE INDEX IF NOT EXISTS idx_error_logs_recent_serious ON error_logs ("timestamp")
    WHERE severity IN ('critical', 'error');

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

-- Error groups: one line per problem (queries/groups.py keeps them current).
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
