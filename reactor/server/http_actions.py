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

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from reactor.auth import AuthenticationError
from reactor.engine.invocation import HttpCall
from reactor.errors import RequestTooLarge, TooManyFailedAdminKeyAttempts
from reactor.server.deployment import Deployment
from reactor.server.observability import record_http_action
from reactor.server.request_guard import BodyLimits, RequestGuard

__all__ = ["create_site_app"]

log = logging.getLogger("reactor.server.http_actions")

_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]


def create_site_app(deployment: Deployment, *, body_limits: BodyLimits | None = None) -> Starlette:
    """The ASGI app of the HTTP-actions port: each request is routed by the app's ``http.py``
    and its handler runs on an action runner. The body is read here, limited while it streams
    (``body_limits.http_action_bytes``): past the limit the client gets a 413 and no handler
    runs."""
    limits = body_limits or BodyLimits()

    async def dispatch(request: Request) -> Response:
        router = deployment.http_router
        path = request.url.path
        match = None if router is None else router.lookup(request.method, path)
        if match is None:
            return PlainTextResponse(f"No HttpAction routed for {path}", status_code=404)
        identity = None
        auth_error = None
        header = request.headers.get("authorization")
        if header is None or _is_credential(header):  # else the app's own scheme: its business
            try:
                identity = (await deployment.principal_for_http(request)).identity
            except TooManyFailedAdminKeyAttempts as exc:
                # Refused before any check: not a credential that failed, a client to slow down.
                return JSONResponse({"code": exc.code, "message": exc.message}, status_code=429)
            except AuthenticationError as exc:
                # A credential that failed: the handler still runs (see the module docstring).
                auth_error = (exc.message, exc.reason)
        try:
            body = await request.body()
        except RequestTooLarge as exc:
            log.info("HTTP action %s %s: 413 %s", request.method, path, exc.message)
            return JSONResponse({"code": exc.code, "message": exc.message}, status_code=413)
        server = request.scope.get("server") or ("127.0.0.1", 0)
        call = HttpCall(
            request.method,
            path,
            request.scope.get("query_string", b""),
            list(request.scope.get("headers", [])),
            body,
            request.url.scheme,
            (str(server[0]), int(server[1] or 0)),
        )
        started_ns = deployment.runtime.monotonic_ns()
        reply = await deployment.runner.http_action(
            call,
            identity=None if identity is None else dict(identity),
            auth_error=auth_error,
            services=deployment.executor.services,
        )
        duration_s = (deployment.runtime.monotonic_ns() - started_ns) / 1e9
        record_http_action(deployment, request.method, path, reply, duration_s)
        if reply.failure is not None:
            return PlainTextResponse(reply.failure.error_message, status_code=500)
        response = Response(reply.body, status_code=reply.status)
        response.raw_headers = list(reply.headers)
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
