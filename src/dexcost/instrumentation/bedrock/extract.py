"""Reading model ids and token usage out of Bedrock runtime responses.

Bedrock reports input tokens the way Anthropic does: ``inputTokens`` (Converse), the
``X-Amzn-Bedrock-Input-Token-Count`` header (InvokeModel) and ``inputTokenCount``
(stream invocation metrics) all leave out the tokens read from or written to the
prompt cache, which come in their own fields. dexcost's :class:`TokenUsage` counts
input inclusively, so the three are added up here. A count that is negative or not a
whole number makes the whole usage unknown: pricing around it would under- or
over-bill.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dexcost.instrumentation._fields import InvalidUsage, token_count
from dexcost.pricing import TokenUsage

BEDROCK = "aws.bedrock"
# OTel gen_ai.operation.name values.
CHAT = "chat"
EMBEDDINGS = "embeddings"

# InvokeModel usage headers, lower-cased as botocore stores them in
# ResponseMetadata.HTTPHeaders. The input count excludes the two cache counts.
INPUT_HEADER = "x-amzn-bedrock-input-token-count"
OUTPUT_HEADER = "x-amzn-bedrock-output-token-count"
CACHE_READ_HEADER = "x-amzn-bedrock-cache-read-input-token-count"
CACHE_WRITE_HEADER = "x-amzn-bedrock-cache-write-input-token-count"

# Key of the counts Bedrock adds to the last chunk of InvokeModelWithResponseStream.
INVOCATION_METRICS = "amazon-bedrock-invocationMetrics"

# TTL value of the 1-hour part of Converse ``usage.cacheDetails``.
ONE_HOUR_TTL = "1h"


def pricing_model_id(model_id: str) -> str:
    """Return the id to price ``model_id`` by: the resource id inside an ARN.

    A foundation-model ARN ends in ``foundation-model/<model id>`` and a
    cross-region inference profile ARN in ``inference-profile/<profile id>``. The price
    table lists both kinds of id. Plain ids, including the ``us.``, ``eu.``,
    ``apac.`` and ``global.`` profile ids, are kept as they are: the price table has
    separate rates for global and regional profiles. An application inference
    profile or provisioned model ARN ends in an opaque id and stays unpriced.
    """
    if model_id.startswith("arn:"):
        resource = model_id.rpartition("/")[2]
        if resource:
            return resource
    return model_id


def operation_of(model_id: str) -> str:
    """Return the OTel operation name of an InvokeModel call to ``model_id``."""
    # Bedrock's embedding model ids all contain "embed" (amazon.titan-embed-text-v2:0,
    # cohere.embed-english-v3, amazon.nova-2-multimodal-embeddings-v1:0).
    return EMBEDDINGS if "embed" in model_id else CHAT


def normalise(
    uncached: Any, output: Any, cache_read: Any, cache_write: Any, cache_write_1h: Any = None
) -> TokenUsage | None:
    """Build an inclusive :class:`TokenUsage` from Bedrock's separate counts.

    ``uncached`` is the input count without cache tokens, and None there means no
    usage was reported. Returns None when a count is invalid or the 1-hour cache writes
    exceed all cache writes.
    """
    if uncached is None:
        return None
    try:
        counts = [token_count(value) for value in (uncached, output, cache_read, cache_write)]
        one_hour = token_count(cache_write_1h)
    except InvalidUsage:
        return None
    uncached_tokens, output_tokens, read_tokens, write_tokens = counts
    if one_hour > write_tokens:
        return None
    return TokenUsage(
        input_tokens=uncached_tokens + read_tokens + write_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=read_tokens,
        cache_write_tokens=write_tokens,
        cache_write_1h_tokens=one_hour,
    )


def _one_hour_writes(details: Any) -> Any:
    """Sum the 1-hour entries of Converse ``cacheDetails``, or return None when there are none."""
    if not isinstance(details, list):
        return None
    total: Any = None
    for detail in details:
        if isinstance(detail, Mapping) and detail.get("ttl") == ONE_HOUR_TTL:
            tokens = detail.get("inputTokens")
            if not isinstance(tokens, int) or isinstance(tokens, bool):
                return -1  # normalise() rejects a negative count, so the usage becomes unknown
            total = (total or 0) + tokens
    return total


def usage_from_converse(usage: Any) -> TokenUsage | None:
    """Convert the ``usage`` of a Converse response or ConverseStream metadata event."""
    if not isinstance(usage, Mapping):
        return None
    return normalise(
        usage.get("inputTokens"),
        usage.get("outputTokens"),
        usage.get("cacheReadInputTokens"),
        usage.get("cacheWriteInputTokens"),
        _one_hour_writes(usage.get("cacheDetails")),
    )


def _header_count(headers: Mapping[str, Any], name: str) -> Any:
    """Return a header's token count as an int, None when absent, -1 when malformed."""
    value = headers.get(name)
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else ""
    return int(text) if text.isascii() and text.isdigit() else -1


def usage_from_headers(headers: Any) -> TokenUsage | None:
    """Convert the InvokeModel usage headers, or return None when Bedrock sent none."""
    if not isinstance(headers, Mapping):
        return None
    return normalise(
        _header_count(headers, INPUT_HEADER),
        _header_count(headers, OUTPUT_HEADER),
        _header_count(headers, CACHE_READ_HEADER),
        _header_count(headers, CACHE_WRITE_HEADER),
    )


def response_headers(response: Any) -> Any:
    """Return ``ResponseMetadata.HTTPHeaders`` of a parsed botocore response."""
    metadata = response.get("ResponseMetadata") if isinstance(response, Mapping) else None
    return metadata.get("HTTPHeaders") if isinstance(metadata, Mapping) else None


def service_tier_of(value: Any) -> str | None:
    """Return the tier of a ``serviceTier`` member: ``{"type": ...}`` or a header string."""
    if isinstance(value, Mapping):
        value = value.get("type")
    return value if isinstance(value, str) and value else None
