"""The monitor's settings: one frozen object read from the environment and an optional `.env`.

Nothing else in the project reads `os.environ`; every piece is handed the values it needs.
The names, defaults and meanings are listed in CONTRACT.md §3 and `.env.example`.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from dotenv import dotenv_values

SEVERITY_ORDER = ("debug", "info", "warning", "error", "critical")
CATEGORY_NAMES = ("pattern", "indicator", "database", "network", "validation", "performance",
                  "configuration", "security", "integration", "websocket", "redis")
# ERROR_CODE_CATEGORIES: the category of a message that has none, from its error code
# (`payload.error_code` of an envelope): `part=category`, comma-separated; a code containing
# the part (any case) gets the category; the first match wins.
DEFAULT_ERROR_CODE_CATEGORIES = (
    "RATE_LIMIT=network,TIMEOUT=network,TIMED_OUT=network,CONNECTION=network,"
    "CONNECT=network,NETWORK=network,DATABASE=database,DB_=database,SQL=database,"
    "DEADLOCK=database,REDIS=redis,WEBSOCKET=websocket,VALIDATION=validation,"
    "CONFIG=configuration,PATTERN=pattern,INDICATOR=indicator")


class SettingsError(ValueError):
    """A setting has a value the monitor cannot use; the message names it and says why."""


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    # A Redis Cluster (also said by a `redis+cluster://` URL): sharded pub/sub and hash-tagged
    # names (`cluster_name`; docs/deploy.md, "Redis Cluster").
    redis_cluster: bool = False
    error_channel: str = "tickstock:errors"
    database_url: str = "sqlite:///data/errors.db"
    host: str = "127.0.0.1"
    port: int = 8050
    log_file_enabled: bool = False
    log_file_path: str = "logs/tickstock_errors.log"
    log_file_max_size: int = 10 * 1024 * 1024
    log_file_backup_count: int = 5
    store_min_severity: str = "warning"
    retention_days: int = 30
    retention_at: str = "03:00"
    retention_archive_dir: str = ""
    retention_batch_rows: int = 10_000
    retention_partitions_ahead: int = 7
    spool_dir: str = "data/spool"
    alert_webhook_url: str = ""
    alert_webhook_max_tries: int = 5
    alert_repeat_minutes: int = 60
    alert_error_rate_per_minute: int = 10
    alert_category_burst_count: int = 5
    alert_category_burst_minutes: int = 5
    alert_symbol_pattern_count: int = 3
    alert_symbol_pattern_minutes: int = 15
    alert_resolve_minutes: int = 5
    # Several ingest processes (INGEST_SOURCE=stream): one of them, the alert leader, evaluates
    # the rules for all (alerts/shared.py). The others try to take over this often, reload the
    # alert state this often, and forward their events on a stream capped at this length.
    alert_leader_retry_ms: int = 1000
    alert_reload_ms: int = 2000
    alert_events_max_entries: int = 100_000
    admin_username: str = ""
    admin_password: str = ""
    admin_password_hash: str = ""
    api_token: str = ""
    allow_anonymous: bool = False
    # PostgreSQL: trigram indexes for free-text search (fast rare words, about half the
    # store's write rate; queries/search.py create_trigram_indexes).
    search_trigram_index: bool = False
    ingest_enabled: bool = True
    log_format: str = "text"
    ring_buffer_size: int = 2000
    max_message_bytes: int = 1024 * 1024
    max_text_bytes: int = 64 * 1024
    spool_max_bytes: int = 500 * 1024 * 1024
    queue_max_messages: int = 200_000
    batch_max_rows: int = 5000
    batch_max_wait_ms: int = 100
    redis_health_check_interval: int = 10
    ingest_source: str = "pubsub"
    error_stream: str = "tickstock:errors:stream"
    stream_group: str = "tickstock-error-monitor"
    stream_consumer: str = ""
    # A pending entry idle this long belongs to a dead consumer and is claimed by another.
    stream_claim_idle_ms: int = 60_000
    # How often each consumer looks for entries dead consumers left.
    stream_reclaim_interval_ms: int = 5000
    # Unacknowledged entries at which a consumer stops reading new ones (its store is slow).
    stream_max_backlog: int = 10_000
    # An ingest process silent this long is shown as down and raises `ingest_down`.
    ingest_down_seconds: int = 15
    error_code_categories: str = DEFAULT_ERROR_CODE_CATEGORIES
    # A producer whose clock is further than this from ours is flagged on the Monitor page.
    clock_skew_warn_seconds: int = 300
    # Jobs and runs (jobs/): the processing channels read by one connection (comma list; a
    # `*` makes it a pattern), the channels TickStockPL must listen on (checked with NUMSUB,
    # never subscribed to), the job status keys (a SCAN pattern), and the thresholds.
    processing_channels: str = ("tickstock:processing:status,tickstock:import:*,"
                                "tickstock:cache:*,tickstock:indicators:*,"
                                "tickstock:patterns:*,tickstock:monitoring")
    listener_channels: str = "tickstock.jobs.data_load"
    job_status_keys: str = "tickstock.jobs.status:*"
    jobs_check_interval_ms: int = 5000
    no_listener_seconds: int = 60
    job_submitted_timeout_seconds: int = 300
    job_stall_seconds: int = 900
    run_stall_seconds: int = 600
    run_min_success_rate: int = 95
    run_schedule: str = "10 16 * * mon-fri"
    run_schedule_timezone: str = "America/New_York"
    run_missed_grace_seconds: int = 900

    def __post_init__(self) -> None:
        self._apply_redis_cluster()
        if self.store_min_severity not in SEVERITY_ORDER:
            raise SettingsError(
                f"STORE_MIN_SEVERITY must be one of {', '.join(SEVERITY_ORDER)}, "
                f"got {self.store_min_severity!r}"
            )
        if not 1 <= self.port <= 65535:
            raise SettingsError(f"PORT must be from 1 to 65535, got {self.port}")
        for name in ("ring_buffer_size", "max_message_bytes", "max_text_bytes",
                     "queue_max_messages", "batch_max_rows", "spool_max_bytes", "batch_max_wait_ms",
                     "log_file_max_size", "retention_days", "alert_webhook_max_tries",
                     "alert_repeat_minutes", "alert_category_burst_minutes",
                     "alert_symbol_pattern_minutes", "alert_resolve_minutes",
                     "alert_leader_retry_ms", "alert_reload_ms", "alert_events_max_entries",
                     "retention_batch_rows", "stream_claim_idle_ms",
                     "stream_reclaim_interval_ms", "stream_max_backlog", "ingest_down_seconds",
                     "jobs_check_interval_ms", "no_listener_seconds",
                     "job_submitted_timeout_seconds", "job_stall_seconds", "run_stall_seconds",
                     "run_missed_grace_seconds"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name.upper()} must be at least 1, got {getattr(self, name)}")
        for name in ("alert_error_rate_per_minute", "alert_category_burst_count",
                     "alert_symbol_pattern_count"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name.upper()} must not be negative")
        if self.log_file_backup_count < 0:
            raise SettingsError("LOG_FILE_BACKUP_COUNT must not be negative")
        if self.retention_partitions_ahead < 0:
            raise SettingsError("RETENTION_PARTITIONS_AHEAD must not be negative")
        parse_time_of_day(self.retention_at)
        if not self.error_channel:
            raise SettingsError("ERROR_CHANNEL must not be empty")
        if self.ingest_source not in ("pubsub", "stream"):
            raise SettingsError(
                f"INGEST_SOURCE must be pubsub or stream, got {self.ingest_source!r}")
        if self.log_format not in ("text", "json"):
            raise SettingsError(f"LOG_FORMAT must be text or json, got {self.log_format!r}")
        parse_error_code_categories(self.error_code_categories)
        if self.clock_skew_warn_seconds < 1:
            raise SettingsError(
                f"CLOCK_SKEW_WARN_SECONDS must be at least 1, got {self.clock_skew_warn_seconds}")
        if not 0 <= self.run_min_success_rate <= 100:
            raise SettingsError(
                f"RUN_MIN_SUCCESS_RATE must be a percentage from 0 to 100, "
                f"got {self.run_min_success_rate}")
        for listened in self.listener_channel_list:
            for channel in self.processing_channel_list:
                # Redis counts a pattern subscriber in the PUBLISH reply: reading a channel
                # TickStockPL must listen on would hide the very absence to report.
                if fnmatch.fnmatchcase(listened, channel):
                    raise SettingsError(
                        f"PROCESSING_CHANNELS: {channel!r} matches {listened!r} of "
                        "LISTENER_CHANNELS; the monitor must never subscribe there")
        if self.run_schedule:
            _check_schedule(self.run_schedule, self.run_schedule_timezone)
        if self.admin_password and self.admin_password_hash:
            raise SettingsError("set ADMIN_PASSWORD or ADMIN_PASSWORD_HASH, not both")
        if bool(self.admin_username) != bool(self.admin_password or self.admin_password_hash):
            raise SettingsError("ADMIN_USERNAME and ADMIN_PASSWORD (or ADMIN_PASSWORD_HASH) "
                                "must be set together")

    def _apply_redis_cluster(self) -> None:
        """In cluster mode: the URL says so (the one value every process gets), and the
        deployment's names carry one hash tag. Run again by `dataclasses.replace`, it changes
        nothing more (a tagged name stays as it is)."""
        url = self.redis_url
        scheme, sep, rest = url.partition("://")
        if scheme.lower() in _CLUSTER_SCHEMES.values():
            object.__setattr__(self, "redis_cluster", True)
        if not self.redis_cluster:
            return
        if scheme.lower() in _CLUSTER_SCHEMES:
            object.__setattr__(self, "redis_url", f"{_CLUSTER_SCHEMES[scheme.lower()]}{sep}{rest}")
        elif scheme.lower() not in _CLUSTER_SCHEMES.values():
            raise SettingsError(f"REDIS_CLUSTER=true needs a redis:// or rediss:// REDIS_URL "
                                f"(a cluster has no unix sockets), got {scheme}://")
        raw_channel = self.error_channel
        object.__setattr__(self, "error_channel", cluster_name(raw_channel))
        object.__setattr__(self, "error_stream", cluster_name(self.error_stream, raw_channel))
        patterns = [c for c in self.processing_channel_list if "*" in c]
        if patterns:
            raise SettingsError(
                f"PROCESSING_CHANNELS: {', '.join(patterns)} are patterns, and sharded pub/sub "
                "(REDIS_CLUSTER=true) has none: list the channels one by one "
                "(tickstock:import:started,tickstock:import:progress,...), or leave "
                "PROCESSING_CHANNELS empty to read none")

    @property
    def admin_credentials_set(self) -> bool:
        """True when the dashboard and API ask for the admin's user name and password."""
        return bool(self.admin_username and (self.admin_password or self.admin_password_hash))

    @property
    def processing_channel_list(self) -> list[str]:
        return split_list(self.processing_channels)

    @property
    def listener_channel_list(self) -> list[str]:
        return split_list(self.listener_channels)

    @property
    def sqlalchemy_url(self) -> str:
        """DATABASE_URL as SQLAlchemy wants it: `postgres://` is an old alias it no longer takes."""
        url = self.database_url
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://"):]
        return url


def parse_error_code_categories(value: str) -> tuple[tuple[str, str], ...]:
    """ERROR_CODE_CATEGORIES as ((PART, category), ...), parts upper-cased, in order."""
    table: list[tuple[str, str]] = []
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            continue
        part, sep, category = entry.partition("=")
        part, category = part.strip().upper(), category.strip().lower()
        if not sep or not part or category not in CATEGORY_NAMES:
            raise SettingsError(
                "ERROR_CODE_CATEGORIES must be PART=category pairs separated by commas, the "
                f"category one of {', '.join(CATEGORY_NAMES)}; got {entry!r}")
        table.append((part, category))
    return tuple(table)


def parse_time_of_day(value: str) -> tuple[int, int]:
    """RETENTION_AT as (hour, minute); `3:00` and `03:00` are both accepted."""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
    if match is None:
        raise SettingsError(
            f"RETENTION_AT must be a time of day as HH:MM (00:00 to 23:59), got {value!r}")
    return int(match.group(1)), int(match.group(2))


_CLUSTER_SCHEMES = {"redis": "redis+cluster", "rediss": "rediss+cluster"}


def has_hash_tag(name: str) -> bool:
    """Redis's rule: the slot is the hash of what is between the first `{` and the next `}`,
    when that is not empty."""
    start = name.find("{")
    return start >= 0 and name.find("}", start + 1) > start + 1


def cluster_name(name: str, base: str | None = None) -> str:
    """`name` as a Redis Cluster deployment uses it: unchanged when it has a hash tag;
    `base` tagged when `name` starts with `base:` (`tickstock:errors:stream` with base
    `tickstock:errors` -> `{tickstock:errors}:stream`, the channel's slot); else all of it
    tagged (`tickstock:errors` -> `{tickstock:errors}`). Every name derived from the channel
    (`<ERROR_CHANNEL>:live`, `...:monitor:pubsub-lease`) then shares its slot."""
    if has_hash_tag(name):
        return name
    if base and not has_hash_tag(base) and name.startswith(f"{base}:"):
        return "{" + base + "}" + name[len(base):]
    return "{" + name + "}"


def split_list(value: str) -> list[str]:
    """A comma-separated setting as its non-empty items, in order."""
    return [item.strip() for item in value.split(",") if item.strip()]


def _check_schedule(expression: str, timezone: str) -> None:
    """RUN_SCHEDULE must be a five-field cron expression and its time zone a real one."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(expression, timezone=timezone)
    except (ValueError, LookupError) as exc:
        raise SettingsError(f"RUN_SCHEDULE / RUN_SCHEDULE_TIMEZONE: {exc} "
                            f"(got {expression!r} in {timezone!r})") from None


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _convert(name: str, raw: str, kind: type) -> object:
    raw = raw.strip()
    if kind is bool:
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    return raw


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> Settings:
    """Read settings from `environ` (default: the process environment) over an optional `.env`.

    The environment wins over the file, so a deployment can override what a `.env` says.
    """
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    kinds = {"int": int, "bool": bool, "str": str}
    kwargs: dict[str, object] = {}
    for field in fields(Settings):
        env_name = field.name.upper()
        if env_name in values:
            kwargs[field.name] = _convert(env_name, values[env_name], kinds[str(field.type)])
    for name in ("store_min_severity", "ingest_source", "log_format"):
        if name in kwargs:
            kwargs[name] = str(kwargs[name]).lower()
    return Settings(**kwargs)
