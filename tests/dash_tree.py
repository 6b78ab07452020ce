"""Walking a rendered Dash component tree, as the page would show it."""

from __future__ import annotations

from typing import Any


def component_nodes(component: Any) -> list[Any]:
    """The component and every component below it (text leaves left out)."""
    found = [component]
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, (str, int, float)):
            found.extend(component_nodes(child))
    return found
