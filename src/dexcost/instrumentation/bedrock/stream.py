"""Observing Bedrock event streams without replacing them.

The caller gets botocore's own ``EventStream`` object. dexcost swaps the stream's
private generator of raw event-stream messages for one that reads each message and
passes it on unchanged, so botocore parses exactly what it would have parsed. The
patched ``EventStream.close`` (see ``__init__.py``) notifies the observer of a stream
closed early, and a finalizer covers a stream dropped unread.

Where the usage is:

- ConverseStream: the last event, ``metadata``, carries ``usage`` as Converse does.
- InvokeModelWithResponseStream: each ``chunk`` event holds the model's own JSON,
  base64-encoded. Bedrock adds ``amazon-bedrock-invocationMetrics`` to the last one.
  Anthropic models also report usage in ``message_start`` and ``message_delta``;
  dexcost reads those for the 1-hour cache writes and as a fallback.

The call is priced as soon as its usage arrives. A stream that ends, fails, is closed
or is collected before that is recorded as ``usage_unknown``: its output was billed
but never reported. Whatever happens, the call is recorded once.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from dexcost import errors
from dexcost.instrumentation.bedrock.extract import (
    INVOCATION_METRICS,
    normalise,
    service_tier_of,
    usage_from_converse,
)
from dexcost.llm import LLMCall
from dexcost.pricing import TokenUsage

logger = logging.getLogger(__name__)

# Attribute set on an observed stream so the patched close() can find its observer.
OBSERVER_ATTRIBUTE = "_dexcost_observer"

# botocore's EventStream reads raw messages from this private generator in
# __iter__ and get_initial_response.
# NOTE: a botocore release that renames it leaves Bedrock streams recorded as
# usage_unknown when they are collected, never priced.
GENERATOR_ATTRIBUTE = "_event_generator"

# A chunk is decoded only when its bytes contain one of these, because only such
# chunks can carry usage.
_USAGE_MARKERS = (b"invocationMetrics", b"message_start", b"message_delta")


class StreamObserver:
    """Collect usage from raw stream messages and finish the call exactly once."""

    __slots__ = ("__weakref__", "call", "response_model", "service_tier")

    def __init__(self, call: LLMCall, response_model: str | None, service_tier: str | None) -> None:
        self.call = call
        self.response_model = response_model
        self.service_tier = service_tier

    def observe(self, message: Any) -> None:
        headers = message.headers
        message_type = headers.get(":message-type")
        if message_type == "event":
            try:
                self.on_event(headers.get(":event-type"), message.payload)
            except (ValueError, TypeError, binascii.Error):
                # Not the JSON Bedrock documents: skip it rather than fail the stream.
                logger.debug("unreadable bedrock stream event", exc_info=True)
        elif message_type in ("exception", "error"):
            # botocore raises EventStreamError for this message once it parses it.
            code = headers.get(":exception-type") or headers.get(":error-code")
            self.finish(error_type=code if isinstance(code, str) and code else "EventStreamError")

    def on_event(self, event_type: Any, payload: bytes) -> None:
        """Read one event. Subclasses finish the call when its usage arrives."""

    def end(self) -> None:
        """Record the call after the stream ended, with the usage seen so far if any."""
        self.finish()

    def finish(
        self,
        usage: TokenUsage | None = None,
        error_type: str | None = None,
        service_tier: str | None = None,
    ) -> None:
        """Record the call. Calls after the first do nothing."""
        if self.call.finished:
            return
        try:
            self.call.finish(
                response_model=self.response_model,
                usage=usage,
                error_type=error_type,
                service_tier=service_tier or self.service_tier,
            )
        except Exception:
            errors.log_internal_error("recording a bedrock stream")


class ConverseStreamObserver(StreamObserver):
    """ConverseStream: the ``metadata`` event carries the usage."""

    __slots__ = ()

    def on_event(self, event_type: Any, payload: bytes) -> None:
        if event_type != "metadata":
            return
        body = json.loads(payload)
        if not isinstance(body, Mapping):
            return
        self.finish(
            usage=usage_from_converse(body.get("usage")),
            service_tier=service_tier_of(body.get("serviceTier")),
        )


class InvokeStreamObserver(StreamObserver):
    """InvokeModelWithResponseStream: invocation metrics, with Anthropic usage events."""

    __slots__ = ("anthropic", "anthropic_final")

    def __init__(self, call: LLMCall, response_model: str | None, service_tier: str | None) -> None:
        super().__init__(call, response_model, service_tier)
        # Anthropic's usage fields, as message_start and message_delta report them.
        self.anthropic: dict[str, Any] = {}
        self.anthropic_final = False

    def on_event(self, event_type: Any, payload: bytes) -> None:
        if event_type != "chunk":
            return
        part = json.loads(payload)
        encoded = part.get("bytes") if isinstance(part, Mapping) else None
        if not isinstance(encoded, str):
            return
        data = base64.b64decode(encoded, validate=True)
        if not any(marker in data for marker in _USAGE_MARKERS):
            return
        chunk = json.loads(data)
        if not isinstance(chunk, Mapping):
            return
        self._read_anthropic(chunk)
        metrics = chunk.get(INVOCATION_METRICS)
        if isinstance(metrics, Mapping):
            self.finish(usage=self._usage_from_metrics(metrics))

    def _read_anthropic(self, chunk: Mapping[str, Any]) -> None:
        chunk_type = chunk.get("type")
        if chunk_type == "message_start":
            message = chunk.get("message")
            usage = message.get("usage") if isinstance(message, Mapping) else None
        elif chunk_type == "message_delta":
            usage = chunk.get("usage")
            self.anthropic_final = isinstance(usage, Mapping)
        else:
            return
        if isinstance(usage, Mapping):
            self.anthropic.update({k: v for k, v in usage.items() if v is not None})

    def _one_hour_writes(self) -> Any:
        creation = self.anthropic.get("cache_creation")
        return creation.get("ephemeral_1h_input_tokens") if isinstance(creation, Mapping) else None

    def _usage_from_metrics(self, metrics: Mapping[str, Any]) -> TokenUsage | None:
        # Bedrock bills by its own metrics. Anthropic's events fill in the cache counts
        # when the metrics lack them, and the 1-hour split, which only they report.
        anthropic = self.anthropic
        return normalise(
            metrics.get("inputTokenCount"),
            metrics.get("outputTokenCount"),
            metrics.get("cacheReadInputTokenCount", anthropic.get("cache_read_input_tokens")),
            metrics.get("cacheWriteInputTokenCount", anthropic.get("cache_creation_input_tokens")),
            self._one_hour_writes(),
        )

    def end(self) -> None:
        usage = None
        if self.anthropic_final:
            anthropic = self.anthropic
            usage = normalise(
                anthropic.get("input_tokens"),
                anthropic.get("output_tokens"),
                anthropic.get("cache_read_input_tokens"),
                anthropic.get("cache_creation_input_tokens"),
                self._one_hour_writes(),
            )
        self.finish(usage=usage)


def _observe(observer: StreamObserver, message: Any) -> None:
    try:
        observer.observe(message)
    except Exception:
        errors.log_internal_error("reading a bedrock stream event")


def _observed(inner: Iterator[Any], observer: StreamObserver) -> Iterator[Any]:
    error_type: str | None = None
    completed = False
    try:
        for message in inner:
            _observe(observer, message)
            yield message
        completed = True
    except GeneratorExit:
        raise
    except BaseException as exc:
        error_type = type(exc).__name__
        raise
    finally:
        if completed:
            observer.end()
        else:
            observer.finish(error_type=error_type)


def arm_stream(stream: Any, observer: StreamObserver) -> bool:
    """Route ``stream``'s raw messages through ``observer``, or return False if it cannot."""
    inner = getattr(stream, GENERATOR_ATTRIBUTE, None)
    if inner is None or getattr(stream, OBSERVER_ATTRIBUTE, None) is not None:
        return False
    setattr(stream, GENERATOR_ATTRIBUTE, _observed(inner, observer))
    setattr(stream, OBSERVER_ATTRIBUTE, observer)
    # Safety net for a stream dropped unread or abandoned after a break: the
    # observer holds no reference to the stream, so this runs when it is collected.
    weakref.finalize(stream, observer.finish)
    return True


def close_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Wrap ``EventStream.close``: a Bedrock stream closed early is recorded now."""
    observer = getattr(instance, OBSERVER_ATTRIBUTE, None)
    if observer is not None:
        try:
            observer.finish()
        except Exception:
            errors.log_internal_error("recording a closed bedrock stream")
    return wrapped(*args, **kwargs)
