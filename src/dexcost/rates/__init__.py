"""User rates: prices for paid APIs and LLMs that the price tables lack or get wrong.

``dexcost rates --import FILE`` stores them in the buffer, and ``dexcost.init()``
loads them: model prices then price LLM calls (below prices registered in code
with ``register_model_price``), and service rates price usage of paid APIs
through :func:`price_service_usage`. The YAML reader lives in
``dexcost.rates.rate_file`` and is imported only by the command line.
"""

from __future__ import annotations

from dexcost.rates.entries import ModelRate, RateValueError, ServiceRate
from dexcost.rates.registry import SOURCE, StoredRates, price_service_usage

__all__ = [
    "SOURCE",
    "ModelRate",
    "RateValueError",
    "ServiceRate",
    "StoredRates",
    "price_service_usage",
]
