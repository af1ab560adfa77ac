"""HTTP actions: the app's ``http.py`` router, served on its own port (``--http-port``, by
default the API port + 1: 3211 beside 3210), as Convex's local backend serves its
``.convex.site`` origin. The CLI binds that port only when the app has routes.

Owns dispatching a request to the routed ``@http_action`` (exact path, else longest prefix;
HEAD through GET without a body), the handler's context (an action context: each
``ctx.run_*`` is its own transaction) and turning failures into responses. There is no
automatic CORS here, as in Convex: handlers set their own headers and route OPTIONS.

The ``Authorization`` header, as in Convex's local backend (``http_any_method`` with
``TryExtractIdentity``; since convex-backend #35841 ``getUserIdentity`` rethrows the failure):

* No header: the handler runs anonymously; ``ctx.auth.get_user_identity()`` is None.
* ``Bearer <valid JWT>`` of a configured provider: it returns the user's identity, and
  ``ctx.run_query``/``run_mutation``/``run_action`` run as that user.
* ``Convex <admin key>[:<identity>]`` (or ``?adminKey=`` without a header): the admin, acting as
  that user if one is given, as on the API routes.
* Anything else: a ``Bearer`` value that is not a JWT (``Bearer <CRON_SECRET>``), an invalid or
  expired JWT, a JWT no provider accepts, another scheme (``Basic ...``), a wrong admin key. The
  request is *not* refused: the handler runs and reads the header itself. Only if it calls
  ``ctx.auth.get_user_identity()`` does that raise the authentication error (the message the
  API routes would answer with 401), which, uncaught, is a 500 like any other handler failure.
  Functions it calls through ``ctx.run_*`` run with no identity (Convex passes its "unknown"
  identity, whose queries and mutations see null; a nested action there would rethrow too).

The API routes (``/api/query`` etc., ``reactor.server.http_api``) still answer 401 to such a
header.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from functions.context import Auth, UserIdentity
from reactor.auth import AuthenticationError
from reactor.server.deployment import Deployment
from schema.errors import ReactorError, UserError

__all__ = ["create_site_app"]

log = logging.getLogger("reactor.server.http_actions")

_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]


def create_site_app(deployment: Deployment) -> Starlette:
    async def dispatch(request: Request) -> Response:
        router = deployment.http_router
        path = request.url.path
        match = None if router is None else router.lookup(request.method, path)
        if match is None:
            return PlainTextResponse(f"No HttpAction routed for {path}", status_code=404)
        try:
            principal = await deployment.principal_for_http(request)
        except AuthenticationError as exc:
            # Not Convex auth, or failed: the handler still runs (see the module docstring).
            ctx = deployment.executor.action_ctx(None)
            ctx.auth = _FailedAuth(exc)
        else:
            ctx = deployment.executor.action_ctx(principal.identity)
        try:
            response = await match.handler.invoke_http(ctx, request)
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

    return Starlette(routes=[Route("/{path:path}", dispatch, methods=_METHODS)])


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
