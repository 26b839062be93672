"""dexcost's patches as OpenTelemetry instrumentors, one per library.

``opentelemetry-instrument`` loads every ``opentelemetry_instrumentor`` entry point
except those named in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``. dexcost registers
one per library it prices, named ``dexcost_<library>`` (``dexcost_openai``), plus
``dexcost_http`` for the HTTP cost capture, so each can be switched off by name
without clashing with other packages' ``openai`` instrumentor.

These classes do not start dexcost. Under the dexcost distro, ``dexcost.init()``
has already run and patched what the environment requests, leaving out the disabled
names, so ``instrument()`` finds its library patched and changes nothing. Loaded by
another distro before dexcost was started, ``instrument()`` does nothing. Starting
dexcost opens a local buffer, runs a writer thread and, with an API key in the
environment, uploads data, so it must follow from a choice, not from the package
being installed. Start it with ``OTEL_PYTHON_DISTRO=dexcost`` or ``dexcost.init()``.

Version checks: ``opentelemetry-instrument`` checks the ``instruments`` extra of the
distribution that owns an entry point, for the whole distribution. dexcost declares
none, because one SDK missing would then skip every dexcost instrumentor. Each
library is checked when the application imports it instead: a missing library is
never patched and logs nothing, a release outside the supported range gets one
warning. ``instrumentation_dependencies()`` gives the same range, for the check
``instrument()`` makes when called by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any, ClassVar

# The module is marked "type: ignore" upstream, so mypy finds no names in it.
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined, unused-ignore]
    BaseInstrumentor,
)

from dexcost import runtime
from dexcost.instrumentation.registry import LIBRARIES

logger = logging.getLogger(__name__)

# Entry point names are this prefix and the library name: dexcost_openai, dexcost_http.
ENTRY_POINT_PREFIX = "dexcost_"

_logged_not_started = False


def _not_started(entry_point: str) -> None:
    """Log, once per process, that dexcost's instrumentors ran before dexcost started."""
    global _logged_not_started
    if _logged_not_started:
        return
    _logged_not_started = True
    logger.debug(
        "%s and the other dexcost instrumentors patch nothing: dexcost is not started. "
        "Set OTEL_PYTHON_DISTRO=dexcost, or call dexcost.init() in the application",
        entry_point,
    )


class _DexcostInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Switch the patch of one library of the running dexcost on and off."""

    # A name of ALL_SUPPORTED_INSTRUMENTS, or runtime.HTTP.
    library: ClassVar[str]

    @classmethod
    def entry_point_name(cls) -> str:
        return ENTRY_POINT_PREFIX + cls.library

    def instrumentation_dependencies(self) -> Collection[str]:
        spec = LIBRARIES[self.library]
        return (f"{spec.distribution} {spec.supported_range}",)

    def _instrument(self, **kwargs: Any) -> None:
        try:
            if not runtime.set_library_patched(self.library, True):
                _not_started(self.entry_point_name())
        except Exception:
            # opentelemetry-instrument stops loading every later instrumentor on an error.
            logger.exception("dexcost could not patch %s", self.library)

    def _uninstrument(self, **kwargs: Any) -> None:
        runtime.set_library_patched(self.library, False)


class OpenAIInstrumentor(_DexcostInstrumentor):
    library = "openai"


class AnthropicInstrumentor(_DexcostInstrumentor):
    library = "anthropic"


class GoogleGenAIInstrumentor(_DexcostInstrumentor):
    library = "google_genai"


class LiteLLMInstrumentor(_DexcostInstrumentor):
    library = "litellm"


class BedrockInstrumentor(_DexcostInstrumentor):
    """The bedrock-runtime client of botocore."""

    library = "bedrock"


class CohereInstrumentor(_DexcostInstrumentor):
    library = "cohere"


class MistralInstrumentor(_DexcostInstrumentor):
    library = "mistralai"


class GroqInstrumentor(_DexcostInstrumentor):
    library = "groq"


class OllamaInstrumentor(_DexcostInstrumentor):
    library = "ollama"


class HTTPCostInstrumentor(_DexcostInstrumentor):
    """The cost capture of requests to paid APIs, in every supported HTTP client."""

    library = runtime.HTTP

    def instrumentation_dependencies(self) -> Collection[str]:
        # Each HTTP client is patched when imported, so none is required.
        return ()


INSTRUMENTORS: tuple[type[_DexcostInstrumentor], ...] = (
    OpenAIInstrumentor,
    AnthropicInstrumentor,
    GoogleGenAIInstrumentor,
    LiteLLMInstrumentor,
    BedrockInstrumentor,
    CohereInstrumentor,
    MistralInstrumentor,
    GroqInstrumentor,
    OllamaInstrumentor,
    HTTPCostInstrumentor,
)
