"""Compressed answers (flask-compress, switched on by `Dash(compress=True)`).

Everything textual is compressed when the browser asks (zstd, brotli, gzip or deflate, in
that order of preference): Dash's JSON, the REST API's JSON, the index page. Dash's bundles
and our assets never change while the process runs, so each is compressed once per encoding
and kept; every other answer is compressed afresh. CSV exports stream uncompressed
(`text/csv` is not in the list), so their first byte is not held back by a compressor.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

STATIC_PARTS = ("/_dash-component-suites/", "/assets/")
STATIC_MARK = "static:"
CACHE_ENTRIES = 64  # Dash's and our bundles, a handful of encodings each


class StaticCompressionCache:
    """flask-compress's cache, holding only the static bundles (see compression_cache_key):
    a key without the mark is never stored, so no dynamic answer is ever served twice."""

    def __init__(self, limit: int = CACHE_ENTRIES) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def set(self, key: str, value: bytes) -> None:
        if STATIC_MARK not in key:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._limit:
                self._items.popitem(last=False)


def compression_cache_key(request: Any) -> str:
    """The cache key of a request: its path and query (Dash fingerprints its bundles' paths
    and asset URLs carry their modification time) for bundles, nothing for the rest."""
    path = request.path
    if any(part in path for part in STATIC_PARTS):
        return STATIC_MARK + request.full_path
    return "dynamic"


def compression_settings() -> dict[str, Any]:
    """Flask config for flask-compress, set before `Dash(compress=True)` reads it."""
    cache = StaticCompressionCache()
    return {
        "COMPRESS_CACHE_BACKEND": lambda: cache,
        "COMPRESS_CACHE_KEY": compression_cache_key,
        # Dash sets gzip only after flask-compress has read the list: name all of them here.
        "COMPRESS_ALGORITHM": ["zstd", "br", "gzip", "deflate"],
    }
