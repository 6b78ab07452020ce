"""Who may see the monitor, and what every answer carries to keep browsers safe.

One `before_request` hook guards the whole Flask server: pages, Dash's callbacks and layout,
assets, component bundles, the API and `/metrics`. HTTP Basic (the admin) opens everything;
`Authorization: Bearer <API_TOKEN>` opens the API and `/metrics` only; `/healthz` is always
open, for load balancers. Secrets are compared in constant time (`hmac.compare_digest`,
`check_password_hash`). The same hook refuses cross-site writes (CSRF) and NUL characters.

An `after_request` hook adds the security headers to every answer, errors included. The
page's Content-Security-Policy allows Dash's inline scripts by their hashes
(`Dash.csp_hashes()`), not with `'unsafe-inline'`; styles need `'unsafe-inline'` because
dcc, React DOM, AG Grid and Plotly set inline styles at run time (measured in Chromium:
docs/deploy.md).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

import dash
from dash.exceptions import DependencyException
from flask import Flask, Response, jsonify, request
from werkzeug.security import check_password_hash

log = logging.getLogger(__name__)

REALM = "TickStock Error Monitor"
OPEN_PATHS = frozenset({"/healthz"})
# Request bodies (Dash callbacks) larger than this are refused with a 413.
MAX_BODY_BYTES = 8 * 1024 * 1024

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
# For everything that is not a page: nothing may load or run.
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


@dataclass(frozen=True)
class Access:
    """The credentials the server asks for; all empty means anonymous access."""

    username: str = ""
    password: str = ""
    password_hash: str = ""
    api_token: str = ""

    @property
    def admin_required(self) -> bool:
        return bool(self.username and (self.password or self.password_hash))

    def __post_init__(self) -> None:
        if self.password_hash:
            # check_password_hash says False, not "malformed", for a hash without `$`.
            problem = None if self.password_hash.count("$") >= 2 else "no method$salt$hash"
            try:
                check_password_hash(self.password_hash, "")
            except (ValueError, TypeError) as exc:
                problem = str(exc)
            if problem:
                raise ValueError("ADMIN_PASSWORD_HASH is not a werkzeug password hash "
                                 f"(method$salt$hash): {problem}")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def refusal_reason(host: str, credentials_set: bool, allow_anonymous: bool) -> str | None:
    """Why the web side must not start anonymously on `host`, or None when it may."""
    if credentials_set or allow_anonymous or is_loopback(host):
        return None
    return (f"refusing to serve tracebacks anonymously on HOST={host or '(all interfaces)'}: "
            "set ADMIN_USERNAME and ADMIN_PASSWORD (or ADMIN_PASSWORD_HASH), "
            "or ALLOW_ANONYMOUS=true to accept it")


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/") or path == "/metrics"


class Gate:
    """Decides, per request, whether the credentials given open the path asked for."""

    def __init__(self, access: Access) -> None:
        self.access = access
        self._user = access.username.encode()
        self._password = access.password.encode()
        self._token = access.api_token.encode()
        # check_password_hash on a scrypt hash costs tens of milliseconds, and a dashboard
        # polls every second: remember the credentials that passed, as a keyed digest (the
        # key is random per process, so the set reveals nothing and cannot be pre-computed).
        self._key = secrets.token_bytes(32)
        self._passed: set[bytes] = set()

    def allows(self, path: str, authorization: str | None) -> bool:
        access = self.access
        if path in OPEN_PATHS:
            return True
        api = is_api_path(path)
        if not access.admin_required and not (api and access.api_token):
            return True
        scheme, _, value = (authorization or "").partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and api and access.api_token:
            return hmac.compare_digest(value.strip().encode(), self._token)
        if scheme == "basic" and access.admin_required:
            auth = request.authorization
            if auth is None or auth.type != "basic":
                return False
            return self._admin(auth.username or "", auth.password or "")
        return False

    def _admin(self, username: str, password: str) -> bool:
        given_user, given_password = username.encode(), password.encode()
        digest = hmac.new(self._key, given_user + b"\0" + given_password,
                          hashlib.sha256).digest()
        if digest in self._passed:
            return True
        # Both parts are always checked, so the time taken does not tell which one was wrong.
        user_ok = hmac.compare_digest(given_user, self._user)
        if self.access.password_hash:
            password_ok = check_password_hash(self.access.password_hash, password)
        else:
            password_ok = hmac.compare_digest(given_password, self._password)
        if user_ok and password_ok:
            if len(self._passed) > 100:
                self._passed.clear()
            self._passed.add(digest)
            return True
        return False

    def challenge(self, path: str) -> Response:
        """The 401: JSON under the API, plain text elsewhere, with what would open it."""
        api = is_api_path(path)
        schemes = []
        if self.access.admin_required:
            schemes.append(f'Basic realm="{REALM}", charset="UTF-8"')
        if api and self.access.api_token:
            schemes.append(f'Bearer realm="{REALM}"')
        if api:
            answer = jsonify({"error": "authentication required"})
        else:
            answer = Response("Authentication required.\n", mimetype="text/plain")
        answer.status_code = 401
        for scheme in schemes:
            answer.headers.add("WWW-Authenticate", scheme)
        return answer


def page_csp(script_hashes: list[str]) -> str:
    scripts = " ".join(["'self'", *script_hashes])
    return ("default-src 'self'; "
            f"script-src {scripts}; "
            "style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _cross_site() -> bool:
    """A state-changing request sent by another site's page. A browser attaches the Basic
    credentials it remembers to any request to this host, so another page could otherwise
    post silences or group states in the admin's name (CSRF). Tools (curl, scripts) send no
    Origin and no Sec-Fetch-Site, and pass."""
    if request.method not in _UNSAFE_METHODS:
        return False
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:  # every current browser: it knows best, whatever the proxy
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() != request.host.lower()


def _has_nul() -> bool:
    """A NUL in the path, the query or a JSON body: PostgreSQL text cannot hold one, and no
    honest client sends one."""
    if "\x00" in request.path:
        return True
    for key, value in request.args.items(multi=True):
        if "\x00" in key or "\x00" in value:
            return True
    if request.method == "POST" and request.is_json:
        return b"\\u0000" in request.get_data(cache=True)
    return False


def _callback_problem(dash_app: dash.Dash) -> str | None:
    """What is wrong with a `_dash-update-component` body, or None: Dash itself answers a
    malformed one with a 500 (a KeyError deep inside), which is the client's fault."""
    body = request.get_json(silent=True, cache=True)
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    output = body.get("output")
    if not isinstance(output, str) or output not in dash_app.callback_map:
        return "no such callback output"
    if not isinstance(body.get("inputs"), list) or not isinstance(body.get("state", []), list):
        return "inputs and state must be lists"
    return None


def install_security(dash_app: dash.Dash, access: Access) -> None:
    """Guard every route of `dash_app`'s server and add the security headers to answers."""
    server: Flask = dash_app.server
    gate = Gate(access)
    if server.config.get("MAX_CONTENT_LENGTH") is None:
        server.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    callback_path = dash_app.config.routes_pathname_prefix + "_dash-update-component"

    def guard():
        path = request.path
        if not gate.allows(path, request.headers.get("Authorization")):
            log.info("refused %s %s from %s: %s", request.method, path[:200],
                     request.remote_addr,
                     "wrong credentials" if request.headers.get("Authorization")
                     else "no credentials")
            return gate.challenge(path)
        if _cross_site():
            log.warning("refused a cross-site %s %s (Origin %s)", request.method, path[:200],
                        request.headers.get("Origin", "-")[:100])
            if is_api_path(path):
                return jsonify({"error": "cross-site requests are not accepted"}), 403
            return Response("Cross-site requests are not accepted.\n", 403,
                            mimetype="text/plain")
        if _has_nul():
            if is_api_path(path):
                return jsonify({"error": "NUL characters are not accepted"}), 400
            return Response("NUL characters are not accepted.\n", 400, mimetype="text/plain")
        if path == callback_path and request.method == "POST":
            problem = _callback_problem(dash_app)
            if problem is not None:
                return jsonify({"error": problem}), 400
        return None

    @server.errorhandler(DependencyException)
    def unknown_bundle(_exc: DependencyException):
        # Dash raises this for a component-suite path it does not serve: a 404, not a 500.
        return Response("Not found.\n", 404, mimetype="text/plain")

    # First in line: no other hook (Dash's page router among them) may answer before it.
    server.before_request_funcs.setdefault(None, []).insert(0, guard)

    @server.after_request
    def headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if response.mimetype == "text/html":
            csp = page_csp(list(dash_app.csp_hashes()))
        else:
            csp = STRICT_CSP
        response.headers.setdefault("Content-Security-Policy", csp)
        if "Cache-Control" not in response.headers:
            # Errors, tracebacks and hostnames: not for shared caches or the browser's disk.
            response.headers["Cache-Control"] = "no-store"
        return response
