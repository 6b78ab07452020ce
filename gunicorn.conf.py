"""gunicorn's settings for `gunicorn app:server` (gunicorn reads this file from its working
directory; the command line wins over it). See docs/deploy.md.

- Binds to HOST:PORT from the monitor's settings unless `--bind` says otherwise.
- Refuses to start (exit 2) when REDIS_CLUSTER does not match the Redis it finds.
- Refuses to start (exit 2) when it would listen on a non-loopback address with no
  ADMIN_USERNAME/ADMIN_PASSWORD, unless ALLOW_ANONYMOUS=true, as `python app.py` does.
- gthread workers: each browser polls every second, and a poll mostly waits on the database.
- Each worker builds the web side right after the fork (no thread runs before it), and
  follows the live feed of `python -m ingest`; the ingest never runs in a worker.
- LOG_FORMAT=json makes gunicorn's own lines JSON too; secrets are masked in them.
"""

from __future__ import annotations

import logging
import sys

from gunicorn.glogging import Logger

from settings import SettingsError, load_settings

try:
    _settings = load_settings()
except SettingsError as _exc:
    print(f"bad setting: {_exc}", file=sys.stderr)
    sys.exit(2)

_host = _settings.host
bind = [f"[{_host}]:{_settings.port}" if ":" in _host else f"{_host}:{_settings.port}"]
worker_class = "gthread"
threads = 4
timeout = 30
graceful_timeout = 10
keepalive = 5
# X-Forwarded-* are trusted from these addresses only (the reverse proxy on this machine).
forwarded_allow_ips = "127.0.0.1,::1"


class _MonitorLogger(Logger):
    """gunicorn's own log lines (errors, and the access log when asked for) as the monitor
    writes its own: JSON with LOG_FORMAT=json, and secrets masked either way."""

    def setup(self, cfg):
        super().setup(cfg)
        from ingest.process_log import JsonFormatter, MaskedFormatter, secret_fragments

        fragments = secret_fragments(_settings)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(
                    JsonFormatter(fragments) if _settings.log_format == "json"
                    else MaskedFormatter(handler.formatter or logging.Formatter(), fragments))


logger_class = _MonitorLogger


def _bound_host(address: str) -> str | None:
    """The host part of a gunicorn bind address; None for a unix socket or a passed fd."""
    if address.startswith(("unix:", "fd://")):
        return None
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    return address.rsplit(":", 1)[0] if address.count(":") == 1 else address


def on_starting(arbiter):
    from dashboard.security import Access, refusal_reason
    from live.redis_client import RedisModeMismatch, check_server

    try:
        check_server(_settings.redis_url)  # REDIS_CLUSTER against the server's kind
    except RedisModeMismatch as exc:
        arbiter.log.error("%s", exc)
        sys.exit(2)

    try:
        Access(_settings.admin_username, _settings.admin_password,
               _settings.admin_password_hash, _settings.api_token)
    except ValueError as exc:
        arbiter.log.error("bad setting: %s", exc)
        sys.exit(2)
    for address in arbiter.cfg.bind:
        host = _bound_host(address)
        if host is None:
            continue
        reason = refusal_reason(host, _settings.admin_credentials_set,
                                _settings.allow_anonymous)
        if reason is not None:
            arbiter.log.error(reason.replace(f"HOST={host}", f"bind {address}"))
            sys.exit(2)


def post_worker_init(worker):
    """Build the web side now rather than on the first request: the follower has the live
    feed's back-fill before a browser asks for it."""
    load = getattr(worker.wsgi, "load", None)
    if load is None:
        return
    try:
        load()
    except Exception as exc:  # noqa: BLE001 - the first request retries and says why
        worker.log.error("web side not built at worker start: %s", exc)
