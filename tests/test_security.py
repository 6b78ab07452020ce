"""Who may see what: every route of the server, enumerated from its url_map, answers 401
without credentials and opens with them; the token opens the API only; headers, errors,
secrets, and the refuse-to-start rule."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

import app as app_module
from dashboard import ids
from dashboard.security import Access, Gate, is_loopback, refusal_reason
from ingest.process_log import (
    JsonFormatter,
    MaskingFormatter,
    configure_logging,
    redact_url,
    secret_fragments,
)
from settings import Settings, SettingsError, load_settings
from tests.conftest import REDIS_URL, wait_for
from tests.factories import event

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD, TOKEN = "admin", "correct horse battery staple", "api-token-0123456789"
WEBHOOK = "https://hooks.example.com/services/T0001/B0002/webhooksecretpart"
PAGES = ("/", "/errors", "/trends", "/errors/known-error", "/errors?q=severity:error",
         "/groups", "/groups/some-fingerprint", "/alerts", "/monitor")


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def secured(make_settings):
    """A monitor that asks for the admin's credentials (ingest built, not started)."""
    monitor = app_module.build(make_settings(
        admin_username=USER, admin_password=PASSWORD, api_token=TOKEN,
        alert_webhook_url=WEBHOOK))
    from queries.store import ErrorStore

    store = ErrorStore(monitor.engine)
    store.write_batch([event(error_id="known-error")])
    store.close()
    yield monitor
    monitor.stop()


@pytest.fixture
def client(secured):
    return secured.dash_app.server.test_client()


# -- the routes, from the url_map ----------------------------------------------------------
_SAMPLES = {"error_id": "known-error", "filename": "10-monitor.css", "path": "errors",
            "rest": "no/such/route", "fingerprint": "no-such-group",
            "silence_id": "no-such-silence", "package_name": "dash",
            "fingerprinted_path": "no-such-file.js"}


def routes(server) -> list[tuple[str, str, bool]]:
    """(method, url, has variables) for every rule and method the server knows."""
    adapter = server.url_map.bind("localhost")
    found = []
    for rule in server.url_map.iter_rules():
        values = {name: _SAMPLES.get(name, "x") for name in rule.arguments}
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            url = adapter.build(rule.endpoint, values, method=method)
            found.append((method, url, bool(rule.arguments)))
    return found


def _request(client, method: str, url: str, headers: dict[str, str]):
    if method == "GET":
        return client.get(url, headers=headers)
    return client.open(url, method=method, headers=headers, json={})


def callback_payload(dependencies: list[dict], output: str,
                     values: dict[str, object]) -> dict[str, object]:
    """A `_dash-update-component` body for the callback whose outputs include `output`,
    from the app's `_dash-dependencies`; inputs and state take `values` (by `id.property`)."""
    dep = next(d for d in dependencies
               if output in d["output"] and not d.get("clientside_function"))

    def split(text: str) -> dict[str, str]:
        component, prop = text.rsplit(".", 1)  # `prop` may carry Dash's `@hash`
        return {"id": component, "property": prop}

    outputs = ([split(o) for o in dep["output"].strip(".").split("...")]
               if dep["output"].startswith("..") else split(dep["output"]))

    def filled(items: list[dict[str, str]]) -> list[dict[str, object]]:
        return [{**item, "value": values.get(f"{item['id']}.{item['property']}")}
                for item in items]

    inputs = filled(dep["inputs"])
    return {"output": dep["output"], "outputs": outputs, "inputs": inputs,
            "state": filled(dep["state"]),
            "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"]}


def _dependencies(client) -> list[dict]:
    return client.get("/_dash-dependencies", headers=basic()).get_json()


def test_every_route_asks_for_credentials_except_healthz(client, secured):
    found = routes(secured.dash_app.server)
    assert len(found) > 20  # the url_map, not a hand-kept list
    for method, url, _ in found:
        answer = _request(client, method, url, {})
        if url == "/healthz":
            assert answer.status_code == 200
            continue
        assert answer.status_code == 401, (method, url, answer.status_code)
        assert "Basic" in answer.headers.get("WWW-Authenticate", ""), url
    for page in PAGES:
        assert client.get(page).status_code == 401, page


def test_the_admin_opens_every_route(client, secured):
    for method, url, variable in routes(secured.dash_app.server):
        answer = _request(client, method, url, basic())
        if method == "GET" and not variable:
            assert answer.status_code == 200, (url, answer.status_code, answer.data[:200])
        else:
            # A sample id may not exist (404), an empty body may be refused (400).
            assert answer.status_code not in (401, 403), (method, url)
            assert answer.status_code < 500, (method, url, answer.data[:200])
    for page in PAGES:
        answer = client.get(page, headers=basic())
        assert answer.status_code == 200 and b"_dash-config" in answer.data, page


@pytest.mark.parametrize("page", ["/", "/errors", "/trends", "/errors/known-error", "/groups",
                                  "/groups/some-fingerprint", "/alerts", "/monitor"])
def test_each_pages_callback_asks_for_credentials(client, page):
    body = callback_payload(_dependencies(client), f"{ids.PAGE}.children",
                            {"url.pathname": page, "url.search": ""})
    assert client.post("/_dash-update-component", json=body).status_code == 401
    assert client.post("/_dash-update-component", json=body,
                       headers=BEARER).status_code == 401
    answer = client.post("/_dash-update-component", json=body, headers=basic())
    assert answer.status_code == 200
    assert ids.PAGE in answer.get_json()["response"]


def test_the_live_list_callback_answers_the_admin(client):
    body = callback_payload(_dependencies(client), f"{ids.ERROR_LIST}.rowData",
                            {f"{ids.LIVE_INTERVAL}.n_intervals": 1})
    assert client.post("/_dash-update-component", json=body).status_code == 401
    answer = client.post("/_dash-update-component", json=body, headers=basic())
    assert answer.status_code == 200
    rows = answer.get_json()["response"][ids.ERROR_LIST]["rowData"]
    assert [r["id"] for r in rows] == ["known-error"]


def test_the_token_opens_the_api_and_nothing_else(client, secured):
    for method, url, variable in routes(secured.dash_app.server):
        answer = _request(client, method, url, BEARER)
        if url == "/healthz":
            continue
        if url.startswith("/api/") or url == "/metrics":
            assert answer.status_code not in (401, 403), (method, url)
            assert answer.status_code < 500, (method, url)
            if method == "GET" and not variable:
                assert answer.status_code == 200, url
        else:
            assert answer.status_code == 401, (method, url)
    for page in PAGES:
        assert client.get(page, headers=BEARER).status_code == 401


@pytest.mark.parametrize("headers", [
    basic(password="wrong"), basic(user="root"), basic(password=PASSWORD + " "),
    basic(password=""), {"Authorization": "Basic !!!not-base64"},
    {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer "},
    {"Authorization": TOKEN}, {"Authorization": f"Token {TOKEN}"},
    basic(user=USER, password=TOKEN), basic(user="ädmin", password="pässword"),
])
def test_wrong_credentials_get_401(client, headers):
    for url in ("/", "/api/errors/recent", "/metrics", "/_dash-layout",
                "/assets/10-monitor.css"):
        assert client.get(url, headers=headers).status_code == 401, url
    answer = client.get("/api/errors/recent", headers=headers)
    assert answer.get_json() == {"error": "authentication required"}


def test_api_401_names_both_schemes(client):
    challenges = client.get("/api/errors/recent").headers.getlist("WWW-Authenticate")
    assert any(c.startswith("Basic ") for c in challenges)
    assert any(c.startswith("Bearer ") for c in challenges)
    assert client.get("/").headers.getlist("WWW-Authenticate") == [
        'Basic realm="TickStock Error Monitor", charset="UTF-8"']


def test_a_password_hash_opens_like_the_password(make_settings):
    hashed = generate_password_hash(PASSWORD)
    monitor = app_module.build(make_settings(admin_username=USER, admin_password_hash=hashed))
    try:
        client = monitor.dash_app.server.test_client()
        assert client.get("/api/errors/recent").status_code == 401
        assert client.get("/api/errors/recent", headers=basic(password="nope")).status_code == 401
        started = time.perf_counter()
        assert client.get("/api/errors/recent", headers=basic()).status_code == 200
        first = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(20):
            assert client.get("/healthz", headers=basic()).status_code == 200
            assert client.get("/_dash-layout", headers=basic()).status_code == 200
        repeat = (time.perf_counter() - started) / 40
        # The scrypt check runs once; a dashboard polling every second does not pay it again.
        print(f"first hashed check {first * 1000:.1f} ms, then {repeat * 1000:.2f} ms a request")
        assert client.get("/", headers=basic(password="nope")).status_code == 401
    finally:
        monitor.stop()


def test_a_malformed_password_hash_is_a_bad_setting():
    with pytest.raises(ValueError, match="ADMIN_PASSWORD_HASH is not a werkzeug password hash"):
        Access(USER, password_hash="plain-text-not-a-hash")


def test_hashed_credentials_are_remembered_only_when_right():
    gate = Gate(Access(USER, password_hash=generate_password_hash(PASSWORD)))
    assert gate._admin(USER, PASSWORD) is True
    assert gate._admin(USER, "wrong") is False
    assert gate._admin("other", PASSWORD) is False
    assert len(gate._passed) == 1


def test_only_the_token_set_guards_the_api_and_leaves_pages_open(make_settings):
    monitor = app_module.build(make_settings(api_token=TOKEN))
    try:
        client = monitor.dash_app.server.test_client()
        assert client.get("/api/errors/recent").status_code == 401
        assert client.get("/api/errors/recent", headers=BEARER).status_code == 200
        assert client.get("/").status_code == 200
    finally:
        monitor.stop()


def test_no_credentials_set_means_anonymous_access(make_settings):
    monitor = app_module.build(make_settings())
    try:
        client = monitor.dash_app.server.test_client()
        assert client.get("/").status_code == 200
        assert client.get("/api/errors/recent").status_code == 200
    finally:
        monitor.stop()


# -- headers and errors ----------------------------------------------------------------------
def _assert_security_headers(answer, page: bool = False) -> None:
    headers = answer.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    if page:
        assert "script-src 'self' 'sha256-" in csp
        assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0]
        assert "unsafe-eval" not in csp


def test_security_headers_on_pages_api_and_errors(client, secured):
    server = secured.dash_app.server
    _assert_security_headers(client.get("/", headers=basic()), page=True)
    _assert_security_headers(client.get("/errors", headers=basic()), page=True)
    for answer in (client.get("/api/errors/recent", headers=basic()),
                   client.get("/api/errors/recent?limit=0", headers=basic()),  # 400
                   client.get("/api/errors/no-such", headers=basic()),  # 404
                   client.post("/api/errors/recent", headers=basic()),  # 405
                   client.get("/api/errors/recent"),  # 401
                   client.get("/healthz"), client.get("/metrics", headers=basic()),
                   client.get("/assets/10-monitor.css", headers=basic()),
                   client.get("/_dash-component-suites/dash/nope.js", headers=basic())):
        _assert_security_headers(answer)
    assert client.get("/api/errors/recent", headers=basic()).headers["Cache-Control"] == "no-store"
    assert server.config["MAX_CONTENT_LENGTH"] == 8 * 1024 * 1024


def test_unexpected_errors_answer_without_a_traceback(make_settings):
    monitor = app_module.build(make_settings(admin_username=USER, admin_password=PASSWORD))
    server = monitor.dash_app.server

    def boom():
        raise RuntimeError("secret internals /etc/passwd")

    # Registered before any request, as Flask requires: one under /api, one page route
    # (static paths win over Dash's catch-all `/<path:path>`).
    server.add_url_rule("/api/boom", "api_boom", boom)
    server.add_url_rule("/boom-page", "boom_page", boom)
    client = server.test_client()
    try:
        api = client.get("/api/boom", headers=basic())
        assert api.status_code == 500
        assert api.get_json() == {"error": "internal error; see the monitor's log"}
        page = client.get("/boom-page", headers=basic())
        assert page.status_code == 500 and page.mimetype == "text/plain"
        for answer in (api, page):
            assert b"Traceback" not in answer.data and b"passwd" not in answer.data
            _assert_security_headers(answer)
        garbage = client.post("/_dash-update-component", data=b"{not json",
                              headers={**basic(), "Content-Type": "application/json"})
        assert 400 <= garbage.status_code < 600 and b"Traceback" not in garbage.data
    finally:
        monitor.stop()


def test_nul_characters_are_refused_before_any_query(client):
    for url in ("/api/errors/search?q=a%00b", "/api/errors/a%00b", "/api/groups?q=%00"):
        answer = client.get(url, headers=basic())
        assert answer.status_code == 400, url
        assert "NUL" in answer.get_json()["error"]


def test_cross_site_writes_are_refused(client):
    body = {"fingerprints": ["x"], "state": "ignored"}
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"}):
        answer = client.post("/api/groups/state", json=body, headers={**basic(), **headers})
        assert answer.status_code == 403, headers
    same = client.post("/api/groups/state", json=body,
                       headers={**basic(), "Origin": "http://localhost",
                                "Sec-Fetch-Site": "same-origin"})
    assert same.status_code not in (401, 403)
    tool = client.post("/api/groups/state", json=body, headers=BEARER)  # curl: no Origin
    assert tool.status_code not in (401, 403)
    # Reading is never a cross-site risk of this kind.
    assert client.get("/api/errors/recent", headers={**basic(), "Origin": "https://evil.example",
                                                     "Sec-Fetch-Site": "cross-site"}
                      ).status_code == 200


# -- secrets -------------------------------------------------------------------------------
def test_secrets_never_appear_in_status_pages_or_layout(client):
    secrets = (PASSWORD, TOKEN, WEBHOOK, "webhooksecretpart")
    for url in ("/api/monitor/status", "/", "/_dash-layout", "/_dash-dependencies",
                "/api/errors/health", "/metrics"):
        text = client.get(url, headers=basic()).get_data(as_text=True)
        for secret in secrets:
            assert secret not in text, (url, secret)


def test_status_masks_secret_values_that_reach_it(secured, client):
    # A library error that quotes the webhook URL ends up in the status: masked.
    secured.ingest.writer.last_error = f"POST {WEBHOOK} failed"
    text = client.get("/api/monitor/status", headers=basic()).get_data(as_text=True)
    assert "webhooksecretpart" not in text and "POST *** failed" in text


def test_log_lines_mask_secrets_in_text_and_json(capsys):
    settings = Settings(alert_webhook_url=WEBHOOK, admin_username=USER, admin_password=PASSWORD,
                        database_url="postgresql://tsem:dbpassw0rd@db.example/errors",
                        redis_url="redis://:redispassw0rd@cache.example:6379/0")
    fragments = secret_fragments(settings)
    record = logging.LogRecord("tickstock.alerts", logging.WARNING, __file__, 1,
                               "webhook %s failed: %s", (WEBHOOK, "HTTPSConnectionPool(host="
                               "'hooks.example.com'): /services/T0001/B0002/webhooksecretpart"),
                               None)
    for formatter in (MaskingFormatter(fragments), JsonFormatter(fragments)):
        line = formatter.format(record)
        for secret in ("webhooksecretpart", "dbpassw0rd", "redispassw0rd", PASSWORD):
            assert secret not in line
    line = json.loads(JsonFormatter(fragments).format(record))
    assert set(line) >= {"time", "level", "logger", "message", "pid", "thread"}
    assert line["level"] == "WARNING" and line["time"].endswith("Z")
    assert redact_url("postgresql://tsem:dbpassw0rd@db.example/errors") == \
        "postgresql://tsem:***@db.example/errors"
    configure_logging(Settings(log_format="json", api_token=TOKEN))
    try:
        logging.getLogger("tickstock.test").error("token %s leaked?", TOKEN)
        try:
            raise ValueError(f"inside {TOKEN}")
        except ValueError:
            logging.getLogger("tickstock.test").exception("with a traceback")
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
        assert lines[0]["message"] == "token *** leaked?"
        assert "Traceback" in lines[1]["exc"] and TOKEN not in lines[1]["exc"]
    finally:
        logging.getLogger().handlers.clear()


# -- settings and the refuse-to-start rule ---------------------------------------------------
@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("", False), ("::", False),
    ("10.0.0.5", False), ("monitor.example.com", False),
])
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_refusal_rule():
    assert refusal_reason("0.0.0.0", False, False) is not None
    assert refusal_reason("0.0.0.0", True, False) is None
    assert refusal_reason("0.0.0.0", False, True) is None
    assert refusal_reason("127.0.0.1", False, False) is None


@pytest.mark.parametrize("values, message", [
    ({"ADMIN_USERNAME": "a"}, "must be set together"),
    ({"ADMIN_PASSWORD": "p"}, "must be set together"),
    ({"ADMIN_USERNAME": "a", "ADMIN_PASSWORD": "p", "ADMIN_PASSWORD_HASH": "h"}, "not both"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be text or json"),
    ({"ALLOW_ANONYMOUS": "perhaps"}, "ALLOW_ANONYMOUS must be true or false"),
])
def test_security_settings_are_checked(values, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(values, env_file=None)


def _app_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_", "REDIS_", "ADMIN_", "API_", "ALLOW_", "HOST"))}
    env.update({"REDIS_URL": REDIS_URL, "DATABASE_URL": f"sqlite:///{tmp_path}/e.db",
                "SPOOL_DIR": str(tmp_path / "spool"), "PORT": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_app_refuses_to_start_anonymous_on_a_public_host(tmp_path, host):
    done = subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=tmp_path,
                          env=_app_env(tmp_path, HOST=host), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "refusing to serve tracebacks anonymously" in lines[0]
    assert "ALLOW_ANONYMOUS=true" in lines[0] and "Traceback" not in done.stderr


def test_app_with_a_bad_password_hash_says_so(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=tmp_path,
                          env=_app_env(tmp_path, ADMIN_USERNAME="a",
                                       ADMIN_PASSWORD_HASH="nothash"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "ADMIN_PASSWORD_HASH is not a werkzeug" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("extra", [
    {"ALLOW_ANONYMOUS": "true"}, {"ADMIN_USERNAME": USER, "ADMIN_PASSWORD": PASSWORD},
])
def test_app_starts_on_a_public_host_when_allowed(tmp_path, extra, channel):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = tmp_path / "app.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py")], cwd=tmp_path, stdout=log,
            stderr=subprocess.STDOUT,
            env=_app_env(tmp_path, HOST="0.0.0.0", PORT=str(port), ERROR_CHANNEL=channel,
                         **extra))
        try:
            def healthy() -> bool:
                assert process.poll() is None, log_path.read_text()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz",
                                                timeout=5) as answer:
                        return answer.status == 200
                except OSError:
                    return False

            wait_for(healthy, timeout=60, interval=0.2, message="the app to listen")
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(60) == 0
    assert "refusing" not in log_path.read_text()


def test_healthz_is_open_and_says_little(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.get_json() == {"status": "ok"}
