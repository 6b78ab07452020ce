"""The groups list's first paint: its rows as a plain table, before ag-grid is mounted.

Mounting the nine-column grid costs more main-thread time than the rest of the Groups page
(bench/page_load.py: the page is 1.16x the minimal grid page without the grid, 1.7-2.1x with
it), so the page paints the same rows as a table first and the grid takes over in place
after that paint (the `mountAfterPaint` client function in assets/20-monitor.js), with its
selection, sizing and tooltips. Titles link to the group, as a click in the grid does.
Every value is React text, never markup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dash import html

from dashboard.components import severity_badge, utc_text

MAX_ROWS = 60  # what one screen of the list shows; the grid brings the rest


def quick_list(rows: list[dict[str, Any]], href: Callable[[str], str],
               empty: str) -> html.Div:
    """`rows` are the grid's rows (groups.page.group_row); `href(fingerprint)` a group's link."""
    if not rows:
        return html.Div(empty, className="quick-list quick-list-empty text-body-secondary")
    head = ("State", "Title", "Worst", "Events", "Last 24 h", "Symbols", "First seen",
            "Last seen")
    body = [html.Tr([
        html.Td(r["state"], className=f"ql-state group-state-{r['state']}"),
        html.Td(html.A(r["title"], href=href(r["id"]), title=r["title"]), className="ql-title"),
        html.Td(severity_badge(r["worstSeverity"])),
        html.Td(f"{r['count']:,}", className="text-end"),
        html.Td(r["spark"], className="group-spark", title=r["sparkTip"]),
        html.Td(r["symbols"], title=r["symbols"]),
        html.Td(utc_text(r["firstSeen"], seconds=False), className="text-nowrap"),
        html.Td(utc_text(r["lastSeen"], seconds=False), className="text-nowrap"),
    ], className="group-row-regressed" if r["state"] == "regressed" else None)
        for r in rows[:MAX_ROWS]]
    return html.Div(html.Table([html.Thead(html.Tr([html.Th(h) for h in head])),
                                html.Tbody(body)], className="table table-sm mb-0"),
                    className="quick-list")
