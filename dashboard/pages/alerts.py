"""Alerts (`/alerts`): to be built (issue 6)."""

from __future__ import annotations

from typing import Any

from dash import Dash, html
from sqlalchemy.engine import Engine


def layout(engine: Engine, params: dict[str, str]) -> Any:
    return html.Div("Alerts")


def register_callbacks(app: Dash, engine: Engine) -> None:
    return None
