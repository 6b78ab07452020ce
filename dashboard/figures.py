"""Bar charts as plain figure dicts, the JSON plotly.js draws.

`plotly.graph_objects` validates and deep-copies every property as it is set: two stacked
charts took about 250 ms of the Trends page's layout request, far more than reading their
counts. dcc.Graph takes the same figure as a dict, so the charts are written as dicts and
only the theme's colours come from plotly (its named templates live in Python).

The theme goes in as plain layout properties, not as a `template`, and the axes have fixed
margins rather than `automargin`: plotly.js draws a chart once, measures its labels and
draws it again to fit them, and with its template's automargin the two Trends charts took
65-75 ms to draw, without it 30-37 ms (the same figures, measured in Chromium here).
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import plotly.io as pio

TRANSPARENT = "rgba(0,0,0,0)"
# Room for the axes' labels, which automargin would have measured: up to "100k" on the
# y axis with its title beside it, two lines of dates and the title below the x axis.
AXIS_MARGIN = {"l": 58, "b": 62}
_AXIS_KEYS = ("gridcolor", "linecolor", "ticks", "zerolinecolor", "zerolinewidth")


@functools.cache
def theme(dark: bool) -> dict[str, Any]:
    """The colours of plotly's `plotly_dark` / `plotly_white` templates, read once: the font,
    the axes' lines and grid, and the thin outline between stacked bars."""
    whole = pio.templates["plotly_dark" if dark else "plotly_white"].to_plotly_json()
    layout = whole["layout"]
    axis = {key: layout["xaxis"][key] for key in _AXIS_KEYS if key in layout["xaxis"]}
    return {"font": layout["font"], "colorway": layout["colorway"],
            "hoverlabel": layout["hoverlabel"], "axis": axis,
            "bar_line": whole["data"]["bar"][0]["marker"]["line"]}


def axis_time(moment: datetime) -> str:
    """A naive UTC time as plotly.js reads a date axis value."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def bar(x: list[Any], y: list[Any], colour: str | None, **extra: Any) -> dict[str, Any]:
    trace: dict[str, Any] = {"type": "bar", "x": x, "y": y, **extra}
    if colour:
        trace["marker"] = {"color": colour}
    return trace


def figure(traces: list[dict[str, Any]], dark: bool, height: int, x_title: str,
           y_title: str, margin: dict[str, int] | None = None,
           **layout: Any) -> dict[str, Any]:
    """Bars on a date axis over a transparent background, in the page's theme. `margin`
    is the room around the plot besides the axes' own (AXIS_MARGIN)."""
    colours = theme(dark)
    for trace in traces:
        marker = trace.setdefault("marker", {})
        marker.setdefault("line", colours["bar_line"])
    room = {"l": 10, "r": 10, "t": 10, "b": 10, **(margin or {})}
    room["l"] += AXIS_MARGIN["l"]
    room["b"] += AXIS_MARGIN["b"]
    axis = {**colours["axis"], "automargin": False}
    return {"data": traces, "layout": {
        "height": height, "font": colours["font"], "colorway": colours["colorway"],
        "hoverlabel": colours["hoverlabel"],
        "paper_bgcolor": TRANSPARENT, "plot_bgcolor": TRANSPARENT, "margin": room,
        "xaxis": {**axis, "title": {"text": x_title, "standoff": 8}},
        "yaxis": {**axis, "title": {"text": y_title, "standoff": 8}, "rangemode": "tozero"},
        **layout,
    }}
