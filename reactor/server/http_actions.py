"""HTTP actions: the app's ``http.py`` router, served on its own port (3211 by default), as
Convex's local backend serves its ``.convex.site`` origin.

Owns dispatching a request to the routed ``@http_action`` (exact path, else longest prefix;
HEAD through GET without a body), the handler's context (an action context: each
``ctx.run_*`` is its own transaction) and turning failures into responses. There is no
automatic CORS here, as in Convex: handlers set their own headers and route OPTIONS.
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
            return JSONResponse({"code": exc.code, "message": exc.message}, status_code=401)
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


def _plain(value: Any) -> Any:
    from schema.values import to_clean_json

    return to_clean_json(value)
