"""Run a callback when a module is imported, or at once if it already was.

dexcost patches an SDK only when the application imports it, so ``init()`` never pays
for importing SDKs the application does not use. wrapt offers the same hook, but
importing wrapt 2.x costs ~40 ms here (it imports asyncio), more than a third of the
start-up budget, so the patching code imports wrapt only once an SDK is loaded.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

Callback = Callable[[ModuleType], None]

_lock = threading.Lock()
_callbacks: dict[str, list[Callback]] = {}


def when_imported(name: str, callback: Callback) -> None:
    """Call ``callback(module)`` once module ``name`` is imported (now, if it already is)."""
    if run_if_imported(name, callback):
        return
    with _lock:
        _callbacks.setdefault(name, []).append(callback)
        if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
            sys.meta_path.insert(0, _Finder())


def run_if_imported(name: str, callback: Callback) -> bool:
    """Call ``callback(module)`` if module ``name`` is imported; False if it is not.

    A library can be half imported when ``init()`` runs, for example by a background
    thread that imports it through another package, and patching it then fails. The
    callback then runs on a short-lived thread once that import has finished. Waiting
    here instead could deadlock: the caller may hold a lock that a callback of the
    importing thread needs.
    """
    module = sys.modules.get(name)
    if module is None:
        return False
    if not _initializing(module):
        callback(module)
        return True
    threading.Thread(
        target=_call_after_import,
        args=(name, module, callback),
        name=f"dexcost-wait-import-{name}",
        daemon=True,
    ).start()
    return True


def _initializing(module: ModuleType) -> bool:
    """Tell whether ``module`` is in ``sys.modules`` but its import has not finished yet."""
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _call_after_import(name: str, module: ModuleType, callback: Callback) -> None:
    """Wait on the module's import lock until the running import is done, then call back."""
    import importlib

    # When the other import failed, the callback gets the partial module and reports
    # what is missing.
    with contextlib.suppress(Exception):
        module = importlib.import_module(name)
    callback(module)


def _run_callbacks(name: str, module: ModuleType) -> None:
    with _lock:
        callbacks = _callbacks.pop(name, [])
    for callback in callbacks:
        callback(module)


# The import system takes any object with these methods; subclassing importlib.abc
# would cost another ~10 ms of imports at start-up.
class _Finder:
    """Find nothing itself: wrap the real loader of a watched module to run callbacks."""

    _local = threading.local()

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname not in _callbacks or getattr(self._local, "busy", False):
            return None
        # Ask the other finders, in order, as the import system would have.
        self._local.busy = True
        spec = None
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._local.busy = False
        if spec is None:
            return None
        loader = spec.loader
        if loader is None:
            # A namespace package (mistralai 2.x and later is one): the import system
            # would give it a NamespaceLoader, so give it one here to wrap.
            if spec.submodule_search_locations is None:
                return None
            loader = _namespace_loader(fullname, spec.submodule_search_locations)
        spec.loader = _Loader(loader)  # type: ignore[assignment]
        return spec


def _namespace_loader(name: str, locations: Any) -> Any:
    """Return the loader CPython gives a namespace package found on ``locations``."""
    from importlib import machinery

    # Public from Python 3.11; 3.10 has the same class under a private name only.
    loader_class = getattr(machinery, "NamespaceLoader", None)
    if loader_class is None:
        from importlib import _bootstrap_external

        loader_class = _bootstrap_external._NamespaceLoader
    return loader_class(name, locations, machinery.PathFinder._get_spec)  # type: ignore[attr-defined]


class _Loader:
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        # Keep the real loader visible to code that inspects __loader__ or __spec__.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _run_callbacks(module.__name__, module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
