"""A real Arize Phoenix server on 127.0.0.1 for interop tests, and the guard it runs under.

Phoenix runs from its own virtualenv, found through ``DEXCOST_TEST_PHOENIX`` (the path
of its ``phoenix`` executable) or else ``.venv-phoenix`` in the repository root. Each
server gets free ports, a temporary working folder with a new SQLite database, and an
environment with telemetry, web fonts and the WASM sandbox download switched off.

Phoenix 20.26.1 binds its OTLP/gRPC port on ``[::]`` whatever ``PHOENIX_HOST`` is set
to, so a ``sitecustomize`` module in the server's ``PYTHONPATH`` calls ``guard_process()``
here. It rebinds gRPC to 127.0.0.1 and rejects every socket connection, DNS lookup and
bind that is not on the loopback interface, logging each one for the test to check.

This module imports only the standard library at the top, because Phoenix's Python
imports it too.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

EXECUTABLE_VARIABLE = "DEXCOST_TEST_PHOENIX"
REPO = Path(__file__).resolve().parents[2]
_SCRIPTS = "Scripts" if os.name == "nt" else "bin"
DEFAULT_EXECUTABLE = (
    REPO / ".venv-phoenix" / _SCRIPTS / ("phoenix.exe" if os.name == "nt" else "phoenix")
)

# Phoenix took 24 s from start to a healthy /healthz on a 2-core machine shared with
# other jobs; most of it is imports. The limits only stop a test that would hang.
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 15.0
REQUEST_TIMEOUT_SECONDS = 10.0
LOG_TAIL_CHARACTERS = 4000

_BLOCKED_LOG_VARIABLE = "DEXCOST_TEST_PHOENIX_BLOCKED_LOG"
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "0:0:0:0:0:0:0:1"})

_SITECUSTOMIZE = """\
import importlib.util

_spec = importlib.util.spec_from_file_location("dexcost_phoenix_guard", {module!r})
_guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_guard)
_guard.guard_process()
"""


class PhoenixNotFound(Exception):
    """``DEXCOST_TEST_PHOENIX`` names a file that does not exist."""


def find_phoenix() -> Path | None:
    """Return the ``phoenix`` executable to test against, or None when none is installed.

    Raises ``PhoenixNotFound`` when ``DEXCOST_TEST_PHOENIX`` is set to a missing file,
    because a run that asked for Phoenix must not pass by skipping.
    """
    configured = os.environ.get(EXECUTABLE_VARIABLE, "").strip()
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise PhoenixNotFound(
                f"{EXECUTABLE_VARIABLE}={configured!r} does not exist; set it to the phoenix "
                "executable of a virtualenv with arize-phoenix installed, or unset it"
            )
        return path
    if DEFAULT_EXECUTABLE.is_file():
        return DEFAULT_EXECUTABLE
    return None


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    return host in _LOOPBACK_NAMES or host.startswith("127.")


def _address_is_allowed(address: object) -> bool:
    """Allow loopback IP addresses and every non-IP address (Unix sockets, socket pairs)."""
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        return _is_loopback(address[0])
    return True


def _bind_is_allowed(address: object) -> bool:
    # Port 0 on the wildcard address is how asyncio and IPv6 probes get a free socket;
    # such a socket never listens.
    if isinstance(address, tuple) and len(address) >= 2 and address[1] == 0:
        return True
    return _address_is_allowed(address)


def guard_process() -> None:
    """Keep this Python process on the loopback interface; runs inside Phoenix at start-up.

    An audit hook rejects, with ``PermissionError``, every connect, send and lookup of
    a host that is not loopback, and every bind of a fixed port on another address. It
    appends each one to the file named in ``DEXCOST_TEST_PHOENIX_BLOCKED_LOG``. Sockets
    opened in C, outside Python's socket module, are not seen: the only one in Phoenix
    is gRPC's listening port, which ``_bind_grpc_to_loopback`` handles.
    """
    log_path = os.environ.get(_BLOCKED_LOG_VARIABLE, "")

    def record(event: str, target: object) -> None:
        if log_path:
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(f"{event} {target!r}\n")
        raise PermissionError(f"the interop test allows only 127.0.0.1; {event} {target!r}")

    def audit(event: str, arguments: tuple[Any, ...]) -> None:
        if event in ("socket.connect", "socket.sendto") and not _address_is_allowed(arguments[1]):
            record(event, arguments[1])
        elif event == "socket.getaddrinfo" and arguments[0] is not None:
            host = arguments[0].decode() if isinstance(arguments[0], bytes) else arguments[0]
            if not _is_loopback(host):
                record(event, host)
        elif event == "socket.bind" and not _bind_is_allowed(arguments[1]):
            record(event, arguments[1])

    sys.addaudithook(audit)
    _bind_grpc_to_loopback()


def _bind_grpc_to_loopback() -> None:
    try:
        from grpc.aio import _server
    except ImportError:
        return
    add_insecure_port = _server.Server.add_insecure_port

    def add_loopback_port(self: Any, address: str) -> int:
        host, _, port = address.rpartition(":")
        if not _is_loopback(host.strip("[]")):
            address = f"127.0.0.1:{port}"
        return add_insecure_port(self, address)

    _server.Server.add_insecure_port = add_loopback_port


def write_sitecustomize(folder: Path) -> None:
    """Write a ``sitecustomize.py`` into ``folder`` that runs ``guard_process()`` at start-up.

    Python imports it in every process that has ``folder`` on its ``PYTHONPATH``.
    """
    module = Path(__file__).resolve()
    (folder / "sitecustomize.py").write_text(
        _SITECUSTOMIZE.format(module=str(module)), encoding="utf-8"
    )


def guard_environment(blocked_log: Path) -> dict[str, str]:
    """Return the variable naming the file where ``guard_process()`` logs what it rejected."""
    return {_BLOCKED_LOG_VARIABLE: str(blocked_log)}


def _free_port() -> int:
    # Another process could take the port before Phoenix binds it. Phoenix then fails to
    # start and the error shows its log, so the race never gives a wrong result.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PhoenixServer:
    """``phoenix serve`` as a subprocess on 127.0.0.1, with its REST and GraphQL APIs.

    Use it as a context manager: entering starts the server and waits until it is
    healthy, leaving stops the process group and deletes the working folder.
    """

    def __init__(self, executable: Path) -> None:
        self.executable = executable
        self.port = _free_port()
        self.grpc_port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._folder = tempfile.TemporaryDirectory(prefix="dexcost-phoenix-")
        root = Path(self._folder.name)
        self.working_dir = root / "working"
        self.working_dir.mkdir()
        self._shim_dir = root / "shim"
        self._shim_dir.mkdir()
        self.blocked_log = root / "blocked.log"
        self.log_path = root / "phoenix.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PhoenixServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def environment(self) -> dict[str, str]:
        """Build Phoenix's environment from scratch, so nothing from the test run leaks in."""
        inherited = {
            name: os.environ[name]
            for name in ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR", "TEMP", "TMP")
            if name in os.environ
        }
        return {
            **inherited,
            "HOME": str(self.working_dir),
            "PYTHONPATH": str(self._shim_dir),
            **guard_environment(self.blocked_log),
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),
            # The SQLite database phoenix.db is created in this folder.
            "PHOENIX_WORKING_DIR": str(self.working_dir),
            # No telemetry pixels, web fonts or WASM binary download from github.com.
            # PHOENIX_ALLOW_EXTERNAL_RESOURCES=false alone stops all three in 20.26.1,
            # and the other two switches stay off if a later release changes that.
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_ALLOWED_SANDBOX_PROVIDERS": "NONE",
            "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
            "PHOENIX_ENABLE_MCP_SERVER": "false",
        }

    def start(self) -> None:
        """Start ``phoenix serve`` and wait until ``/healthz`` returns 200."""
        write_sitecustomize(self._shim_dir)
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [str(self.executable), "serve"],
                cwd=self.working_dir,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"phoenix serve exited with code {self._process.returncode} while "
                    f"starting:\n{self.log_tail()}"
                )
            if self._is_healthy():
                return
            time.sleep(0.25)
        raise TimeoutError(
            f"phoenix serve was not healthy after {START_TIMEOUT_SECONDS:.0f} s:\n{self.log_tail()}"
        )

    def _is_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        """Stop the server's process group, then delete its working folder."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            # The server runs in a session of its own, so its process group contains
            # only Phoenix and anything Phoenix started.
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self._folder.cleanup()

    def blocked_connections(self) -> list[str]:
        """Return each non-loopback connect, lookup or bind Phoenix attempted, in order."""
        if not self.blocked_log.exists():
            return []
        return self.blocked_log.read_text(encoding="utf-8").splitlines()

    def log_tail(self) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return text[-LOG_TAIL_CHARACTERS:]

    def get_json(self, path: str, **query: str | list[str]) -> Any:
        """GET ``path`` from the REST API and return the decoded JSON body."""
        url = f"{self.url}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            return json.load(response)

    def graphql(self, query: str, **variables: object) -> Any:
        """Run a GraphQL query and return its ``data``; raise if Phoenix returned errors."""
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            result = json.load(response)
        if result.get("errors"):
            raise AssertionError(f"Phoenix GraphQL errors: {result['errors']}")
        return result["data"]

    def wait_for_span(self, project: str, span_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Return the span from ``/v1/projects/{project}/spans`` once Phoenix has stored it.

        Phoenix returns 200 to the OTLP POST before it writes the spans in batches, so
        the span shows up a moment after dexcost's upload succeeded.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                spans = self.get_json(f"/v1/projects/{project}/spans", span_id=span_id)["data"]
            except urllib.error.HTTPError as error:
                # 404 until the first span of a new project is stored.
                error.close()
                if error.code != 404:
                    raise
                spans = []
            if spans:
                return dict(spans[0])
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"span {span_id} did not appear in Phoenix project {project!r} within "
                    f"{timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.2)
