"""Monitor (`/monitor`): to be built (issue 4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dash import Dash, html


def layout(status: Callable[[], dict[str, Any]]) -> Any:
    return html.Div("Monitor")


def register_callbacks(app: Dash, status: Callable[[], dict[str, Any]]) -> None:
    return None
