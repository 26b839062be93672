"""A fake paid API on 127.0.0.1, one path per way a catalog entry counts units.

Each path replies the way such services do: a fixed JSON reply, a credit count in a
response header, a credit count in the JSON body, or a reply to a batch whose size
the request body gives. ``?status=N`` makes any path reply with status N, and
``/text/...`` replies 200 with an HTML body. ``/`` replies as Amazon Translate, with
an error for the target language ``xx``, and ``/model/...`` as Bedrock's Converse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from dexcost.catalog import Catalog, parse_catalog
from dexcost.demo._server import LoopbackHTTPServer, WireResponse

HOST = "127.0.0.1"
CATALOG_VERSION = "test.1"

_JSON = {"content-type": "application/json"}
HTML = b"<html><body>maintenance</body></html>"


class FakePaidAPI:
    """Serve the fake paid API; ``requests`` keeps each (method, target, body) received."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self._http = LoopbackHTTPServer(self.handle)

    def start(self) -> FakePaidAPI:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self._http.port}"

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> WireResponse:
        self.requests.append((method, target, body))
        parts = urlsplit(target)
        status = int(parse_qs(parts.query).get("status", ["200"])[0])
        path = parts.path
        if path == "/" and "x-amz-target" in {name.lower() for name in headers}:
            if json.loads(body).get("TargetLanguageCode") == "xx":
                status = 400
            return WireResponse(status, _AWS_JSON, json.dumps(_aws_reply(status)).encode())
        if path.startswith("/model/"):
            return WireResponse(status, _JSON, json.dumps(_CONVERSE_REPLY).encode())
        if path.startswith("/text/"):
            return WireResponse(status, {"content-type": "text/html"}, HTML)
        reply: dict[str, Any] = {"ok": status < 400}
        reply_headers = dict(_JSON)
        if path.startswith("/header/"):
            reply_headers["x-credits-used"] = "3"
        if path.startswith("/json/"):
            reply["usage"] = {"credits": 7}
        return WireResponse(status, reply_headers, json.dumps(reply).encode())


_AWS_JSON = {"content-type": "application/x-amz-json-1.1"}
_CONVERSE_REPLY = {
    "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
    "metrics": {"latencyMs": 1},
}


def _aws_reply(status: int) -> dict[str, Any]:
    """Return the reply of Amazon Translate's TranslateText, or its error reply."""
    if status >= 400:
        return {"__type": "InvalidRequestException", "message": "unsupported language pair"}
    return {"TranslatedText": "hola mundo", "SourceLanguageCode": "en", "TargetLanguageCode": "es"}


def _entry(
    entry_id: str, paths: list[str], units_from: dict[str, Any], price: str, per: int, **extra: Any
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": entry_id,
        "name": entry_id.replace("_", " ").title(),
        "category": "other",
        "hosts": [HOST],
        "paths": paths,
        "pricing_model": "per_request",
        "unit": "request",
        "units_from": units_from,
        "price_usd": price,
        "per": per,
        "bills_failed_requests": False,
        "source_url": "https://example.com/pricing",
        "checked": "2026-12-01",
    }
    entry.update(extra)
    return entry


# Prices and the cost of one request to each path, computed by hand.
FIXED_COST = Decimal("0.005")  # $5 per 1000 requests, 1 request
HEADER_COST = Decimal("0.0147")  # $0.0049 per credit, 3 credits
JSON_COST = Decimal("0.014")  # $0.002 per credit, 7 credits
COUNT_COST = Decimal("0.0004")  # $0.10 per 1000 texts, 4 texts
BILLED_FAILURE_COST = Decimal("0.25")  # $0.25 per call, failed or not

CATALOG_DOCUMENT: dict[str, Any] = {
    "schema_version": 1,
    "catalog_version": CATALOG_VERSION,
    "services": [
        _entry("fake_fixed", ["/fixed/*"], {"kind": "fixed", "units": 1}, "5", 1000),
        _entry(
            "fake_header",
            ["/header/*"],
            {"kind": "response_header", "header": "x-credits-used"},
            "0.0049",
            1,
            pricing_model="per_credit",
            unit="credit",
        ),
        _entry(
            "fake_json",
            ["/json/*", "/text/*"],
            {"kind": "response_json", "field": "usage.credits"},
            "0.002",
            1,
            pricing_model="per_credit",
            unit="credit",
        ),
        _entry(
            "fake_count",
            ["/count/*"],
            {"kind": "request_json_count", "field": "input.texts"},
            "0.10",
            1000,
            pricing_model="per_unit",
            unit="text",
            methods=["POST"],
        ),
        _entry(
            "fake_billed_failures",
            ["/billed/*"],
            {"kind": "fixed", "units": 1},
            "0.25",
            1,
            bills_failed_requests=True,
        ),
        # An AWS JSON-protocol service: every operation is a POST to "/".
        _entry(
            "fake_aws_translate",
            ["/"],
            {"kind": "request_json_count", "field": "Text"},
            "15",
            1000000,
            pricing_model="per_character",
            unit="character",
            methods=["POST"],
        ),
        # Bedrock's runtime paths: an LLM, never priced as a paid API.
        _entry("fake_bedrock_lookalike", ["/model/*"], {"kind": "fixed", "units": 1}, "1", 1),
        # The fake OpenAI server also listens on 127.0.0.1: this entry proves an SDK
        # call's own request is never priced as a paid API.
        _entry("fake_llm_lookalike", ["/v1/*"], {"kind": "fixed", "units": 1}, "1", 1),
    ],
}


def build_catalog() -> Catalog:
    """Build the test catalog through the same validator as the bundled one."""
    return parse_catalog(CATALOG_DOCUMENT)


# Request bodies for the /count/ path: four texts to embed.
COUNT_BODY: dict[str, Any] = {"input": {"texts": ["a", "b", "c", "d"]}}
