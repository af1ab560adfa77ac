"""``/api/storage/...``: file uploads and downloads over HTTP, handed to the deployment's
file storage (``reactor.platform.files``), which owns tokens, signing and streaming."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reactor.server.deployment import Deployment

__all__ = ["file_routes"]


def file_routes(deployment: Deployment) -> list[Route]:
    async def upload(request: Request) -> Response:
        return await deployment.files.handle_upload(request)

    async def download(request: Request) -> Response:
        return await deployment.files.handle_download(request)

    return [
        Route("/api/storage/upload", upload, methods=["POST"]),
        Route("/api/storage/{token}", download, methods=["GET", "HEAD"]),
    ]
