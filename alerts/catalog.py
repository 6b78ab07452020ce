"""The alert rules by name, what each means, and how their keys read: defined once here
for the engine, the API's validation, the page and the webhook."""

from __future__ import annotations

RULE_TEXT = {
    "critical_error": "Any critical error (one alert per error group)",
    "error_rate": "Too many errors in a minute (key: all)",
    "category_burst": "A burst of one category (key: the category)",
    "symbol_pattern_failures": "Repeated pattern failures for a symbol (key: the symbol)",
    "database_error": "Any database error (one alert per error group)",
}
RULES = tuple(RULE_TEXT)
# Rules whose key is an error group's fingerprint: their alerts link to the group too.
GROUP_KEYED = frozenset({"critical_error", "database_error"})
# A firing database_error holds these back: a dead database makes every category burst.
INHIBITED_BY_DATABASE = ("category_burst", "symbol_pattern_failures")
