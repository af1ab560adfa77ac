from __future__ import annotations

import pytest

from client_sdk.urls import http_base_url, sync_url


@pytest.mark.parametrize(
    ("url", "http", "ws"),
    [
        ("http://127.0.0.1:3210", "http://127.0.0.1:3210", "ws://127.0.0.1:3210/api/sync"),
        ("http://127.0.0.1:3210/", "http://127.0.0.1:3210", "ws://127.0.0.1:3210/api/sync"),
        ("https://example.com", "https://example.com", "wss://example.com/api/sync"),
        ("HTTPS://example.com//", "https://example.com", "wss://example.com/api/sync"),
        ("https://h/prefix/", "https://h/prefix", "wss://h/prefix/api/sync"),
        ("ws://h:1", "http://h:1", "ws://h:1/api/sync"),
        ("wss://h", "https://h", "wss://h/api/sync"),
    ],
)
def test_derived_urls(url: str, http: str, ws: str) -> None:
    assert http_base_url(url) == http
    assert sync_url(url) == ws


@pytest.mark.parametrize(
    "url", ["ftp://h", "127.0.0.1:3210", "http://", "http://h/?x=1", "http://h/#f", ""]
)
def test_rejected(url: str) -> None:
    with pytest.raises(ValueError, match="Deployment URL"):
        sync_url(url)


def test_not_a_string() -> None:
    with pytest.raises(TypeError, match="string"):
        http_base_url(None)  # type: ignore[arg-type]
