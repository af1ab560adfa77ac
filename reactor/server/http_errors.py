"""How the HTTP API refuses a request: one exception, its JSON body, and the caller checks
every route module shares.

A refusal is ``{"code", "message"}`` with a 4xx/5xx status (PROTOCOL.md §8); function
outcomes are not refusals (``reactor.server.http_api`` answers those with HTTP 200).
"""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from reactor.auth import AuthenticationError
from reactor.auth.authenticator import Principal
from reactor.errors import TooManyFailedAdminKeyAttempts
from reactor.server.deployment import Deployment

__all__ = ["HttpError", "error_response", "principal_of", "require_admin"]

_json = msgspec.json.Encoder()

ADMIN_KEY_NEEDED = "This needs the deployment's admin key (Authorization: Convex <admin key>)"


class HttpError(Exception):
    """Refuse the request with ``status`` and ``{"code": code, "message": message}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        return error_response(self.status, self.code, self.message)


def error_response(status: int, code: str, message: str) -> Response:
    return Response(
        _json.encode({"code": code, "message": message}),
        status_code=status,
        media_type="application/json",
    )


async def principal_of(deployment: Deployment, request: Request) -> Principal:
    """The caller of ``request`` (``Deployment.principal_for_http``).

    Raises:
        HttpError: 401 for a credential that fails, 429 for a client over its budget of
            failed admin keys.
    """
    try:
        return await deployment.principal_for_http(request)
    except TooManyFailedAdminKeyAttempts as exc:
        raise HttpError(429, exc.code, exc.message) from exc
    except AuthenticationError as exc:
        raise HttpError(401, "Unauthenticated", exc.message) from exc


async def require_admin(
    deployment: Deployment, request: Request, *, refusal: str = ADMIN_KEY_NEEDED
) -> Principal:
    """The caller of ``request``, who must hold the admin key (``Authorization: Convex
    <key>`` or ``?adminKey=``).

    Raises:
        HttpError: as ``principal_of``, and 403 ``BadAdminKey`` (``refusal``) for any other
            caller.
    """
    principal = await principal_of(deployment, request)
    if not principal.is_admin:
        raise HttpError(403, "BadAdminKey", refusal)
    return principal
