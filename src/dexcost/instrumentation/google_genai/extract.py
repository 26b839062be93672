"""Reading model and usage out of google-genai (Gemini API and Vertex AI) responses.

Gemini's ``usage_metadata.prompt_token_count`` already INCLUDES the tokens read from
the context cache (the SDK's field description: "When `cached_content` is set, this
also includes the number of tokens in the cached content"), which are also reported
as ``cached_content_token_count``. That matches dexcost's inclusive
:class:`TokenUsage`, so the prompt count is the input total as it is.
Audio is billed at its own rate on some models (gemini-2.5-flash), so the AUDIO
entries of the per-modality details become the audio parts of each total.
``thoughts_token_count`` is reported apart from ``candidates_token_count`` (the SDK's
``total_token_count`` is their sum plus the prompt), and thinking is billed as
output, so the output total is the sum of the two and the thoughts are its reasoning
part. Responses may be SDK models or plain dicts, so every read goes through
:func:`field`.
"""

from __future__ import annotations

from typing import Any

from dexcost.instrumentation._fields import InvalidUsage, field, token_count
from dexcost.pricing import TokenUsage

GEMINI = "gcp.gemini"
VERTEX_AI = "gcp.vertex_ai"
# OTel gen_ai.operation.name values.
GENERATE_CONTENT = "generate_content"
EMBEDDINGS = "embeddings"

MODEL_PREFIX = "models/"


def model_name(value: Any) -> str | None:
    """Return a model name without the API's ``models/`` prefix; None when not a name."""
    if not isinstance(value, str) or not value:
        return None
    return value[len(MODEL_PREFIX) :] if value.startswith(MODEL_PREFIX) else value


_AUDIO = "AUDIO"


def _audio_count(details: Any) -> int:
    """Return the AUDIO token count of a ``*_tokens_details`` list, 0 when absent."""
    if not isinstance(details, list):
        return 0
    total = 0
    for entry in details:
        modality = field(entry, "modality")
        # The SDK parses the modality into an enum whose value is the API's string.
        name = getattr(modality, "value", modality)
        if name == _AUDIO:
            total += token_count(field(entry, "token_count"))
    return total


def usage_from_metadata(metadata: Any) -> TokenUsage | None:
    """Convert ``usage_metadata`` of a content response; None when absent or invalid.

    A negative or non-integer count is a provider or proxy bug. Pricing around it
    would under- or over-bill, so the whole usage is treated as unknown instead.
    NOTE: ``tool_use_prompt_token_count`` (tool results fed back as input) is not
    added to the input. Whether Gemini bills it on top of the prompt count is unchecked.
    """
    prompt = field(metadata, "prompt_token_count")
    if prompt is None:
        return None
    try:
        input_tokens = token_count(prompt)
        cached = token_count(field(metadata, "cached_content_token_count"))
        candidates = token_count(field(metadata, "candidates_token_count"))
        thoughts = token_count(field(metadata, "thoughts_token_count"))
        input_audio = _audio_count(field(metadata, "prompt_tokens_details"))
        cached_audio = _audio_count(field(metadata, "cache_tokens_details"))
        output_audio = _audio_count(field(metadata, "candidates_tokens_details"))
    except InvalidUsage:
        return None
    if cached > input_tokens or input_audio > input_tokens or cached_audio > cached:
        return None
    if output_audio > candidates:
        return None
    return TokenUsage(
        input_tokens=input_tokens,
        output_tokens=candidates + thoughts,
        cache_read_tokens=cached,
        reasoning_tokens=thoughts,
        input_audio_tokens=input_audio,
        cache_audio_read_tokens=cached_audio,
        output_audio_tokens=output_audio,
    )


def read_content_response(response: Any) -> tuple[str | None, TokenUsage | None]:
    """Return (response model, usage) of a ``GenerateContentResponse``."""
    model = model_name(field(response, "model_version"))
    return model, usage_from_metadata(field(response, "usage_metadata"))


def read_embed_response(response: Any) -> TokenUsage | None:
    """Return the input usage of an ``EmbedContentResponse``; None when not reported.

    The SDK fills ``usage_metadata`` when the Gemini API response has
    ``usageMetadata``; Vertex AI reports ``statistics.token_count`` per embedding.
    NOTE: the Vertex AI branch follows the SDK's types and is not run by the tests.
    """
    try:
        prompt = field(field(response, "usage_metadata"), "prompt_token_count")
        if prompt is not None:
            return TokenUsage(input_tokens=token_count(prompt))
        embeddings = field(response, "embeddings")
        if not isinstance(embeddings, list) or not embeddings:
            return None
        total = 0
        for embedding in embeddings:
            tokens = field(field(embedding, "statistics"), "token_count")
            # Vertex AI sends the count as a JSON number, which the SDK types as float.
            if isinstance(tokens, float) and tokens.is_integer():
                tokens = int(tokens)
            if tokens is None:
                return None
            total += token_count(tokens)
    except InvalidUsage:
        return None
    return TokenUsage(input_tokens=total)
