"""The alert rules by name, what each means, and how their keys read: the only list of them.
The engine (rules.py), the silence validation (commands.py), the page and the webhook read
these, so a rule added here is known everywhere at once."""

from __future__ import annotations

# Rules counted over windows of error events (AlertEngine.observe).
EVENT_RULES = ("critical_error", "error_rate", "category_burst", "symbol_pattern_failures",
               "database_error")

# Condition rules: something outside the error stream is true or not (jobs/ sets them through
# AlertEngine.set_condition / sync_conditions); they resolve when the condition ends.
NO_LISTENER = "no_listener"
JOB_STUCK = "job_stuck"
JOB_FAILED = "job_failed"
RUN_STALLED = "run_stalled"
RUN_FAILED = "run_failed"
RUN_MISSED = "run_missed"
# The monitor's own deployment: an ingest process gone silent, stream entries lost to trimming.
INGEST_DOWN = "ingest_down"
STREAM_LOST = "stream_lost"
CONDITION_RULES = (NO_LISTENER, JOB_STUCK, JOB_FAILED, RUN_STALLED, RUN_FAILED, RUN_MISSED,
                   INGEST_DOWN, STREAM_LOST)

RULES = EVENT_RULES + CONDITION_RULES

RULE_TEXT = {
    "critical_error": "Any critical error (one alert per error group)",
    "error_rate": "Too many errors in a minute (key: all)",
    "category_burst": "A burst of one category (key: the category)",
    "symbol_pattern_failures": "Repeated pattern failures for a symbol (key: the symbol)",
    "database_error": "Any database error (one alert per error group)",
    NO_LISTENER: "Nobody subscribed to a channel TickStockPL must listen on (key: the channel)",
    JOB_STUCK: "An import job still submitted, not moving, or lost (key: the job id)",
    JOB_FAILED: "An import job whose status says failed (key: the job id)",
    RUN_STALLED: "A running processing run that stopped talking (key: the run id)",
    RUN_FAILED: "A run that failed or a phase below the success rate (key: the run id)",
    RUN_MISSED: "The scheduled daily run did not start (key: the scheduled time)",
    INGEST_DOWN: "An ingest process of the deployment stopped reporting (key: its slot)",
    STREAM_LOST: "Stream entries trimmed away before any monitor read them (key: the stream)",
}

# Rules whose key is an error group's fingerprint: their alerts link to the group too.
GROUP_KEYED = frozenset({"critical_error", "database_error"})
# A firing database_error holds these back: a dead database makes every category burst.
INHIBITED_BY_DATABASE = ("category_burst", "symbol_pattern_failures")
