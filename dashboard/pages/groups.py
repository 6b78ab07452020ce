"""Groups (`/groups`) and one group (`/groups/<fingerprint>`): to be built (issue 5)."""

from __future__ import annotations

from typing import Any

from dash import Dash, html
from sqlalchemy.engine import Engine


def layout(engine: Engine, params: dict[str, str]) -> Any:
    return html.Div("Groups")


def group_layout(engine: Engine, fingerprint: str) -> Any:
    return html.Div(fingerprint)


def register_callbacks(app: Dash, engine: Engine) -> None:
    return None
