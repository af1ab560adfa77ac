"""The RequestGuard's last resort: a route that fails with a bug answers a JSON 500 naming a
request id, and the client's keep-alive connection serves the next request (uvicorn resets
it when the app raises)."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reactor.server.request_guard import RequestGuard

pytestmark = pytest.mark.anyio


async def broken(request: Request) -> Response:
    raise RuntimeError("a bug in a route")


async def fine(request: Request) -> Response:
    return JSONResponse({"length": len(await request.body())})


async def test_a_failing_route_answers_json_and_keeps_the_connection(serving: Any) -> None:
    app = Starlette(
        routes=[Route("/broken", broken, methods=["GET"]), Route("/fine", fine, methods=["POST"])],
        middleware=[Middleware(RequestGuard, limit=lambda path: 100)],
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)

        def exchange() -> None:
            connection = serving.KeepAliveConnection(f"http://127.0.0.1:{port}")
            try:
                failed = connection.request("GET", "/broken")
                assert failed.status == 500
                body = json.loads(failed.body)
                assert body["code"] == "InternalServerError"
                assert "Request ID" in body["message"]
                assert "bug" not in body["message"]  # details stay in the log
                ok = connection.request("POST", "/fine", body=b"x" * 100)
                assert ok.status == 200 and json.loads(ok.body) == {"length": 100}
                refused = connection.request("POST", "/fine", body=b"x" * 101)
                assert refused.status == 413
                assert json.loads(refused.body)["code"] == "RequestTooLarge"
            finally:
                connection.close()

        await asyncio.to_thread(exchange)
    finally:
        server.should_exit = True
        await task
        sock.close()
