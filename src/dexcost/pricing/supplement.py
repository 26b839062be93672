"""Rates genai-prices lacks, for models whose bills depend on them.

genai-prices 0.2.5 prices OpenAI's audio-preview chat models at their text rates
only, so their audio tokens would be billed as text at a fraction of the real price.
The entries below add the missing audio rates. Each entry names the exact model id
the API reports (dated snapshots, not aliases) and the source of its rates.

A rate here never replaces one the library has: it only fills a gap, so a later
genai-prices release that adds the rate takes over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Final

SUPPLEMENT_NAME: Final = "dexcost supplement 2026-12-04"

_LITELLM_TABLE: Final = (
    "LiteLLM model_prices_and_context_window_backup.json as shipped in litellm 1.110.2 "
    "(input_cost_per_audio_token, output_cost_per_audio_token), read 2026-12-04"
)


@dataclass(frozen=True)
class SupplementEntry:
    """Extra rates for one model: genai-prices price key -> USD per million tokens."""

    rates: Mapping[str, Decimal]
    source: str


def _audio(input_per_mtok: str, output_per_mtok: str) -> SupplementEntry:
    return SupplementEntry(
        MappingProxyType(
            {
                "input_audio_mtok": Decimal(input_per_mtok),
                "output_audio_mtok": Decimal(output_per_mtok),
            }
        ),
        _LITELLM_TABLE,
    )


# (genai-prices provider id, model id as the API reports it) -> entry.
# NOTE: the undated aliases (gpt-4o-audio-preview) and the retired 2024-10-01 snapshot
# are left to the library, so their audio tokens are still priced at text rates.
SUPPLEMENT: Final[Mapping[tuple[str, str], SupplementEntry]] = MappingProxyType(
    {
        ("openai", "gpt-4o-audio-preview-2024-12-17"): _audio("40", "80"),
        ("openai", "gpt-4o-audio-preview-2025-06-03"): _audio("40", "80"),
        ("openai", "gpt-4o-mini-audio-preview-2024-12-17"): _audio("10", "20"),
    }
)


def find_supplement(provider_id: str, model: str) -> SupplementEntry | None:
    """Return the extra rates for a model, or None when the library needs no help."""
    return SUPPLEMENT.get((provider_id, model))
