"""The HTTP proxy that dexcost's own https requests go through, if the environment sets one.

dexcost sends two kinds of requests itself: uploads to the Control Layer and the fetch
of a remote service catalog. Both read the proxy from ``HTTPS_PROXY`` (or
``https_proxy``) and skip it for hosts listed in ``NO_PROXY``, as curl, requests and
the OTLP exporters do. The request then goes through a ``CONNECT`` tunnel: the proxy
learns only the host and port, and TLS is verified end to end against the real host.

Loopback hosts are never proxied, and neither are plain-http endpoints. Such an
endpoint is a gateway on the same machine or an in-cluster collector the user allowed
by name, and sending it through a proxy would put the API key on the proxy's network
in clear text.

Only ``http://`` proxy URLs are supported (the common kind, where the tunnel request
itself is plain). For any other value dexcost logs one warning and connects directly.
"""

from __future__ import annotations

import base64
import http.client
import logging
import os
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from dexcost.config import is_loopback_host

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy: where it listens and the ``CONNECT`` headers it needs."""

    host: str
    port: int
    headers: dict[str, str]

    def where(self) -> str:
        """Return ``host:port``, the only part of the proxy setting that logs show."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def https_proxy_for(host: str, port: int = 443) -> Proxy | None:
    """Return the proxy for an https request to ``host``, or None to connect directly.

    ``port`` lets a ``NO_PROXY`` entry with a port (``api.example.com:8443``) match.
    """
    if not host or is_loopback_host(host):
        return None
    if not any(name.lower() == "https_proxy" for name in os.environ):
        return None
    # Imported only when a proxy is set: urllib.request takes ~10 ms to import here.
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    setting = proxies.get("https")
    if not setting:
        return None
    # urllib compares each entry with the host alone and with host:port. An IPv6
    # address is passed alone: urllib would take its last group for a port.
    checked = host if ":" in host else f"{host}:{port}"
    if urllib.request.proxy_bypass_environment(checked, proxies):  # type: ignore[attr-defined]
        return None
    return parse_proxy_url(setting)


def parse_proxy_url(setting: str) -> Proxy | None:
    """Parse an ``HTTPS_PROXY`` value; log a warning and return None when it is unusable."""
    text = setting.strip()
    if text and "://" not in text:
        text = "http://" + text  # "proxy.internal:3128", as curl reads it
    try:
        parts = urlsplit(text)
        port = parts.port or 80
    except ValueError:
        # The value can contain a password, so the message never shows it.
        logger.warning(
            "dexcost ignores HTTPS_PROXY: it is not a valid proxy URL; dexcost connects "
            "directly. Set it to http://HOST:PORT"
        )
        return None
    host = parts.hostname
    if not host:
        logger.warning(
            "dexcost ignores HTTPS_PROXY: it names no proxy host; dexcost connects "
            "directly. Set it to http://HOST:PORT"
        )
        return None
    if parts.scheme.lower() != "http":
        logger.warning(
            "dexcost ignores HTTPS_PROXY with the scheme %r: only http:// proxies are "
            "supported, so dexcost connects directly. Set it to http://HOST:PORT",
            parts.scheme,
        )
        return None
    headers: dict[str, str] = {}
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        token = base64.b64encode(credentials.encode()).decode("ascii")
        headers["Proxy-Authorization"] = f"Basic {token}"
    return Proxy(host, port, headers)


def https_connection(
    host: str, port: int | None, *, timeout: float, context: ssl.SSLContext, proxy: Proxy | None
) -> http.client.HTTPSConnection:
    """Create an unopened https connection to ``host``, through ``proxy`` when one is given.

    Through a proxy, the TLS handshake still names and verifies ``host``: http.client
    wraps the tunnel's socket with ``server_hostname`` set to the tunnel's host.
    """
    if proxy is None:
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    connection = http.client.HTTPSConnection(
        proxy.host, proxy.port, timeout=timeout, context=context
    )
    connection.set_tunnel(host, port or 443, headers=proxy.headers)
    return connection
