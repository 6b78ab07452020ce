"""The states an error group can be in, defined once for the hook, commands, API and page."""

from __future__ import annotations

STATES = ("unresolved", "resolved", "ignored", "regressed")
# `regressed` is set by new events only, never by a person.
SETTABLE_STATES = ("unresolved", "resolved", "ignored")
