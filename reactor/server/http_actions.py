"""HTTP actions: the app's ``http.py`` router, served on its own port (``--http-port``, by
default the API port + 1: 3211 beside 3210), as Convex's local backend serves its
``.convex.site`` origin. The CLI binds that port only when the app has routes.

Owns dispatching a request to the routed ``@http_action`` (exact path, else longest prefix;
HEAD through GET without a body), the handler's context (an action context: each
``ctx.run_*`` is its own transaction) and turning failures into responses. There is no
automatic CORS here, as in Convex: handlers set their own headers and route OPTIONS.

The ``Authorization`` header. A request is never refused for it (as in Convex's local backend,
``http_any_method`` with ``TryExtractIdentity``): the handler runs and can read the header.

* No header, or a header that is not a credential of this deployment (any scheme other than
  ``Bearer`` and ``Convex``, or a ``Bearer`` value that is not a JWT, such as
  ``Bearer <CRON_SECRET>``): the handler runs anonymously and
  ``ctx.auth.get_user_identity()`` is None, so an app's own webhook or cron secret scheme
  works unchanged.
* ``Bearer <valid JWT>`` of a configured provider: it returns the user's identity, and
  ``ctx.run_query``/``run_mutation``/``run_action`` run as that user.
* ``Convex <admin key>[:<identity>]`` (or ``?adminKey=`` without a header): the admin, acting as
  that user if one is given, as on the API routes.
* A credential that fails: an invalid or expired JWT, a JWT no provider accepts, a wrong admin
  key. The handler still runs, but ``ctx.auth.get_user_identity()`` raises the authentication
  error (the message the API routes would answer with 401; since convex-backend #35841 Convex's
  ``getUserIdentity`` rethrows it too), which, uncaught, is a 500 like any other handler
  failure: a user whose token expired must not be served as anonymous without the handler
  knowing. Functions it calls through ``ctx.run_*`` run with no identity.

The API routes (``/api/query`` etc., ``reactor.server.http_api``) still answer 401 to such a
header. A client past its budget of failed admin keys gets 429 ``TooManyFailedAdminKeyAttempts``
on both (``reactor.auth.authenticator``), and the handler does not run.
"""

from __future__ import annotations

import logging
import re
import secrets
import traceback
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from functions.context import Auth, UserIdentity
from reactor.auth import AuthenticationError
from reactor.errors import RequestTooLarge, TooManyFailedAdminKeyAttempts
from reactor.server.deployment import Deployment
from reactor.server.request_guard import BodyLimits, RequestGuard
from schema.errors import ReactorError, UserError

__all__ = ["create_site_app"]

log = logging.getLogger("reactor.server.http_actions")

_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]


def create_site_app(deployment: Deployment, *, body_limits: BodyLimits | None = None) -> Starlette:
    """The ASGI app of the HTTP-actions port. Request bodies are limited while they stream
    (``body_limits.http_action_bytes``): a handler reading past the limit gets
    ``RequestTooLarge`` and, unless it answers itself, the client a 413."""
    limits = body_limits or BodyLimits()

    async def dispatch(request: Request) -> Response:
        router = deployment.http_router
        path = request.url.path
        match = None if router is None else router.lookup(request.method, path)
        if match is None:
            return PlainTextResponse(f"No HttpAction routed for {path}", status_code=404)
        header = request.headers.get("authorization")
        if header is not None and not _is_credential(header):
            ctx = deployment.executor.action_ctx(None)  # the app's own scheme: its business
        else:
            try:
                principal = await deployment.principal_for_http(request)
            except TooManyFailedAdminKeyAttempts as exc:
                # Refused before any check: not a credential that failed, a client to slow down.
                return JSONResponse({"code": exc.code, "message": exc.message}, status_code=429)
            except AuthenticationError as exc:
                # A credential that failed: the handler still runs (see the module docstring).
                ctx = deployment.executor.action_ctx(None)
                ctx.auth = _FailedAuth(exc)
            else:
                ctx = deployment.executor.action_ctx(principal.identity)
        try:
            response = await match.handler.invoke_http(ctx, request)
        except RequestTooLarge as exc:
            log.info("HTTP action %s %s: 413 %s", request.method, path, exc.message)
            return JSONResponse(
                {"code": exc.code, "message": exc.message},
                status_code=413,
            )
        except UserError as exc:
            return JSONResponse({"code": "ConvexError", "data": _plain(exc.data)}, status_code=400)
        except Exception as exc:
            request_id = secrets.token_hex(8)
            log.error(
                "[Request ID: %s] HTTP action %s %s failed:\n%s",
                request_id,
                request.method,
                path,
                "".join(traceback.format_exception(exc)),
            )
            message = f"[Request ID: {request_id}] Server Error"
            if isinstance(exc, ReactorError) or deployment.dev:
                message += f"\nUncaught {type(exc).__name__}: {exc}"
            return PlainTextResponse(message, status_code=500)
        if not isinstance(response, Response):
            log.error("HTTP action %s returned %r, not a Response", match.route, response)
            return PlainTextResponse(
                f"HTTP action for {match.route} returned {type(response).__name__}, "
                "not a starlette Response",
                status_code=500,
            )
        if match.drop_body:
            response.body = b""
            response.headers.setdefault("content-length", "0")
        return response

    return Starlette(
        routes=[Route("/{path:path}", dispatch, methods=_METHODS)],
        middleware=[Middleware(RequestGuard, limit=limits.for_http_action)],
    )


_JWT = re.compile(r"\A[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\Z")


def _is_credential(header: str) -> bool:
    """Whether an ``Authorization`` header is meant for this deployment: an admin key
    (``Convex ...``) or a JWT (``Bearer`` and three base64url parts)."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "convex":
        return True
    return scheme.lower() == "bearer" and _JWT.match(value.strip()) is not None


class _FailedAuth(Auth):
    """``ctx.auth`` of a request whose ``Authorization`` header did not authenticate: reading
    the identity raises why (Convex's ``Identity::Unknown(Some(error))``)."""

    __slots__ = ("_error",)

    def __init__(self, error: AuthenticationError) -> None:
        super().__init__(None)
        self._error = error

    async def get_user_identity(self) -> UserIdentity | None:
        self.was_read = True
        raise AuthenticationError(self._error.message, reason=self._error.reason)


def _plain(value: Any) -> Any:
    from schema.values import to_clean_json

    return to_clean_json(value)
