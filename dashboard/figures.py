"""Bar charts as plain figure dicts, the JSON plotly.js draws.

`plotly.graph_objects` validates and deep-copies every property as it is set: two stacked
charts took about 250 ms of the Trends page's layout request, far more than reading their
counts. dcc.Graph takes the same figure as a dict, so the charts are written as dicts and
only the theme comes from plotly (its named templates live in Python, not in plotly.js).
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import plotly.io as pio

TRANSPARENT = "rgba(0,0,0,0)"


@functools.cache
def template(dark: bool) -> dict[str, Any]:
    """plotly's `plotly_dark` / `plotly_white` template, as JSON, read once: its layout and
    its bar defaults. The two dozen other trace types' defaults are left out, as plotly.js
    would work through them on every draw for charts that have none of them."""
    whole = pio.templates["plotly_dark" if dark else "plotly_white"].to_plotly_json()
    return {"layout": whole["layout"], "data": {"bar": whole["data"]["bar"]}}


def axis_time(moment: datetime) -> str:
    """A naive UTC time as plotly.js reads a date axis value."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def bar(x: list[Any], y: list[Any], colour: str | None, **extra: Any) -> dict[str, Any]:
    trace: dict[str, Any] = {"type": "bar", "x": x, "y": y, **extra}
    if colour:
        trace["marker"] = {"color": colour}
    return trace


def figure(traces: list[dict[str, Any]], dark: bool, height: int, x_title: str,
           y_title: str, **layout: Any) -> dict[str, Any]:
    """Bars on a date axis over a transparent background, in the page's theme."""
    return {"data": traces, "layout": {
        "template": template(dark), "height": height,
        "paper_bgcolor": TRANSPARENT, "plot_bgcolor": TRANSPARENT,
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        **layout,
    }}
