"""Provider detection for OpenAI-compatible endpoints, from the client's base URL.

Many providers speak the OpenAI API, and apps call them with the openai SDK and a
``base_url``. The provider decides the price (the same model name can cost differently
on Groq and on OpenRouter), so the host picks ``gen_ai.provider.name``.
"""

from __future__ import annotations

from typing import Final

OPENAI: Final = "openai"

# Host (or a parent domain of it) -> OpenTelemetry gen_ai.provider.name.
_HOSTS: Final = {
    "openrouter.ai": "openrouter",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.x.ai": "x_ai",
    "api.mistral.ai": "mistral_ai",
    "api.together.xyz": "together_ai",
    "api.fireworks.ai": "fireworks_ai",
    "api.perplexity.ai": "perplexity",
    "api.cerebras.ai": "cerebras",
    "api.moonshot.ai": "moonshot_ai",
    "generativelanguage.googleapis.com": "gcp.gemini",
}

# Ollama's OpenAI-compatible server listens on this port by default.
OLLAMA_PORT: Final = 11434

# Providers whose responses state what the call cost; that figure wins over the price
# table. OpenRouter sends ``usage.cost`` in USD. xAI sends ``usage.cost_in_usd_ticks``,
# the amount billed after discounts and tool fees, where 10**10 ticks are one dollar.
REPORTS_COST: Final = frozenset({"openrouter", "x_ai"})


def provider_for(host: str | None, port: int | None) -> str:
    """Return the provider name for a base URL's host and port; ``openai`` by default."""
    if port == OLLAMA_PORT:
        return "ollama"
    if not host:
        return OPENAI
    name = host.lower().rstrip(".")
    while name:
        provider = _HOSTS.get(name)
        if provider is not None:
            return provider
        _, _, name = name.partition(".")
    return OPENAI
