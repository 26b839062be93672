"""The parts every fake provider API shares: mock transports and the loopback server.

A fake implements ``handle(method, target, headers, body) -> WireResponse``; this module
serves that one function through ``httpx`` / ``httpx2`` mock transports (sync and async)
and over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dexcost.demo._server import LoopbackHTTPServer, WireResponse

if TYPE_CHECKING:
    import httpx
    import httpx2

ServingT = TypeVar("ServingT", bound="LoopbackServing")
ReplyT = TypeVar("ReplyT")
RequestT = TypeVar("RequestT")


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


class ScriptedAPI(FakeAPI, Generic[ReplyT, RequestT]):
    """A fake with a queue of one-shot scripted replies and a log of requests.

    Both are guarded by one lock, so concurrent requests are safe.
    """

    def _init_script(self, default_reply: Callable[[], ReplyT]) -> None:
        self._lock = threading.Lock()
        self._replies: deque[ReplyT] = deque()
        self._requests: list[RequestT] = []
        self._default_reply = default_reply

    def enqueue(self, *replies: ReplyT) -> None:
        """Queue replies for the next recognised requests, first in first out."""
        with self._lock:
            self._replies.extend(replies)

    @property
    def requests(self) -> list[RequestT]:
        """Copy of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def pending_replies(self) -> int:
        """Number of queued replies not yet sent."""
        with self._lock:
            return len(self._replies)

    def reset(self) -> None:
        """Forget the recorded requests and drop the queued replies."""
        with self._lock:
            self._replies.clear()
            self._requests.clear()

    def _next_reply(self) -> ReplyT:
        with self._lock:
            return self._replies.popleft() if self._replies else self._default_reply()


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
