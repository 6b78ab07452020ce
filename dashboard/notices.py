"""Notices on every page: a toast per error or critical, and a dialog for criticals.

A flood must not bury the screen. The rules (CONTRACT.md §6, issue 3):
- at most MAX_PER_SECOND toasts in any second; what is over becomes one summary toast;
- errors of the same type and component are one group: the first gets a toast, and the
  rest within COOLDOWN seconds become one "N more like this" toast when the cooldown ends;
- every critical goes to the critical dialog, which stays open until dismissed (new
  criticals are added to it while it is open).

`plan_notices` holds those rules as a plain function over plain data, so tests need no
browser; the callback only turns its plan into components.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, Patch, State, ctx, dcc, html, no_update

from dashboard import ids
from dashboard.components import utc_text
from dashboard.detail import detail_href
from live.view import LiveView
from queries.records import SERIOUS

MAX_PER_SECOND = 10
COOLDOWN = 10.0
MAX_TOASTS_KEPT = 5
MAX_CRITICALS_LISTED = 20
TOAST_MS = {"error": 8000, "critical": 20000}


@dataclass(frozen=True)
class Notice:
    severity: str
    title: str
    text: str
    error_id: str | None = None
    more: int = 0  # "and N more like this"


@dataclass
class NoticePlan:
    toasts: list[Notice] = field(default_factory=list)
    criticals: list[Any] = field(default_factory=list)  # events
    state: dict[str, Any] = field(default_factory=dict)


def _key(event: Any) -> str:
    return f"{event.error_type or ''}\x1f{event.component or ''}"


def _title(error_type: str | None, component: str | None) -> str:
    return " · ".join(p for p in (error_type or "Error", component) if p)


def plan_notices(events: Sequence[Any], state: dict[str, Any], now: float) -> NoticePlan:
    """What to show for `events` (new ring events, oldest first) given the previous `state`.

    `state` is JSON-able (it lives in a dcc.Store): {"sent": [times], "groups": {key: {...}}}.
    """
    sent = [t for t in state.get("sent", []) if now - t < 1.0]
    groups: dict[str, dict[str, Any]] = {k: dict(v) for k, v in state.get("groups", {}).items()}
    # Test traffic is listed (marked) but raises nothing: no toast, no critical dialog.
    serious = [e for e in events if e.severity in SERIOUS and not e.is_test]
    candidates: list[Notice] = []

    # Groups whose cooldown ended: one summary toast for what was held back.
    for key, group in list(groups.items()):
        if now - group["at"] >= COOLDOWN:
            if group["held"] > 0:
                candidates.append(Notice(
                    group["severity"], _title(group["type"], group["component"]),
                    f"{group['held']} more like this in the last {int(now - group['at'])} s; "
                    f"latest: {group['message']}", group.get("last_id"), group["held"]))
                groups[key] = {**group, "at": now, "held": 0, "severity": "error"}
            else:
                del groups[key]

    # This tick's errors, grouped; a group still cooling down only counts.
    first_of: dict[str, Any] = {}
    count_of: dict[str, int] = {}
    worst_of: dict[str, str] = {}
    for event in serious:
        key = _key(event)
        count_of[key] = count_of.get(key, 0) + 1
        if event.severity == "critical" or key not in worst_of:
            worst_of[key] = event.severity
        first_of.setdefault(key, event)
    for key, event in first_of.items():
        group = groups.get(key)
        if group is not None and now - group["at"] < COOLDOWN:
            group["held"] += count_of[key]
            group["message"] = event.error_message[:300]
            group["last_id"] = event.error_id
            if worst_of[key] == "critical":
                group["severity"] = "critical"
            continue
        more = count_of[key] - 1
        text = event.error_message if not more else \
            f"{event.error_message}  (and {more} more like this)"
        candidates.append(Notice(worst_of[key], _title(event.error_type, event.component),
                                 text, event.error_id, more))
        groups[key] = {"at": now, "held": 0, "severity": "error", "type": event.error_type,
                       "component": event.component, "message": event.error_message[:300],
                       "last_id": event.error_id}

    budget = MAX_PER_SECOND - len(sent)
    toasts: list[Notice] = []
    if budget > 0:
        if len(candidates) <= budget:
            toasts = candidates
        else:
            toasts = candidates[:budget - 1]
            rest = candidates[budget - 1:]
            errors = sum(1 + n.more for n in rest)
            worst = "critical" if any(n.severity == "critical" for n in rest) else "error"
            toasts.append(Notice(worst, f"{errors} more errors",
                                 f"{len(rest)} kinds, more than this page shows a second: "
                                 "see the live list", None, errors))
    sent.extend([now] * len(toasts))
    return NoticePlan(toasts, [e for e in serious if e.severity == "critical"],
                      {"seq": state.get("seq"), "sent": sent, "groups": groups})


# -- layout -------------------------------------------------------------------------------
def layout(live: LiveView) -> list[Any]:
    """The toasts and the critical dialog; the notices start from now (the newest sequence
    number in the ring), so the page's first paint needs no request to set them up."""
    return [
        html.Div(id=ids.NOTIFICATIONS, className="toast-stack", children=[],
                 **{"aria-live": "polite"}),
        dbc.Modal([
            dbc.ModalHeader(dbc.ModalTitle("Critical error", id=ids.CRITICAL_TITLE),
                            close_button=True),
            dbc.ModalBody([html.Div(id=ids.CRITICAL_LIST, children=[]),
                           html.Div(id=ids.CRITICAL_MORE, className="text-body-secondary")]),
            dbc.ModalFooter(dbc.Button("Dismiss", id=ids.CRITICAL_DISMISS, color="danger")),
        ], id=ids.CRITICAL_DIALOG, is_open=False, backdrop="static", centered=True,
            scrollable=True, size="lg", className="critical-dialog"),
        dcc.Store(id=ids.NOTICE_STATE, data={"seq": live.ring.last_seq}),
        dcc.Store(id=ids.CRITICAL_SIGNAL, data=None),
    ]


def _toast(notice: Notice, serial: str) -> dbc.Toast:
    body: list[Any] = [html.Span(notice.text, className="toast-text")]
    if notice.error_id:
        body.append(dcc.Link("open", href=detail_href(notice.error_id),
                             className="small ms-2 toast-open"))
    return dbc.Toast(
        body, header=notice.title, icon="danger" if notice.severity == "critical" else "warning",
        id=f"toast-{serial}", is_open=True, dismissable=True,
        duration=TOAST_MS.get(notice.severity, 8000),
        className=f"notice notice-{notice.severity}")


def _critical_item(event: Any) -> html.Div:
    where = " · ".join(p for p in (event.error_type, event.component, event.symbol) if p)
    return html.Div([
        html.Div([html.Span(utc_text(event.timestamp), className="text-body-secondary me-2"),
                  html.Span(where or "—", className="fw-semibold")], className="small"),
        html.Div(event.error_message, className="critical-message"),
        dcc.Link("Open the detail", href=detail_href(event.error_id), className="small"),
    ], className="critical-item")


# -- callbacks ----------------------------------------------------------------------------
def register_callbacks(app: Dash, live: LiveView) -> None:
    @app.callback(
        Output(ids.NOTIFICATIONS, "children"),
        Output(ids.CRITICAL_DIALOG, "is_open"),
        Output(ids.CRITICAL_LIST, "children"),
        Output(ids.CRITICAL_MORE, "children"),
        Output(ids.CRITICAL_TITLE, "children"),
        Output(ids.CRITICAL_SIGNAL, "data"),
        Output(ids.NOTICE_STATE, "data"),
        Input(ids.NAV_INTERVAL, "n_intervals"),
        Input(ids.CRITICAL_DISMISS, "n_clicks"),
        State(ids.NOTICE_STATE, "data"),
        State(ids.CRITICAL_DIALOG, "is_open"),
        prevent_initial_call=True,  # the layout set the starting point
    )
    def notify(_tick, _dismiss, state, dialog_open):
        state = dict(state or {})
        # A click and a tick can arrive in one request: look for the click among all.
        if f"{ids.CRITICAL_DISMISS}.n_clicks" in ctx.triggered_prop_ids:
            state["criticals"] = 0
            return (no_update, False, no_update, no_update, no_update, no_update, state)
        ring = live.ring
        seq = state.get("seq")
        if seq is None or seq > ring.last_seq:
            # First look (or the monitor restarted): start from now, without a backlog storm.
            state["seq"] = ring.last_seq
            return (no_update,) * 6 + (state,)
        entries = ring.since(seq)
        if not entries and not state.get("groups"):
            return (no_update,) * 7
        plan = plan_notices([e.event for e in entries], state, time.time())
        new_state = {**plan.state, "seq": entries[-1].seq if entries else seq,
                     "toasts": state.get("toasts", 0), "serial": state.get("serial", 0),
                     "criticals": state.get("criticals", 0)}
        toasts_out: Any = no_update
        if plan.toasts:
            patch = Patch()
            kept = new_state["toasts"]
            overflow = max(0, kept + len(plan.toasts) - MAX_TOASTS_KEPT)
            for _ in range(min(overflow, kept)):
                del patch[0]
            for notice in plan.toasts[-MAX_TOASTS_KEPT:]:
                new_state["serial"] += 1
                patch.append(_toast(notice, str(new_state["serial"])))
            new_state["toasts"] = min(kept + len(plan.toasts), MAX_TOASTS_KEPT)
            toasts_out = patch
        if not plan.criticals:
            return (toasts_out, no_update, no_update, no_update, no_update, no_update,
                    new_state)
        listed = new_state["criticals"] if dialog_open else 0
        room = max(0, MAX_CRITICALS_LISTED - listed)
        items = [_critical_item(e) for e in plan.criticals[:room]]
        if dialog_open:
            listing: Any = Patch()
            for item in items:
                listing.append(item)
        else:
            listing = items
        total = listed + len(plan.criticals)
        new_state["criticals"] = total
        more = (f"and {total - MAX_CRITICALS_LISTED} more: see the live list"
                if total > MAX_CRITICALS_LISTED else "")
        title = "Critical error" if total == 1 else f"{total} critical errors"
        latest = plan.criticals[-1]
        signal = {"n": total, "at": time.time(),
                  "text": f"{latest.error_type or 'Critical'}: {latest.error_message[:200]}"}
        return toasts_out, True, listing, more, title, signal, new_state
