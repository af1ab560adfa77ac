"""The composition root: builds the Starlette application for one app directory.

Owns wiring (storage engine from a URL or data directory, ``Deployment``, HTTP routes, the
websocket route, CORS, slash normalisation) and the lifespan that starts and stops the
background tasks. It holds no behaviour of its own.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from functions.loader import App, load_app
from reactor.server.connector_routes import connector_routes
from reactor.server.dashboard import dashboard_routes
from reactor.server.deployment import Deployment
from reactor.server.file_routes import file_routes
from reactor.server.http_api import routes
from reactor.server.observability import observability_routes
from reactor.server.request_guard import BodyLimits, RequestGuard
from reactor.server.settings import SettingsError, load_settings
from reactor.server.snapshot_routes import snapshot_routes
from reactor.server.sync_endpoint import SyncConnection, sync_endpoint
from reactor.storage import open_storage
from reactor.sync.limits import SyncLimits

__all__ = ["create_app"]

log = logging.getLogger("reactor")

_SLASHES = re.compile(r"/{2,}")
_SYNC_PATH = re.compile(r"^/api/([^/]+/)?sync$")


class Entry:
    """The outermost layer: normalises slashes (JS clients given a URL with a trailing slash
    request ``//api/1.48.0/sync``) and hands sync websockets straight to their session, so
    every frame of the hot path skips the router and middleware stack."""

    def __init__(self, app: ASGIApp, deployment: Deployment, sync_limits: SyncLimits) -> None:
        self.app = app
        self.deployment = deployment
        self.sync_limits = sync_limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind in ("http", "websocket") and "//" in scope.get("path", ""):
            scope = dict(scope)
            scope["path"] = _SLASHES.sub("/", scope["path"])
        if kind == "websocket" and _SYNC_PATH.match(scope["path"]):
            await SyncConnection(
                WebSocket(scope, receive, send), self.deployment, limits=self.sync_limits
            ).serve()
            return
        await self.app(scope, receive, send)


_HTTP_CODES = {404: "NotFound", 405: "MethodNotAllowed"}


async def _http_exception(request: Request, exc: Exception) -> Response:
    """The router's own refusals (no such route, wrong method) in the API's JSON error shape."""
    assert isinstance(exc, HTTPException)
    body = {
        "code": _HTTP_CODES.get(exc.status_code, "BadRequest"),
        "message": f"{exc.detail}: {request.method} {request.url.path}",
    }
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def create_app(
    app: App | str | Path,
    *,
    data_dir: str | Path = ".reactor",
    storage: str | None = None,
    dev: bool = False,
    deployment: Deployment | None = None,
    body_limits: BodyLimits | None = None,
    sync_limits: SyncLimits | None = None,
) -> Starlette:
    """The ASGI application serving ``app`` (an ``App`` or an app directory).

    ``body_limits`` defaults to the settings' defaults, with the upload limit the deployment's
    file storage enforces. ``sync_limits`` (every websocket session's bounds) defaults to the
    ``sync_*`` settings from the environment (``REACTOR_SYNC_*``), or the defaults if the
    environment holds an invalid setting (``reactor serve`` reports those at start)."""
    if deployment is None:
        loaded = app if isinstance(app, App) else load_app(app)
        deployment = Deployment(loaded, open_storage(storage, data_dir), dev=dev)
    if body_limits is None:
        body_limits = BodyLimits(upload_bytes=deployment.files.blobs.max_bytes)
    if sync_limits is None:
        sync_limits = _configured_sync_limits()

    @contextlib.asynccontextmanager
    async def lifespan(application: Starlette) -> AsyncIterator[dict[str, Any]]:
        await deployment.start()
        try:
            yield {}
        finally:
            await deployment.stop()

    application = Starlette(
        routes=[
            *routes(),
            *file_routes(deployment),
            *snapshot_routes(),  # export, import, backup (docs/operations.md)
            *connector_routes(),  # streaming export for connectors (docs/operations.md)
            *observability_routes(),  # logs, /metrics, /health, /ready (docs/operations.md)
            WebSocketRoute("/api/sync", sync_endpoint),
            WebSocketRoute("/api/{client_version}/sync", sync_endpoint),
            *dashboard_routes(),  # the dashboard's static shell (docs/dashboard.md)
        ],
        middleware=[
            Middleware(Entry, deployment=deployment, sync_limits=sync_limits),
            # Any origin may call the API, but never with the browser's credentials: the
            # official clients authenticate with an `Authorization` header they set themselves
            # and send no cookies, so `Access-Control-Allow-Origin: *` without
            # `Access-Control-Allow-Credentials` is all they need. Echoing the Origin (`null`
            # included) together with `Allow-Credentials: true` would let any page make
            # credentialed requests and read the answers (docs/reference.md, "CORS").
            # Preflights get the requested headers echoed, as `*` does not cover
            # `Authorization`.
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["GET", "POST", "OPTIONS", "PATCH", "DELETE", "PUT"],
                allow_headers=["*"],
                allow_credentials=False,
                max_age=86400,
            ),
            # Inside CORS, so that a 413 or 500 still carries the CORS headers a browser needs
            # to show the page the error.
            Middleware(RequestGuard, limit=body_limits.for_api_path),
        ],
        exception_handlers={HTTPException: _http_exception},
        lifespan=lifespan,
    )
    application.state.deployment = deployment
    application.state.sync_limits = sync_limits
    return application


def _configured_sync_limits() -> SyncLimits:
    try:
        return load_settings().sync_limits
    except SettingsError:
        return SyncLimits()
