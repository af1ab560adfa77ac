"""The HTTP guard around both ASGI apps (API port and HTTP-actions port): request bodies limited
while they stream, and the last-resort answer to a failure no route handled.

Owns ``BodyLimits`` (which route may receive how many bytes) and ``RequestGuard``, the one
streaming reader every route's body passes through: it counts the bytes of each ``http.request``
message as the route reads them and raises ``RequestTooLarge`` the moment the limit is crossed,
so no route, however it reads (``request.body()``, ``request.stream()``, a user's HTTP action),
ever holds more than its limit. It does not parse bodies (the routes do).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reactor.errors import RequestTooLarge

__all__ = [
    "DEFAULT_API_BODY_BYTES",
    "DEFAULT_HTTP_ACTION_BODY_BYTES",
    "BodyLimits",
    "RequestGuard",
]

log = logging.getLogger("reactor.http")

# Convex limits function arguments to 16 MiB; the JSON envelope around them (path, format, the
# encoding of bytes and integers) needs a little more.
DEFAULT_API_BODY_BYTES = 16 * 1024 * 1024 + 64 * 1024
# Convex: "HTTP actions: 20 MB request + response".
DEFAULT_HTTP_ACTION_BODY_BYTES = 20 * 1024 * 1024

_UPLOAD_PATH = "/api/storage/upload"
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """Request body limits in bytes, by route. ``upload_bytes`` None: uploads are unlimited."""

    api_bytes: int = DEFAULT_API_BODY_BYTES
    upload_bytes: int | None = 1 << 30
    http_action_bytes: int = DEFAULT_HTTP_ACTION_BODY_BYTES

    def for_api_path(self, path: str) -> int | None:
        """The limit of a route on the API port: file uploads have their own."""
        return self.upload_bytes if path == _UPLOAD_PATH else self.api_bytes

    def for_http_action(self, path: str) -> int | None:
        return self.http_action_bytes


def json_error(status: int, code: str, message: str) -> tuple[Message, Message]:
    """The two ASGI messages of a ``{"code", "message"}`` error response."""
    body = _encode({"code": code, "message": message})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return (
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    )


class RequestGuard:
    """ASGI middleware: each HTTP request's body is limited to ``limit(path)`` bytes (None:
    no limit), and an exception escaping the app becomes a JSON error, not a dropped
    connection.

    The connection is not closed after a 413: closing with unread bytes in the socket makes
    the kernel reset it, and a client still sending (httpx, curl) loses the answer. uvicorn
    reads and drops the rest of the refused body, holding none of it.

    Invariant: a route sees at most ``limit`` bytes. A declared ``Content-Length`` over the
    limit is refused before anything is read; a chunked body is refused by ``receive``
    raising ``RequestTooLarge`` on the message that crosses it, which routes let propagate
    (or answer themselves) and this guard answers with 413 if no response has started.
    """

    def __init__(self, app: ASGIApp, *, limit: Callable[[str], int | None]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["path"])
        if limit is not None and _declared_length(scope) > limit:
            await _send_all(send, json_error(413, *_too_large(limit)))
            return
        started = False
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request" and limit is not None:
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive if limit is not None else receive, tracked_send)
        except RequestTooLarge as exc:
            if started:
                raise
            log.info("HTTP %s %s: 413 %s", scope["method"], scope["path"], exc.message)
            await _send_all(send, json_error(413, exc.code, exc.message))
        except ClientDisconnect:
            return  # nobody to answer
        except Exception:
            if started:
                raise
            # Answer in JSON and keep the connection: a bug in one route must not reset a
            # client's keep-alive connection (uvicorn closes it when the app raises).
            request_id = secrets.token_hex(8)
            log.exception(
                "[Request ID: %s] HTTP %s %s failed", request_id, scope["method"], scope["path"]
            )
            await _send_all(
                send,
                json_error(500, "InternalServerError", f"[Request ID: {request_id}] Server Error"),
            )


def _too_large(limit: int) -> tuple[str, str]:
    exc = RequestTooLarge(limit)
    return exc.code, exc.message


def _declared_length(scope: Scope) -> int:
    """The ``Content-Length`` the client declared, 0 if none. (uvicorn already refuses a
    malformed one with 400 before the app runs.)"""
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.strip()
            if not text.isdigit():
                return 0
            # More digits than any limit has: over it, without converting a huge number.
            return int(text) if len(text) <= 18 else 1 << 62
    return 0


async def _send_all(send: Send, messages: tuple[Message, Message]) -> None:
    for message in messages:
        await send(message)
