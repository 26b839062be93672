"""One way to send a request through each captured client library, sync or async."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import httpx2
import requests
import urllib3

CLIENTS = (
    "requests",
    "httpx",
    "httpx_async",
    "httpx2",
    "httpx2_async",
    "aiohttp",
    "urllib3",
)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes


def send(client: str, method: str, url: str, body: Any = None) -> Reply:
    """Send ``method url`` (with ``body`` as JSON when given) through ``client``."""
    if client == "requests":
        with requests.Session() as session:
            response = session.request(method, url, json=body)
            return Reply(response.status_code, response.content)
    if client in ("httpx", "httpx2"):
        module: Any = httpx if client == "httpx" else httpx2
        with module.Client() as http:
            response = http.request(method, url, json=body)
            return Reply(response.status_code, response.content)
    if client in ("httpx_async", "httpx2_async"):
        module = httpx if client == "httpx_async" else httpx2
        return asyncio.run(_httpx_async(module, method, url, body))
    if client == "aiohttp":
        return asyncio.run(_aiohttp(method, url, body))
    if client == "urllib3":
        with urllib3.PoolManager() as pool:
            encoded = json.dumps(body).encode() if body is not None else None
            response = pool.request(method, url, body=encoded, retries=False)
            return Reply(response.status, response.data)
    raise ValueError(f"unknown client {client!r}")


async def _httpx_async(module: Any, method: str, url: str, body: Any) -> Reply:
    async with module.AsyncClient() as http:
        response = await http.request(method, url, json=body)
        return Reply(response.status_code, response.content)


async def _aiohttp(method: str, url: str, body: Any) -> Reply:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=body) as response,
    ):
        return Reply(response.status, await response.read())


# The exception each client raises when the connection is refused.
CONNECT_ERRORS: dict[str, type[BaseException]] = {
    "requests": requests.ConnectionError,
    "httpx": httpx.ConnectError,
    "httpx_async": httpx.ConnectError,
    "httpx2": httpx2.ConnectError,
    "httpx2_async": httpx2.ConnectError,
    "aiohttp": aiohttp.ClientConnectorError,
    "urllib3": urllib3.exceptions.NewConnectionError,
}
