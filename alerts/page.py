"""Alerts (`/alerts`): what is firing now, the silences that hold notifications back, history.

The ingest's alert engine (alerts/rules.py) decides what fires and resolves and writes it to
the `alerts` table; this page only reads that table and manages silences, through the same
commands (alerts/commands.py) as the REST API, so the form answers a bad silence with the
API's words. A new or ended silence reaches the engine within a few seconds (the alert keeper
reloads silences every 3 s); the page refreshes every few seconds and so shows the alert as
silenced soon after.

Every producer string (keys, summaries, messages, reasons) is a plain Dash child: React
renders it as text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import dash_bootstrap_components as dbc
from dash import (
    ALL,
    ClientsideFunction,
    Dash,
    Input,
    Output,
    State,
    ctx,
    dcc,
    html,
    no_update,
)
from flask import has_request_context, request
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from alerts import commands
from alerts.catalog import GROUP_KEYED, RULE_TEXT, RULES
from alerts.store import count_alerts, list_alerts, list_silences
from dashboard import ids
from dashboard.components import ago, empty_state, utc_text
from dashboard.detail import detail_href
from queries.records import parse_iso_utc
from queries.validation import BadParameter

REFRESH_MS = 3000
HISTORY_STEP = 25
MAX_FIRING = 500
DEFAULT_CREATOR = "dashboard"
DURATIONS = {"30": "30 minutes", "60": "1 hour", "240": "4 hours", "1440": "1 day",
             "10080": "1 week", "until": "Until a time…"}
DEFAULT_DURATION = "60"
UNREADABLE = "The alert store cannot be read right now; the page retries every few seconds."


@dataclass(frozen=True)
class AlertsView:
    """Everything the page shows, as plain strings: rendered as is, and hashed so that an
    unchanged page is not sent again every few seconds."""

    firing: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    history_total: int = 0
    silences: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str)
                              .encode()).hexdigest()


def creator() -> str:
    """Who creates a silence from the page: the admin's name when Basic auth is on (the
    security gate has checked it by the time a callback runs), else "dashboard"."""
    if has_request_context():
        auth = request.authorization
        if auth is not None and auth.type == "basic" and auth.username:
            return auth.username[:200]
    return DEFAULT_CREATOR


def age(moment: datetime, now: datetime) -> str:
    """How long ago, to the minute at best: text that changed every refresh would make
    every refresh redraw the tables (and move buttons under the user's pointer)."""
    if (now - moment).total_seconds() < 60:
        return "under a minute"
    return ago(moment, now) if (now - moment).total_seconds() >= 120 else "1 min"


def _since(iso: str | None, now: datetime) -> str:
    moment = parse_iso_utc(iso)
    return f"{utc_text(moment)} ({age(moment, now)} ago)" if moment else "—"


def _lasted(start: str | None, end: str | None) -> str:
    began, ended = parse_iso_utc(start), parse_iso_utc(end)
    if began is None or ended is None:
        return "—"
    return ago(began, ended)


def short_key(rule: str, key: str) -> str:
    """A group's fingerprint cut to its start: 32 hex characters would squeeze the table
    (the whole key shows on hover, and "Silence this" copies all of it)."""
    return key[:12] + "…" if rule in GROUP_KEYED and len(key) > 14 else key


def _key_href(rule: str, key: str) -> str | None:
    return "/groups/" + quote(key, safe="") if rule in GROUP_KEYED else None


def _sample(alert: dict[str, Any]) -> tuple[str | None, str]:
    """(error id, one line about it) of the alert's latest event; None when it has none."""
    sample = alert.get("sample")
    if not isinstance(sample, dict) or not sample.get("id"):
        return None, ""
    what = sample.get("type") or sample.get("category") or ""
    message = str(sample.get("message") or "")
    line = f"{what}: {message}" if what else message
    return str(sample["id"]), line if len(line) <= 160 else line[:159] + "…"


def held_back(alert: dict[str, Any], silences: dict[str, dict[str, Any]],
              now: datetime) -> dict[str, str]:
    """Whether the alert's notifications are held back, and why, in words.

    `kind` is silenced, inhibited, sent or pending; `text` says by what or when."""
    suppressed = alert.get("suppressed") or ""
    if suppressed.startswith("silenced:"):
        silence = silences.get(suppressed[len("silenced:"):])
        if silence is None:
            return {"kind": "silenced", "text": "by a silence that has ended; notifications "
                                                "resume within seconds"}
        key = short_key(silence["rule"], silence["key"]) if silence["key"] else "all keys"
        scope = f"{silence['rule']} / {key}"
        text = f"by {scope} until {utc_text(silence['until'], seconds=False)}"
        if silence.get("createdBy"):
            text += f", set by {silence['createdBy']}"
        if silence.get("reason"):
            text += f": {silence['reason']}"
        return {"kind": "silenced", "text": text, "silence": silence["id"]}
    if suppressed == "inhibited":
        return {"kind": "inhibited",
                "text": "a database_error alert is firing; it speaks for this one"}
    if alert.get("notices"):
        count = alert["notices"]
        last = alert.get("lastNotice") or "firing"
        return {"kind": "sent",
                "text": f"{count} notification{'s' if count != 1 else ''}, last {last} "
                        f"{_since(alert.get('notifiedAt'), now)}"}
    return {"kind": "pending", "text": "not sent yet"}


def firing_row(alert: dict[str, Any], silences: dict[str, dict[str, Any]],
               now: datetime) -> dict[str, Any]:
    sample_id, sample_line = _sample(alert)
    return {"id": alert["id"], "rule": alert["rule"], "key": alert["key"],
            "since": _since(alert.get("startedAt"), now),
            "lastEvent": _since(alert.get("lastEventAt"), now),
            "count": alert.get("count") or 0, "summary": alert.get("summary") or "",
            "sampleId": sample_id, "sampleHref": detail_href(sample_id) if sample_id else None,
            "sample": sample_line, "groupHref": _key_href(alert["rule"], alert["key"]),
            "held": held_back(alert, silences, now)}


def history_row(alert: dict[str, Any]) -> dict[str, Any]:
    sample_id, sample_line = _sample(alert)
    return {"id": alert["id"], "rule": alert["rule"], "key": alert["key"],
            "started": utc_text(parse_iso_utc(alert.get("startedAt"))),
            "ended": utc_text(parse_iso_utc(alert.get("endedAt"))),
            "lasted": _lasted(alert.get("startedAt"), alert.get("endedAt")),
            "count": alert.get("count") or 0, "summary": alert.get("summary") or "",
            "sampleHref": detail_href(sample_id) if sample_id else None,
            "sample": sample_line, "groupHref": _key_href(alert["rule"], alert["key"])}


def silence_row(silence: dict[str, Any], now: datetime) -> dict[str, Any]:
    until = parse_iso_utc(silence["until"])
    left = f"{age(now, until)} left" if until else ""
    return {"id": silence["id"], "rule": silence["rule"], "key": silence["key"],
            "until": f"{utc_text(until, seconds=False)} ({left})",
            "reason": silence.get("reason") or "", "createdBy": silence.get("createdBy") or ""}


def alerts_view(engine: Engine, history_limit: int = HISTORY_STEP,
                now: datetime | None = None) -> AlertsView:
    """The page's content: firing alerts, active silences, the newest resolved alerts."""
    now = now or datetime.now(UTC)
    try:
        firing = list_alerts(engine, "firing", MAX_FIRING)
        active = list_silences(engine, now, active_only=True)
        resolved = list_alerts(engine, "resolved", max(1, history_limit))
        total = count_alerts(engine, "resolved")
    except SQLAlchemyError:
        return AlertsView(problem=UNREADABLE)
    by_id = {s["id"]: s for s in active}
    # Soonest to end first: the silence someone is most likely to extend or end.
    active.sort(key=lambda s: s["until"])
    return AlertsView(firing=[firing_row(a, by_id, now) for a in firing],
                      history=[history_row(a) for a in resolved], history_total=total,
                      silences=[silence_row(s, now) for s in active])


def silence_request(rule: str | None, key: str | None, duration: str | None,
                    until_iso: str | None, reason: str | None, who: str,
                    now: datetime) -> commands.SilenceRequest:
    """The form's fields as a checked silence; a blank key means every key of the rule."""
    until: str | None = None
    minutes: int | None = None
    if duration == "until":
        if not until_iso:
            raise BadParameter("pick the time the silence ends")
        until = until_iso
    elif duration in DURATIONS:
        minutes = int(duration)
    else:
        raise BadParameter(f"choose how long the silence lasts, got {duration!r}")
    return commands.silence_request(rule, (key or "").strip() or None, now, until=until,
                                    minutes=minutes, reason=(reason or "").strip(),
                                    created_by=who)


def create_silence(engine: Engine, rule: str | None, key: str | None, duration: str | None,
                   until_iso: str | None, reason: str | None, who: str,
                   now: datetime | None = None) -> tuple[dict[str, Any] | None, str]:
    """(the new silence, a sentence for the page) or (None, what is wrong)."""
    now = now or datetime.now(UTC)
    try:
        request = silence_request(rule, key, duration, until_iso, reason, who, now)
        silence = commands.add_silence(engine, request, now)
    except BadParameter as exc:
        text = str(exc)
        return None, f"Not created: {text[:1].upper()}{text[1:]}."
    except SQLAlchemyError:
        return None, "Not created: the alert store cannot be written right now."
    scope = f"key {silence['key']}" if silence["key"] else "all keys"
    return silence, (f"Silenced {silence['rule']} ({scope}) until "
                     f"{utc_text(silence['until'], seconds=False)}.")


def end_silence(engine: Engine, silence_id: str) -> tuple[bool, str]:
    """(ended, a sentence for the page)."""
    try:
        ended = commands.end_silence(engine, silence_id)
    except SQLAlchemyError:
        return False, "Not ended: the alert store cannot be written right now."
    if not ended:
        return False, "That silence had already ended."
    return True, "Silence ended: its alerts notify again within seconds."


# -- rendering ----------------------------------------------------------------------------
def _rule_badge(rule: str) -> dbc.Badge:
    return dbc.Badge(rule, color="danger" if rule in GROUP_KEYED else "warning",
                     className="alert-rule", title=RULE_TEXT.get(rule, ""))


def _key_cell(rule: str, key: str | None) -> html.Td:
    if key is None:
        return html.Td(html.Em("all keys"), className="alert-key")
    return html.Td(short_key(rule, key), title=key, className="alert-key")


def _sample_cell(row: dict[str, Any]) -> list[Any]:
    cell: list[Any] = []
    if row["sampleHref"]:
        cell.append(dcc.Link(row["sample"] or "latest error", href=row["sampleHref"],
                             className="alert-sample"))
    if row["groupHref"]:
        cell.append(html.Div(dcc.Link("its group", href=row["groupHref"]), className="small"))
    return cell or ["—"]


def _held_cell(held: dict[str, str]) -> list[Any]:
    colour = {"silenced": "secondary", "inhibited": "secondary", "sent": "success",
              "pending": "light"}[held["kind"]]
    label = {"silenced": "silenced", "inhibited": "inhibited", "sent": "notified",
             "pending": "pending"}[held["kind"]]
    return [dbc.Badge(label, color=colour, className="alert-held me-1",
                      text_color="dark" if colour == "light" else None),
            html.Span(held["text"], className="small")]


def firing_table(rows: list[dict[str, Any]]) -> Any:
    if not rows:
        return empty_state("No alerts firing",
                           "Nothing needs attention. Alerts fire on critical errors, database "
                           "errors, a high error rate, a burst in one category and repeated "
                           "pattern failures for one symbol.")
    head = html.Thead(html.Tr([html.Th(t) for t in (
        "Rule", "Key", "Since", "Events", "Summary", "Latest error", "Notifications", "")]))
    body = html.Tbody([html.Tr([
        html.Td(_rule_badge(r["rule"])),
        _key_cell(r["rule"], r["key"]),
        html.Td([html.Div(r["since"]),
                 html.Div(f"last event {r['lastEvent']}", className="small text-body-secondary")],
                className="alert-time"),
        html.Td(f"{r['count']:,}", className="text-end"),
        html.Td(r["summary"], className="alert-summary"),
        html.Td(_sample_cell(r), className="alert-summary"),
        html.Td(_held_cell(r["held"]), className="alert-held-cell"),
        html.Td(dbc.Button("Silence this", id={"type": ids.ALERT_SILENCE_THIS, "index": r["id"]},
                           size="sm", color="secondary", outline=True,
                           className="text-nowrap")),
    ], className=f"alert-row alert-{r['held']['kind']}", id=f"alert-{r['id']}")
        for r in rows])
    return dbc.Table([head, body], hover=True, responsive=True, size="sm",
                     className="alerts-table align-middle")


def history_table(rows: list[dict[str, Any]]) -> Any:
    if not rows:
        return empty_state("No resolved alerts yet",
                           "An alert lands here once its rule has stayed quiet for a whole "
                           "window.")
    head = html.Thead(html.Tr([html.Th(t) for t in (
        "Rule", "Key", "Started", "Resolved", "Lasted", "Events", "Summary", "Latest error")]))
    body = html.Tbody([html.Tr([
        html.Td(_rule_badge(r["rule"])),
        _key_cell(r["rule"], r["key"]),
        html.Td(r["started"], className="alert-time"),
        html.Td(r["ended"], className="alert-time"),
        html.Td(r["lasted"]),
        html.Td(f"{r['count']:,}", className="text-end"),
        html.Td(r["summary"], className="alert-summary"),
        html.Td(_sample_cell(r), className="alert-summary"),
    ]) for r in rows])
    return dbc.Table([head, body], hover=True, responsive=True, size="sm",
                     className="alerts-table align-middle")


def history_summary(view: AlertsView) -> str:
    if view.problem or not view.history_total:
        return ""
    return (f"Showing {len(view.history):,} of {view.history_total:,} resolved alerts, "
            "newest first.")


def silence_table(rows: list[dict[str, Any]]) -> Any:
    if not rows:
        return empty_state("No active silences",
                           "Every firing alert sends its notifications.")
    head = html.Thead(html.Tr([html.Th(t) for t in (
        "Rule", "Key", "Until", "Reason", "Created by", "")]))
    body = html.Tbody([html.Tr([
        html.Td(_rule_badge(r["rule"])),
        _key_cell(r["rule"], r["key"]),
        html.Td(r["until"], className="alert-time"),
        html.Td(r["reason"] or "—", className="alert-summary"),
        html.Td(r["createdBy"] or "—"),
        html.Td(dbc.Button("End", id={"type": ids.SILENCE_END, "index": r["id"]}, size="sm",
                           color="danger", outline=True)),
    ], className="silence-row", id=f"silence-{r['id']}") for r in rows])
    return dbc.Table([head, body], hover=True, responsive=True, size="sm",
                     className="alerts-table align-middle")


def status_line(view: AlertsView) -> Any:
    if view.problem:
        return dbc.Alert(view.problem, color="warning", className="py-2")
    firing = len(view.firing)
    silenced = sum(1 for r in view.firing if r["held"]["kind"] == "silenced")
    words = f"{firing} firing" + (f" ({silenced} silenced)" if silenced else "")
    words += f" · {len(view.silences)} active silence{'s' if len(view.silences) != 1 else ''}"
    return html.Div(words + f" · refreshed every {REFRESH_MS // 1000} s",
                    className="small text-body-secondary")


def rendered(view: AlertsView) -> tuple[Any, ...]:
    """The refreshing parts, in the order of the refresh callback's outputs."""
    more = "mt-1" if len(view.history) < view.history_total else "d-none"
    keys = {r["id"]: {"rule": r["rule"], "key": r["key"]} for r in view.firing}
    return (status_line(view), firing_table(view.firing) if not view.problem else None,
            silence_table(view.silences) if not view.problem else None,
            history_table(view.history) if not view.problem else None,
            history_summary(view), more, keys, view.digest())


def silence_form() -> Any:
    field_label = "form-label small mb-1"
    return html.Div([
        dbc.Row([
            dbc.Col([dbc.Label("Rule", html_for=ids.SILENCE_RULE, className=field_label),
                     dbc.Select(id=ids.SILENCE_RULE, value=RULES[0],
                                options=[{"label": r, "value": r, "title": RULE_TEXT[r]}
                                         for r in RULES])], md=3),
            dbc.Col([dbc.Label("Key (optional)", html_for=ids.SILENCE_KEY,
                               className=field_label),
                     dbc.Input(id=ids.SILENCE_KEY, placeholder="all keys of the rule",
                               maxLength=300, type="text")], md=3),
            dbc.Col([dbc.Label("For", html_for=ids.SILENCE_DURATION, className=field_label),
                     dbc.Select(id=ids.SILENCE_DURATION, value=DEFAULT_DURATION,
                                options=[{"label": v, "value": k}
                                         for k, v in DURATIONS.items()]),
                     dbc.Input(id=ids.SILENCE_UNTIL, type="datetime-local",
                               className="d-none mt-1")], md=2),
            dbc.Col([dbc.Label("Reason", html_for=ids.SILENCE_REASON, className=field_label),
                     dbc.Input(id=ids.SILENCE_REASON, placeholder="why (shown to everyone)",
                               maxLength=1000, type="text")], md=2),
            dbc.Col(dbc.Button("Create silence", id=ids.SILENCE_CREATE, color="primary",
                               className="w-100 text-nowrap"),
                    md=2, className="d-flex align-items-end"),
        ], className="g-2"),
        html.Div(f"Created as {creator()}. A silence holds back notifications of matching "
                 "alerts; they are still recorded and shown here. A time you pick is your "
                 "local time.",
                 className="small text-body-secondary mt-1"),
        html.Div(id=ids.SILENCE_FEEDBACK, className="mt-2", role="status"),
    ], id=ids.SILENCE_FORM, className="silence-form mb-3")


def layout(engine: Engine, params: dict[str, str]) -> Any:
    view = alerts_view(engine)
    status, firing, silences, history, summary, more, keys, digest = rendered(view)
    return html.Div([
        html.Div([html.H4("Firing", className="mb-0 me-3"),
                  html.Div(status, id=ids.ALERTS_STATUS)],
                 className="d-flex align-items-baseline flex-wrap mb-2"),
        html.Div(firing, id=ids.ALERTS_FIRING, className="mb-4"),
        html.H4("Silences", className="mb-2"),
        silence_form(),
        html.Div(silences, id=ids.SILENCE_LIST, className="mb-4"),
        html.H4("History", className="mb-1"),
        html.Div(summary, id=ids.ALERTS_HISTORY_SUMMARY,
                 className="small text-body-secondary mb-2", role="status"),
        html.Div(history, id=ids.ALERTS_HISTORY),
        dbc.Button(f"Show {HISTORY_STEP} more", id=ids.ALERTS_HISTORY_MORE, color="secondary",
                   outline=True, size="sm", className=more),
        dcc.Interval(id=ids.ALERTS_INTERVAL, interval=REFRESH_MS),
        dcc.Store(id=ids.ALERTS_HISTORY_LIMIT, data=HISTORY_STEP),
        dcc.Store(id=ids.ALERTS_DIGEST, data=digest),
        dcc.Store(id=ids.ALERTS_FIRING_KEYS, data=keys),
        dcc.Store(id=ids.SILENCE_CHANGED, data=0),
        dcc.Store(id=ids.SILENCE_UNTIL_UTC, data={}),
    ], className="alerts-page")


def _clicked() -> Any:
    """The pattern-matching id that was clicked, or None when the callback ran only because
    the buttons were (re)drawn: new buttons arrive with n_clicks None."""
    if not ctx.triggered or not ctx.triggered[0].get("value"):
        return None
    return ctx.triggered_id


def register_callbacks(app: Dash, engine: Engine) -> None:
    @app.callback(
        Output(ids.ALERTS_STATUS, "children"),
        Output(ids.ALERTS_FIRING, "children"),
        Output(ids.SILENCE_LIST, "children"),
        Output(ids.ALERTS_HISTORY, "children"),
        Output(ids.ALERTS_HISTORY_SUMMARY, "children"),
        Output(ids.ALERTS_HISTORY_MORE, "className"),
        Output(ids.ALERTS_FIRING_KEYS, "data"),
        Output(ids.ALERTS_DIGEST, "data"),
        Input(ids.ALERTS_INTERVAL, "n_intervals"),
        Input(ids.SILENCE_CHANGED, "data"),
        Input(ids.ALERTS_HISTORY_LIMIT, "data"),
        State(ids.ALERTS_DIGEST, "data"),
        prevent_initial_call=True,
    )
    def refresh(_tick, _changed, limit, digest):
        view = alerts_view(engine, int(limit or HISTORY_STEP))
        if view.digest() == digest:
            return (no_update,) * 8
        return rendered(view)

    @app.callback(
        Output(ids.ALERTS_HISTORY_LIMIT, "data"),
        Input(ids.ALERTS_HISTORY_MORE, "n_clicks"),
        State(ids.ALERTS_HISTORY_LIMIT, "data"),
        prevent_initial_call=True,
    )
    def more_history(_clicks, limit):
        return int(limit or HISTORY_STEP) + HISTORY_STEP

    # The form starts on a fixed duration, the "until" input hidden: nothing to run on load.
    @app.callback(
        Output(ids.SILENCE_UNTIL, "className"),
        Input(ids.SILENCE_DURATION, "value"),
        prevent_initial_call=True,
    )
    def show_until(duration):
        return "mt-1" if duration == "until" else "d-none mt-1"

    # datetime-local is the browser's local time: the browser turns it into UTC.
    app.clientside_callback(
        ClientsideFunction("monitor", "toUtcRange"),
        Output(ids.SILENCE_UNTIL_UTC, "data"),
        Input(ids.SILENCE_UNTIL, "value"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.SILENCE_FEEDBACK, "children"),
        Output(ids.SILENCE_CHANGED, "data"),
        Output(ids.SILENCE_KEY, "value"),
        Output(ids.SILENCE_REASON, "value"),
        Input(ids.SILENCE_CREATE, "n_clicks"),
        State(ids.SILENCE_RULE, "value"),
        State(ids.SILENCE_KEY, "value"),
        State(ids.SILENCE_DURATION, "value"),
        State(ids.SILENCE_UNTIL_UTC, "data"),
        State(ids.SILENCE_REASON, "value"),
        State(ids.SILENCE_CHANGED, "data"),
        prevent_initial_call=True,
    )
    def create(_clicks, rule, key, duration, until_utc, reason, changed):
        silence, text = create_silence(engine, rule, key, duration,
                                       (until_utc or {}).get("from"), reason, creator())
        if silence is None:
            return dbc.Alert(text, color="danger", className="py-2"), no_update, \
                no_update, no_update
        return (dbc.Alert(text, color="success", className="py-2", duration=8000),
                (changed or 0) + 1, "", "")

    @app.callback(
        Output(ids.SILENCE_FEEDBACK, "children", allow_duplicate=True),
        Output(ids.SILENCE_CHANGED, "data", allow_duplicate=True),
        Input({"type": ids.SILENCE_END, "index": ALL}, "n_clicks"),
        State(ids.SILENCE_CHANGED, "data"),
        prevent_initial_call=True,
    )
    def end(_clicks, changed):
        clicked = _clicked()
        if not isinstance(clicked, dict):
            return no_update, no_update
        ended, text = end_silence(engine, str(clicked.get("index", "")))
        return (dbc.Alert(text, color="success" if ended else "warning", className="py-2",
                          duration=8000),
                (changed or 0) + 1)

    @app.callback(
        Output(ids.SILENCE_RULE, "value"),
        Output(ids.SILENCE_KEY, "value", allow_duplicate=True),
        Output(ids.SILENCE_FEEDBACK, "children", allow_duplicate=True),
        Input({"type": ids.ALERT_SILENCE_THIS, "index": ALL}, "n_clicks"),
        State(ids.ALERTS_FIRING_KEYS, "data"),
        prevent_initial_call=True,
    )
    def silence_this(_clicks, keys):
        clicked = _clicked()
        alert = (keys or {}).get(clicked.get("index")) if isinstance(clicked, dict) else None
        if alert is None:
            return no_update, no_update, no_update
        return (alert["rule"], alert["key"],
                dbc.Alert(f"Form filled for {alert['rule']} / {alert['key']}: choose how long "
                          "and why, then Create silence.", color="info", className="py-2"))
