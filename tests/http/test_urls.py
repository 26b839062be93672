"""Splitting a request URL into the host and the path that matching uses."""

from __future__ import annotations

import pytest

from dexcost.http.capture import path_only, split_url


@pytest.mark.parametrize(
    ("url", "host", "path"),
    [
        ("http://127.0.0.1:8080/free?q=1", "127.0.0.1", "/free"),
        ("https://user:secret@API.example.com/a/b#part", "API.example.com", "/a/b"),
        ("http://[::1]:80/p", "::1", "/p"),
        ("https://example.com", "example.com", "/"),
        ("https://example.com?key=1", "example.com", "/"),
        ("https://example.com:443", "example.com", "/"),
        ("/relative/path?x=1", None, "/relative/path"),
    ],
)
def test_split_url_drops_port_and_query(url: str, host: str | None, path: str) -> None:
    assert split_url(url) == (host, path)


@pytest.mark.parametrize(
    ("target", "path"),
    [("/search?q=x", "/search"), ("/a#b", "/a"), ("", "/"), ("search", "/search")],
)
def test_path_only_keeps_leading_slash(target: str, path: str) -> None:
    assert path_only(target) == path
