"""Finding the catalog entry of one outgoing request, on the request's hot path.

Most requests an application sends are not to a paid API, so the common result is
"no entry" and it must be cheap: one dict lookup per host, cached. A host seen for the
first time is looked up among the exact hosts and then among the wildcard suffixes
(``*.pinecone.io``), and the routes found are cached for that host. Path globs are
compiled once, when a host first needs them.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Callable, Iterable
from typing import Final

from dexcost.catalog.schema import CatalogEntry

# Distinct hosts whose routes are cached. The cache is emptied when it is full, so a
# process that calls many hosts (a crawler) keeps a bounded memory.
_CACHE_LIMIT: Final = 4096


class Route:
    """One entry's path and method filter; the path regex is compiled on first use."""

    __slots__ = ("_lock", "_path_match", "entry", "methods", "paths")

    def __init__(self, entry: CatalogEntry) -> None:
        self.entry = entry
        self.methods = entry.methods
        self.paths = entry.paths
        self._path_match: Callable[[str], object] | None = None
        self._lock = threading.Lock()

    def accepts(self, path: str, method: str) -> bool:
        """Tell whether this entry bills ``method`` ``path`` (no query, method upper case)."""
        if self.methods is not None and method not in self.methods:
            return False
        paths = self.paths
        if paths is None:
            return True
        path_match = self._path_match
        if path_match is None:
            path_match = self._compile(paths)
        return path_match(path) is not None

    def _compile(self, paths: tuple[str, ...]) -> Callable[[str], object]:
        with self._lock:
            if self._path_match is None:
                pattern = "|".join(fnmatch.translate(glob) for glob in paths)
                self._path_match = re.compile(pattern).match
            return self._path_match


class Matcher:
    """Match ``(host, path, method)`` to the first entry, in catalog order, that bills it.

    Exact hosts come before wildcard hosts, and a longer wildcard suffix before a
    shorter one, so a specific entry wins over a catch-all for the same domain.
    """

    def __init__(self, entries: Iterable[CatalogEntry]) -> None:
        exact: dict[str, list[Route]] = {}
        wildcard: dict[str, list[Route]] = {}
        for entry in entries:
            route = Route(entry)
            for host in entry.hosts:
                if host.startswith("*."):
                    wildcard.setdefault(host[2:], []).append(route)
                else:
                    exact.setdefault(host, []).append(route)
        self._exact = exact
        self._wildcard = wildcard
        self._cache: dict[str, tuple[Route, ...]] = {}

    def has_host(self, host: str) -> bool:
        """Tell whether any entry bills requests to ``host``, whatever their path."""
        return bool(self.routes(host))

    def routes(self, host: str) -> tuple[Route, ...]:
        """Return the routes of the entries billing ``host``, in matching order."""
        routes = self._cache.get(host)
        if routes is None:
            routes = self._routes(host)
        return routes

    def match(self, host: str, path: str, method: str) -> CatalogEntry | None:
        """Return the entry billing ``method`` ``path`` on ``host``, or None.

        ``host`` has no port; ``path`` has no query string; ``method`` is upper case.
        """
        routes = self._cache.get(host)
        if routes is None:
            routes = self._routes(host)
        for route in routes:
            if route.accepts(path, method):
                return route.entry
        return None

    def _routes(self, host: str) -> tuple[Route, ...]:
        name = host.lower().rstrip(".")
        found = list(self._exact.get(name, ()))
        if self._wildcard:
            # "a.b.example.com" tries "b.example.com", then "example.com", then "com":
            # a wildcard matches subdomains only, never the bare domain.
            dot = name.find(".")
            while dot != -1:
                suffix = name[dot + 1 :]
                found.extend(self._wildcard.get(suffix, ()))
                dot = name.find(".", dot + 1)
        routes = tuple(found)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache = {}
        self._cache[host] = routes
        return routes
