"""litellm against loopback fakes of the OpenAI and Anthropic APIs, never the internet.

litellm downloads its model price map when imported unless
``LITELLM_LOCAL_MODEL_COST_MAP`` is set, and ``LITELLM_OFFLINE_MODE`` keeps its other
catalogs local. Both are set before the one import of litellm below, which runs with
every connection outside 127.0.0.1 rejected, as every test here does.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_OFFLINE_MODE"] = "true"

# Warnings litellm 1.110 itself causes, which the suite's filterwarnings=error would
# turn into failures. Each test module applies them with ``pytestmark``.
LITELLM_WARNING_FILTERS = [
    # pydantic warns once per TypedDict of litellm's types that uses ReadOnly items,
    # when litellm first builds a schema for it during a call.
    pytest.mark.filterwarnings(
        r"ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning"
    ),
    # litellm's stream code reads model_fields and model_computed_fields on chunk
    # instances, which pydantic 2.11 deprecated; it happens on a stream's usage chunk.
    pytest.mark.filterwarnings(
        "ignore:Accessing the 'model_(computed_)?fields' attribute on the instance is deprecated"
        ":pydantic.warnings.PydanticDeprecatedSince211"
    ),
    # litellm's async path leaves an event loop of its own unclosed, and its aclose()
    # leaves the connection's transport open.
    pytest.mark.filterwarnings("ignore:unclosed event loop:ResourceWarning"),
    pytest.mark.filterwarnings("ignore:unclosed transport:ResourceWarning"),
]

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class OutsideConnection(OSError):
    """A test tried to reach a host other than 127.0.0.1."""


@contextmanager
def loopback_only() -> Iterator[None]:
    """Refuse every connection and name look-up outside the loopback addresses."""
    connect = socket.socket.connect
    connect_ex = socket.socket.connect_ex
    getaddrinfo = socket.getaddrinfo

    def _check(address: Any) -> None:
        if isinstance(address, tuple) and address[0] not in _LOOPBACK:
            raise OutsideConnection(
                f"rejected connection to {address!r}: tests may reach 127.0.0.1 only"
            )

    def guarded_connect(self: socket.socket, address: Any) -> None:
        _check(address)
        connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        _check(address)
        return connect_ex(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and host not in _LOOPBACK:
            raise OutsideConnection(
                f"rejected name look-up of {host!r}: tests may reach 127.0.0.1 only"
            )
        return getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = guarded_getaddrinfo
    try:
        yield
    finally:
        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = getaddrinfo


with loopback_only():
    # The one import of litellm in the test run; test modules reuse the loaded module.
    import litellm  # noqa: F401

import dexcost  # noqa: E402
from dexcost.demo.fake_anthropic import AnthropicUsage, FakeAnthropicServer  # noqa: E402
from dexcost.demo.fake_openai import FakeOpenAIServer, FakeUsage  # noqa: E402

MESSAGES = [{"role": "user", "content": "Reset my password"}]
SONNET = "anthropic/claude-sonnet-4-20250514"
# The cached Anthropic reply of the required case: 200 uncached input tokens, 5,000
# read from the cache, 1,000 written to it (5-minute TTL) and 300 output tokens.
CACHED_USAGE = AnthropicUsage(
    input_tokens=200,
    output_tokens=300,
    cache_read_input_tokens=5_000,
    cache_creation_input_tokens=1_000,
)
OPENAI_USAGE = FakeUsage(prompt_tokens=1_200, completion_tokens=300)


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    with loopback_only():
        yield


@pytest.fixture
def dx(buffer_path: Path) -> Iterator[dexcost.DexcostConfig]:
    """dexcost in local mode on a temporary buffer, instrumenting litellm only."""
    config = dexcost.init(
        storage="local", buffer_path=str(buffer_path), auto_instrument=["litellm"]
    )
    yield config
    dexcost.shutdown()


@pytest.fixture
def dx_all(buffer_path: Path) -> Iterator[dexcost.DexcostConfig]:
    """dexcost instrumenting litellm and the openai and anthropic SDKs."""
    config = dexcost.init(
        storage="local",
        buffer_path=str(buffer_path),
        auto_instrument=["litellm", "openai", "anthropic"],
    )
    yield config
    dexcost.shutdown()


@pytest.fixture(scope="module")
def anthropic_server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer(usage=CACHED_USAGE) as server:
        yield server


@pytest.fixture
def anthropic_api(anthropic_server: FakeAnthropicServer) -> Iterator[FakeAnthropicServer]:
    anthropic_server.usage = CACHED_USAGE
    anthropic_server.reset()
    yield anthropic_server
    anthropic_server.reset()


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(usage=OPENAI_USAGE) as server:
        yield server


@pytest.fixture
def openai_api(openai_server: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    openai_server.usage = OPENAI_USAGE
    openai_server.reset()
    yield openai_server
    openai_server.reset()


@pytest.fixture
def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on, so a connection to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def llm_events(stored: Callable[..., list[dict[str, Any]]]) -> Callable[[], list[dict[str, Any]]]:
    """Return the stored llm_call rows."""
    return lambda: stored("llm_call")


def anthropic_kwargs(server: FakeAnthropicServer, **extra: Any) -> dict[str, Any]:
    """Keyword arguments of a litellm call to the fake Anthropic API."""
    return {
        "model": SONNET,
        "messages": MESSAGES,
        "max_tokens": 64,
        "api_base": server.base_url,
        "api_key": "sk-ant-test",
        **extra,
    }


def openai_kwargs(server: FakeOpenAIServer, **extra: Any) -> dict[str, Any]:
    """Keyword arguments of a litellm call to the fake OpenAI API."""
    return {
        "model": "openai/gpt-4o-mini",
        "messages": MESSAGES,
        "api_base": server.base_url,
        "api_key": "sk-test",
        **extra,
    }
