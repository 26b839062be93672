"""Token counts of one LLM call, in the OpenTelemetry GenAI meaning.

Totals are inclusive: ``input_tokens`` contains cached and audio input tokens,
and ``output_tokens`` contains reasoning and audio output tokens. The pricer
splits them into disjoint parts, so a sub-count is never billed twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Normalised token counts reported by one LLM call."""

    input_tokens: int = 0
    """All prompt tokens, including ``cache_read_tokens`` and ``cache_write_tokens``."""
    output_tokens: int = 0
    """All completion tokens, including ``reasoning_tokens`` and ``output_audio_tokens``."""
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    """All cache-creation tokens, with both the 5-minute and the 1-hour TTL."""
    cache_write_1h_tokens: int = 0
    """Part of ``cache_write_tokens`` written with the 1-hour TTL."""
    reasoning_tokens: int = 0
    """Part of ``output_tokens``."""
    input_audio_tokens: int = 0
    """Part of ``input_tokens``."""
    cache_audio_read_tokens: int = 0
    """Part of ``cache_read_tokens`` (and of ``input_audio_tokens``)."""
    output_audio_tokens: int = 0
    """Part of ``output_tokens``."""


# Usage key in genai-prices for each TokenUsage field, in field order. The
# position of a field in this tuple is its index in `usage_counts()`.
LIBRARY_USAGE_KEYS: Final[tuple[tuple[str, str], ...]] = (
    ("input_tokens", "input_tokens"),
    ("output_tokens", "output_tokens"),
    ("cache_read_tokens", "cache_read_tokens"),
    ("cache_write_tokens", "cache_write_tokens"),
    ("cache_write_1h_tokens", "cache_write_1h_tokens"),
    ("reasoning_tokens", "output_reasoning_tokens"),
    ("input_audio_tokens", "input_audio_tokens"),
    ("cache_audio_read_tokens", "cache_audio_read_tokens"),
    ("output_audio_tokens", "output_audio_tokens"),
)

INPUT_TOKENS_INDEX: Final = 0


def _dimensions(**values: str) -> Mapping[str, str]:
    return MappingProxyType({"family": "tokens", **values})


# Dimensions of the reported units, as genai-prices 0.2.3 defines them in
# genai_prices/data_units.py. A unit is part of another when its dimensions
# are a superset, so these decide which counts are sub-counts of which.
# User-registered prices use this table because they must work without the
# library. A test compares it with the library's registry.
REPORTED_UNIT_DIMENSIONS: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {
        "input_tokens": _dimensions(direction="input"),
        "output_tokens": _dimensions(direction="output"),
        "cache_read_tokens": _dimensions(direction="input", token_type="cache_read"),
        "cache_write_tokens": _dimensions(direction="input", token_type="cache_write"),
        "cache_write_1h_tokens": _dimensions(
            direction="input", token_type="cache_write", cache_ttl="1h"
        ),
        "output_reasoning_tokens": _dimensions(direction="output", token_type="reasoning"),
        "input_audio_tokens": _dimensions(direction="input", modality="audio"),
        "cache_audio_read_tokens": _dimensions(
            direction="input", modality="audio", token_type="cache_read"
        ),
        "output_audio_tokens": _dimensions(direction="output", modality="audio"),
    }
)


_read_counts: Final = attrgetter(*(field for field, _ in LIBRARY_USAGE_KEYS))


def usage_counts(usage: TokenUsage) -> tuple[int, ...] | None:
    """Return the counts of `usage` in `LIBRARY_USAGE_KEYS` order.

    Returns None when a count is negative or not a number (e.g. None from a
    faulty SDK response), because such usage cannot be priced. A float count
    passes here, and `PriceSet.cost` rejects it if it affects the cost.
    """
    counts: tuple[int, ...] = _read_counts(usage)
    try:
        if min(counts) >= 0:
            return counts
    except TypeError:
        pass
    return None
