"""Read the bundled catalog of paid HTTP services and match URLs against it.

The scanner reads the JSON file with the standard library only, so scanning never
depends on the runtime pricing code. The file path can be replaced for tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_CATALOG_PATH = Path(__file__).resolve().parent.parent / "catalog" / "data" / "services.json"


class CatalogError(Exception):
    """Raised when a catalog file exists but cannot be read. Its message names the fix."""


@dataclass(frozen=True)
class CatalogService:
    """One paid service: where its requests go and its list price."""

    id: str
    name: str
    hosts: tuple[str, ...]
    paths: tuple[str, ...]
    price_usd: Decimal | None
    per: int
    unit: str

    def matches_host(self, host: str) -> bool:
        for pattern in self.hosts:
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                    return True
            elif host == pattern:
                return True
        return False

    def matches_path(self, path: str) -> bool:
        return not self.paths or any(fnmatchcase(path, glob) for glob in self.paths)

    def price_text(self) -> str | None:
        """Return e.g. ``0.005 USD per 1 request``, or None without a price."""
        if self.price_usd is None:
            return None
        return f"{self.price_usd} USD per {self.per:,} {self.unit}"


@dataclass(frozen=True)
class Catalog:
    """The services of one catalog file, in file order."""

    services: tuple[CatalogService, ...]
    source: Path | None

    def match(self, host: str, path: str | None) -> CatalogService | None:
        """Return the service for a request to ``host`` and ``path``.

        A ``path`` of None means it is unknown: then only a service that lists no
        paths matches, because the others each apply to specific paths only.
        """
        host = host.lower().rstrip(".")
        for service in self.services:
            if not service.matches_host(host):
                continue
            if path is None:
                if not service.paths:
                    return service
            elif service.matches_path(path):
                return service
        return None

    def match_url(self, url: str) -> CatalogService | None:
        parts = urlsplit(url)
        if not parts.hostname:
            return None
        return self.match(parts.hostname, parts.path or "/")

    def find(self, candidates: tuple[str, ...]) -> CatalogService | None:
        """Return the first service whose id or host equals one of ``candidates``.

        A host match counts only for a service without paths: a host such as
        maps.googleapis.com serves several APIs with different prices.
        """
        for candidate in candidates:
            for service in self.services:
                if service.id == candidate:
                    return service
                if not service.paths and service.matches_host(candidate):
                    return service
        return None


EMPTY_CATALOG = Catalog((), None)


def load_catalog(path: Path | None = None) -> Catalog:
    """Load the catalog at ``path`` (the bundled one by default).

    A missing bundled file gives an empty catalog, so URL findings are simply not
    made. A file that exists but is not a valid catalog raises CatalogError.
    """
    chosen = DEFAULT_CATALOG_PATH if path is None else Path(path)
    try:
        text = chosen.read_text(encoding="utf-8")
    except FileNotFoundError:
        if path is None:
            return EMPTY_CATALOG
        raise CatalogError(f"no service catalog at {chosen}; pass an existing JSON file") from None
    except OSError as error:
        raise CatalogError(f"cannot read service catalog {chosen}: {error}") from error
    try:
        document = json.loads(text)
    except ValueError as error:
        raise CatalogError(f"service catalog {chosen} is not valid JSON: {error}") from error
    entries = document.get("services", document) if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise CatalogError(
            f"service catalog {chosen} must hold a list of services (or {{'services': [...]}})"
        )
    return Catalog(tuple(_service(entry, chosen) for entry in entries), chosen)


def _service(entry: object, source: Path) -> CatalogService:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        raise CatalogError(f"service catalog {source} has an entry without a string id: {entry!r}")
    hosts = entry.get("hosts") or ()
    paths = entry.get("paths") or ()
    if not all(isinstance(h, str) for h in hosts) or not all(isinstance(p, str) for p in paths):
        raise CatalogError(
            f"service {entry['id']!r} in {source}: hosts and paths must be lists of strings"
        )
    price: Decimal | None = None
    raw_price = entry.get("price_usd")
    if raw_price is not None:
        try:
            price = Decimal(str(raw_price))
        except InvalidOperation:
            raise CatalogError(
                f"service {entry['id']!r} in {source} has price_usd={raw_price!r}; "
                "write it as a decimal string such as '0.005'"
            ) from None
    per = entry.get("per", 1)
    return CatalogService(
        id=entry["id"],
        name=str(entry.get("name", entry["id"])),
        hosts=tuple(host.lower() for host in hosts),
        paths=tuple(paths),
        price_usd=price,
        per=per if isinstance(per, int) and per > 0 else 1,
        unit=str(entry.get("unit", "request")),
    )
