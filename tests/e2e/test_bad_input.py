"""Bad input over the websocket and HTTP: a clear error to that client, a log line, and the
server keeps serving everyone else with nothing committed lost."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets

pytestmark = pytest.mark.anyio


def ws_url(server_url: str) -> str:
    return server_url.replace("http://", "ws://") + "/api/sync"


def connect_msg() -> str:
    return json.dumps(
        {
            "type": "Connect",
            "sessionId": str(uuid.uuid4()),
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
            "clientTs": 0,
        }
    )


async def recv_json(ws: websockets.ClientConnection, timeout: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(
    ws: websockets.ClientConnection, predicate: Callable[[Any], bool], timeout: float = 5.0
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        message = await recv_json(ws, max(remaining, 0.01))
        if predicate(message):
            return message


async def expect_closed(
    ws: websockets.ClientConnection, timeout: float = 5.0
) -> websockets.ConnectionClosed:
    with pytest.raises(websockets.ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    return info.value


async def healthy(server_url: str, channel: str) -> None:
    """Another client still gets service: a mutation commits and a query sees it."""
    async with httpx.AsyncClient(base_url=server_url) as http:
        sent = await http.post(
            "/api/mutation",
            json={
                "path": "messages:send",
                "args": [{"channel": channel, "body": "ok"}],
                "format": "convex_encoded_json",
            },
        )
        assert sent.json()["status"] == "success"
        listed = await http.post(
            "/api/query",
            json={
                "path": "messages:bodies",
                "args": [{"channel": channel}],
                "format": "convex_encoded_json",
            },
        )
        assert "ok" in json.dumps(listed.json()["value"])


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        ("{not json", "Invalid"),
        (json.dumps({"type": "Teleport"}), "unknown type"),
        (
            json.dumps(
                {"type": "ModifyQuerySet", "baseVersion": "x", "newVersion": 1, "modifications": []}
            ),
            "baseVersion",
        ),
        (
            json.dumps(
                {"type": "ModifyQuerySet", "baseVersion": 3, "newVersion": 4, "modifications": []}
            ),
            "Base version",
        ),
    ],
)
async def test_protocol_violations_get_a_fatal_error_and_a_close(
    server_url: str, frame: str, fragment: str
) -> None:
    async with websockets.connect(ws_url(server_url)) as ws:
        await ws.send(connect_msg())
        await ws.send(frame)
        message = await recv_json(ws)
        assert message["type"] == "FatalError"
        assert fragment in message["error"]
        await expect_closed(ws)
    await healthy(server_url, f"after-{uuid.uuid4().hex[:6]}")


async def test_identity_version_mismatch_closes_without_fatal_error(server_url: str) -> None:
    async with websockets.connect(ws_url(server_url)) as ws:
        await ws.send(connect_msg())
        await ws.send(json.dumps({"type": "Authenticate", "tokenType": "None", "baseVersion": 5}))
        closed = await expect_closed(ws)
        assert closed.rcvd is not None and closed.rcvd.code == 1011
        assert closed.rcvd.reason == "InternalServerError"


async def test_bad_args_unknown_and_internal_functions_are_clear_errors(server_url: str) -> None:
    async with websockets.connect(ws_url(server_url)) as ws:
        await ws.send(connect_msg())
        await ws.send(
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [
                        {"type": "Add", "queryId": 0, "udfPath": "messages:nope", "args": [{}]},
                        {"type": "Add", "queryId": 1, "udfPath": "errors:secret", "args": [{}]},
                        {
                            "type": "Add",
                            "queryId": 2,
                            "udfPath": "messages:list",
                            "args": [{"channel": 5}],
                        },
                    ],
                }
            )
        )
        transition = await recv_until(ws, lambda m: m["type"] == "Transition")
        failed = {m["queryId"]: m for m in transition["modifications"]}
        assert len(failed) == 3
        assert all(m["type"] == "QueryFailed" for m in failed.values())
        assert "Could not find public function for 'messages:nope'" in failed[0]["errorMessage"]
        assert "Could not find public function for 'errors:secret'" in failed[1]["errorMessage"]
        assert "channel" in failed[2]["errorMessage"]
        assert "errorData" not in failed[2]
        await ws.send(
            json.dumps(
                {
                    "type": "Mutation",
                    "requestId": 0,
                    "udfPath": "messages:send",
                    "args": [{"channel": "x"}],
                }
            )
        )
        response = await recv_until(ws, lambda m: m["type"] == "MutationResponse")
        assert response["success"] is False
        assert response["ts"] is None
        assert "body" in response["result"]
        # The connection is still open and answers a Transition after the response.
        await recv_until(ws, lambda m: m["type"] == "Transition")


async def test_oversized_frame_closes_that_socket_only(server_url: str) -> None:
    async with websockets.connect(ws_url(server_url), max_size=None) as ws:
        await ws.send(connect_msg())
        await ws.send(
            json.dumps(
                {
                    "type": "Mutation",
                    "requestId": 0,
                    "udfPath": "messages:send",
                    "args": [{"channel": "big", "body": "x" * (18 * 1024 * 1024)}],
                }
            )
        )
        closed = await expect_closed(ws, timeout=20)
        assert closed.rcvd is not None and closed.rcvd.code == 1009
    await healthy(server_url, "after-oversized")


async def test_oversized_document_is_refused_with_a_clear_error(server_url: str) -> None:
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as http:
        response = await http.post(
            "/api/mutation",
            json={
                "path": "messages:send",
                "args": [{"channel": "doc", "body": "y" * (1024 * 1024 + 10)}],
                "format": "convex_encoded_json",
            },
        )
        body = response.json()
        assert body["status"] == "error"
        assert "more than the limit of 1048576" in body["errorMessage"]
    await healthy(server_url, "after-big-doc")


async def test_http_bad_input(server_url: str) -> None:
    async with httpx.AsyncClient(base_url=server_url) as http:
        bad_json = await http.post("/api/query", content=b"{nope")
        assert bad_json.status_code == 400
        assert bad_json.json()["code"] == "BadJsonBody"
        no_path = await http.post("/api/query", json={"args": {}})
        assert no_path.status_code == 400
        assert "path" in no_path.json()["message"]
        bad_value = await http.post(
            "/api/query", json={"path": "messages:list", "args": {"channel": {"$bytes": 5}}}
        )
        assert bad_value.status_code == 400
        unknown = await http.post("/api/query", json={"path": "nope:nothing", "args": {}})
        assert unknown.status_code == 200
        assert unknown.json() == {
            "status": "error",
            "errorMessage": "Could not find public function for 'nope:nothing'.",
        }
        wrong_kind = await http.post(
            "/api/query", json={"path": "messages:send", "args": {"channel": "a", "body": "b"}}
        )
        assert "defined as Mutation" in wrong_kind.json()["errorMessage"]
        internal = await http.post(
            "/api/mutation", json={"path": "counter:internal_bump", "args": {"name": "x"}}
        )
        assert "Could not find public function" in internal.json()["errorMessage"]
    await healthy(server_url, "after-http")
