"""The parts every fake provider API shares: mock transports and the loopback server.

A fake implements ``handle(method, target, headers, body) -> WireResponse``; this module
serves that one function through ``httpx`` / ``httpx2`` mock transports (sync and async)
and over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from dexcost.demo._server import LoopbackHTTPServer, WireResponse

if TYPE_CHECKING:
    import httpx
    import httpx2

ServingT = TypeVar("ServingT", bound="LoopbackServing")


class FakeAPI(ABC):
    """A fake provider API: reply logic plus mock transports built on it."""

    @abstractmethod
    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> WireResponse:
        """Record one HTTP request and build its reply."""

    def httpx_transport(self) -> httpx.MockTransport:
        """Build an ``httpx.MockTransport`` serving this fake to sync clients."""
        return self._mock_transport("httpx", asynchronous=False)  # type: ignore[no-any-return]

    def async_httpx_transport(self) -> httpx.MockTransport:
        """Build an ``httpx.MockTransport`` for ``httpx.AsyncClient``."""
        return self._mock_transport("httpx", asynchronous=True)  # type: ignore[no-any-return]

    def httpx2_transport(self) -> httpx2.MockTransport:
        """Build an ``httpx2.MockTransport`` serving this fake to sync clients."""
        return self._mock_transport("httpx2", asynchronous=False)  # type: ignore[no-any-return]

    def async_httpx2_transport(self) -> httpx2.MockTransport:
        """Build an ``httpx2.MockTransport`` for ``httpx2.AsyncClient``."""
        return self._mock_transport("httpx2", asynchronous=True)  # type: ignore[no-any-return]

    def _mock_transport(self, module_name: str, *, asynchronous: bool) -> Any:
        # httpx and httpx2 share this API, so one handler serves both. A stream body
        # must be an async iterator for async clients and a plain iterator for sync
        # ones, or the client raises.
        module = importlib.import_module(module_name)

        def handler(request: Any) -> Any:
            wire = self.handle(
                request.method,
                request.url.raw_path.decode("ascii"),
                dict(request.headers.items()),
                request.content,
            )
            content: Any = wire.body
            if wire.frames is not None:
                content = _aiter_frames(wire.frames) if asynchronous else iter(wire.frames)
            return module.Response(wire.status, headers=wire.headers, content=content)

        return module.MockTransport(handler)


class LoopbackServing(FakeAPI):
    """A fake served over real HTTP on 127.0.0.1 at a free port.

    Use it as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._http = LoopbackHTTPServer(self.handle)

    def start(self: ServingT) -> ServingT:
        """Start serving from a daemon thread and return self."""
        self._http.start()
        return self

    def stop(self) -> None:
        """Stop serving; safe to call more than once."""
        self._http.stop()

    def __enter__(self: ServingT) -> ServingT:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """TCP port the server listens on; raises RuntimeError before ``start()``."""
        return self._http.port


async def _aiter_frames(frames: Sequence[bytes]) -> AsyncIterator[bytes]:
    for frame in frames:
        yield frame
