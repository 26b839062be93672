"""Test helpers for https through a proxy: a CONNECT proxy on 127.0.0.1 and certificates.

The proxy tunnels only to the targets a test maps, each a host name such as
``control.dexcost.test:443`` mapped to a port on 127.0.0.1. Any other target gets a
502, so no test traffic leaves the machine and no test name is looked up in DNS.
"""

from __future__ import annotations

import datetime
import ipaddress
import select
import socket
import threading
from pathlib import Path
from typing import Any

import pytest


class ConnectProxy:
    """A CONNECT-only HTTP proxy on 127.0.0.1 that records each tunnel request."""

    def __init__(self, routes: dict[str, int], authorization: str | None = None) -> None:
        # "host:port" as the client names it -> port on 127.0.0.1.
        self.routes = routes
        self.authorization = authorization
        # (target, Proxy-Authorization header or None, status returned), in order.
        self.requests: list[tuple[str, str | None, int]] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self._thread.join(5)

    def targets(self) -> list[str]:
        with self._lock:
            return [target for target, _, _ in self.requests]

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            offered = headers.get("proxy-authorization")
            if method != "CONNECT" or target not in self.routes:
                status = 502
            elif self.authorization is not None and offered != self.authorization:
                status = 407
            else:
                status = 200
            with self._lock:
                self.requests.append((target, offered, status))
            if status != 200:
                client.sendall(f"HTTP/1.1 {status} Refused\r\nContent-Length: 0\r\n\r\n".encode())
                return
            with socket.create_connection(("127.0.0.1", self.routes[target])) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._pipe(client, upstream)

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        sockets = [client, upstream]
        while not self._closed.is_set():
            readable, _, _ = select.select(sockets, [], [], 0.2)
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (upstream if source is client else client).sendall(data)


def resolve_loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every host but 127.0.0.1 fail to resolve; return the list of hosts resolved."""
    resolved: list[str] = []
    resolve = socket.getaddrinfo

    def only_loopback(host: Any, *args: Any, **kwargs: Any) -> Any:
        resolved.append(str(host))
        if host != "127.0.0.1":
            raise socket.gaierror(socket.EAI_NONAME, "only 127.0.0.1 in this test")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", only_loopback)
    return resolved


def certificate_files(folder: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """Write a CA certificate and a certificate it signed for ``names``, with its key.

    Each name is an IP address or a DNS name. Returns the CA, certificate and key paths.
    """
    # cryptography comes with the test extra; without it these tests skip.
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dexcost test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    alternative: list[x509.GeneralName] = []
    for name in names:
        try:
            alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative.append(x509.DNSName(name))
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths
