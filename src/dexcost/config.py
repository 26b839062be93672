"""Configuration: the validated settings behind ``dexcost.init()``."""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from dexcost.instrumentation.registry import ALL_SUPPORTED_INSTRUMENTS

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://api.dexcost.io"
# Comma-separated hosts that may be reached over plain http, e.g. an in-cluster gateway.
ALLOW_HTTP_HOSTS_ENV = "DEXCOST_ALLOW_HTTP_HOSTS"
KEY_PREFIXES = ("dx_live_", "dx_test_")
# "true" hands a copy of every cost span to the application's own tracer provider.
EXPORT_TO_OTEL_ENV = "DEXCOST_EXPORT_TO_OTEL"
# Words an on/off environment variable accepts; unset counts as off.
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})
DEVELOPMENT = "development"

# Defaults the retry tracker uses when the user gives none.
DEFAULT_RETRY_WINDOW_SECONDS = 60.0
DEFAULT_RETRY_THRESHOLD = 0.8

# "true" prices the GenAI spans other instrumentations make on the app's provider.
PRICE_GENAI_SPANS_ENV = "DEXCOST_PRICE_GENAI_SPANS"


def _plain_http_allowed(host: str) -> bool:
    """Return True for a loopback host or one listed in ``DEXCOST_ALLOW_HTTP_HOSTS``."""
    if is_loopback_host(host):
        return True
    host = host.lower().rstrip(".")
    listed = os.environ.get(ALLOW_HTTP_HOSTS_ENV, "")
    allowed = {name.strip().lower().rstrip(".") for name in listed.split(",")}
    return host in allowed - {""}


def is_loopback_host(host: str) -> bool:
    """Return True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``.

    Only the exact name counts: ``localhost.`` and ``x.localhost`` are looked up in DNS
    by some resolvers, which could answer with a remote address.
    """
    host = host.lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name, not an address


def catalog_url_problem(url: str) -> str | None:
    """Say what makes ``url`` unfit to fetch a service catalog from, or return None.

    A catalog sets the price of every request it matches, so it must come over https,
    where no one on the network path can change it. Plain http is accepted for loopback
    hosts only, to test a catalog served on the same machine. The same rule applies to
    each redirect the download follows.
    """
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port outside 0-65535
    except ValueError as error:
        return f"is not a valid URL ({error})"
    if not url.isascii() or not url.isprintable() or " " in url or port == 0:
        return "is not a valid URL: percent-encode spaces and other special characters"
    if parts.scheme not in ("http", "https"):
        return "is not an https URL"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "contains a user name or password, which dexcost does not send"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return (
            "uses plain http, which is accepted only for a loopback host (127.0.0.1, ::1 "
            "or localhost) because anyone on the network path could change the prices"
        )
    return None


def _read_switch(name: str, value: object, variable: str) -> bool:
    """Return an on/off option: the argument when given, else its environment variable."""
    if value is not None:
        _check_type(name, value, bool, "pass True or False")
        return bool(value)
    text = os.environ.get(variable, "")
    word = text.strip().lower()
    if word not in _TRUE_WORDS | _FALSE_WORDS:
        raise ValueError(
            f"{variable}={text!r} is not an on/off value; set it to true or false "
            "(or 1 or 0), or unset it"
        )
    return word in _TRUE_WORDS


def _warn_attribution_in_redact_fields(fields: list[str] | None) -> None:
    """Warn when ``redact_fields`` names an attribution field, which it does not remove."""
    for name in fields or ():
        if name in ("customer_id", "project_id", "agent"):
            logger.warning(
                "redact_fields lists %r, but it removes metadata keys only, so %s is still "
                "stored; use hash_customer_id=True to keep customer ids private, or leave "
                "the field unset",
                name,
                name,
            )


def mask_key(key: str) -> str:
    """Return a key shortened so it can appear in messages: its prefix and last 4 characters."""
    for prefix in KEY_PREFIXES:
        if key.startswith(prefix):
            # Show the last 4 characters only when at least 12 stay hidden.
            return f"{prefix}…{key[-4:]}" if len(key) >= len(prefix) + 16 else f"{prefix}…"
    if len(key) <= 6:
        return "…"
    return f"{key[:3]}…{key[-2:]}"


def _check_type(name: str, value: object, expected: type | tuple[type, ...], fix: str) -> None:
    if isinstance(value, bool) and bool not in (
        expected if isinstance(expected, tuple) else (expected,)
    ):
        raise TypeError(f"{name} must not be a bool (got {value!r}); {fix}")
    if not isinstance(value, expected):
        raise TypeError(f"{name} has type {type(value).__name__} (value {value!r}); {fix}")


def _check_str_list(name: str, value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError(
            f"{name} must be a list of strings, got the string {value!r}; "
            f'wrap it in a list: {name}=["{value}"]'
        )
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise TypeError(f"{name} must be a list of strings, got {type(value).__name__} {value!r}")
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} must contain only strings, got {item!r}")
    return items


@dataclass
class DexcostConfig:
    """Settings for one ``dexcost.init()`` call.

    Environment fallbacks (``DEXCOST_API_KEY``, ``DEXCOST_ENDPOINT``, ``DEXCOST_ENV``)
    are read in ``__post_init__``, so they take effect when ``init()`` runs.
    """

    api_key: str | None = None
    auto_instrument: list[str] | None = None
    track_http: bool = True
    environment: str | None = None
    batch_size: int = 100
    flush_interval: float = 5.0
    redact_fields: list[str] | None = None
    hash_customer_id: bool = False
    storage: str | None = None
    buffer_path: str | None = None
    service_catalog_url: str | None = None
    enable_retry_heuristics: bool = False
    retry_heuristic_window: float | None = None
    retry_heuristic_threshold: float | None = None
    propagate_context_to: list[str] | None = None
    trust_inbound_context: bool = False
    # None reads DEXCOST_EXPORT_TO_OTEL. After validation it is always a bool.
    export_to_otel: bool | None = None
    price_genai_spans: bool | None = None
    endpoint: str = field(init=False, default=DEFAULT_ENDPOINT)

    def __post_init__(self) -> None:
        self._validate_storage()
        self._read_api_key()
        self._read_environment()
        self.endpoint = self._validate_endpoint(
            os.environ.get("DEXCOST_ENDPOINT", "").strip() or DEFAULT_ENDPOINT
        )

        self._validate_auto_instrument()
        _check_type("track_http", self.track_http, bool, "pass True or False")
        _check_type("hash_customer_id", self.hash_customer_id, bool, "pass True or False")
        _check_type(
            "enable_retry_heuristics", self.enable_retry_heuristics, bool, "pass True or False"
        )
        self._validate_batching()
        self._validate_retry_settings()
        self.redact_fields = _check_str_list("redact_fields", self.redact_fields)
        _warn_attribution_in_redact_fields(self.redact_fields)
        _check_type("trust_inbound_context", self.trust_inbound_context, bool, "pass True or False")
        self._validate_propagation_hosts()
        self._read_export_to_otel()
        self._read_price_genai_spans()

        if self.buffer_path is None:
            self.buffer_path = os.environ.get("DEXCOST_BUFFER_PATH", "").strip() or None
        if self.buffer_path is not None:
            _check_type("buffer_path", self.buffer_path, (str, os.PathLike), "pass a file path")
            self.buffer_path = os.fspath(self.buffer_path)
            if "\x00" in str(self.buffer_path):
                raise ValueError(
                    f"buffer_path {self.buffer_path!r} contains a NUL character; pass the "
                    "path of a file such as '/var/lib/myapp/dexcost.db'"
                )
            if str(self.buffer_path).strip() in (":memory:", "file::memory:"):
                raise ValueError(
                    f"buffer_path {self.buffer_path!r} is an in-memory SQLite database, where "
                    "events would vanish when the writer closes it; pass the path of a file "
                    "such as '/var/lib/myapp/dexcost.db'"
                )
            if not str(self.buffer_path).strip():
                raise ValueError(
                    f"buffer_path {self.buffer_path!r} is empty; pass the path of a file such "
                    "as '/var/lib/myapp/dexcost.db', or None for the default"
                )
        self._validate_catalog_url()

    def _validate_propagation_hosts(self) -> None:
        hosts = _check_str_list("propagate_context_to", self.propagate_context_to)
        from dexcost.propagation import check_host_pattern

        for host in hosts or ():
            if check_host_pattern(host) is None:
                raise ValueError(
                    f"propagate_context_to has an invalid host pattern {host!r}; pass host "
                    "names such as 'billing.internal.example.com', '*.internal.example.com' "
                    "for its subdomains, or '*' for every host, without a scheme, port or path"
                )
        self.propagate_context_to = hosts

    def _read_export_to_otel(self) -> None:
        self.export_to_otel = _read_switch(
            "export_to_otel", self.export_to_otel, EXPORT_TO_OTEL_ENV
        )

    def _read_price_genai_spans(self) -> None:
        self.price_genai_spans = _read_switch(
            "price_genai_spans", self.price_genai_spans, PRICE_GENAI_SPANS_ENV
        )

    def _read_api_key(self) -> None:
        source = "api_key"
        if self.api_key is None and self.storage != "local":
            self.api_key = os.environ.get("DEXCOST_API_KEY", "").strip() or None
            source = "DEXCOST_API_KEY"
        if self.api_key is not None:
            self._validate_api_key(source)

    def _read_environment(self) -> None:
        if self.environment is None:
            self.environment = os.environ.get("DEXCOST_ENV", "").strip() or None
        elif not isinstance(self.environment, str):
            raise TypeError(
                f"environment must be a string such as 'development', "
                f"got {type(self.environment).__name__} {self.environment!r}"
            )

    def _validate_catalog_url(self) -> None:
        if self.service_catalog_url is None:
            return
        _check_type("service_catalog_url", self.service_catalog_url, str, "pass a URL string")
        problem = catalog_url_problem(self.service_catalog_url)
        if problem is not None:
            raise ValueError(
                f"service_catalog_url {self.service_catalog_url!r} {problem}; pass the https:// "
                "URL of a catalog JSON file, such as "
                "'https://example.com/dexcost/services.json'"
            )

    # --- derived settings ---

    @property
    def is_dev(self) -> bool:
        """True in development mode: events are printed and nothing is pushed."""
        return self.environment is not None and self.environment.strip().lower() == DEVELOPMENT

    @property
    def storage_mode(self) -> Literal["local", "cloud"]:
        """``cloud`` when events will be pushed to the Control Layer, else ``local``."""
        if self.storage == "local" or self.api_key is None or self.is_dev:
            return "local"
        return "cloud"

    @property
    def key_type(self) -> Literal["live", "test"] | None:
        """``live`` for ``dx_live_`` keys, ``test`` for ``dx_test_`` keys, None without a key."""
        if self.api_key is None:
            return None
        return "live" if self.api_key.startswith("dx_live_") else "test"

    @property
    def retry_window(self) -> float:
        """Retry-detection window in seconds, with the tracker default filled in."""
        if self.retry_heuristic_window is None:
            return DEFAULT_RETRY_WINDOW_SECONDS
        return self.retry_heuristic_window

    @property
    def retry_threshold(self) -> float:
        """Retry-detection confidence threshold, with the tracker default filled in."""
        if self.retry_heuristic_threshold is None:
            return DEFAULT_RETRY_THRESHOLD
        return self.retry_heuristic_threshold

    def __repr__(self) -> str:
        key = None if self.api_key is None else mask_key(self.api_key)
        return (
            f"DexcostConfig(api_key={key!r}, environment={self.environment!r}, "
            f"storage_mode={self.storage_mode!r}, endpoint={self.endpoint!r}, "
            f"auto_instrument={self.auto_instrument!r}, buffer_path={self.buffer_path!r})"
        )

    # --- validation ---

    def _validate_storage(self) -> None:
        if self.storage is None or self.storage == "local":
            return
        _check_type("storage", self.storage, str, "pass storage='local' or leave it None")
        raise ValueError(
            f"storage={self.storage!r} is not supported; pass storage='local' to keep events "
            "on this machine only, or leave storage=None to push them when an API key is set"
        )

    def _validate_api_key(self, source: str) -> None:
        key = self.api_key
        if not isinstance(key, str):
            raise TypeError(
                f"{source} must be a string starting with dx_live_ or dx_test_, "
                f"got {type(key).__name__}"
            )
        key = key.strip()
        self.api_key = key
        fix = "Copy the key from the dexcost dashboard, or pass storage='local' to run without one"
        if not key:
            raise ValueError(f"{source} is empty; keys start with dx_live_ or dx_test_. {fix}")
        if key in KEY_PREFIXES:
            raise ValueError(f"{source} {key!r} has nothing after its prefix. {fix}")
        if not key.isprintable() or any(character.isspace() for character in key):
            raise ValueError(
                f"{source} {mask_key(key)!r} contains spaces or control characters; "
                f"check how it was copied. {fix}"
            )
        if not key.startswith(KEY_PREFIXES):
            hint = " (it looks like an OpenAI or Anthropic key)" if key.startswith("sk-") else ""
            raise ValueError(
                f"{source} {mask_key(key)!r} is not a dexcost key{hint}: keys start with "
                f"dx_live_ (production) or dx_test_ (sandbox). {fix}"
            )

    def _validate_endpoint(self, endpoint: str) -> str:
        fix = f"set it to the Control Layer base URL, e.g. {DEFAULT_ENDPOINT}"
        try:
            parts = urlsplit(endpoint)
            port = parts.port  # raises ValueError for a port outside 0-65535
        except ValueError as error:
            raise ValueError(
                f"DEXCOST_ENDPOINT {endpoint!r} is not a valid URL ({error}); {fix}"
            ) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"DEXCOST_ENDPOINT {endpoint!r} is not an http(s) URL; {fix}")
        if parts.username is not None or parts.password is not None:
            # The API key is sent in a header; credentials in the URL would be logged.
            raise ValueError(
                "DEXCOST_ENDPOINT must not contain a user name or password; "
                f"{fix} and pass the key as DEXCOST_API_KEY"
            )
        if any(character.isspace() for character in endpoint) or port == 0:
            raise ValueError(f"DEXCOST_ENDPOINT {endpoint!r} is not a valid URL; {fix}")
        if parts.scheme == "http" and not _plain_http_allowed(parts.hostname):
            # The API key travels in a header, so plain http would expose it on the network.
            raise ValueError(
                f"DEXCOST_ENDPOINT {endpoint!r} uses plain http, which would send the API "
                "key unencrypted; use an https:// URL, or, for a gateway inside your own "
                f"network, list its host in {ALLOW_HTTP_HOSTS_ENV} (e.g. "
                f"{ALLOW_HTTP_HOSTS_ENV}={parts.hostname})"
            )
        return endpoint.rstrip("/")

    def _validate_auto_instrument(self) -> None:
        value = _check_str_list("auto_instrument", self.auto_instrument)
        if value is None:
            return
        unknown = [name for name in value if name not in ALL_SUPPORTED_INSTRUMENTS]
        if unknown:
            valid = ", ".join(ALL_SUPPORTED_INSTRUMENTS)
            raise ValueError(
                f"auto_instrument names {unknown!r} are not supported; valid names are: {valid}"
            )
        # Keep the user's order but drop repeats.
        self.auto_instrument = list(dict.fromkeys(value))

    def _validate_batching(self) -> None:
        _check_type("batch_size", self.batch_size, int, "pass a whole number such as 100")
        if self.batch_size < 1:
            raise ValueError(
                f"batch_size={self.batch_size} is invalid; pass a whole number of at least 1 "
                "(default 100)"
            )
        _check_type("flush_interval", self.flush_interval, (int, float), "pass seconds such as 5.0")
        try:
            interval = float(self.flush_interval)
        except OverflowError:
            interval = float("inf")
        if not interval > 0 or interval == float("inf"):
            raise ValueError(
                f"flush_interval={self.flush_interval} is invalid; pass a positive number of "
                "seconds (default 5.0)"
            )
        self.flush_interval = interval

    def _validate_retry_settings(self) -> None:
        window = self.retry_heuristic_window
        if window is not None:
            _check_type("retry_heuristic_window", window, (int, float), "pass seconds such as 60")
            try:
                window = float(window)
            except OverflowError:
                window = float("inf")
            if not window > 0 or window == float("inf"):
                raise ValueError(
                    f"retry_heuristic_window={window} is invalid; pass a positive number of "
                    "seconds, or None for the default "
                    f"({DEFAULT_RETRY_WINDOW_SECONDS:g} s)"
                )
            self.retry_heuristic_window = float(window)
        threshold = self.retry_heuristic_threshold
        if threshold is not None:
            _check_type(
                "retry_heuristic_threshold", threshold, (int, float), "pass a number such as 0.8"
            )
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(
                    f"retry_heuristic_threshold={threshold} is outside 0..1; pass a confidence "
                    f"between 0.0 and 1.0, or None for the default ({DEFAULT_RETRY_THRESHOLD})"
                )
            self.retry_heuristic_threshold = float(threshold)
