"""A threaded HTTP/1.1 server on 127.0.0.1 that streams replies chunk by chunk.

It serves any ``handle(method, target, headers, body) -> WireResponse``
function, so the fake API's logic stays free of sockets. Streams are sent
with ``Transfer-Encoding: chunked`` and flushed frame by frame, so a client
sees each server-sent event as it is written, as with the real API.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dexcost.demo._payloads import error_body

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WireResponse:
    """An HTTP reply: a whole ``body``, or ``frames`` to stream in order."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    frames: tuple[bytes, ...] | None = None


RequestHandler = Callable[[str, str, Mapping[str, str], bytes], WireResponse]


class LoopbackHTTPServer:
    """Serve ``handle`` on 127.0.0.1 at a free port from a daemon thread."""

    def __init__(self, handle: RequestHandler) -> None:
        self._handle = handle
        self._httpd: _ThreadingServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the fake server is not running: call start() first")
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        """Bind a free port and start serving; starting twice is an error."""
        if self._httpd is not None:
            raise RuntimeError("the fake server is already running")
        httpd = _ThreadingServer(("127.0.0.1", 0), _Handler)
        httpd.handle_request_fn = self._handle
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-openai-{httpd.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._httpd, self._thread = httpd, thread

    def stop(self) -> None:
        """Stop serving and cut open keep-alive connections; stopping twice is a no-op."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        thread.join(timeout=5)
        self._httpd = self._thread = None


class _ThreadingServer(ThreadingHTTPServer):
    daemon_threads = True
    handle_request_fn: RequestHandler

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Track each connection so stop() can end the handler threads that
        # wait on idle keep-alive connections of clients that were not closed.
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log instead of printing to stderr; a client that hangs up is routine."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            logger.debug("fake openai: connection from %s ended: %r", client_address, error)
            return
        logger.error("fake openai: request from %s failed", client_address, exc_info=True)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # the client may have closed it already
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds an idle keep-alive connection is kept open
    server: _ThreadingServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean: access lines go to debug logging, not stderr."""
        logger.debug("fake openai: " + format, *args)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            wire = self.server.handle_request_fn(
                self.command, self.path, dict(self.headers.items()), body
            )
        except Exception as exc:  # a bug in the fake must not hang the client
            logger.exception("fake openai failed on %s %s", self.command, self.path)
            error = error_body(f"The fake server failed: {exc!r}", error_type="server_error")
            wire = WireResponse(
                500, {"content-type": "application/json"}, json.dumps(error).encode()
            )

        self.send_response(wire.status)
        for name, value in wire.headers.items():
            self.send_header(name, value)
        if wire.frames is None:
            self.send_header("Content-Length", str(len(wire.body)))
            self.end_headers()
            self.wfile.write(wire.body)
            return

        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for frame in wire.frames:
                self._write_chunk(frame)
            self._write_chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("fake openai: client left during the stream of %s", self.path)
            self.close_connection = True

    def _write_chunk(self, data: bytes) -> None:
        """Write one chunk of a chunked body; an empty one ends the body."""
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
