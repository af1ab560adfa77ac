"""Hostile websocket clients against a real ``reactor serve``: frames too large, too deep or
with numbers no float holds are refused with a clear answer (a failed response when the call's
requestId can be read, else a close frame with a code and reason) without stalling anyone else;
(a client that never reads is closed once its unsent data passes the bound: not yet tested here)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

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


def call(kind: str, request_id: int, path: str, args_json: str) -> str:
    return f'{{"type":"{kind}","requestId":{request_id},"udfPath":"{path}","args":[{args_json}]}}'


async def recv_until(
    ws: websockets.ClientConnection, predicate: Callable[[Any], bool], timeout: float = 20.0
) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if predicate(message):
                return message


class Bystander:
    """A client subscribed to a channel: ``round_trip`` sends a mutation and times until the
    Transition that shows it arrives (the push every subscriber waits for)."""

    def __init__(self, ws: websockets.ClientConnection, channel: str) -> None:
        self.ws = ws
        self.channel = channel
        self.request_id = 0

    @classmethod
    async def join(cls, ws: websockets.ClientConnection) -> Bystander:
        self = cls(ws, f"bystander-{uuid.uuid4().hex[:8]}")
        await ws.send(connect_msg())
        await ws.send(
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [
                        {
                            "type": "Add",
                            "queryId": 0,
                            "udfPath": "messages:bodies",
                            "args": [{"channel": self.channel}],
                        }
                    ],
                }
            )
        )
        await recv_until(ws, lambda m: m["type"] == "Transition")
        return self

    async def round_trip(self) -> float:
        self.request_id += 1
        body = f"b{self.request_id}"
        start = time.perf_counter()
        await self.ws.send(
            json.dumps(
                {
                    "type": "Mutation",
                    "requestId": self.request_id,
                    "udfPath": "messages:send",
                    "args": [{"channel": self.channel, "body": body}],
                }
            )
        )
        await recv_until(
            self.ws,
            lambda m: (
                m["type"] == "Transition"
                and any(body in json.dumps(x.get("value")) for x in m["modifications"])
            ),
        )
        return time.perf_counter() - start


@pytest.mark.parametrize(
    ("args_json", "fragment"),
    [
        ('{"channel":"h","body":"x","n":1' + "0" * 400 + "}", "too large for a float64"),
        ('{"channel":"h","body":"x","n":1e400}', "Number out of range"),
        ('{"channel":"h","body":' + "[" * 900 + "]" * 900 + "}", "levels deep"),
        ('{"channel":"h","body":' + "[" * 17 + "]" * 17 + "}", "nested more than 16 levels"),
        ('{"channel":"h","body":[' + ",".join(["0"] * 9000) + "]}", "more than the limit 8192"),
        ('{"channel":"h","body":"x",' + "", "not valid JSON"),
    ],
)
async def test_refused_calls_get_a_failed_response_and_the_socket_stays_open(
    server_url: str, args_json: str, fragment: str
) -> None:
    async with websockets.connect(ws_url(server_url)) as ws:
        await ws.send(connect_msg())
        await ws.send(call("Mutation", 5, "messages:send", args_json))
        response = await recv_until(ws, lambda m: m["type"] == "MutationResponse")
        assert (response["requestId"], response["success"], response["ts"]) == (5, False, None)
        assert fragment in response["result"]
        assert "errorData" not in response
        # The Transition every mutation response is followed by, then the socket still works.
        await recv_until(ws, lambda m: m["type"] == "Transition")
        await ws.send(call("Action", 6, "messages:send", args_json))
        response = await recv_until(ws, lambda m: m["type"] == "ActionResponse")
        assert (response["requestId"], response["success"]) == (6, False)
        assert fragment in response["result"]
        bystander = await Bystander.join(ws)
        assert await bystander.round_trip() < 10


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        ("[" * 100_000, "levels deep"),
        ('{"type":"Event","eventType":"x","event":[' + "{}," * 600_000 + "{}]}", "values"),
        ('{"type":"Mutation","requestId":"x","udfPath":"m:s","args":[{}]}', "requestId"),
        ("\x00", "not valid JSON"),
    ],
)
async def test_unreadable_frames_close_with_a_code_and_reason(
    server_url: str, frame: str, fragment: str
) -> None:
    async with websockets.connect(ws_url(server_url), max_size=None) as ws:
        await ws.send(connect_msg())
        await ws.send(frame)
        fatal = await recv_until(ws, lambda m: True)
        assert fatal["type"] == "FatalError"
        assert fragment in fatal["error"]
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 10)
        assert info.value.rcvd is not None, "closed without a close frame"
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (1000, "InvalidMessage")


async def test_huge_frames_do_not_stall_a_bystander(server_url: str) -> None:
    """Six 16 MB frames of millions of empty objects at once: each is refused after a bounded
    scan (not a multi-second decode each), and a bystander's round trip stays fast."""
    frame = call("Mutation", 1, "messages:send", '{"a":[' + ",".join(["{}"] * 5_500_000) + "]}")
    assert len(frame) > 16_000_000
    async with websockets.connect(ws_url(server_url)) as bystander_ws:
        bystander = await Bystander.join(bystander_ws)
        attackers = [await websockets.connect(ws_url(server_url), max_size=None) for _ in range(6)]
        try:

            async def attack(ws: websockets.ClientConnection) -> Any:
                await ws.send(connect_msg())
                await ws.send(frame)
                return await recv_until(ws, lambda m: m["type"] == "MutationResponse", 60)

            attacks = asyncio.gather(*(attack(ws) for ws in attackers))
            latencies = [await bystander.round_trip() for _ in range(10)]
            responses = await attacks
        finally:
            for ws in attackers:
                await ws.close()
    assert all(not r["success"] and "values" in r["result"] for r in responses), responses
    # Before: 3.4 s per frame on the event loop, and bystanders waited over 15 s.
    assert max(latencies) < 3.0, latencies
