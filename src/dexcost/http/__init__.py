"""Automatic cost capture of outgoing HTTP requests to paid APIs.

``dexcost.init(track_http=True)`` (the default) calls :func:`start`. Each supported
client library is patched when the application imports it, and the bundled service
catalog is read when the first one is patched, so ``init()`` pays for neither when
the application makes no HTTP calls. ``shutdown()`` calls :func:`stop`, which
removes every patch.

The patches are wrapt wrappers installed through the same gated helper as the LLM
instrumentations, so the application's own OpenTelemetry HTTP instrumentation keeps
working whether it is installed before or after ``init()``.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from dexcost.catalog.schema import Catalog
    from dexcost.instrumentation.registry import Instrumentor

logger = logging.getLogger(__name__)

# Import name of each captured library -> "module:Class" of its instrumentor.
LIBRARIES: Final = {
    "requests": "dexcost.http.requests_patch:RequestsCapture",
    "httpx": "dexcost.http.httpx_patch:HttpxCapture",
    "httpx2": "dexcost.http.httpx_patch:HttpxCapture",
    "aiohttp": "dexcost.http.aiohttp_patch:AiohttpCapture",
    "urllib3": "dexcost.http.urllib3_patch:Urllib3Capture",
    "botocore": "dexcost.http.botocore_patch:BotocoreCapture",
}

_lock = threading.RLock()
_active = False
_hooked: set[str] = set()
_instrumentors: dict[str, Instrumentor] = {}
_user_services: frozenset[str] = frozenset()
_catalog_override: Catalog | None = None


def start(user_services: Iterable[str] = ()) -> None:
    """Capture requests of every supported library, now or when it is imported.

    ``user_services`` names the services the user stored rates for; their rates
    win over the catalog's prices.
    """
    global _active, _user_services
    from dexcost.instrumentation.import_hook import run_if_imported, when_imported

    with _lock:
        _active = True
        _user_services = frozenset(user_services)
        _clear_capture()
        for name in LIBRARIES:
            if name not in _hooked:
                _hooked.add(name)
                # Runs the hook now if the module is already imported, else on import.
                when_imported(name, _on_import)
            else:
                run_if_imported(name, _on_import)


def stop() -> None:
    """Remove every patch and stop matching requests."""
    global _active
    with _lock:
        _active = False
        for instrumentor in _instrumentors.values():
            instrumentor.uninstrument()
        _clear_capture()


def _clear_capture() -> None:
    """Forget the configured catalog, without importing the capture code before it is used.

    ``init()`` must not pay for importing the catalog code when the application has
    not imported any HTTP client yet.
    """
    capture = sys.modules.get("dexcost.http.capture")
    if capture is not None:
        capture.clear()


def captured_libraries() -> list[str]:
    """Return the names of the HTTP client libraries patched now."""
    with _lock:
        return sorted(name for name, item in _instrumentors.items() if item.is_instrumented)


def use_catalog(catalog: Catalog | None) -> None:
    """Match requests against ``catalog`` instead of the bundled one (None restores it)."""
    global _catalog_override
    with _lock:
        _catalog_override = catalog
        _clear_capture()
        if _active and _instrumentors:
            _configure()


def refresh_catalog() -> None:
    """Match requests against the catalog in use now, if the capture is configured.

    The capture keeps the matcher it was configured with, so a new catalog needs a
    new configuration. It replaces the capture's state in one assignment, so a request
    on another thread is matched against the old catalog or the new one, never none.
    """
    with _lock:
        capture = sys.modules.get("dexcost.http.capture")
        if (
            _active
            and _catalog_override is None
            and capture is not None
            and capture.is_configured()
        ):
            _configure()


def _configure() -> None:
    from dexcost.catalog.loading import bundled
    from dexcost.http import capture

    if _catalog_override is not None:
        capture.configure(_catalog_override, None, _user_services)
        return
    catalog, matcher = bundled()
    capture.configure(catalog, matcher, _user_services)


def _on_import(module: ModuleType) -> None:
    name = module.__name__
    with _lock:
        if not _active:
            return
        try:
            from dexcost.http import capture

            if not capture.is_configured():
                _configure()
            instrumentor = _instrumentors.get(name)
            if instrumentor is None:
                module_name, _, class_name = LIBRARIES[name].partition(":")
                instrumentor = getattr(importlib.import_module(module_name), class_name)()
                _instrumentors[name] = instrumentor
            instrumentor.instrument(module)
        except Exception:
            logger.exception("dexcost could not patch %s; its requests will not be priced", name)
