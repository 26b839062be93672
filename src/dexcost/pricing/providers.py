"""Find the genai-prices provider and model entry for an OpenTelemetry provider name."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from dexcost.pricing.library import Library

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, Provider

# `gen_ai.provider.name` values (OpenTelemetry GenAI semantic conventions, plus
# names dexcost instrumentations use) -> genai-prices 0.2.3 provider ids. The
# explicit map matters: the library matches provider ids by substring, so
# "azure.ai.openai" alone would resolve to OpenAI's own prices.
LIBRARY_PROVIDER_IDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "openai": "openai",
        "azure.ai.openai": "azure",
        "azure.ai.inference": "azure",
        "anthropic": "anthropic",
        "aws.bedrock": "aws",
        "gcp.gemini": "google",
        "gcp.vertex_ai": "google",
        "gcp.gen_ai": "google",
        "cohere": "cohere",
        "mistral_ai": "mistral",
        "groq": "groq",
        "deepseek": "deepseek",
        "x_ai": "x-ai",
        "perplexity": "perplexity",
        "openrouter": "openrouter",
        "together_ai": "together",
        "fireworks_ai": "fireworks",
        "cerebras": "cerebras",
        "moonshot_ai": "moonshotai",
    }
)

# Providers that run models on the caller's own hardware. They have no list
# price, and matching their model names against hosted providers would charge
# a hosted rate for a local call, so their calls stay unpriced unless the user
# registers a price.
LOCAL_PROVIDERS: Final = frozenset({"ollama", "hosted_vllm", "lm_studio", "llamafile"})


def find_model(library: Library, provider: str, model: str) -> tuple[Provider, ModelInfo] | None:
    """Resolve `model` with the library's own matching, or return None if no price exists.

    An unknown provider name is first tried as a genai-prices provider id
    (e.g. ``"together"``). If that fails too, the library picks the provider
    from the model name, as ``calc_price`` does without a provider.
    """
    name = provider.strip().lower()
    if name in LOCAL_PROVIDERS:
        return None

    snapshot = library.get_snapshot()
    provider_id: str | None = LIBRARY_PROVIDER_IDS.get(name)
    if provider_id is None and name:
        try:
            provider_id = snapshot.find_provider(None, name, None).id
        except LookupError:
            provider_id = None

    try:
        return snapshot.find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None
