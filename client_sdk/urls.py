"""Deployment URL handling: from ``http://host:port`` to the HTTP API base and the sync URL.

Owns URL validation and the two derived addresses (PROTOCOL.md §1): the HTTP base (``/api/query``
etc. are appended to it) and the websocket URL (``ws[s]://…/api/sync``). It does not open
connections.

A path prefix in the deployment URL is kept for both (as the JS client does; useful behind a
reverse proxy) and trailing slashes are dropped, so ``http://h:3210/`` never yields ``//api``.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["CLIENT_HEADER", "http_base_url", "sync_url"]

# Sent as ``Convex-Client``; the server expects ``<client>-<semver>`` (PROTOCOL.md §8.1).
CLIENT_HEADER = "reactor_py-0.1.0"

_HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


def _split(url: str) -> tuple[str, str, str]:
    if not isinstance(url, str):
        raise TypeError(f"Deployment URL must be a string, got {type(url).__name__}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _HTTP_SCHEMES or not parts.netloc:
        raise ValueError(
            f"Deployment URL must look like http://host:port or https://host, got {url!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"Deployment URL must not have a query or fragment, got {url!r}")
    return scheme, parts.netloc, parts.path.rstrip("/")


def http_base_url(url: str) -> str:
    """``http://h:3210/`` → ``http://h:3210``; ``wss://h/p/`` → ``https://h/p``.

    Raises:
        ValueError: the URL is not http(s) or ws(s) with a host.
    """
    scheme, netloc, path = _split(url)
    return urlunsplit((_HTTP_SCHEMES[scheme], netloc, path, "", ""))


def sync_url(url: str) -> str:
    """``http://h:3210`` → ``ws://h:3210/api/sync``; ``https`` maps to ``wss``.

    Raises:
        ValueError: the URL is not http(s) or ws(s) with a host.
    """
    scheme, netloc, path = _split(url)
    return urlunsplit((_WS_SCHEMES[scheme], netloc, f"{path}/api/sync", "", ""))
