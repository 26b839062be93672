"""JSON bodies and SSE frames in the OpenAI wire format, built from plain values.

Every shape here follows the pydantic types of the ``openai`` SDK (checked
against openai 1.109 and 3.60): ``types/chat/chat_completion.py``,
``chat_completion_chunk.py``, ``completion_usage.py``,
``types/responses/response.py``, ``response_usage.py``, the
``response_*_event.py`` stream events and ``create_embedding_response.py``.
The functions are pure so that the HTTP server and the ``httpx`` mock
transports send byte-for-byte the same replies.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

JSONObject = dict[str, Any]

# Sent when a reply is scripted with ``usage=None``: the real API adds fields
# over time, and the SDK (and dexcost) must ignore ones they do not know.
UNEXPECTED_FIELD = "x_fake_unexpected_field"

# Azure OpenAI attaches content-filter verdicts to prompts and choices.
_SAFE_FILTER_RESULTS: JSONObject = {
    category: {"filtered": False, "severity": "safe"}
    for category in ("hate", "self_harm", "sexual", "violence")
}


_TOKEN_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cache_write_tokens",
)


@dataclass(frozen=True)
class FakeUsage:
    """Token counts of one reply, in the units the API bills.

    ``completion_tokens`` includes ``reasoning_tokens`` and ``prompt_tokens``
    includes ``cached_tokens``, as in the real API.
    """

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0

    def __post_init__(self) -> None:
        for name in _TOKEN_FIELDS:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.cached_tokens > self.prompt_tokens:
            raise ValueError(
                f"cached_tokens ({self.cached_tokens}) must not exceed "
                f"prompt_tokens ({self.prompt_tokens})"
            )
        if self.reasoning_tokens > self.completion_tokens:
            raise ValueError(
                f"reasoning_tokens ({self.reasoning_tokens}) must not exceed "
                f"completion_tokens ({self.completion_tokens})"
            )


def error_body(
    message: str,
    *,
    error_type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> JSONObject:
    """Build the body the API sends with every 4xx/5xx status."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def chat_usage(usage: FakeUsage) -> JSONObject:
    """Build the ``usage`` object of chat completions (``CompletionUsage``)."""
    prompt_details: JSONObject = {"cached_tokens": usage.cached_tokens, "audio_tokens": 0}
    if usage.cache_write_tokens:
        prompt_details["cache_write_tokens"] = usage.cache_write_tokens
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def responses_usage(usage: FakeUsage) -> JSONObject:
    """Build the ``usage`` object of the Responses API (``ResponseUsage``)."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def chat_completion(
    *,
    completion_id: str,
    created: int,
    model: str,
    text: str,
    choice_count: int,
    usage: FakeUsage | None,
    azure: bool,
) -> JSONObject:
    """Build a non-streamed ``chat.completion`` object."""
    choices = []
    for index in range(choice_count):
        choice: JSONObject = {
            "index": index,
            "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
        if azure:
            choice["content_filter_results"] = _SAFE_FILTER_RESULTS
        choices.append(choice)

    body: JSONObject = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": chat_usage(usage) if usage else None,
        "service_tier": "default",
        "system_fingerprint": "fp_fake0001",
    }
    if azure:
        body["prompt_filter_results"] = _prompt_filter_results()
    if usage is None:
        body[UNEXPECTED_FIELD] = {"note": "clients must ignore unknown fields"}
    return body


def chat_completion_chunks(
    *,
    completion_id: str,
    created: int,
    model: str,
    pieces: Sequence[str],
    choice_count: int,
    usage: FakeUsage | None,
    include_usage: bool,
    azure: bool,
) -> list[JSONObject]:
    """Build the ``chat.completion.chunk`` objects of one streamed completion.

    The order is the real one: a chunk with the assistant role and empty
    content, one chunk per text piece, then a chunk with ``finish_reason``.
    A last chunk with no choices carries the usage, but only when the request
    set ``stream_options.include_usage``. While usage is requested,
    every earlier chunk carries ``"usage": null``. Azure streams open with a
    chunk that has no choices, an empty model and the prompt filter results.
    """
    deltas: list[tuple[JSONObject, str | None]] = [
        ({"role": "assistant", "content": "", "refusal": None}, None),
        *[({"content": piece}, None) for piece in pieces],
        ({}, "stop"),
    ]

    chunks: list[JSONObject] = []
    if azure:
        chunks.append(_azure_filter_chunk())
    for delta, finish_reason in deltas:
        choices = [
            {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            for index in range(choice_count)
        ]
        chunk = _chunk(completion_id, created, model, choices)
        if include_usage:
            chunk["usage"] = None
        chunks.append(chunk)

    if usage is None:
        chunks[-1][UNEXPECTED_FIELD] = {"note": "clients must ignore unknown fields"}
    elif include_usage:
        usage_chunk = _chunk(completion_id, created, model, [])
        usage_chunk["usage"] = chat_usage(usage)
        chunks.append(usage_chunk)
    return chunks


def _chunk(completion_id: str, created: int, model: str, choices: list[JSONObject]) -> JSONObject:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_fake0001",
        "choices": choices,
    }


def _prompt_filter_results() -> list[JSONObject]:
    return [{"prompt_index": 0, "content_filter_results": _SAFE_FILTER_RESULTS}]


def _azure_filter_chunk() -> JSONObject:
    return {
        "id": "",
        "object": "",
        "created": 0,
        "model": "",
        "choices": [],
        "prompt_filter_results": _prompt_filter_results(),
    }


def response_object(
    *,
    response_id: str,
    message_id: str,
    created: int,
    model: str,
    request: JSONObject,
    text: str | None,
    usage: FakeUsage | None,
    completed: bool,
) -> JSONObject:
    """Build a Responses API ``response`` object.

    An in-progress response (``completed=False``) has no output and no usage,
    as in the ``response.created`` and ``response.in_progress`` events.
    """
    output = [output_message(message_id, text, completed=True)] if completed else []
    body: JSONObject = {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "completed" if completed else "in_progress",
        "completed_at": created if completed else None,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": request.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": responses_usage(usage) if usage and completed else None,
        "user": None,
        "metadata": request.get("metadata") or {},
    }
    if completed and usage is None:
        body[UNEXPECTED_FIELD] = {"note": "clients must ignore unknown fields"}
    return body


def output_message(message_id: str, text: str | None, *, completed: bool) -> JSONObject:
    """Build the assistant ``message`` output item; ``text=None`` leaves it empty."""
    content = [output_text_part(text)] if text is not None else []
    return {
        "id": message_id,
        "type": "message",
        "status": "completed" if completed else "in_progress",
        "role": "assistant",
        "content": content,
    }


def output_text_part(text: str) -> JSONObject:
    """Build an ``output_text`` content part."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response_stream_events(
    *,
    response_id: str,
    message_id: str,
    created: int,
    model: str,
    request: JSONObject,
    pieces: Sequence[str],
    usage: FakeUsage | None,
) -> list[JSONObject]:
    """Build the Responses API stream events for one text reply, in the real order.

    Each event has its ``type`` and a ``sequence_number`` counting from 0. The
    usage only arrives in the last event, ``response.completed``.
    """

    def response(completed: bool) -> JSONObject:
        return response_object(
            response_id=response_id,
            message_id=message_id,
            created=created,
            model=model,
            request=request,
            text=text,
            usage=usage,
            completed=completed,
        )

    text = "".join(pieces)
    position = {"item_id": message_id, "output_index": 0, "content_index": 0}
    events: list[JSONObject] = [
        {"type": "response.created", "response": response(False)},
        {"type": "response.in_progress", "response": response(False)},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": output_message(message_id, None, completed=False),
        },
        {"type": "response.content_part.added", **position, "part": output_text_part("")},
        *[
            {"type": "response.output_text.delta", **position, "delta": piece, "logprobs": []}
            for piece in pieces
        ],
        {"type": "response.output_text.done", **position, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **position, "part": output_text_part(text)},
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": output_message(message_id, text, completed=True),
        },
        {"type": "response.completed", "response": response(True)},
    ]
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


def embedding_list(
    *,
    model: str,
    inputs: Sequence[str],
    dimensions: int,
    base64_encoded: bool,
    usage: FakeUsage | None,
) -> JSONObject:
    """Build a ``list`` of embeddings, one per input, with deterministic vectors.

    With ``base64_encoded`` each vector is little-endian float32 bytes in
    base64, which is what openai 1.x requests by default and decodes itself.
    """
    data = []
    for index, text in enumerate(inputs):
        vector = _vector_for(text, dimensions)
        encoded: list[float] | str = vector
        if base64_encoded:
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": encoded})

    usage_body = None
    if usage is not None:
        usage_body = {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage_body}


def _vector_for(text: str, dimensions: int) -> list[float]:
    """Derive a vector in [-1, 1] from the text, so equal inputs embed equally.

    Each value is a multiple of 1/128, which float32 stores exactly, so the
    base64 and float encodings decode to the same numbers.
    """
    digest = b""
    counter = 0
    while len(digest) < dimensions:
        digest += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    return [(byte - 128) / 128 for byte in digest[:dimensions]]


def sse_data_frame(payload: JSONObject | str) -> bytes:
    """Encode one ``data:`` server-sent event; a string is sent verbatim (``[DONE]``)."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def sse_event_frame(event: JSONObject) -> bytes:
    """Encode one named server-sent event, named after the event's ``type``."""
    data = json.dumps(event, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


def split_text(text: str, count: int) -> list[str]:
    """Split text into ``count`` non-empty pieces at word boundaries where possible.

    Joining the pieces gives the text back. Fewer pieces come back when the
    text is too short for ``count``.
    """
    if count < 1:
        raise ValueError(f"chunk count must be at least 1, got {count}")
    words = text.split(" ")
    if len(words) < count:
        return _split_characters(text, count)

    pieces: list[str] = []
    start = 0
    for piece_index in range(count):
        end = round(len(words) * (piece_index + 1) / count)
        piece = " ".join(words[start:end])
        if piece_index < count - 1:
            piece += " "
        pieces.append(piece)
        start = end
    return pieces


def _split_characters(text: str, count: int) -> list[str]:
    if not text:
        return [""]
    count = min(count, len(text))
    bounds = [round(len(text) * index / count) for index in range(count + 1)]
    return [text[bounds[index] : bounds[index + 1]] for index in range(count)]
