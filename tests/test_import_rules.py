"""The rooms and who may import what (docs/architecture.md), read from the source with ast.

- the store (`queries`) imports no web, Redis or feature code;
- a feature package (`alerts`, `groups`, `jobs`, `retention`, `live`) imports only the store,
  the model, settings and itself (and the alerts' names and store, to raise and show alerts,
  and `live.redis_client`, the one maker of Redis clients);
  its web modules (`api.py`, `page.py`) may also use the web shell's shared pieces;
- nothing on the web side (the shell, the features' web modules, the live feed's follower)
  imports the ingest, directly or through anything it imports: a gunicorn worker must not
  load the ingest threads;
- no module imports `app` (the composition root).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("alerts", "dashboard", "groups", "ingest", "jobs", "live", "queries",
            "retention")
FEATURES = ("alerts", "groups", "jobs", "retention", "live")
WEB_THIRD_PARTY = ("dash", "dash_ag_grid", "dash_bootstrap_components", "flask", "plotly",
                   "werkzeug")
REDIS = ("redis", "hiredis")
# What a feature's web modules may take from the web shell.
SHELL_SHARED = ("dashboard.components", "dashboard.detail", "dashboard.figures",
                "dashboard.ids", "dashboard.params", "dashboard.quick_list")
WEB_MODULES = ("alerts.api", "alerts.page", "groups.api", "groups.page", "jobs.api",
               "jobs.page", "live.follower", "live.view")
# Another feature raises and shows alerts through their names and their store, nothing else.
ALERTS_FOR_FEATURES = ("alerts.catalog", "alerts.store")
# The one place Redis clients are made (single Redis or Cluster): every feature that talks
# to Redis goes through it.
REDIS_FOR_FEATURES = ("live.redis_client",)


def _modules() -> dict[str, Path]:
    found = {"app": ROOT / "app.py", "settings": ROOT / "settings.py"}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


@cache
def imports_of(module: str) -> frozenset[str]:
    """Every module `module` imports (anywhere in its body), project modules resolved to
    the module itself (`from groups import page` is `groups.page`)."""
    tree = ast.parse(MODULES[module].read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & MODULES.keys()
            names.update(submodules)
            if len(submodules) < len(node.names):  # names from the module itself
                names.add(node.module)
    return frozenset(names)


def project_imports(module: str) -> set[str]:
    return {name for name in imports_of(module) if name in MODULES}


def closure(module: str) -> set[str]:
    """`module` and every project module it loads, directly or not (packages included)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(project_imports(current))
        if "." in current:
            todo.append(current.rsplit(".", 1)[0])
    return seen


def top(name: str) -> str:
    return name.split(".", 1)[0]


def test_the_rule_reader_sees_the_imports_it_checks() -> None:
    # A reader that found nothing would pass every rule below.
    assert "alerts.store" in project_imports("alerts.keeper")
    assert "groups.page" in project_imports("dashboard.routes")
    assert "ingest.service" in closure("app")
    assert "flask" in imports_of("dashboard.api")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if top(m) == "queries"))
def test_the_store_imports_no_web_redis_or_feature_code(module: str) -> None:
    bad = sorted(name for name in imports_of(module)
                 if top(name) in (*WEB_THIRD_PARTY, *REDIS, *FEATURES, "dashboard", "ingest",
                                  "app"))
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if top(m) in FEATURES))
def test_a_feature_imports_only_the_store_settings_and_itself(module: str) -> None:
    allowed = {"queries", "settings", top(module)}
    shared = (*ALERTS_FOR_FEATURES, *REDIS_FOR_FEATURES,
              *(SHELL_SHARED if module in WEB_MODULES else ()))
    bad = sorted(name for name in project_imports(module)
                 if top(name) not in allowed and name not in shared)
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("module", sorted(
    m for m in MODULES if top(m) == "dashboard" or m in WEB_MODULES))
def test_the_web_side_never_loads_the_ingest(module: str) -> None:
    loaded = sorted(name for name in closure(module) if top(name) in ("ingest", "app"))
    assert not loaded, f"{module} loads {loaded}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if top(m) == "ingest"))
def test_the_ingest_imports_no_web_code(module: str) -> None:
    bad = sorted(name for name in imports_of(module)
                 if top(name) in (*WEB_THIRD_PARTY, "dashboard", "app") or name in WEB_MODULES)
    assert not bad, f"{module} imports {bad}"
