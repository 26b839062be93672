"""Loading the catalog bundled with dexcost, once and only when a request needs it.

``import dexcost`` never reads the file: the HTTP capture loads the catalog when it
patches the first HTTP client library. A missing or invalid bundled file is logged and
treated as an empty catalog, so the application still runs.
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
_bundled: tuple[Catalog, Matcher] | None = None


def load_catalog_file(path: Path) -> Catalog:
    """Read and validate a catalog file; raise OSError, ValueError or CatalogFormatError."""
    with path.open("rb") as file:
        document = json.load(file)
    return parse_catalog(document)


def bundled() -> tuple[Catalog, Matcher]:
    """Return the bundled catalog and its matcher, loading them on the first call."""
    global _bundled
    loaded = _bundled
    if loaded is not None:
        return loaded
    with _lock:
        if _bundled is None:
            catalog = _load_bundled()
            _bundled = (catalog, Matcher(catalog.entries))
        return _bundled


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
