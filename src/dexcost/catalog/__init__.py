"""The service catalog: paid non-LLM APIs, the requests they bill and their public prices.

- :mod:`~dexcost.catalog.schema`: the format and its validator (:func:`parse_catalog`).
- :mod:`~dexcost.catalog.loading`: the catalog in use, the bundled file read on first use.
- :mod:`~dexcost.catalog.remote`: a catalog from ``service_catalog_url``, fetched in the
  background, merged over the bundled one and cached next to the buffer. It is imported
  only when that setting is used.
- :mod:`~dexcost.catalog.matching`: ``(host, path, method)`` to the entry that bills it.
- :mod:`~dexcost.catalog.pricing`: the units and exact cost of one request.
"""

from __future__ import annotations

from dexcost.catalog.loading import bundled, load_catalog_file
from dexcost.catalog.matching import Matcher
from dexcost.catalog.pricing import cost_of, is_billed, read_units
from dexcost.catalog.schema import (
    Catalog,
    CatalogEntry,
    CatalogFormatError,
    UnitsFrom,
    parse_catalog,
    parse_entry,
)

__all__ = [
    "Catalog",
    "CatalogEntry",
    "CatalogFormatError",
    "Matcher",
    "UnitsFrom",
    "bundled",
    "cost_of",
    "is_billed",
    "load_catalog_file",
    "parse_catalog",
    "parse_entry",
    "read_units",
]
