"""The errors the Reactor client SDK raises.

Owns the client-only error classes (:class:`ProtocolMismatch`, :class:`HttpError`) and re-exports
the two client-side members of the shared tree (:class:`ConnectionLost`, :class:`FunctionFailed`)
so callers can import every SDK error from one place. It does not own the tree's root, which lives
in ``schema.errors``:

    ReactorError (schema.errors)
    ├── ConnectionLost      the socket dropped while an action was in flight, or the client closed
    ├── FunctionFailed      a query, mutation or action failed; ``data`` is set for ConvexError
    ├── ProtocolMismatch    the server broke the sync protocol (the client reconnects)
    └── HttpError           the HTTP API answered with a non-2xx status
"""

from __future__ import annotations

from schema.errors import ConnectionLost, FunctionFailed, ReactorError

__all__ = ["ConnectionLost", "FunctionFailed", "HttpError", "ProtocolMismatch", "ReactorError"]


class ProtocolMismatch(ReactorError):
    """The server sent something PROTOCOL.md forbids.

    ``close_reason`` is the ``lastCloseReason`` the next ``Connect`` reports, e.g.
    ``"StartVersionMismatch"`` (the string the official clients use) or ``"ProtocolError"``.
    """

    code = "ProtocolMismatch"

    def __init__(self, message: str, *, close_reason: str = "ProtocolError") -> None:
        super().__init__(message)
        self.close_reason = close_reason


class HttpError(ReactorError):
    """A non-2xx answer from the HTTP API, carrying the server's ``{"code", "message"}`` body.

    ``status_code`` is the HTTP status; ``error_code`` the server's short code (e.g.
    ``"BadRequest"``), or ``""`` when the body was not the documented JSON shape.
    """

    code = "HttpError"

    def __init__(self, status_code: int, error_code: str, message: str) -> None:
        self.status_code = status_code
        self.error_code = error_code
        self.detail = message
        prefix = f"{status_code} {error_code}" if error_code else str(status_code)
        super().__init__(f"{prefix}: {message}")
