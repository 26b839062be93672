"""A fake Bedrock runtime API on 127.0.0.1 speaking the REST wire format boto3 expects.

Routes: ``POST /model/{modelId}/converse``, ``/converse-stream``, ``/invoke`` and
``/invoke-with-response-stream``, plus STS ``GetCallerIdentity`` on ``POST /`` so a
non-Bedrock client has something to call. The two stream routes respond in the AWS
binary event-stream framing (``application/vnd.amazon.eventstream``); botocore's
own decoder reading them is what shows the framing is right.

Usage follows Bedrock's convention: ``input`` excludes the cache read and cache write
tokens, which are reported on their own.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from dexcost.demo._server import LoopbackHTTPServer, WireResponse

EVENT_STREAM = "application/vnd.amazon.eventstream"
# Real Bedrock stream events carry a "p" member of filler characters that hides the
# length of the text; botocore ignores it.
PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
_STRING_HEADER = 7  # header value type of a UTF-8 string in the event-stream format


@dataclass(frozen=True)
class BedrockUsage:
    """Token counts as Bedrock reports them: ``input`` without the cache tokens."""

    input: int = 1_000
    output: int = 300
    cache_read: int | None = None
    cache_write: int | None = None
    cache_write_1h: int | None = None


@dataclass(frozen=True)
class BedrockReply:
    """One scripted reply; the defaults give a successful call."""

    usage: BedrockUsage = field(default_factory=BedrockUsage)
    text: tuple[str, ...] = ("Hello ", "there")
    status: int = 200
    error_code: str = "ValidationException"
    # Leave out the usage: no token headers, no metadata event, no invocation metrics.
    omit_usage: bool = False
    # Stream routes: replace the events after this many text deltas with an exception.
    fail_after: int | None = None
    service_tier: str | None = None
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class Request:
    """What the fake received: the decoded model id, the route and the JSON body."""

    model_id: str
    route: str
    body: Any
    headers: Mapping[str, str]


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """Frame one event-stream message: prelude, prelude CRC, headers, payload, CRC."""
    encoded = b""
    for name, value in headers.items():
        name_bytes, value_bytes = name.encode(), value.encode()
        encoded += bytes([len(name_bytes)]) + name_bytes + bytes([_STRING_HEADER])
        encoded += struct.pack(">H", len(value_bytes)) + value_bytes
    total_length = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total_length, len(encoded))
    prelude = prelude + struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _event(event_type: str, body: Mapping[str, Any]) -> bytes:
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_message(headers, json.dumps({**body, "p": PADDING}).encode())


def _exception(code: str) -> bytes:
    headers = {
        ":exception-type": code,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, json.dumps({"message": "The model stream failed."}).encode())


def _chunk(body: Mapping[str, Any]) -> bytes:
    encoded = base64.b64encode(json.dumps(body).encode()).decode()
    return _event("chunk", {"bytes": encoded})


def family_of(model_id: str) -> str:
    """Return the body format of a model: anthropic, nova, llama or embed."""
    if "embed" in model_id:
        return "embed"
    if "anthropic." in model_id:
        return "anthropic"
    if "nova" in model_id:
        return "nova"
    return "llama"


class FakeBedrock:
    """Scripted replies served over real HTTP on 127.0.0.1; use as a context manager."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._replies: deque[BedrockReply] = deque()
        self._requests: list[Request] = []
        self._http = LoopbackHTTPServer(self.handle)

    def __enter__(self) -> FakeBedrock:
        self._http.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.stop()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._http.port}"

    def enqueue(self, *replies: BedrockReply) -> None:
        with self._lock:
            self._replies.extend(replies)

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def _next_reply(self) -> BedrockReply:
        with self._lock:
            return self._replies.popleft() if self._replies else BedrockReply()

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> WireResponse:
        if method == "POST" and target == "/":
            return self._sts(body)
        parts = target.split("?")[0].split("/")
        if method != "POST" or len(parts) != 4 or parts[1] != "model":
            return self._error(404, "ResourceNotFoundException")
        model_id, route = unquote(parts[2]), parts[3]
        parsed = json.loads(body) if body else None
        with self._lock:
            self._requests.append(Request(model_id, route, parsed, dict(headers)))
        reply = self._next_reply()
        if reply.delay_seconds:
            time.sleep(reply.delay_seconds)
        if reply.status != 200:
            return self._error(reply.status, reply.error_code)
        family = family_of(model_id)
        if route == "converse":
            return self._converse(reply)
        if route == "converse-stream":
            return self._converse_stream(reply)
        if route == "invoke":
            return self._invoke(reply, model_id, family)
        if route == "invoke-with-response-stream":
            return self._invoke_stream(reply, model_id, family)
        return self._error(404, "ResourceNotFoundException")

    # --- replies ---------------------------------------------------------------

    @staticmethod
    def _headers(content_type: str, reply: BedrockReply) -> dict[str, str]:
        headers = {
            "Content-Type": content_type,
            "x-amzn-RequestId": "4b3e2d1c-0000-4000-8000-000000000001",
        }
        if reply.service_tier is not None:
            headers["X-Amzn-Bedrock-Service-Tier"] = reply.service_tier
        return headers

    @staticmethod
    def _error(status: int, code: str) -> WireResponse:
        headers = {
            "Content-Type": "application/json",
            "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        }
        body = json.dumps({"message": f"The fake Bedrock API answered {status} {code}."})
        return WireResponse(status, headers, body.encode())

    @staticmethod
    def _sts(body: bytes) -> WireResponse:
        if b"Action=GetCallerIdentity" not in body:
            return FakeBedrock._error(400, "InvalidAction")
        xml = (
            '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/test</Arn>"
            "<UserId>AIDAEXAMPLE</UserId><Account>123456789012</Account>"
            "</GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId>"
            "</ResponseMetadata></GetCallerIdentityResponse>"
        )
        return WireResponse(200, {"Content-Type": "text/xml"}, xml.encode())

    @staticmethod
    def _converse_usage(usage: BedrockUsage) -> dict[str, Any]:
        reads, writes = usage.cache_read or 0, usage.cache_write or 0
        body: dict[str, Any] = {
            "inputTokens": usage.input,
            "outputTokens": usage.output,
            "totalTokens": usage.input + usage.output + reads + writes,
        }
        if usage.cache_read is not None:
            body["cacheReadInputTokens"] = usage.cache_read
        if usage.cache_write is not None:
            body["cacheWriteInputTokens"] = usage.cache_write
            one_hour = usage.cache_write_1h or 0
            details = [{"ttl": "1h", "inputTokens": one_hour}] if one_hour else []
            if writes - one_hour:
                details.append({"ttl": "5m", "inputTokens": writes - one_hour})
            body["cacheDetails"] = details
        return body

    def _converse(self, reply: BedrockReply) -> WireResponse:
        message = {"role": "assistant", "content": [{"text": "".join(reply.text)}]}
        body: dict[str, Any] = {
            "output": {"message": message},
            "stopReason": "end_turn",
            "metrics": {"latencyMs": 412},
            "usage": self._converse_usage(reply.usage),
        }
        if reply.omit_usage:
            # Only a proxy that strips usage does this, because the real API always sends it.
            del body["usage"]
        if reply.service_tier is not None:
            body["serviceTier"] = {"type": reply.service_tier}
        headers = self._headers("application/json", reply)
        return WireResponse(200, headers, json.dumps(body).encode())

    def _converse_stream(self, reply: BedrockReply) -> WireResponse:
        frames = [_event("messageStart", {"role": "assistant"})]
        for index, text in enumerate(reply.text):
            if reply.fail_after is not None and index >= reply.fail_after:
                frames.append(_exception("modelStreamErrorException"))
                return WireResponse(200, self._headers(EVENT_STREAM, reply), frames=tuple(frames))
            frames.append(
                _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}})
            )
        frames.append(_event("contentBlockStop", {"contentBlockIndex": 0}))
        frames.append(_event("messageStop", {"stopReason": "end_turn"}))
        if not reply.omit_usage:
            metadata: dict[str, Any] = {
                "usage": self._converse_usage(reply.usage),
                "metrics": {"latencyMs": 398},
            }
            if reply.service_tier is not None:
                metadata["serviceTier"] = {"type": reply.service_tier}
            frames.append(_event("metadata", metadata))
        return WireResponse(200, self._headers(EVENT_STREAM, reply), frames=tuple(frames))

    @staticmethod
    def _invoke_body(reply: BedrockReply, model_id: str, family: str) -> dict[str, Any]:
        usage, text = reply.usage, "".join(reply.text)
        if family == "embed":
            return {"embedding": [0.125, -0.5, 0.25], "inputTextTokenCount": usage.input}
        if family == "anthropic":
            return {
                "id": "msg_bdrk_01",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-20250514",
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "usage": {
                    "input_tokens": usage.input,
                    "cache_read_input_tokens": usage.cache_read or 0,
                    "cache_creation_input_tokens": usage.cache_write or 0,
                    "output_tokens": usage.output,
                },
            }
        if family == "nova":
            return {
                "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": usage.input, "outputTokens": usage.output},
            }
        return {
            "generation": text,
            "prompt_token_count": usage.input,
            "generation_token_count": usage.output,
            "stop_reason": "stop",
        }

    def _invoke(self, reply: BedrockReply, model_id: str, family: str) -> WireResponse:
        headers = self._headers("application/json", reply)
        headers["X-Amzn-Bedrock-Invocation-Latency"] = "412"
        if not reply.omit_usage:
            usage = reply.usage
            headers["X-Amzn-Bedrock-Input-Token-Count"] = str(usage.input)
            headers["X-Amzn-Bedrock-Output-Token-Count"] = str(usage.output)
            if usage.cache_read is not None:
                headers["X-Amzn-Bedrock-Cache-Read-Input-Token-Count"] = str(usage.cache_read)
            if usage.cache_write is not None:
                headers["X-Amzn-Bedrock-Cache-Write-Input-Token-Count"] = str(usage.cache_write)
        body = self._invoke_body(reply, model_id, family)
        return WireResponse(200, headers, json.dumps(body).encode())

    @staticmethod
    def _metrics(usage: BedrockUsage) -> dict[str, Any]:
        metrics: dict[str, Any] = {
            "inputTokenCount": usage.input,
            "outputTokenCount": usage.output,
            "invocationLatency": 2048,
            "firstByteLatency": 311,
        }
        if usage.cache_read is not None:
            metrics["cacheReadInputTokenCount"] = usage.cache_read
        if usage.cache_write is not None:
            metrics["cacheWriteInputTokenCount"] = usage.cache_write
        return metrics

    @staticmethod
    def _anthropic_chunks(reply: BedrockReply) -> list[dict[str, Any]]:
        usage = reply.usage
        start_usage: dict[str, Any] = {
            "input_tokens": usage.input,
            "cache_read_input_tokens": usage.cache_read or 0,
            "cache_creation_input_tokens": usage.cache_write or 0,
            "output_tokens": 1,
        }
        if usage.cache_write_1h is not None:
            start_usage["cache_creation"] = {
                "ephemeral_5m_input_tokens": (usage.cache_write or 0) - usage.cache_write_1h,
                "ephemeral_1h_input_tokens": usage.cache_write_1h,
            }
        chunks: list[dict[str, Any]] = [
            {
                "type": "message_start",
                "message": {
                    "id": "msg_bdrk_01",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-sonnet-4-20250514",
                    "content": [],
                    "stop_reason": None,
                    "usage": start_usage,
                },
            },
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        ]
        chunks += [
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
            for t in reply.text
        ]
        chunks += [
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": usage.output},
            },
            {"type": "message_stop"},
        ]
        return chunks

    def _invoke_stream(self, reply: BedrockReply, model_id: str, family: str) -> WireResponse:
        usage = reply.usage
        if family == "anthropic":
            chunks = self._anthropic_chunks(reply)
        elif family == "nova":
            chunks = [{"messageStart": {"role": "assistant"}}]
            chunks += [{"contentBlockDelta": {"delta": {"text": t}}} for t in reply.text]
            chunks.append({"messageStop": {"stopReason": "end_turn"}})
            chunks.append(
                {"metadata": {"usage": {"inputTokens": usage.input, "outputTokens": usage.output}}}
            )
        else:
            chunks = [
                {"generation": t, "prompt_token_count": None, "generation_token_count": i + 1}
                for i, t in enumerate(reply.text)
            ]
            chunks.append(
                {
                    "generation": "",
                    "prompt_token_count": usage.input,
                    "generation_token_count": usage.output,
                    "stop_reason": "stop",
                }
            )
        if not reply.omit_usage:
            chunks[-1] = {**chunks[-1], "amazon-bedrock-invocationMetrics": self._metrics(usage)}
        frames = []
        for index, chunk in enumerate(chunks):
            if reply.fail_after is not None and index >= reply.fail_after:
                frames.append(_exception("modelStreamErrorException"))
                break
            frames.append(_chunk(chunk))
        headers = self._headers(EVENT_STREAM, reply)
        headers["X-Amzn-Bedrock-Content-Type"] = "application/json"
        return WireResponse(200, headers, frames=tuple(frames))
