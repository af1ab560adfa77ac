"""The composition root: builds the Starlette application for one app directory.

Owns wiring (storage engine from a URL or data directory, ``Services``, HTTP routes, the
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
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from functions.loader import App, load_app
from reactor.core.persistence import Persistence
from reactor.server.deployment import Services
from reactor.server.http_api import routes
from reactor.server.sync_endpoint import SyncConnection, sync_endpoint

__all__ = ["create_app", "open_storage"]

log = logging.getLogger("reactor")

_SLASHES = re.compile(r"/{2,}")
_SYNC_PATH = re.compile(r"^/api/([^/]+/)?sync$")


class Entry:
    """The outermost layer: normalises slashes (JS clients given a URL with a trailing slash
    request ``//api/1.48.0/sync``) and hands sync websockets straight to their session, so
    every frame of the hot path skips the router and middleware stack."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind in ("http", "websocket") and "//" in scope.get("path", ""):
            scope = dict(scope)
            scope["path"] = _SLASHES.sub("/", scope["path"])
        if kind == "websocket" and _SYNC_PATH.match(scope["path"]):
            await SyncConnection(WebSocket(scope, receive, send), self.services).serve()
            return
        await self.app(scope, receive, send)


def open_storage(storage: str | None, data_dir: str | Path) -> Persistence:
    """``None`` or ``sqlite:`` selects the embedded engine under ``data_dir``; a
    ``mongodb://host/db?replicaSet=...`` URL the MongoDB engine (``reactor.storage.mongo.engine``)."""
    if storage is None or storage in ("sqlite", "sqlite:"):
        from reactor.storage.sqlite import SqlitePersistence

        return SqlitePersistence.open(data_dir)
    if storage.startswith("sqlite:"):
        from reactor.storage.sqlite import SqlitePersistence

        return SqlitePersistence.open(storage.removeprefix("sqlite:"))
    if storage.startswith(("mongodb://", "mongodb+srv://")):
        try:
            from reactor.storage.mongo.engine import MongoPersistence
        except ImportError as exc:
            raise ValueError(
                f"MongoDB storage needs PyMongo: pip install 'reactor[mongo]' ({exc})"
            ) from exc
        return MongoPersistence.open(storage)
    raise ValueError(
        f"Unsupported storage {storage!r}: use the embedded engine (default), a sqlite:DIR URL "
        "or a mongodb:// URL"
    )


def file_routes(services: Services) -> list[Route]:
    """``/api/storage/...``: uploads and downloads (the file storage exists once started)."""

    async def upload(request: Request) -> Response:
        assert services.files is not None
        return await services.files.handle_upload(request)

    async def download(request: Request) -> Response:
        assert services.files is not None
        return await services.files.handle_download(request)

    return [
        Route("/api/storage/upload", upload, methods=["POST"]),
        Route("/api/storage/{token}", download, methods=["GET", "HEAD"]),
    ]


def create_app(
    app: App | str | Path,
    *,
    data_dir: str | Path = ".reactor",
    storage: str | None = None,
    dev: bool = False,
    services: Services | None = None,
) -> Starlette:
    """The ASGI application serving ``app`` (an ``App`` or an app directory)."""
    if services is None:
        loaded = app if isinstance(app, App) else load_app(app)
        services = Services(loaded, open_storage(storage, data_dir), dev=dev)

    @contextlib.asynccontextmanager
    async def lifespan(application: Starlette) -> AsyncIterator[dict[str, Any]]:
        await services.start()
        try:
            yield {}
        finally:
            await services.stop()

    application = Starlette(
        routes=[
            *routes(),
            *file_routes(services),
            WebSocketRoute("/api/sync", sync_endpoint),
            WebSocketRoute("/api/{client_version}/sync", sync_endpoint),
        ],
        middleware=[
            Middleware(Entry, services=services),
            Middleware(
                CORSMiddleware,
                allow_origin_regex=".*",
                allow_methods=["GET", "POST", "OPTIONS", "PATCH", "DELETE", "PUT"],
                allow_headers=["*"],
                allow_credentials=True,
                max_age=86400,
            ),
        ],
        lifespan=lifespan,
    )
    application.state.services = services
    return application
