"""Monitor (`/monitor`): the monitor's own health, as `GET /api/monitor/status` reports it.

The page is built in two steps so that the formatting can be tested without a browser:
`monitor_view(status, ...)` turns the status into plain, JSON-able sections (texts only), and
`render_section` draws one section. Each tick reads the status once and sends only the
sections whose text changed (a digest per section is kept in the page), so a quiet monitor
costs a few hundred bytes a second.

The status comes from the ingest in this process, or, on a web-only side, from the ingest
processes' heartbeats (several summed, or none): every key may be missing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html, no_update

from dashboard import ids
from dashboard.components import ago, empty_state, interval, skew_text, utc_text
from live.status import StatusSource
from queries.records import parse_iso_utc

Status = StatusSource
Section = dict[str, Any]

TICK_MS = 1000

# name -> what it counts; the order is the table's.
COUNTERS: dict[str, str] = {
    "received": "read from Redis and journaled",
    "replayed": "replayed from a spool left by an earlier run",
    "stored": "written to the store",
    "duplicate": "error_id already stored",
    "rejected": "malformed: kept in the dead-letter table",
    "refused": "refused by the database: kept in the dead-letter table",
    "log_only": "below STORE_MIN_SEVERITY: log file only",
    "dropped": "refused by a full or unwritable spool",
    "reconnects": "times the Redis subscription was lost",
}
# Both sides of the conservation rule (ingest.service.conservation).
CAME_IN = ("received", "replayed")
WENT_OUT = ("stored", "duplicate", "rejected", "refused", "log_only", "spool_unread",
            "pending_write", "dropped")

SECTIONS: dict[str, str] = {
    "listening": ids.MONITOR_LISTENING,
    "store": ids.MONITOR_STORE,
    "conservation": ids.MONITOR_CONSERVATION,
    "counters": ids.MONITOR_COUNTERS,
    "queue": ids.MONITOR_QUEUE,
    "history": ids.MONITOR_HISTORY,
    "retention": ids.MONITOR_RETENTION,
    "webhook": ids.MONITOR_WEBHOOK,
    "clocks": ids.MONITOR_CLOCKS,
}


# -- small texts ------------------------------------------------------------------------------
def when_text(value: Any, now: datetime) -> str:
    """`2025-01-26 21:20:00 UTC (3 s ago)`, `... (in 5 h)` for a future time, `—` for none."""
    moment = parse_iso_utc(value)
    if moment is None:
        return "—" if not value else str(value)
    if moment > now:
        return f"{utc_text(moment)} (in {ago(now, moment)})"
    return f"{utc_text(moment)} ({ago(moment, now)} ago)"


def count_text(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "—"


def rate_text(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}/s"


def duration_text(seconds: Any) -> str:
    """A duration for people: `12 ms`, `4.2 s`, `3 min 5 s`, `2 h 10 min`."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 7200:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def bytes_text(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - the loop always returns


_URL = re.compile(r"\b([a-zA-Z][\w+.-]*)://(?:[^\s/@]*@)?([^\s/?#@]*)[^\s]*")


def problem_text(exc: BaseException) -> str:
    """Why the status could not be read, for the page. An exception's text is not scrubbed
    like the status is: URLs lose their credentials, path and query (a webhook URL holds
    its token in the path), and the text is cut short."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = _URL.sub(lambda m: f"{m.group(1)}://{m.group(2)}/…", text)
    return text if len(text) <= 300 else text[:299] + "…"


# -- the sections, as plain texts ----------------------------------------------------------------
def _counters(status: Mapping[str, Any]) -> Mapping[str, Any]:
    counters = status.get("counters")
    return counters if isinstance(counters, Mapping) else {}


def _no_ingest(status: Mapping[str, Any]) -> bool:
    """A web-only side with no ingest process reporting: its numbers are placeholders."""
    return status.get("ingest") == "no heartbeat"


def listening_view(status: Mapping[str, Any], now: datetime) -> Section:
    source = str(status.get("source") or "")
    kind = "Redis stream" if source.startswith("stream") else "Redis pub/sub"
    if _no_ingest(status):
        since = status.get("notListeningSince")
        state = "No heartbeat from the ingest process" + (
            f" since {when_text(since, now)}" if since else "")
        tone = "danger"
    elif status.get("subscribed"):
        state, tone = "Listening", "success"
    elif status.get("notListeningSince"):
        state = f"Not listening since {when_text(status['notListeningSince'], now)}"
        tone = "danger"
    else:
        state, tone = "Not listening", "danger"
    last = status.get("lastMessageAt")
    rows = [
        ["Source", f"{kind}: {source}" if source else kind],
        ["Channel", str(status.get("channel") or "—")],
        ["Subscribed since", when_text(status.get("subscribedSince"), now)
         if status.get("subscribed") else "—"],
        ["Last message", f"{ago(parsed, now)} ago ({utc_text(parsed)})"
         if (parsed := parse_iso_utc(last)) else "none yet"],
        ["Reconnects", count_text(_counters(status).get("reconnects"))],
        ["Last Redis error", str(status.get("lastRedisError") or "none")],
    ]
    processes = status.get("ingestProcesses")
    if isinstance(processes, list):  # web-only side: which ingest processes report
        rows.append(["Ingest processes", f"{len(processes)} reporting"])
    for process in status.get("processes") or []:
        rows.append([f"Process {process.get('process')}", process_text(process)])
    if status.get("startedAt"):
        rows.append(["Ingest started", when_text(status.get("startedAt"), now)])
    return {"state": state, "tone": tone, "rows": rows}


def process_text(process: Mapping[str, Any]) -> str:
    """One ingest process of the deployment: up or down, its consumer, what it holds."""
    parts = ["up" if process.get("state") == "up" else "DOWN"]
    if process.get("consumer"):
        parts.append(f"consumer {process['consumer']}, "
                     f"{count_text(process.get('pending'))} pending")
    silent = process.get("silentSeconds")
    heard = parse_iso_utc(process.get("lastHeardAt"))
    if isinstance(silent, (int, float)) and heard is not None:
        parts.append(f"last heard {silent:.0f} s ago ({utc_text(heard)})")
    return "; ".join(parts)


def store_view(status: Mapping[str, Any], now: datetime) -> Section:
    ok = status.get("storeOk")
    if ok is False:
        since = status.get("storeDownSince")
        state = f"Unreachable since {when_text(since, now)}" if since else "Unreachable"
        tone = "danger"
    elif ok is True:
        state, tone = "OK", "success"
    else:
        state, tone = "Not written to yet", "secondary"
    # Before the first commit the writer reports zeros, which would read as "0 ms, fast".
    committed = bool(status.get("lastCommitAt"))
    rows = [
        ["Last error", str(status.get("lastStoreError") or "none")],
        ["Last commit", when_text(status.get("lastCommitAt"), now) if committed else "none yet"],
        ["Store latency", duration_text(status.get("storeLatencySeconds"))
         if committed else "—"],
        ["Last batch", f"{count_text(status.get('lastBatchRows'))} rows in "
                       f"{duration_text(status.get('lastBatchSeconds'))}"
         if committed else "none yet"],
    ]
    return {"state": state, "tone": tone, "rows": rows}


def conservation_view(status: Mapping[str, Any]) -> Section:
    """received + replayed = stored + duplicate + rejected + refused + log_only + pending
    + dropped, with both sides written out."""
    if _no_ingest(status):
        return {"state": "UNKNOWN", "tone": "secondary", "left": "", "right": "",
                "note": "no ingest process is reporting"}
    counters = _counters(status)

    def value(name: str) -> int | None:
        number = counters.get(name)
        return number if isinstance(number, int) and not isinstance(number, bool) else None

    if all(value(n) is not None for n in CAME_IN + WENT_OUT):
        came = sum(value(n) or 0 for n in CAME_IN)
        went = sum(value(n) or 0 for n in WENT_OUT)
        pending = (value("spool_unread") or 0) + (value("pending_write") or 0)
        left = " + ".join(f"{n} {value(n):,}" for n in CAME_IN)
        right = " + ".join(
            [f"{n} {value(n):,}" for n in ("stored", "duplicate", "rejected", "refused",
                                            "log_only")]
            + [f"pending {pending:,}", f"dropped {value('dropped'):,}"])
    else:
        reported = status.get("conservation")
        if not isinstance(reported, Mapping) or not isinstance(reported.get("in"), int):
            return {"state": "UNKNOWN", "tone": "secondary", "left": "", "right": "",
                    "note": "the status has no counters"}
        came, went = reported["in"], int(reported.get("accountedFor") or 0)
        left, right = "in", "accounted for"
    holds = came == went
    return {
        "state": "OK" if holds else "MISMATCH",
        "tone": "success" if holds else "danger",
        "left": f"{left} = {came:,}",
        "right": f"{right} = {went:,}",
        "note": "every message is accounted for" if holds
        else f"{abs(came - went):,} {'unaccounted for' if came > went else 'counted twice'}",
    }


def counters_view(status: Mapping[str, Any]) -> Section:
    counters = _counters(status)
    reported = status.get("rates") if isinstance(status.get("rates"), Mapping) else {}
    rows = []
    for name, meaning in COUNTERS.items():
        rate = reported.get(name)  # the ingest's own, as the API serves them
        if not isinstance(rate, int | float):
            rate = None
        rows.append([name, count_text(counters.get(name)), rate_text(rate), meaning])
    note = ("the last numbers an ingest process reported; none is reporting now"
            if _no_ingest(status) else "")
    return {"since": str(status.get("startedAt") or ""), "rows": rows, "note": note}


def queue_view(status: Mapping[str, Any]) -> Section:
    counters = _counters(status)
    spool = status.get("spool") if isinstance(status.get("spool"), Mapping) else {}
    limit = spool.get("maxBytes")
    spool_bytes = bytes_text(counters.get("spool_bytes"))
    rows = [
        ["Spool unread", count_text(counters.get("spool_unread"))],
        ["Spool bytes", f"{spool_bytes} of {bytes_text(limit)}" if limit else spool_bytes],
        ["Pending write", count_text(counters.get("pending_write"))],
    ]
    if spool.get("tornRecords"):
        rows.append(["Torn spool records", count_text(spool.get("tornRecords"))])
    ring = status.get("ringBuffer")
    if isinstance(ring, Mapping):
        rows.append(["Ring buffer", f"{count_text(ring.get('size'))} of "
                                    f"{count_text(ring.get('capacity'))}"])
    return {"rows": rows}


def history_view(status: Mapping[str, Any], now: datetime) -> Section:
    """The incidents, newest first; an ongoing one says so."""
    incidents = [i for i in status.get("history") or [] if isinstance(i, Mapping)]
    incidents.sort(key=lambda i: parse_iso_utc(i.get("from")) or datetime.min.replace(tzinfo=UTC),
                   reverse=True)
    rows = [[str(i.get("what") or "—"), when_text(i.get("from"), now),
             when_text(i.get("to"), now) if i.get("to") else "ongoing",
             duration_text(i.get("seconds")), str(i.get("reason") or "—")]
            for i in incidents]
    return {"rows": rows}


def retention_view(status: Mapping[str, Any], now: datetime) -> Section:
    retention = status.get("retention")
    if not isinstance(retention, Mapping):
        return {"state": "Not reported", "tone": "secondary",
                "rows": [["", "the retention job runs with the ingest process"]]}
    if retention.get("running"):
        state, tone = "Running", "info"
    elif retention.get("standby"):
        # Another ingest process claimed today's run: this one waits for tomorrow's.
        state, tone = "Standing by", "secondary"
    elif not retention.get("lastRun"):
        state, tone = "Not run yet", "secondary"
    elif retention.get("lastRunOk") is False:
        state, tone = "Failed", "danger"
    else:
        state, tone = "OK", "success"
    days, at = retention.get("retentionDays"), retention.get("at")
    rows = [
        ["Last run", when_text(retention.get("lastRun"), now)],
        ["Next run", when_text(retention.get("nextRun"), now)],
        ["Rows removed", count_text(retention.get("rowsRemoved"))],
        ["Duration", duration_text(retention.get("durationSeconds"))],
        ["Error", str(retention.get("lastError") or "none")],
    ]
    if retention.get("standby"):
        rows.insert(0, ["Standing by", str(retention["standby"])])
    if days is not None:
        zone = retention.get("timezone")
        rows.append(["Keeps", f"{days} days; runs daily at {at or '—'}"
                              + (f" ({zone})" if zone else "")])
    for key, label in (("partitionsDropped", "Partitions dropped"),
                       ("partitionsCreated", "Partitions created")):
        if retention.get(key):
            rows.append([label, count_text(retention.get(key))])
    return {"state": state, "tone": tone, "rows": rows}


def webhook_view(status: Mapping[str, Any], now: datetime) -> Section:
    """Delivery counts only: the URL is never part of the status, nor of this page."""
    alerts = status.get("alerts")
    if not isinstance(alerts, Mapping):
        return {"state": "Not reported", "tone": "secondary",
                "rows": [["", "alerts run with the ingest process"]]}
    firing = [["Alerts firing", f"{count_text(alerts.get('firing'))} "
                                f"({count_text(alerts.get('notifying'))} notifying)"]]
    if alerts.get("lastSaveError"):
        firing.append(["Alert save error", str(alerts["lastSaveError"])])
    if "leader" in alerts:  # several ingest processes: the one that evaluates and notifies
        firing.append(["Alert leader", str(alerts.get("leader") or "none yet")])
    webhook = alerts.get("webhook")
    if not alerts.get("webhookConfigured") or not isinstance(webhook, Mapping):
        return {"state": "Not configured", "tone": "secondary",
                "rows": [["Webhook", "none: ALERT_WEBHOOK_URL is empty"], *firing]}
    # The notifier never clears its last error, so the state goes by the counts: a receiver
    # that failed once and has delivered since is not "failing".
    failed, delivered = webhook.get("failed"), webhook.get("delivered")
    if not isinstance(failed, int) or failed == 0:
        state, tone = "OK", "success"
    elif not delivered:
        state, tone = "Failing: nothing delivered", "danger"
    else:
        state, tone = "Some deliveries failed", "warning"
    rows = [
        ["Sent", count_text(webhook.get("delivered"))],
        ["Failed", count_text(failed)],
        ["Retries", count_text(webhook.get("retries"))],
        ["Waiting", count_text(webhook.get("pending"))],
        ["Last sent", when_text(webhook.get("lastDeliveredAt"), now)],
        ["Last error (any time)", str(webhook.get("lastError") or "none")],
        *firing,
    ]
    return {"state": state, "tone": tone, "rows": rows}


def clocks_view(status: Mapping[str, Any], now: datetime) -> Section:
    """Producers whose clock is off by CLOCK_SKEW_WARN_SECONDS or more, from the ingest."""
    clock = status.get("clockSkew") if isinstance(status.get("clockSkew"), Mapping) else {}
    warn = clock.get("warnSeconds")
    producers = [p for p in clock.get("producers") or [] if isinstance(p, Mapping)]
    flagged = [p for p in producers if p.get("flagged")]
    if not producers:
        return {"state": "No producer heard yet", "tone": "body-secondary", "rows": []}
    limit = duration_text(warn) if isinstance(warn, (int, float)) else "the limit"
    rows = [[str(p.get("source") or "—"),
             f"{skew_text(p.get('skewSeconds'))} (last message "
             f"{when_text(p.get('lastReceivedAt'), now)})"] for p in flagged]
    if not flagged:
        return {"state": f"Every producer's clock is within {limit}", "tone": "success",
                "rows": []}
    noun = "producer's clock is" if len(flagged) == 1 else "producers' clocks are"
    return {"state": f"{len(flagged)} {noun} off by {limit} or more: their errors keep their "
                     "own time, health and recency use the time received",
            "tone": "warning", "rows": rows}


def monitor_view(status: Mapping[str, Any], now: datetime | None = None) -> dict[str, Section]:
    """Every section of the page as plain texts, keyed as SECTIONS."""
    now = now or datetime.now(UTC)
    return {
        "listening": listening_view(status, now),
        "store": store_view(status, now),
        "conservation": conservation_view(status),
        "counters": counters_view(status),
        "queue": queue_view(status),
        "history": history_view(status, now),
        "retention": retention_view(status, now),
        "webhook": webhook_view(status, now),
        "clocks": clocks_view(status, now),
    }


def read_status(status: Status) -> dict[str, Any]:
    """The status, read a second time when conservation does not hold: its counters are read
    one after another while messages flow, so one reading can catch a message on both sides;
    a real leak is still there on the second reading."""
    first = status()
    if conservation_view(first)["state"] != "MISMATCH":
        return first
    second = status()
    return second if conservation_view(second)["state"] != "MISMATCH" else first


def digest(section: Section) -> str:
    return hashlib.blake2b(json.dumps(section, sort_keys=True, default=str).encode(),
                           digest_size=8).hexdigest()


# -- drawing ----------------------------------------------------------------------------------
def _fields(rows: list[list[str]]) -> Any:
    return dbc.Table(html.Tbody([
        html.Tr([html.Th(label, scope="row"), html.Td(value, className="monitor-value")])
        for label, value in rows]), size="sm", borderless=True,
        className="monitor-fields mb-0")


def _state(section: Section) -> Any:
    return html.Div(section["state"], className=f"monitor-state text-{section['tone']} mb-2")


def _counter_table(section: Section) -> Any:
    head = html.Thead(html.Tr([html.Th("Counter"), html.Th("Since start", className="text-end"),
                               html.Th("Per second", className="text-end"),
                               html.Th("Meaning")]))
    body = html.Tbody([
        html.Tr([html.Td(html.Code(name)),
                 html.Td(count, id=f"{ids.MONITOR_COUNT}-{name}", className="text-end num"),
                 html.Td(rate, id=f"{ids.MONITOR_RATE}-{name}", className="text-end num"),
                 html.Td(meaning, className="text-body-secondary small")])
        for name, count, rate, meaning in section["rows"]])
    since = section.get("since")
    caption = section.get("note") or (
        f"Since the ingest started ({utc_text(since)})." if parse_iso_utc(since) else "")
    return html.Div([dbc.Table([head, body], size="sm", hover=True, className="mb-1"),
                     html.Small(caption, className="text-body-secondary")])


def _conservation(section: Section) -> Any:
    return html.Div([
        html.Div(section["state"], id=ids.MONITOR_VERDICT,
                 className=f"monitor-verdict text-{section['tone']}"),
        html.Div(section["note"], className="mb-2"),
        html.Div([html.Span("In: ", className="text-body-secondary"), section["left"]],
                 className="monitor-side small") if section["left"] else None,
        html.Div([html.Span("Accounted for: ", className="text-body-secondary"),
                  section["right"]], className="monitor-side small")
        if section["right"] else None,
    ])


def _history(section: Section) -> Any:
    if not section["rows"]:
        return empty_state("No incidents", "The monitor has listened and stored without a "
                           "break since it started.")
    head = html.Thead(html.Tr([html.Th(h) for h in
                               ("What", "From", "To", "Lasted", "Reason")]))
    body = html.Tbody([html.Tr([html.Td(what, className="text-nowrap"), html.Td(start),
                                html.Td(end), html.Td(lasted, className="text-nowrap"),
                                html.Td(reason, className="monitor-value")])
                       for what, start, end, lasted, reason in section["rows"]])
    return dbc.Table([head, body], size="sm", hover=True, className="mb-0")


def render_section(name: str, section: Section) -> Any:
    """The children of one section's card body."""
    if name == "counters":
        return _counter_table(section)
    if name == "conservation":
        return _conservation(section)
    if name == "history":
        return _history(section)
    if "state" in section:
        return [_state(section), _fields(section["rows"])]
    return _fields(section["rows"])


def problem_alert(reason: str | None, last_good: str | None = None) -> Any:
    if reason is None:
        return None
    shown = f" Showing the status read at {last_good}." if last_good else ""
    return dbc.Alert(f"Status unavailable: {reason}.{shown}", color="danger",
                     className="mb-3")


def _card(title: str, section_id: str, children: Any) -> dbc.Card:
    return dbc.Card([dbc.CardHeader(title, className="fw-semibold"),
                     dbc.CardBody(children, id=section_id)], className="shadow-sm h-100")


def layout(status: Status) -> Any:
    """The page, filled from one reading of the status (or saying why there is none)."""
    now = datetime.now(UTC)
    problem: str | None = None
    try:
        current = read_status(status)
        view = monitor_view(current, now)
        updated = f"updated {utc_text(now)}"
    except Exception as exc:  # noqa: BLE001 - any failure must still give a page
        problem, updated = problem_text(exc), ""
        view = monitor_view({}, now)
    body = {name: render_section(name, section) for name, section in view.items()}
    titles = {"listening": "Redis subscription", "store": "Store", "conservation": "Conservation",
              "counters": "Counters", "queue": "Queue and spool",
              "history": "Incident history (newest first)", "retention": "Retention",
              "webhook": "Alert webhook", "clocks": "Producer clocks"}

    def card(name: str) -> dbc.Card:
        return _card(titles[name], SECTIONS[name], body[name])

    return html.Div([
        html.Div([html.H4("Monitor", className="mb-0"),
                  html.Small(updated, id=ids.MONITOR_UPDATED, role="status",
                             className="text-body-secondary")],
                 className="d-flex align-items-baseline gap-3 mb-3"),
        html.Div(problem_alert(problem), id=ids.MONITOR_PROBLEM),
        dbc.Row([dbc.Col(card("listening"), lg=4), dbc.Col(card("store"), lg=4),
                 dbc.Col(card("conservation"), lg=4)], className="g-3 mb-3"),
        dbc.Row([dbc.Col(card("counters"), lg=7),
                 dbc.Col(html.Div([card("queue"), card("webhook")],
                                  className="d-flex flex-column gap-3 h-100"), lg=5)],
                className="g-3 mb-3"),
        dbc.Row([dbc.Col(html.Div([card("retention"), card("clocks")],
                                  className="d-flex flex-column gap-3 h-100"), lg=4),
                 dbc.Col(card("history"), lg=8)],
                className="g-3 mb-3"),
        dcc.Store(id=ids.MONITOR_DIGEST, data=None if problem else {
            **{n: digest(s) for n, s in view.items()}, "_at": utc_text(now)}),
        interval(ids.MONITOR_INTERVAL, TICK_MS),
    ], className="monitor-page")


def refresh(status: Status, digests: Mapping[str, Any] | None,
            now: datetime | None = None) -> tuple[dict[str, Any], Any, Any, Any]:
    """One tick: (changed section children by name, updated text, problem, new digests).

    Unchanged sections are left out. When the status cannot be read, the sections keep the
    last values and the problem says why and which reading they show."""
    now = now or datetime.now(UTC)
    old = dict(digests or {})
    try:
        current = read_status(status)
    except Exception as exc:  # noqa: BLE001 - the page must say it, not break
        # Remember the banner is up, so that the next good reading takes it down.
        return ({}, no_update, problem_alert(problem_text(exc), old.get("_at")),
                {**old, "_problem": True})
    view = monitor_view(current, now)
    new: dict[str, Any] = {name: digest(section) for name, section in view.items()}
    changed = {name: render_section(name, view[name])
               for name in view if old.get(name) != new[name]}
    new["_at"] = utc_text(now)
    # No digests at all: the first paint failed, and its banner is up.
    problem = None if old.get("_problem") or digests is None else no_update
    return changed, f"updated {utc_text(now)}", problem, new


def register_callbacks(app: Dash, status: Status) -> None:
    names = list(SECTIONS)

    @app.callback(
        *(Output(SECTIONS[name], "children") for name in names),
        Output(ids.MONITOR_UPDATED, "children"),
        Output(ids.MONITOR_PROBLEM, "children"),
        Output(ids.MONITOR_DIGEST, "data"),
        Input(ids.MONITOR_INTERVAL, "n_intervals"),
        State(ids.MONITOR_DIGEST, "data"),
        prevent_initial_call=True,
    )
    def tick(_n, digests):
        changed, updated, problem, new = refresh(status, digests)
        return (*(changed.get(name, no_update) for name in names), updated, problem, new)
