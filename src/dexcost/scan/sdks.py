"""What the scanner knows about libraries: which calls cost money and who records them.

Everything here is matched against names in source code, never against imported
modules, so the scanner needs none of these libraries installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Operations:
    """Method names that send a billed request, after a resource path.

    ``resource`` is matched against the attribute names just before the method, so
    ``("chat", "completions")`` matches ``client.chat.completions.create`` and
    ``client.beta.chat.completions.parse``. An empty ``resource`` matches any path.
    """

    resource: tuple[str, ...]
    methods: frozenset[str]


@dataclass(frozen=True)
class LLMLibrary:
    """An LLM SDK: the calls that dexcost patches and other billed calls that it does not."""

    name: str
    instrumented: tuple[Operations, ...]
    not_instrumented: tuple[Operations, ...] = ()


def _ops(resource: tuple[str, ...], *methods: str) -> Operations:
    return Operations(resource, frozenset(methods))


_OPENAI_AUDIO = (
    _ops(("speech",), "create"),
    _ops(("transcriptions",), "create"),
    _ops(("translations",), "create"),
)

# Keys are module names as imported. Names such as ``list`` or ``count_tokens`` are
# free API calls and are left out on purpose.
LLM_LIBRARIES: Final[dict[str, LLMLibrary]] = {
    "openai": LLMLibrary(
        "openai",
        (
            _ops(("chat", "completions"), "create", "parse", "stream"),
            _ops(("responses",), "create", "parse", "stream"),
            _ops(("embeddings",), "create"),
        ),
        (
            _ops(("completions",), "create"),
            _ops(("images",), "generate", "edit", "create_variation"),
            *_OPENAI_AUDIO,
            _ops(("batches",), "create"),
            _ops(("videos",), "create"),
        ),
    ),
    "groq": LLMLibrary(
        "groq",
        (
            _ops(("chat", "completions"), "create"),
            _ops(("embeddings",), "create"),
        ),
        _OPENAI_AUDIO,
    ),
    "anthropic": LLMLibrary(
        "anthropic",
        (
            _ops(("messages",), "create", "parse", "stream"),
            _ops(("messages", "batches"), "create"),
        ),
        (_ops(("completions",), "create"),),
    ),
    "litellm": LLMLibrary(
        "litellm",
        (_ops((), "completion", "acompletion", "embedding", "aembedding"),),
        (
            _ops(
                (),
                "text_completion",
                "atext_completion",
                "image_generation",
                "aimage_generation",
                "transcription",
                "atranscription",
                "speech",
                "aspeech",
                "responses",
                "aresponses",
                "rerank",
                "arerank",
            ),
        ),
    ),
    "google.genai": LLMLibrary(
        "google-genai",
        (
            _ops(
                ("models",),
                "generate_content",
                "generate_content_stream",
                "embed_content",
            ),
            _ops((), "send_message", "send_message_stream"),
        ),
        (_ops(("models",), "generate_images", "generate_videos", "edit_image", "upscale_image"),),
    ),
    "cohere": LLMLibrary(
        "cohere",
        (_ops((), "chat", "chat_stream", "embed", "rerank"),),
        (_ops((), "generate", "generate_stream"),),
    ),
    "mistralai": LLMLibrary(
        "mistralai",
        (
            _ops(("chat",), "complete", "complete_async", "stream", "stream_async"),
            _ops(("fim",), "complete", "complete_async", "stream", "stream_async"),
            _ops(("embeddings",), "create", "create_async"),
        ),
        (
            _ops(("agents",), "complete", "complete_async", "stream", "stream_async"),
            _ops(("ocr",), "process", "process_async"),
        ),
    ),
    "ollama": LLMLibrary("ollama", (_ops((), "chat", "generate", "embed", "embeddings"),)),
}

# Attribute names between a client and its method that say nothing about the API.
NOISE_SEGMENTS: Final = frozenset(
    {"()", "with_raw_response", "with_streaming_response", "aio", "beta", "v1", "v2"}
)

# Operations of a boto3 ``bedrock-runtime`` client, which dexcost patches.
BEDROCK_RUNTIME_OPERATIONS: Final = frozenset(
    {"invoke_model", "invoke_model_with_response_stream", "converse", "converse_stream"}
)

# Modules whose ``client()`` / ``resource()`` / ``create_client()`` make an AWS client.
AWS_MODULES: Final = frozenset({"boto3", "aioboto3", "botocore", "aiobotocore"})
AWS_CLIENT_FACTORIES: Final = frozenset({"client", "resource", "create_client"})
# AWS services whose calls cost nothing, and client methods that send no request.
AWS_FREE_SERVICES: Final = frozenset({"sts", "iam", "organizations", "sso", "sso-oidc", "bedrock"})
AWS_LOCAL_METHODS: Final = frozenset(
    {
        "get_paginator",
        "get_waiter",
        "can_paginate",
        "close",
        "generate_presigned_url",
        "generate_presigned_post",
        "get_available_subresources",
        "load",
        "reload",
    }
)


@dataclass(frozen=True)
class PaidLibrary:
    """An SDK of a paid service whose requests dexcost's HTTP capture cannot price."""

    name: str
    service: str
    host: str
    operations: frozenset[str] | None  # None: every lowercase method of a client
    reason: str


PAID_LIBRARIES: Final[dict[str, PaidLibrary]] = {
    "stripe": PaidLibrary(
        "stripe",
        "stripe",
        "api.stripe.com",
        frozenset(
            {"create", "create_async", "modify", "update", "confirm", "capture", "pay", "send"}
        ),
        "the stripe SDK sends its own requests, which dexcost does not price",
    ),
    "twilio": PaidLibrary(
        "twilio",
        "twilio",
        "api.twilio.com",
        frozenset({"create", "create_async"}),
        "twilio bills messages and calls per unit, which dexcost cannot see",
    ),
    "sendgrid": PaidLibrary(
        "sendgrid",
        "sendgrid",
        "api.sendgrid.com",
        frozenset({"send", "post"}),
        "sendgrid bills per email sent, which dexcost cannot see",
    ),
    "googlemaps": PaidLibrary(
        "googlemaps",
        "googlemaps",
        "maps.googleapis.com",
        None,
        "the googlemaps client bills per request, which dexcost does not price",
    ),
    "google.cloud": PaidLibrary(
        "google-cloud",
        "google-cloud",
        "googleapis.com",
        None,
        "Google Cloud clients talk gRPC, which dexcost's HTTP capture cannot see",
    ),
}

# Methods of any client object that send no request.
LOCAL_METHODS: Final = frozenset(
    {"close", "aclose", "copy", "with_options", "with_raw_response", "with_streaming_response"}
)

# HTTP libraries: module-level request functions and the client classes they offer.
HTTP_MODULES: Final = frozenset({"requests", "httpx", "httpx2", "aiohttp", "urllib3"})
HTTP_VERBS: Final = frozenset({"get", "post", "put", "patch", "delete", "head", "options"})
# Methods whose first positional argument is the HTTP method and the second the URL.
HTTP_METHOD_FIRST: Final = frozenset({"request", "stream", "urlopen"})
HTTP_CLIENT_CLASSES: Final = frozenset(
    {
        "Session",
        "Client",
        "AsyncClient",
        "ClientSession",
        "PoolManager",
        "ProxyManager",
        "HTTPConnectionPool",
        "HTTPSConnectionPool",
    }
)

# Names that record a cost by hand: ``dexcost.record_cost`` or a task's method.
RECORDING_FUNCTIONS: Final = frozenset({"record_cost", "record_usage", "record_llm_call"})
