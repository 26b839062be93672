"""The catalog in use: the bundled file, with a remote catalog merged over it when set.

``import dexcost`` never reads the file: the HTTP capture loads the catalog when it
patches the first HTTP client library. A missing or invalid bundled file is logged and
treated as an empty catalog, so the application still runs.

A remote catalog (``init(service_catalog_url=...)``, see :mod:`dexcost.catalog.remote`)
is a layer over the bundled file: its entries replace bundled entries with the same id,
add the others, and come first in matching order, so where a remote entry and a
bundled entry bill the same request with equally specific hosts, the remote one wins.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Final

from dexcost.catalog.matching import Matcher
from dexcost.catalog.schema import Catalog, CatalogFormatError, parse_catalog

logger = logging.getLogger(__name__)

BUNDLED_PATH: Final = Path(__file__).parent / "data" / "services.json"
EMPTY: Final = Catalog(schema_version=1, catalog_version="none", entries=())

_lock = threading.Lock()
# The bundled file, read once.
_bundled_file: Catalog | None = None
# The remote catalog merged over the bundled file, or None.
_remote: Catalog | None = None
# The catalog in use and its matcher, built on first use after each change.
_active: tuple[Catalog, Matcher] | None = None


def load_catalog_file(path: Path) -> Catalog:
    """Read and validate a catalog file; raise OSError, ValueError or CatalogFormatError."""
    with path.open("rb") as file:
        document = json.load(file)
    return parse_catalog(document)


def active() -> tuple[Catalog, Matcher]:
    """Return the catalog in use and its matcher, loading the bundled file on first use."""
    global _active
    loaded = _active
    if loaded is not None:
        return loaded
    with _lock:
        if _active is None:
            catalog = _bundled()
            if _remote is not None:
                catalog = merge(catalog, _remote)
            _active = (catalog, Matcher(catalog.entries))
        return _active


# The name the HTTP capture imports.
bundled = active


def set_remote(remote: Catalog | None) -> None:
    """Merge ``remote`` over the bundled file from now on (None: the bundled file alone).

    The next :func:`active` call builds the new catalog and matcher. Readers that hold
    the previous pair keep a consistent one: nothing in it changes.
    """
    global _remote, _active
    with _lock:
        _remote = remote
        _active = None


def merge(base: Catalog, remote: Catalog) -> Catalog:
    """Return ``remote``'s entries, then those of ``base`` whose id it does not replace."""
    replaced = {entry.id for entry in remote.entries}
    remaining = tuple(entry for entry in base.entries if entry.id not in replaced)
    return Catalog(
        schema_version=remote.schema_version,
        catalog_version=f"{remote.catalog_version} over {base.catalog_version}",
        entries=remote.entries + remaining,
    )


def _bundled() -> Catalog:
    """Return the bundled file's catalog, reading it on the first call; hold ``_lock``."""
    global _bundled_file
    if _bundled_file is None:
        _bundled_file = _load_bundled()
    return _bundled_file


def _load_bundled() -> Catalog:
    try:
        return load_catalog_file(BUNDLED_PATH)
    except FileNotFoundError:
        logger.warning(
            "dexcost's service catalog %s is missing, so paid API requests are not "
            "priced; reinstall dexcost to restore it",
            BUNDLED_PATH,
        )
    except (OSError, ValueError) as error:
        # CatalogFormatError and json.JSONDecodeError are ValueErrors.
        kind = "invalid" if isinstance(error, CatalogFormatError) else "unreadable"
        logger.error(
            "dexcost's service catalog %s is %s (%s), so paid API requests are not "
            "priced; reinstall dexcost to restore it",
            BUNDLED_PATH,
            kind,
            error,
        )
    return EMPTY
