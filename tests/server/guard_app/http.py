"""HTTP actions of the hardening tests' app: one that reads the whole body, one that streams
it, one that answers without reading it."""

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions import http_action
from functions.http_router import http_router


@http_action
async def length(ctx: Any, request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"length": len(body)})


@http_action
async def stream_length(ctx: Any, request: Request) -> Response:
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
    return JSONResponse({"length": total})


@http_action
async def hello(ctx: Any, request: Request) -> Response:
    return JSONResponse({"hello": request.query_params.get("name", "world")})


http = http_router()
http.route(path="/length", method="POST", handler=length)
http.route(path="/stream", method="POST", handler=stream_length)
http.route(path="/hello", method="GET", handler=hello)
