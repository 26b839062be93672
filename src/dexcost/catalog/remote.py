"""A service catalog fetched from ``service_catalog_url``, merged over the bundled one.

``init(service_catalog_url=...)`` calls :func:`start`, which returns at once. One
daemon thread then:

1. reads the copy that an earlier start cached next to the buffer
   (``<buffer>.catalog.json``). A valid copy of the same URL is put in use at once,
   so a start without network access keeps the remote services;
2. downloads the URL, within :data:`FETCH_TIMEOUT_SECONDS` in total and
   :data:`MAX_CATALOG_BYTES`, following at most :data:`MAX_REDIRECTS` redirects that
   each pass the same URL rule as ``service_catalog_url``;
3. validates the document with the bundled file's validator, all or nothing, puts it in
   use and writes it to the cache, through a temporary file and a rename.

A failure at step 2 or 3 logs one warning with the URL's host, never its query (which
may contain a token), and the catalog in use stays. The thread runs in an empty
context with OpenTelemetry instrumentation suppressed, and downloads with
``http.client``, which the application's instrumentation does not patch: dexcost
never traces, prices or attributes its own download. An https URL is fetched through
the proxy that ``HTTPS_PROXY`` names, if any (see ``dexcost.proxy``).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import hashlib
import http.client
import json
import logging
import os
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final
from urllib.parse import SplitResult, urljoin, urlsplit

from opentelemetry import context as otel_context
from opentelemetry.context import (
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    _SUPPRESS_INSTRUMENTATION_KEY,
)

from dexcost import errors
from dexcost._version import __version__
from dexcost.catalog import loading
from dexcost.catalog.schema import Catalog, parse_catalog
from dexcost.config import catalog_url_problem
from dexcost.proxy import Proxy, https_connection, https_proxy_for

logger = logging.getLogger(__name__)

# The whole download, redirects and a slowly sent body included, ends within this time.
# Name resolution is the exception: the system resolver cannot be interrupted.
FETCH_TIMEOUT_SECONDS: Final = 5.0
# A longer response is rejected, and reading stops as soon as it passes this size.
MAX_CATALOG_BYTES: Final = 5_000_000
MAX_REDIRECTS: Final = 3
CACHE_SUFFIX: Final = ".catalog.json"

_CACHE_FORMAT: Final = 1
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_READ_SIZE: Final = 64 * 1024
_HEADERS: Final = {
    "Accept": "application/json",
    "Accept-Encoding": "identity",
    "User-Agent": f"dexcost/{__version__}",
}

_lock = threading.Lock()
# Incremented by each start(). A fetch from an older generation changes nothing.
_generation = 0
_url: str | None = None
_thread: threading.Thread | None = None


class FetchError(Exception):
    """Failed download or invalid document. The message never contains the URL."""


def cache_path(buffer_path: Path) -> Path:
    """Return where the last good remote catalog is kept, next to the buffer."""
    return buffer_path.with_name(buffer_path.name + CACHE_SUFFIX)


def start(url: str | None, buffer_path: Path | None) -> None:
    """Fetch ``url`` in the background and merge it over the bundled catalog.

    ``url`` must pass :func:`dexcost.config.catalog_url_problem`. None, or another URL
    than the previous call's, drops the catalog in use at once. With ``buffer_path``
    None, no cache is read or written.
    """
    global _generation, _url, _thread
    with _lock:
        _generation += 1
        generation = _generation
        if url != _url:
            if _url is not None:
                _use(None)
            _url = url
        if url is None:
            _thread = None
            return
        cached = None if buffer_path is None else cache_path(buffer_path)
        thread = threading.Thread(
            target=_run,
            args=(generation, url, cached),
            name="dexcost-catalog-fetch",
            daemon=True,
        )
        _thread = thread
        thread.start()


def stop() -> None:
    """Drop the remote catalog. A fetch that is still running changes nothing."""
    start(None, None)


def wait(timeout: float | None = None) -> bool:
    """Wait for the latest fetch to end. Return False if it still runs after ``timeout``."""
    thread = _thread
    if thread is None:
        return True
    thread.join(timeout)
    return not thread.is_alive()


def download(url: str) -> bytes:
    """Return the body of a 2xx response to ``GET url``, or raise :class:`FetchError`."""
    deadline = time.monotonic() + FETCH_TIMEOUT_SECONDS
    for _ in range(MAX_REDIRECTS + 1):
        location, body = _get(url, deadline)
        if location is None:
            return body
        target = urljoin(url, location)
        problem = catalog_url_problem(target)
        if problem is None and url.startswith("https:") and not target.startswith("https:"):
            problem = "switches from https to plain http"
        if problem is not None:
            raise FetchError(
                f"redirect to {_where(target)} rejected because that URL {problem}. "
                "Set service_catalog_url to the catalog's final https URL"
            )
        url = target
    raise FetchError(
        f"more than {MAX_REDIRECTS} redirects. Set service_catalog_url to the catalog's final URL"
    )


def parse(body: bytes) -> tuple[Any, Catalog]:
    """Decode and validate a downloaded catalog. Return the document and the catalog."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        # json.JSONDecodeError and UnicodeDecodeError are ValueErrors.
        raise FetchError(f"the response is not valid JSON ({error})") from None
    try:
        return document, parse_catalog(document)
    except ValueError as error:
        raise FetchError(f"invalid catalog: {error}") from None


def _run(generation: int, url: str, cached: Path | None) -> None:
    # A fresh context contains none of the application's context variables (its span,
    # dexcost's attribution), even when a thread patch copied them into this thread.
    contextvars.Context().run(_run_quietly, generation, url, cached)


def _run_quietly(generation: int, url: str, cached: Path | None) -> None:
    quiet = otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, otel_context.Context())
    quiet = otel_context.set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, quiet)
    token = otel_context.attach(quiet)
    try:
        _update(generation, url, cached)
    except Exception:
        errors.log_internal_error("updating the service catalog")
    finally:
        otel_context.detach(token)


def _update(generation: int, url: str, cached: Path | None) -> None:
    in_use = "bundled"
    if cached is not None:
        catalog = _read_cache(cached, url)
        if catalog is not None and _publish(generation, catalog):
            in_use = "cached"
    try:
        document, catalog = parse(download(url))
    except FetchError as error:
        if generation != _generation:
            return  # a later init() replaced this URL, so its failure no longer matters
        logger.warning(
            "dexcost could not update its service catalog from %s: %s. The %s catalog "
            "stays in use.",
            _where(url),
            error,
            in_use,
        )
        return
    if _publish(generation, catalog) and cached is not None:
        _write_cache(cached, url, document)


def _publish(generation: int, catalog: Catalog) -> bool:
    """Put ``catalog`` in use unless a later start() made this fetch obsolete."""
    with _lock:
        if generation != _generation:
            return False
        _use(catalog)
    return True


def _use(catalog: Catalog | None) -> None:
    """Merge ``catalog`` over the bundled one and make the HTTP capture match it."""
    loading.set_remote(catalog)
    from dexcost import http as http_capture

    # A capture that is not configured yet reads the new catalog when it is.
    http_capture.refresh_catalog()


class _Deadline:
    """Timer that shuts a connection's socket down at the deadline, ending any read."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self.expired = False
        self._connection = connection
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        self.expired = True
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


def _connection(
    parts: SplitResult, timeout: float, proxy: Proxy | None
) -> http.client.HTTPConnection:
    """Create a connection to the URL's host, not yet open. https verifies the certificate."""
    host = parts.hostname or ""
    if parts.scheme == "https":
        context = ssl.create_default_context()
        return https_connection(host, parts.port, timeout=timeout, context=context, proxy=proxy)
    return http.client.HTTPConnection(host, parts.port, timeout=timeout)


def _get(url: str, deadline: float) -> tuple[str | None, bytes]:
    """Send one GET. Return ``(location, b"")`` for a redirect, else ``(None, body)``."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchError(_timed_out())

    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    proxy = None
    if parts.scheme == "https":
        proxy = https_proxy_for(parts.hostname or "", parts.port or 443)
    try:
        connection = _connection(parts, remaining, proxy)
    except OSError as error:  # ssl.SSLError from a trust store that cannot be read
        raise FetchError(f"TLS setup failed ({error})") from None

    watch = _Deadline(connection, remaining)
    try:
        connection.request("GET", target, headers=_HEADERS)
        response = connection.getresponse()
        status = response.status
        if status in _REDIRECT_STATUSES:
            location = response.getheader("location")
            if not location:
                raise FetchError(f"the server returned HTTP {status} without a Location")
            return location, b""
        if not 200 <= status < 300:
            raise FetchError(f"the server returned HTTP {status}")

        body = _read_body(response)
        if watch.expired:
            raise FetchError(_timed_out())
        return None, body
    except (OSError, http.client.HTTPException) as error:
        if watch.expired or isinstance(error, TimeoutError):
            raise FetchError(_timed_out()) from None
        # http.client quotes the URL only in InvalidURL messages, so those show the type.
        # The URL rule rejects such URLs before this point anyway.
        detail = type(error).__name__ if isinstance(error, http.client.InvalidURL) else error
        via = "" if proxy is None else f" through the proxy {proxy.where()} (HTTPS_PROXY)"
        raise FetchError(f"connection failed{via} ({detail})") from None
    finally:
        watch.cancel()
        connection.close()


def _timed_out() -> str:
    return f"timed out after {FETCH_TIMEOUT_SECONDS:g} seconds"


def _read_body(response: http.client.HTTPResponse) -> bytes:
    limit = MAX_CATALOG_BYTES
    length = response.getheader("content-length", "").strip()
    if length.isdigit() and int(length) > limit:
        raise FetchError(f"the response is {int(length)} bytes, over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        # read1() makes at most one read, so the size is checked after each one.
        chunk = response.read1(_READ_SIZE)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise FetchError(f"the response is over the {limit}-byte limit")
        chunks.append(chunk)


def _where(url: str) -> str:
    """Return the host and port of ``url``, the only parts of it that logs show."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "an invalid URL"
    host = parts.hostname or "no host"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port is not None else host


def _url_digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def _read_cache(path: Path, url: str) -> Catalog | None:
    """Return the cached catalog of ``url``, or None if it is missing or invalid."""
    try:
        with path.open("rb") as file:
            data = file.read(2 * MAX_CATALOG_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as error:
        logger.warning(
            "dexcost ignored its cached service catalog %s: read failed (%s). The next "
            "download replaces it.",
            path,
            error,
        )
        return None
    try:
        if len(data) > 2 * MAX_CATALOG_BYTES:
            raise ValueError("the file is larger than any catalog dexcost downloads")
        cache = json.loads(data)
        if not isinstance(cache, dict) or cache.get("format") != _CACHE_FORMAT:
            raise ValueError(f"the file is not a format {_CACHE_FORMAT} catalog cache")
        if cache.get("url_sha256") != _url_digest(url):
            logger.debug("dexcost's cached service catalog %s is from another URL", path)
            return None
        return parse_catalog(cache.get("catalog"))
    except (ValueError, RecursionError) as error:
        logger.warning(
            "dexcost ignored its cached service catalog %s: %s. The next download replaces it.",
            path,
            error,
        )
        return None


def _write_cache(path: Path, url: str, document: Any) -> None:
    """Write ``document`` as the last good copy, so that no reader finds half a file."""
    cache = {
        "format": _CACHE_FORMAT,
        # Identifies the URL without storing it, because its query may contain a token.
        "url_sha256": _url_digest(url),
        "fetched": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "catalog": document,
    }
    temporary: str | None = None
    try:
        handle, temporary = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(cache, file, ensure_ascii=False)
        os.replace(temporary, path)
        temporary = None
    except OSError as error:
        logger.warning(
            "dexcost could not write its service catalog cache %s (%s). A start without "
            "network access uses the bundled catalog until a write succeeds.",
            path,
            error,
        )
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
