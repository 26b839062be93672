"""Start dexcost from ``opentelemetry-instrument``, with no change to the application.

Run the application as::

    OTEL_PYTHON_DISTRO=dexcost OTEL_PYTHON_CONFIGURATOR=dexcost \\
        opentelemetry-instrument python app.py

``opentelemetry-instrument`` loads the distro, then the configurator, then every
installed OpenTelemetry instrumentor. The two entry points registered here split the
work:

- :class:`DexcostDistro` starts dexcost with ``dexcost.init()``, configured from the
  ``DEXCOST_*`` environment variables. A configuration error is logged and leaves
  dexcost off: it never stops the application or its own OpenTelemetry setup.
  dexcost's instrumentors named in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
  (``dexcost_openai``, ``dexcost_http``, or ``*`` for all) are left out of that
  ``init()``, so their libraries are never patched, not even for a moment.
- :class:`DexcostConfigurator` is the stock SDK configurator, unchanged. It builds the
  global SDK TracerProvider, sampler and exporters from the ``OTEL_*`` variables, as
  the configurator of ``opentelemetry-distro`` does. dexcost adds nothing to that
  provider: cost events go to dexcost's own private provider, so the application's
  traces and exporters stay exactly as the ``OTEL_*`` variables configure them.

Unlike ``opentelemetry-distro``, the distro sets no default exporter: the application's
spans are exported only if ``OTEL_TRACES_EXPORTER`` (and the metrics and logs variables)
name an exporter. Set ``OTEL_TRACES_EXPORTER=otlp`` to get that distro's behaviour.
"""

from __future__ import annotations

import logging
import os
from typing import Any

# The module is marked "type: ignore" upstream, so mypy finds no names in it.
from opentelemetry.instrumentation.distro import (  # type: ignore[attr-defined, unused-ignore]
    BaseDistro,
)
from opentelemetry.sdk._configuration import _OTelSDKConfigurator

from dexcost.instrumentation.registry import ALL_SUPPORTED_INSTRUMENTS
from dexcost.otel_instrumentors import ENTRY_POINT_PREFIX
from dexcost.runtime import HTTP

logger = logging.getLogger(__name__)

# Comma-separated names of the libraries to instrument (e.g. "openai,anthropic").
# Unset means every supported library; set but empty means none.
AUTO_INSTRUMENT_ENV = "DEXCOST_AUTO_INSTRUMENT"
# opentelemetry-instrument's list of instrumentor entry points not to load.
DISABLED_INSTRUMENTATIONS_ENV = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"


def auto_instrument_from_env() -> list[str] | None:
    """Read ``DEXCOST_AUTO_INSTRUMENT``: None when unset, else the listed names."""
    value = os.environ.get(AUTO_INSTRUMENT_ENV)
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def disabled_from_env() -> set[str]:
    """Return the libraries (and ``http``) whose dexcost instrumentor is disabled.

    ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` contains entry point names, and
    ``dexcost_openai`` is the name for openai. ``*`` disables every instrumentor,
    dexcost's included.
    """
    value = os.environ.get(DISABLED_INSTRUMENTATIONS_ENV, "")
    names = {name.strip() for name in value.split(",")}
    everything = {*ALL_SUPPORTED_INSTRUMENTS, HTTP}
    if "*" in names:
        return everything
    return {
        name[len(ENTRY_POINT_PREFIX) :]
        for name in names
        if name.startswith(ENTRY_POINT_PREFIX) and name[len(ENTRY_POINT_PREFIX) :] in everything
    }


def start_from_env() -> bool:
    """Call ``dexcost.init()`` configured from the environment; False if that failed.

    Everything else ``init()`` needs is read from its own environment variables
    (``DEXCOST_API_KEY``, ``DEXCOST_ENV``, ``DEXCOST_BUFFER_PATH``, ``DEXCOST_ENDPOINT``).
    """
    import dexcost

    disabled = disabled_from_env()
    libraries = auto_instrument_from_env()
    if disabled - {HTTP}:
        named = ALL_SUPPORTED_INSTRUMENTS if libraries is None else libraries
        libraries = [name for name in named if name not in disabled]
    try:
        dexcost.init(auto_instrument=libraries, track_http=HTTP not in disabled)
    except Exception as error:
        # opentelemetry-instrument would swallow the error too, but only after skipping
        # the configurator and every instrumentor, so the app would lose its own tracing.
        logger.error(
            "dexcost did not start, so no cost is recorded: %s. Check the DEXCOST_* "
            "environment variables (DEXCOST_AUTO_INSTRUMENT sets auto_instrument)",
            error,
        )
        _start_inert()
        return False
    return True


def _start_inert() -> None:
    """Leave a runtime that patches and stores nothing, so dexcost calls in the app still run.

    An application started by ``opentelemetry-instrument`` may use ``dexcost.task()`` or
    ``record_cost()`` in its own code. Without a runtime those raise RuntimeError, so a
    typo in one DEXCOST_* variable would stop the application instead of only dexcost.
    """
    from opentelemetry.sdk.trace import SpanProcessor

    from dexcost import runtime
    from dexcost.config import DexcostConfig

    try:
        config = DexcostConfig(
            storage="local",
            auto_instrument=[],
            track_http=False,
            environment="production",
            buffer_path="-",
            export_to_otel=False,
            price_genai_spans=False,
        )
        # The base class drops every span it is given.
        runtime.swap_in(config, SpanProcessor())
    except Exception as error:
        logger.error("dexcost calls in the application will raise RuntimeError: %s", error)


class DexcostDistro(BaseDistro):  # type: ignore[misc]
    """Distro behind the ``opentelemetry_distro`` entry point ``dexcost``: starts dexcost."""

    def _configure(self, **kwargs: Any) -> None:
        start_from_env()


class DexcostConfigurator(_OTelSDKConfigurator):
    """Configurator behind the ``opentelemetry_configurator`` entry point ``dexcost``.

    It is the stock SDK setup, registered so that ``OTEL_PYTHON_CONFIGURATOR=dexcost`` works without
    ``opentelemetry-distro`` installed, and so the choice does not depend on which
    configurator the interpreter happens to find first.
    """
